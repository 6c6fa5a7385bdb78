//! Reading a QDQ graph: which values are dequantized views of quantized tensors, with which
//! constant parameters, and which float values are quantized by a QuantizeLinear right after the
//! op that produces them (DESIGN.md §5; ONNX QuantizeLinear / DequantizeLinear specs).
//!
//! Parameters the integer plan can use are constant and per tensor (activations) or per tensor /
//! per axis (constant weights). Anything else (run-time scales, blocked quantization, per-axis
//! activations) is not an error: those nodes run as fp32 ops. Parameters that contradict each
//! other (a zero point of another shape than its scale, of another type than the data) are an
//! error naming the node, since ONNX Runtime refuses such models too.

use crate::error::InterpError;
use crate::int8::steps::{QOut, scales, zero_points};
use qopt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};
use std::sync::Arc;

/// Constant quantization parameters of one Q or DQ node.
#[derive(Clone, Debug, PartialEq)]
pub struct QParams {
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
    /// The quantized type (the zero point's, or the data's).
    pub dtype: DType,
    /// `None`: per tensor; else the axis the scales run along (normalised, needs the rank).
    pub axis: Option<usize>,
    /// The zero point as the graph gives it (kept for explicit-op operands).
    pub zp_tensor: Option<Arc<Tensor>>,
}

impl QParams {
    /// (scale, zero point) of a per-tensor parameter set.
    pub fn per_tensor(&self) -> Option<(f32, i32)> {
        (self.axis.is_none()).then(|| (self.scales[0], self.zero_points[0]))
    }

    pub fn out(&self) -> Option<QOut> {
        QOut::of(self.dtype)
    }
}

/// What a DequantizeLinear output is, for the lowering.
#[derive(Clone, Debug)]
pub enum Dq {
    /// A run-time quantized tensor `src` with per-tensor parameters.
    Runtime { src: ValueId, p: QParams },
    /// A constant (weights, bias, a quantized constant operand).
    Const { data: Arc<Tensor>, p: QParams },
}

fn err(g: &Graph, n: NodeId, msg: String) -> InterpError {
    InterpError::Node {
        node: g.describe(n),
        msg,
    }
}

/// The constant scale/zero-point inputs of node `n` (slots `s` and `z`), checked for agreement.
/// `Ok(None)`: not constant, not finite, or blocked. `data_dtype` is the quantized data's type
/// where known (DQ input, or the Q output type attribute).
// The arguments are the Q/DQ node's own attributes and slots; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn read_params(
    g: &Graph,
    n: NodeId,
    s: usize,
    z: usize,
    data_dtype: Option<DType>,
    data_rank: Option<usize>,
    axis_attr: i64,
    block: i64,
) -> Result<Option<QParams>, InterpError> {
    let Some(st) = g.const_input(n, s) else {
        return Ok(None);
    };
    let zt = match g.input(n, z) {
        None => None,
        Some(v) => match g.const_value(v) {
            Some(t) => Some(t.clone()),
            None => return Ok(None),
        },
    };
    let sv = scales(st, "scale").map_err(|e| err(g, n, e.0))?;
    if sv.is_empty() {
        return Err(err(g, n, "the scale is empty".into()));
    }
    let zv = match &zt {
        Some(t) => {
            let v = zero_points(t, "zero point").map_err(|e| err(g, n, e.0))?;
            if t.shape() != st.shape() && !(t.len() == 1 && st.len() == 1) {
                return Err(err(
                    g,
                    n,
                    format!(
                        "the zero point's shape {:?} differs from the scale's {:?}",
                        t.shape(),
                        st.shape()
                    ),
                ));
            }
            v
        }
        None => vec![0; sv.len()],
    };
    let dtype = match (&zt, data_dtype) {
        (Some(t), Some(d)) if t.dtype() != d => {
            return Err(err(
                g,
                n,
                format!(
                    "the zero point is {} but the quantized data is {d}",
                    t.dtype()
                ),
            ));
        }
        (Some(t), _) => t.dtype(),
        (None, Some(d)) => d,
        (None, None) => DType::U8,
    };
    if block != 0 || sv.iter().any(|v| !v.is_finite()) {
        return Ok(None);
    }
    let axis = if sv.len() == 1 && st.rank() <= 1 {
        None
    } else {
        if st.rank() != 1 {
            return Err(err(
                g,
                n,
                format!("a per-axis scale must be 1-D, got shape {:?}", st.shape()),
            ));
        }
        let Some(rank) = data_rank else {
            return Ok(None);
        };
        match qopt_ir::normalize_axis(axis_attr, rank) {
            Some(a) => Some(a),
            None => {
                return Err(err(
                    g,
                    n,
                    format!("axis {axis_attr} is out of range for rank {rank}"),
                ));
            }
        }
    };
    Ok(Some(QParams {
        scales: sv,
        zero_points: zv,
        dtype,
        axis,
        zp_tensor: zt,
    }))
}

/// The rank of value `v` where the graph records it (or it is a constant).
pub fn rank_of(g: &Graph, v: ValueId) -> Option<usize> {
    if let Some(t) = g.const_value(v) {
        return Some(t.rank());
    }
    g.value(v).ty.shape.as_ref().map(|s| s.rank())
}

/// The element type of value `v` where known.
pub fn dtype_of(g: &Graph, v: ValueId) -> Option<DType> {
    if let Some(t) = g.const_value(v) {
        return Some(t.dtype());
    }
    g.value(v).ty.dtype
}

/// What DequantizeLinear output `v` is, when its parameters are usable.
pub fn dq_of(g: &Graph, v: ValueId) -> Result<Option<Dq>, InterpError> {
    let n = v.node;
    let Op::DequantizeLinear(o) = &g.node(n).op else {
        return Ok(None);
    };
    let Some(x) = g.input(n, 0) else {
        return Ok(None);
    };
    let data = g.const_value(x).cloned();
    let p = read_params(
        g,
        n,
        1,
        2,
        dtype_of(g, x),
        rank_of(g, x),
        o.axis,
        o.block_size,
    )?;
    let Some(p) = p else { return Ok(None) };
    if let Some(a) = p.axis {
        let len = data
            .as_ref()
            .map(|d| d.shape().get(a).copied())
            .or_else(|| {
                g.value(x).ty.shape.as_ref().map(|s| match s.dims().get(a) {
                    Some(qopt_ir::Dim::Known(k)) => Some(*k as usize),
                    _ => None,
                })
            })
            .flatten();
        if let Some(len) = len
            && len != p.scales.len()
        {
            return Err(err(
                g,
                n,
                format!(
                    "{} per-axis scales for axis {a} of length {len}",
                    p.scales.len()
                ),
            ));
        }
    }
    Ok(Some(match data {
        Some(data) => Dq::Const { data, p },
        None if p.axis.is_none() && matches!(p.dtype, DType::U8 | DType::I8) => {
            Dq::Runtime { src: x, p }
        }
        None => return Ok(None),
    }))
}

/// Constant per-tensor parameters of QuantizeLinear node `n` (u8/i8 output).
pub fn q_params(g: &Graph, n: NodeId) -> Result<Option<QParams>, InterpError> {
    let Op::QuantizeLinear(o) = &g.node(n).op else {
        return Ok(None);
    };
    let out_dtype = g
        .node(n)
        .outputs
        .first()
        .and_then(|v| v.ty.dtype)
        .or(o.output_dtype);
    let rank = g.input(n, 0).and_then(|x| rank_of(g, x));
    let p = read_params(g, n, 1, 2, out_dtype, rank, o.axis, o.block_size)?;
    Ok(p.filter(|p| {
        p.axis.is_none() && p.scales[0] > 0.0 && matches!(p.dtype, DType::U8 | DType::I8)
    }))
}
