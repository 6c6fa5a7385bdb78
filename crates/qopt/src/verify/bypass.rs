//! Quantized graphs with some activation quantizations removed, for `--sensitivity`.
//!
//! Bypassing a layer rewires every reader of its DequantizeLinear outputs to the float value
//! the QuantizeLinear read, clamped to the range the Q/DQ pair represents, and deletes those
//! DQ nodes and the Q node: the float QDQ simulation then carries that tensor without
//! rounding, as if the layer had been left out of quantization. The clamp stays because a
//! QuantizeLinear may stand for an activation the `qdq` pass dropped (a Relu after a conv
//! becomes the zero point at the bottom of the int8 range, as ONNX Runtime does; likewise
//! Clip(0, 6)): without it the layer would compute a different function, not a more precise
//! one. Per-axis activation quantization (rare) is bypassed without a clamp. Weights stay as the quantized model stores them (int8 + DequantizeLinear):
//! a fused layer's fp32 weights are not in the quantized model, so weight quantization is on
//! in every run (the "no activation quantized" run measures it alone).

use super::layers::QuantLayer;
use qopt_ir::{DType, Graph, NodeId, Op, Tensor, ValueId};

/// A copy of `g` with the quantization of the `bypassed` layers removed.
pub fn bypass(g: &Graph, layers: &[QuantLayer], bypassed: &[bool]) -> Graph {
    let mut g = g.clone();
    for (l, _) in layers.iter().zip(bypassed).filter(|(_, b)| **b) {
        // The Q node's input now, not at matching time: an earlier bypass may have rewired it.
        let Some(x) = g.input(l.q_node, 0) else {
            continue;
        };
        let mut dqs = vec![];
        for (c, _) in g.consumers(l.q_value) {
            if matches!(g.node(c).op, Op::DequantizeLinear(_)) && !dqs.contains(&c) {
                dqs.push(c);
            }
        }
        let x = match representable_range(&g, l.q_node) {
            Some((lo, hi)) => {
                let name = g.value_name(l.q_value).to_string();
                let lo = g.add_const(format!("{name}_bypass_lo"), Tensor::scalar(lo));
                let hi = g.add_const(format!("{name}_bypass_hi"), Tensor::scalar(hi));
                g.add_simple(
                    format!("{name}_bypass"),
                    Op::Clip(qopt_ir::op::Clip {}),
                    &[x, lo, hi],
                    format!("{name}_bypass"),
                )
            }
            None => x,
        };
        for &d in &dqs {
            g.replace_all_uses(ValueId::new(d, 0), x);
        }
        for d in dqs {
            g.remove_node(d);
        }
        if g.consumers(l.q_value).is_empty() && !g.is_graph_output(l.q_value) {
            g.remove_node(l.q_node);
        }
    }
    g
}

/// The float range a per-tensor QuantizeLinear can represent: `[(qmin - zp) * s, (qmax - zp) * s]`
/// (ONNX: the zero point's type is the output type, uint8 without one).
fn representable_range(g: &Graph, q: NodeId) -> Option<(f32, f32)> {
    let scale = g.const_input(q, 1)?;
    if scale.len() != 1 {
        return None;
    }
    let s = scale.scalar_f64()? as f32;
    let (dtype, zp) = match g.const_input(q, 2) {
        Some(z) if z.len() == 1 => (z.dtype(), z.scalar_f64()? as f32),
        Some(_) => return None,
        None => (DType::U8, 0.0),
    };
    let (qmin, qmax) = match dtype {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        _ => return None,
    };
    Some(((qmin - zp) * s, (qmax - zp) * s))
}
