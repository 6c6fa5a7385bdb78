//! Writing the opset-dependent form of an op (see [`crate::opset`] for the history).
//!
//! The IR keeps `axes`/`split` as fields; here they become an attribute below the opset that
//! moved them and an `int64` initializer input from it on. `Split` without sizes gets
//! `num_outputs` from opset 18, where the spec requires it. Below opset 11, `Clip` bounds go
//! back into `min`/`max` attributes. Anything that cannot be expressed at the graph's opset
//! (a run-time `axes` input below 13, say) is an error naming the node, never a silently
//! different model.

use crate::opset::{self, moved_attr};
use qopt_ir::{Attr, Graph, NodeId, Op, Tensor};

/// What the opset form adds to the model besides the node itself.
pub(crate) struct NewInitializer {
    /// Base for the initializer's name; the exporter makes it unique.
    pub base: String,
    pub slot: usize,
    pub tensor: Tensor,
}

/// Rewrite a default-domain node's inputs (value names, `""` for absent) and attributes into
/// the form of `opset`. Returns the initializers to create and wire into `inputs`.
pub(crate) fn apply(
    g: &Graph,
    n: NodeId,
    opset: i64,
    inputs: &mut Vec<String>,
    attrs: &mut Vec<(String, Attr)>,
) -> Result<Vec<NewInitializer>, String> {
    let node = g.node(n);
    let mut new = Vec::new();
    if let Some(m) = moved_attr(&node.op) {
        let field = attrs
            .iter()
            .position(|(k, _)| k == m.key)
            .map(|i| attrs.remove(i).1);
        let input = g.input(n, m.slot);
        if field.is_some() && input.is_some() {
            return Err(format!(
                "it has both a `{}` field and a `{}` input",
                m.key, m.key
            ));
        }
        if opset >= m.since {
            if let Some(Attr::Ints(values)) = field {
                let base = if node.name.is_empty() {
                    node.outputs[0].name.clone()
                } else {
                    node.name.clone()
                };
                new.push(NewInitializer {
                    base: format!("{base}_{}", m.key),
                    slot: m.slot,
                    tensor: Tensor::from_vec(&[values.len()], values),
                });
            } else if matches!(node.op, Op::Split(_))
                && opset >= opset::SPLIT_NUM_OUTPUTS_SINCE
                && input.is_none()
            {
                attrs.push(("num_outputs".into(), Attr::Int(node.outputs.len() as i64)));
            }
        } else if let Some(src) = input {
            let values = g
                .const_value(src)
                .filter(|t| matches!(t.as_ref(), Tensor::I64(_) | Tensor::I32(_)))
                .and_then(|t| t.to_i64_vec())
                .ok_or_else(|| {
                    format!(
                        "its `{}` come from a run-time input, which opset {opset} cannot \
                         express (ONNX takes `{}` as an input from opset {})",
                        m.key, m.key, m.since
                    )
                })?;
            attrs.push((m.key.to_string(), Attr::Ints(values)));
            set_input(inputs, m.slot, String::new());
        } else if let Some(f) = field {
            attrs.push((m.key.to_string(), f));
        }
    }
    if matches!(node.op, Op::Clip(_)) && opset < opset::CLIP_INPUTS_SINCE {
        for (slot, key) in [(1, "min"), (2, "max")] {
            let Some(src) = g.input(n, slot) else {
                continue;
            };
            let v = g
                .const_value(src)
                .and_then(|t| t.scalar_f64())
                .ok_or_else(|| {
                    format!(
                        "its `{key}` comes from a run-time input, which opset {opset} cannot \
                         express (Clip takes inputs from opset {})",
                        opset::CLIP_INPUTS_SINCE
                    )
                })?;
            attrs.push((key.to_string(), Attr::Float(v as f32)));
            set_input(inputs, slot, String::new());
        }
    }
    Ok(new)
}

pub(crate) fn set_input(inputs: &mut Vec<String>, slot: usize, name: String) {
    if inputs.len() <= slot {
        inputs.resize(slot + 1, String::new());
    }
    inputs[slot] = name;
}
