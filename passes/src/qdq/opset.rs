//! Raising a graph's default-domain opset to 13, where QuantizeLinear/DequantizeLinear
//! gained the per-axis form (`axis`) that per-channel weights need.
//!
//! The IR keeps the forms that moved from attributes to inputs (Squeeze/Unsqueeze/
//! ReduceSum axes, Split sizes) as fields, and the exporter writes whatever the new opset
//! asks, so those survive as they are; ReduceMean and the other reductions move only at
//! 18. Between opsets 11/12 and 13 the one change of meaning is the softmax family
//! (onnx `docs/Changelog.md`, Softmax-13): before 13 the input is coerced to 2-D at `axis`
//! and normalised over everything from `axis` on; from 13 over the single `axis`. The two
//! agree when `axis` is the last one (or every later dimension is 1); otherwise the node
//! is rewritten as `Reshape(Softmax(Flatten(x, axis), axis=1), Shape(x))`, which is the
//! old definition spelled in ops.

use qopt_ir::op::{Flatten, Hardmax, LogSoftmax, Reshape, Shape as ShapeOp, Softmax};
use qopt_ir::{DType, Dim, Graph, NodeId, Op, Shape, TypeInfo, ValueId, ValueInfo, normalize_axis};

/// The first opset whose QuantizeLinear/DequantizeLinear take `axis`.
pub const PER_AXIS_SINCE: i64 = 13;

/// The ONNX IR version that opset 13 needs (onnx `helper.VERSION_TABLE`).
const IR_VERSION_FOR_13: i64 = 7;

/// Whether the pre-13 softmax of `n` means the same as the opset-13 one.
fn same_meaning(g: &Graph, n: NodeId, axis: i64) -> bool {
    let Some(x) = g.input(n, 0) else { return true };
    let Some(shape) = &g.value(x).ty.shape else {
        return false;
    };
    let Some(a) = normalize_axis(axis, shape.rank()) else {
        return false;
    };
    shape.0[a + 1..].iter().all(|d| *d == Dim::Known(1))
}

fn softmax_axis(op: &Op) -> Option<i64> {
    match op {
        Op::Softmax(s) => Some(s.axis),
        Op::LogSoftmax(s) => Some(s.axis),
        Op::Hardmax(s) => Some(s.axis),
        _ => None,
    }
}

/// Rewrite one pre-13 softmax-family node into its opset-13 equivalent.
fn rewrite_softmax(g: &mut Graph, n: NodeId, axis: i64, names: &mut super::Names) {
    let x = g.input(n, 0).expect("checked");
    let out = ValueId::new(n, 0);
    let info = g.value(out).clone();
    let base = if g.node(n).name.is_empty() {
        info.name.clone()
    } else {
        g.node(n).name.clone()
    };
    let rank_known = g.value(x).ty.shape.as_ref().map(|s| s.rank());
    let shape_v = {
        let v = ValueInfo::new(
            names.fresh(&format!("{base}_shape")),
            TypeInfo::new(
                DType::I64,
                Shape(vec![
                    rank_known.map_or(Dim::Unknown, |r| Dim::Known(r as u64)),
                ]),
            ),
        );
        let id = g.add_node(
            format!("{base}_shape"),
            ShapeOp::default(),
            &[Some(x)],
            vec![v],
        );
        ValueId::new(id, 0)
    };
    let flat = {
        let a = rank_known
            .and_then(|r| normalize_axis(axis, r))
            .map_or(axis, |a| a as i64);
        let v = ValueInfo::new(
            names.fresh(&format!("{base}_2d")),
            TypeInfo {
                dtype: info.ty.dtype,
                shape: None,
            },
        );
        let id = g.add_node(
            format!("{base}_flatten"),
            Flatten { axis: a },
            &[Some(x)],
            vec![v],
        );
        ValueId::new(id, 0)
    };
    let op: Op = match &g.node(n).op {
        Op::Softmax(_) => Softmax { axis: 1 }.into(),
        Op::LogSoftmax(_) => LogSoftmax { axis: 1 }.into(),
        _ => Hardmax { axis: 1 }.into(),
    };
    // The node keeps its name; its output becomes the 2-D result, and the Reshape back
    // takes over the original output's name and annotations.
    let two_d = ValueInfo::new(
        names.fresh(&format!("{}_2d_out", info.name)),
        TypeInfo {
            dtype: info.ty.dtype,
            shape: None,
        },
    );
    let name = g.node(n).name.clone();
    let sm = g.add_node(name, op, &[Some(flat)], vec![two_d]);
    let sm = ValueId::new(sm, 0);
    let consumers = g.consumers(out);
    let was_output = g.is_graph_output(out);
    g.remove_node(n);
    let reshaped = g.add_node(
        format!("{base}_reshape"),
        Reshape::default(),
        &[Some(sm), Some(shape_v)],
        vec![info],
    );
    let reshaped = ValueId::new(reshaped, 0);
    for (c, slot) in consumers {
        g.connect(reshaped, c, slot);
    }
    if was_output {
        let outs = g
            .outputs()
            .iter()
            .map(|&o| if o == out { reshaped } else { o })
            .collect();
        g.set_outputs(outs);
    }
}

/// Raise the default-domain opset of `g` to `to` (13 at most matters here), rewriting what
/// changes meaning on the way. A graph at `to` or above is left alone.
pub fn upgrade(g: &mut Graph, to: i64) -> Result<(), String> {
    let from = g.meta.onnx_opset().unwrap_or(to);
    if from >= to {
        return Ok(());
    }
    if from < 11 {
        return Err(format!(
            "cannot raise opset {from} to {to}: qopt reads opsets 11 and later"
        ));
    }
    let mut names = super::Names::new(g);
    if to >= 13 {
        let nodes: Vec<NodeId> = g
            .topo_order()
            .map_err(|n| format!("cycle through {}", g.describe(n)))?;
        for n in nodes {
            if let Some(axis) = softmax_axis(&g.node(n).op)
                && !same_meaning(g, n, axis)
            {
                rewrite_softmax(g, n, axis, &mut names);
            }
        }
    }
    g.meta.set_opset("", to);
    if g.meta.ir_version < IR_VERSION_FOR_13 {
        g.meta.ir_version = IR_VERSION_FOR_13;
    }
    Ok(())
}
