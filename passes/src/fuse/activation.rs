//! Fused activations: a Conv, ConvTranspose or Gemm whose only consumer is a Relu,
//! Clip(0, 6) or LeakyRelu is one unit for the quantizer.
//!
//! The graph keeps `Conv -> Relu` (valid ONNX that every runtime fuses itself); the layer's
//! output value gets the note `@fused_act="Relu"` (or `"Clip"`, `"LeakyRelu"`): the name of
//! the activation that consumes it. `observe` and `qdq` read it and quantize the activation's
//! output, not the layer's (an int8 conv writes its requantized output after the activation,
//! as TensorRT's and ONNX Runtime's fused kernels do).
//!
//! This is not an e-graph rule: it decides nothing about what is computed, only how the
//! computed graph is grouped, so it is read off the graph after extraction, where the
//! layer's consumers are final. A stale mark (the layer no longer feeds an activation) is
//! removed.

use qopt_ir::{Attr, Graph, NodeId, Op, ValueId};

/// The note on a layer's output value naming the activation fused with it (the same
/// constant `target` reads).
pub const FUSED_ACT: &str = crate::target::FUSED_ACTIVATION_NOTE;

/// The activation op type that fuses with the value `v`, if `v`'s only use is one.
fn fusable_activation(g: &Graph, v: ValueId) -> Option<&'static str> {
    if g.is_graph_output(v) {
        return None;
    }
    let [(consumer, 0)] = g.consumers(v)[..] else {
        return None;
    };
    match &g.node(consumer).op {
        Op::Relu(_) => Some("Relu"),
        Op::LeakyRelu(_) => Some("LeakyRelu"),
        Op::Clip(_) if clip_is_relu6(g, consumer) => Some("Clip"),
        _ => None,
    }
}

/// Clip with constant bounds exactly 0 and 6 (ReLU6).
fn clip_is_relu6(g: &Graph, clip: NodeId) -> bool {
    let bound = |slot| g.const_input(clip, slot).and_then(|t| t.scalar_f64());
    bound(1) == Some(0.0) && bound(2) == Some(6.0)
}

/// Set or clear the `fused_act` note on every Conv/ConvTranspose/Gemm output. Returns whether
/// a note changed.
pub fn mark_fused_activations(g: &mut Graph) -> bool {
    let mut changed = false;
    for n in g.node_ids() {
        let node = g.node(n);
        let layer = matches!(node.op, Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_));
        if !layer || node.outputs.len() != 1 {
            continue;
        }
        let v = ValueId::new(n, 0);
        let want = fusable_activation(g, v).map(|a| Attr::String(a.to_string()));
        let notes = &mut g.value_mut(v).ann.notes;
        if notes.get(FUSED_ACT) != want.as_ref() {
            match want {
                Some(a) => notes.insert(FUSED_ACT.to_string(), a),
                None => notes.remove(FUSED_ACT),
            };
            changed = true;
        }
    }
    changed
}
