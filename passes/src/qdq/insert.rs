//! Q -> DQ pairs on activations.
//!
//! A quantized value `x` gets `x_q = QuantizeLinear(x, x_scale, x_zp)` and
//! `x_dq = DequantizeLinear(x_q, x_scale, x_zp)`, one pair per value whatever the number of
//! uses (the scale and zero point constants are shared by the two nodes, as ONNX Runtime
//! writes them). With [`Uses::All`] every consumer reads `x_dq`, and a graph output keeps
//! its name on the dequantized value (the float producer output is renamed `x_float`), as
//! ONNX Runtime's quantizer does; with [`Uses::Only`] just the listed inputs do.

use super::Names;
use crate::target::Uses;
use qopt_ir::op::{DequantizeLinear, QuantizeLinear};
use qopt_ir::{DType, Graph, QParams, Tensor, TypeInfo, ValueId, ValueInfo};
use std::collections::BTreeMap;

/// A scalar or per-channel zero-point tensor of the parameters' type.
pub(crate) fn zero_point_tensor(p: &QParams) -> Tensor {
    let per_axis = p.axis.is_some();
    let shape: &[usize] = if per_axis { &[p.zero_point.len()] } else { &[] };
    match p.dtype {
        DType::U8 => Tensor::from_vec(shape, p.zero_point.iter().map(|&z| z as u8).collect()),
        DType::I32 => Tensor::from_vec(shape, p.zero_point.clone()),
        _ => Tensor::from_vec(shape, p.zero_point.iter().map(|&z| z as i8).collect()),
    }
}

pub(crate) fn scale_tensor(p: &QParams) -> Tensor {
    if p.axis.is_some() {
        Tensor::from_vec(&[p.scale.len()], p.scale.clone())
    } else {
        Tensor::scalar(p.scale[0])
    }
}

/// Scale and zero-point constants named after `base`.
pub(crate) fn add_param_consts(
    g: &mut Graph,
    names: &mut Names,
    base: &str,
    p: &QParams,
) -> (ValueId, ValueId) {
    let s = g.add_const(names.fresh(&format!("{base}_scale")), scale_tensor(p));
    let z = g.add_const(names.fresh(&format!("{base}_zp")), zero_point_tensor(p));
    (s, z)
}

/// `DequantizeLinear(q, s, z)` with a float output of `ty`'s shape named `name`.
pub(crate) fn add_dq(
    g: &mut Graph,
    name: String,
    q: ValueId,
    s: ValueId,
    z: ValueId,
    axis: Option<usize>,
    ty: &TypeInfo,
) -> ValueId {
    let op = DequantizeLinear {
        axis: axis.map_or(1, |a| a as i64),
        ..Default::default()
    };
    let out = ValueInfo::new(
        name.clone(),
        TypeInfo {
            dtype: Some(DType::F32),
            shape: ty.shape.clone(),
        },
    );
    let n = g.add_node(name, op, &[Some(q), Some(s), Some(z)], vec![out]);
    ValueId::new(n, 0)
}

/// `QuantizeLinear(x, s, z)` with an output of the parameters' type named `name`, carrying
/// the parameters as its `@q`.
pub(crate) fn add_q(
    g: &mut Graph,
    name: String,
    x: ValueId,
    s: ValueId,
    z: ValueId,
    p: &QParams,
) -> ValueId {
    let op = QuantizeLinear {
        axis: p.axis.map_or(1, |a| a as i64),
        ..Default::default()
    };
    let mut out = ValueInfo::new(
        name.clone(),
        TypeInfo {
            dtype: Some(p.dtype),
            shape: g.value(x).ty.shape.clone(),
        },
    );
    out.ann.qparams = Some(p.clone());
    let n = g.add_node(name, op, &[Some(x), Some(s), Some(z)], vec![out]);
    ValueId::new(n, 0)
}

/// Insert a Q -> DQ pair for every value of `uses`. Returns how many.
pub(crate) fn activations(
    g: &mut Graph,
    uses: &BTreeMap<ValueId, Uses>,
    params: &BTreeMap<ValueId, QParams>,
    names: &mut Names,
) -> usize {
    let mut count = 0;
    for (&v, which) in uses {
        let Some(p) = params.get(&v) else { continue };
        let readers = match which {
            Uses::All => g.consumers(v),
            Uses::Only(list) => list.clone(),
        };
        let is_output = matches!(which, Uses::All) && g.is_graph_output(v);
        if readers.is_empty() && !is_output {
            continue;
        }
        let base = g.value_name(v).to_string();
        let ty = g.value(v).ty.clone();
        let (s, z) = add_param_consts(g, names, &base, p);
        let q = add_q(g, names.fresh(&format!("{base}_q")), v, s, z, p);
        let dq_name = if is_output {
            // The graph output keeps its name on the dequantized value.
            g.value_mut(v).name = names.fresh(&format!("{base}_float"));
            base.clone()
        } else {
            names.fresh(&format!("{base}_dq"))
        };
        let dq = add_dq(g, dq_name, q, s, z, None, &ty);
        if is_output {
            let doc = std::mem::take(&mut g.value_mut(v).doc);
            g.value_mut(dq).doc = doc;
            let outs: Vec<ValueId> = g
                .outputs()
                .iter()
                .map(|&o| if o == v { dq } else { o })
                .collect();
            g.set_outputs(outs);
        }
        for (c, slot) in readers {
            g.connect(dq, c, slot);
        }
        count += 1;
    }
    count
}
