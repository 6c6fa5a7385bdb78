//! Quantization parameters of a model that is quantized already (a QAT export, or one from
//! another quantizer): each QuantizeLinear/DequantizeLinear with constant parameters puts
//! them on its integer value as `@q` — the QuantizeLinear output and the DequantizeLinear
//! input (an int8 weight, an int32 bias) — so that passes, the INT8 interpreter and the
//! backends read them without recalibration (DESIGN.md §4). Parameters the IR cannot hold
//! (int16, int4, fp8, blocked quantization) are left as nodes only.

use qopt_ir::{DType, Graph, NodeId, Op, QParams, ValueId, normalize_axis};

/// The parameters of a Q/DQ node from its constant scale and zero point, for the integer
/// value `q` it produces or reads.
fn params(g: &Graph, n: NodeId, q: ValueId, axis: i64, block: i64) -> Option<QParams> {
    if block != 0 {
        return None;
    }
    let scale = g.const_input(n, 1)?;
    let zp = match g.input(n, 2) {
        Some(_) => Some(g.const_input(n, 2)?),
        None => None,
    };
    let dtype = match zp {
        Some(z) => z.dtype(),
        None => g.value(q).ty.dtype.unwrap_or(DType::U8),
    };
    if !matches!(dtype, DType::I8 | DType::U8 | DType::I32) {
        return None;
    }
    let s: Vec<f32> = scale.to_f64_vec().iter().map(|&x| x as f32).collect();
    let z: Vec<i32> = match zp {
        Some(z) => z.to_f64_vec().iter().map(|&x| x as i32).collect(),
        None => vec![0; s.len()],
    };
    if s.is_empty() || s.len() != z.len() {
        return None;
    }
    let per_axis = scale.rank() == 1 && (s.len() > 1 || zp.is_some_and(|t| t.rank() == 1));
    let axis = if per_axis {
        let rank = g.value(q).ty.shape.as_ref()?.rank();
        Some(normalize_axis(axis, rank)?)
    } else {
        None
    };
    let p = QParams {
        dtype,
        scale: if per_axis { s } else { vec![s[0]] },
        zero_point: if per_axis { z } else { vec![z[0]] },
        axis,
    };
    p.check().ok()?;
    if let (Some(a), Some(shape)) = (axis, &g.value(q).ty.shape)
        && shape.0[a]
            .known()
            .is_some_and(|c| c as usize != p.scale.len())
    {
        return None;
    }
    Some(p)
}

/// Put `@q` on the integer side of every QuantizeLinear/DequantizeLinear with constant
/// parameters, unless the value carries parameters already. Returns how many were set.
pub(crate) fn annotate(g: &mut Graph) -> usize {
    let mut set = 0;
    for n in g.node_ids() {
        let (q, axis, block) = match &g.node(n).op {
            Op::QuantizeLinear(o) => (ValueId::new(n, 0), o.axis, o.block_size),
            Op::DequantizeLinear(o) => match g.input(n, 0) {
                Some(v) => (v, o.axis, o.block_size),
                None => continue,
            },
            _ => continue,
        };
        if g.value(q).ann.qparams.is_some() {
            continue;
        }
        if let Some(p) = params(g, n, q, axis, block) {
            g.value_mut(q).ann.qparams = Some(p);
            set += 1;
        }
    }
    set
}
