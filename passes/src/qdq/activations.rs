//! Dropping a Relu or Clip(0, c) whose clamp the quantization of its output performs.
//!
//! With asymmetric int8 activations a range [0, m] gets zero point -128, the bottom of the
//! grid: QuantizeLinear maps every x <= 0 to -128, exactly as it maps Relu(x) = 0. For
//! Clip(0, c) with m <= c, every x >= c saturates to 127 either way. So Q(act(x)) == Q(x)
//! for every x and the op is redundant in front of its Q; ONNX Runtime's quantizer removes
//! it (`QDQRemovableActivation`, `try_replacing_upstream_output`) and TFLite fuses it into
//! the producer. The input value takes over the output's name, range and parameters.
//! When the parameters do not make it exact (a hand-written range wider than the clamp),
//! the op stays and its input stays float.

use crate::target::{FUSED_ACTIVATION_NOTE, Uses};
use qopt_calib::qparams::quantize_value;
use qopt_ir::{Graph, NodeId, Op, QParams, ValueId};
use std::collections::BTreeMap;

/// Whether `Q(act(x)) == Q(x)` for every x under `p`.
fn clamp_is_exact(g: &Graph, act: NodeId, p: &QParams) -> bool {
    let Some((qmin, qmax)) = p.dtype.int_range() else {
        return false;
    };
    if p.scale.len() != 1 || p.zero_point[0] as i64 != qmin {
        return false;
    }
    match g.node(act).op {
        Op::Relu(_) => true,
        Op::Clip(_) => match g.const_input(act, 2).and_then(|t| t.scalar_f64()) {
            None => g.input(act, 2).is_none(),
            Some(c) => {
                quantize_value(
                    c as f32,
                    p.scale[0],
                    p.zero_point[0],
                    qmin as i32,
                    qmax as i32,
                ) as i64
                    == qmax
            }
        },
        _ => false,
    }
}

/// Remove the activations of `removable` that are exact under their output's parameters.
/// Re-keys `params` and `uses` from the removed output to the input. Returns the count.
pub(crate) fn remove_clamps(
    g: &mut Graph,
    removable: &[(NodeId, ValueId)],
    params: &mut BTreeMap<ValueId, QParams>,
    uses: &mut BTreeMap<ValueId, Uses>,
) -> usize {
    let mut removed = 0;
    for &(act, input) in removable {
        let out = ValueId::new(act, 0);
        let Some(p) = params.get(&out) else { continue };
        if !clamp_is_exact(g, act, p) {
            continue;
        }
        let p = p.clone();
        let info = g.value(out).clone();
        g.replace_all_uses(out, input);
        g.remove_node(act);
        let v = g.value_mut(input);
        v.name = info.name;
        v.doc = info.doc;
        v.ann.range = info.ann.range;
        v.ann.qparams = info.ann.qparams;
        v.ann.notes.remove(FUSED_ACTIVATION_NOTE);
        params.remove(&out);
        params.insert(input, p);
        if let Some(u) = uses.remove(&out) {
            uses.insert(input, u);
        }
        removed += 1;
    }
    removed
}
