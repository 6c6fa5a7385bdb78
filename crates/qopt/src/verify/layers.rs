//! Which values of the quantized graph stand for which values of the fp32 graph.
//!
//! A quantized layer is an activation QuantizeLinear: a Q node whose input is computed (not a
//! constant weight). Its fp32 counterpart is found by name, the first of
//! 1. the name of the Q node's input (qopt's `qdq` pass and ONNX Runtime's `quantize_static`
//!    keep the fp32 name on the value they quantize; where qopt drops a Relu into the output
//!    quantization, the conv output takes the Relu's name, so it still names the Relu output
//!    the Q clamps like), then
//! 2. the names of the DequantizeLinear nodes reading the Q output (a graph output keeps its
//!    name on the dequantized value; the float value before Q is renamed `<name>_float`).
//!
//! A name is accepted only for a computed value or graph input of the fp32 graph (constants
//! never stand for activations). Q nodes without a match are listed in [`Matching::unmatched`]
//! and are not compared. The quantized layer's value is the Q output itself (u8/i8), read from
//! whichever engine runs the quantized graph and dequantized with that Q's scale and zero point,
//! so both engines are compared on the same tensor: what the next layer really receives.

use qopt_ir::{Graph, NodeId, Op, ValueId};

/// One quantized activation and its fp32 counterpart.
#[derive(Clone, Debug)]
pub struct QuantLayer {
    /// The fp32 value's name (the layer's name in reports).
    pub name: String,
    /// That value in the fp32 graph.
    pub reference: ValueId,
    /// The QuantizeLinear node in the quantized graph.
    pub q_node: NodeId,
    /// Its output (the quantized tensor).
    pub q_value: ValueId,
}

#[derive(Clone, Debug, Default)]
pub struct Matching {
    /// In the quantized graph's topological order.
    pub layers: Vec<QuantLayer>,
    /// Activation Q nodes with no fp32 counterpart (their description).
    pub unmatched: Vec<String>,
}

/// Match the activation quantizations of `quant` to values of `reference` (see the module
/// comment).
pub fn match_layers(reference: &Graph, quant: &Graph) -> Matching {
    let names = reference.value_names();
    let usable = |name: &str| -> Option<ValueId> {
        let v = *names.get(name)?;
        (!matches!(reference.node(v.node).op, Op::Const(_))).then_some(v)
    };
    let mut m = Matching::default();
    let order = quant.topo_order().unwrap_or_default();
    for n in order {
        if !matches!(quant.node(n).op, Op::QuantizeLinear(_)) {
            continue;
        }
        let Some(x) = quant.input(n, 0) else { continue };
        if quant.const_value(x).is_some() {
            continue;
        }
        let q_value = ValueId::new(n, 0);
        let mut candidates = vec![quant.value_name(x).to_string()];
        for (c, _) in quant.consumers(q_value) {
            if matches!(quant.node(c).op, Op::DequantizeLinear(_)) {
                candidates.push(quant.node(c).outputs[0].name.clone());
            }
        }
        match candidates.iter().find_map(|c| usable(c).map(|v| (c, v))) {
            Some((name, v)) => m.layers.push(QuantLayer {
                name: name.clone(),
                reference: v,
                q_node: n,
                q_value,
            }),
            None => m.unmatched.push(quant.describe(n)),
        }
    }
    m
}
