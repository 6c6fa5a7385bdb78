//! qopt [`Graph`] -> ONNX model.
//!
//! - Nodes are written in the graph's deterministic topological order (for an imported graph
//!   that is the file's order); constants become initializers with `raw_data`.
//! - Each op writes only its non-default attributes (`Op::attrs`), so an attribute newer than
//!   the graph's opset is never written; `axes`/`split`/`Clip` bounds take the form the opset
//!   asks for ([`forms`]).
//! - Names, doc strings, value types (inputs, outputs, and `value_info` for every typed
//!   intermediate value), opset imports and model metadata are written as imported, so that
//!   import -> export -> import gives the same graph.
//! - [`save`] writes atomically and moves tensors to an external data file when the model
//!   would not fit in a 2 GiB protobuf.

mod encode;
mod forms;
mod save;

pub use save::{save, save_with};

use crate::error::ExportError;
use crate::import::ABSENT_OUTPUT_NOTE;
use crate::opset::completed_meta;
use encode::{encode_attr, encode_tensor, encode_value_info};
use onnx_protobuf::{
    GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    ValueInfoProto,
};
use qopt_ir::{Graph, ModelMeta, NodeId, Op, ValueId};
use std::collections::HashSet;

/// The largest protobuf message: 2 GiB - 1 (protobuf's signed 32-bit sizes).
pub(crate) const MAX_PROTO_BYTES: u64 = i32::MAX as u64;

/// How to export a graph.
#[derive(Clone, Copy, Debug)]
pub struct ExportOptions {
    /// Total initializer bytes above which [`save`] writes tensors to `<file>.data` instead of
    /// into the model. Default 2 GiB, the protobuf limit; lower it to test external data.
    pub external_data_threshold: u64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            external_data_threshold: 2 << 30,
        }
    }
}

/// Build the ONNX model of a graph (tensors inline).
pub fn export(g: &Graph, opts: ExportOptions) -> Result<ModelProto, ExportError> {
    let _ = opts;
    Exporter::new(g)?.run()
}

/// Build and serialize the ONNX model of a graph; a model over 2 GiB is refused (use [`save`]).
pub fn export_bytes(g: &Graph, opts: ExportOptions) -> Result<Vec<u8>, ExportError> {
    encode_model(&export(g, opts)?)
}

pub(crate) fn encode_model(m: &ModelProto) -> Result<Vec<u8>, ExportError> {
    let size = m.compute_size();
    if size > MAX_PROTO_BYTES {
        return Err(ExportError::TooLarge { bytes: size });
    }
    m.write_to_bytes().map_err(ExportError::Encode)
}

struct Exporter<'g> {
    g: &'g Graph,
    order: Vec<NodeId>,
    /// The graph's metadata completed with what ONNX requires.
    meta: ModelMeta,
    opset: i64,
    /// Every value name, so generated initializer names are fresh.
    names: HashSet<String>,
}

impl<'g> Exporter<'g> {
    fn new(g: &'g Graph) -> Result<Self, ExportError> {
        let order = g.topo_order().map_err(|n| ExportError::Cycle {
            node: g.describe(n),
        })?;
        let mut names = HashSet::new();
        for &n in &order {
            for v in &g.node(n).outputs {
                if v.name.is_empty() {
                    return Err(ExportError::Graph(format!(
                        "{} has an output without a name",
                        g.describe(n)
                    )));
                }
                if !names.insert(v.name.clone()) {
                    return Err(ExportError::Graph(format!(
                        "value name '{}' is defined more than once",
                        v.name
                    )));
                }
            }
        }
        let (meta, _) = completed_meta(g);
        let opset = meta.onnx_opset().unwrap_or(crate::opset::DEFAULT_OPSET);
        Ok(Exporter {
            g,
            order,
            meta,
            opset,
            names,
        })
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn node_err(&self, n: NodeId, msg: impl Into<String>) -> ExportError {
        ExportError::Node {
            node: self.g.describe(n),
            msg: msg.into(),
        }
    }

    fn run(mut self) -> Result<ModelProto, ExportError> {
        let g = self.g;
        let mut nodes = Vec::new();
        let mut generated = Vec::new();
        // (node, slot) uses of constants that became attributes.
        let mut folded: HashSet<(NodeId, usize)> = HashSet::new();
        for &n in &self.order.clone() {
            let node = g.node(n);
            match &node.op {
                Op::Input | Op::Const(_) => {}
                Op::Observer(_) => {
                    return Err(self.node_err(
                        n,
                        "observer nodes have no ONNX form; remove them (the `thresholds` pass \
                         does) before export",
                    ));
                }
                op => {
                    let mut inputs: Vec<String> = g
                        .inputs(n)
                        .iter()
                        .map(|v| v.map(|v| g.value_name(v).to_string()).unwrap_or_default())
                        .collect();
                    let mut attrs = op.attrs();
                    if op.domain().is_empty() {
                        let before: Vec<bool> = inputs.iter().map(|s| !s.is_empty()).collect();
                        let new = forms::apply(g, n, self.opset, &mut inputs, &mut attrs)
                            .map_err(|m| self.node_err(n, m))?;
                        for (slot, was) in before.into_iter().enumerate() {
                            if was && inputs[slot].is_empty() {
                                folded.insert((n, slot));
                            }
                        }
                        for init in new {
                            let name = self.fresh(&init.base);
                            generated.push(encode_tensor(&name, &init.tensor));
                            forms::set_input(&mut inputs, init.slot, name);
                        }
                    }
                    while inputs.last().is_some_and(|s| s.is_empty()) {
                        inputs.pop();
                    }
                    let mut outputs: Vec<String> = node
                        .outputs
                        .iter()
                        .enumerate()
                        .map(|(slot, v)| {
                            let absent = v.ann.notes.contains_key(ABSENT_OUTPUT_NOTE)
                                && g.use_count(ValueId::new(n, slot)) == 0;
                            if absent {
                                String::new()
                            } else {
                                v.name.clone()
                            }
                        })
                        .collect();
                    while outputs.last().is_some_and(|s| s.is_empty()) {
                        outputs.pop();
                    }
                    let attribute = attrs
                        .iter()
                        .map(|(k, a)| encode_attr(k, a))
                        .collect::<Result<Vec<_>, String>>()
                        .map_err(|m| self.node_err(n, m))?;
                    nodes.push(NodeProto {
                        input: inputs,
                        output: outputs,
                        name: node.name.clone(),
                        op_type: op.op_type().to_string(),
                        domain: op.domain().to_string(),
                        attribute,
                        doc_string: node.doc.clone(),
                        ..Default::default()
                    });
                }
            }
        }

        // Constants, in graph order; one whose every reader took it as an attribute is gone.
        let mut initializers = Vec::new();
        for &n in &self.order {
            let node = g.node(n);
            let Op::Const(t) = &node.op else { continue };
            let v = ValueId::new(n, 0);
            let consumers = g.consumers(v);
            let all_folded = !consumers.is_empty()
                && consumers.iter().all(|c| folded.contains(c))
                && !g.is_graph_output(v);
            if all_folded {
                continue;
            }
            let mut tp = encode_tensor(&node.outputs[0].name, t);
            tp.doc_string = node.doc.clone();
            initializers.push(tp);
        }
        initializers.extend(generated);

        let mut input = Vec::new();
        for &i in g.input_nodes() {
            let v = g.value(ValueId::new(i, 0));
            if v.ty.dtype.is_none() {
                return Err(ExportError::Graph(format!(
                    "graph input '{}' has no element type",
                    v.name
                )));
            }
            input.push(encode_value_info(v));
        }
        let ir_version = self.meta.ir_version;
        // Before IR version 4 every initializer had to be a graph input as well.
        if ir_version < 4 {
            for t in &initializers {
                let v = g.find_value(&t.name).map(|v| g.value(v).clone());
                if let Some(v) = v {
                    input.push(encode_value_info(&v));
                }
            }
        }
        let output = g
            .outputs()
            .iter()
            .map(|&v| encode_value_info(g.value(v)))
            .collect();
        let mut value_info = Vec::new();
        for &n in &self.order {
            let node = g.node(n);
            if matches!(node.op, Op::Input | Op::Const(_)) {
                continue;
            }
            for (slot, v) in node.outputs.iter().enumerate() {
                if g.is_graph_output(ValueId::new(n, slot)) {
                    continue;
                }
                // ONNX Runtime refuses a value_info with element type 0: without a dtype, only
                // the doc string is written.
                if v.ty.dtype.is_some() {
                    value_info.push(encode_value_info(v));
                } else if !v.doc.is_empty() {
                    value_info.push(ValueInfoProto {
                        name: v.name.clone(),
                        doc_string: v.doc.clone(),
                        ..Default::default()
                    });
                }
            }
        }

        let graph = GraphProto {
            node: nodes,
            name: g.name.clone(),
            initializer: initializers,
            doc_string: g.meta.graph_doc_string.clone(),
            input,
            output,
            value_info,
            ..Default::default()
        };
        Ok(ModelProto {
            ir_version,
            opset_import: self.opset_imports(),
            producer_name: g.meta.producer_name.clone(),
            producer_version: g.meta.producer_version.clone(),
            domain: g.meta.domain.clone(),
            model_version: g.meta.model_version,
            doc_string: g.meta.doc_string.clone(),
            graph: Some(graph).into(),
            metadata_props: g
                .meta
                .metadata_props
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: k.clone(),
                    value: v.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn opset_imports(&self) -> Vec<OperatorSetIdProto> {
        self.meta
            .opset_imports
            .iter()
            .map(|(domain, version)| OperatorSetIdProto {
                domain: domain.clone(),
                version: *version,
                ..Default::default()
            })
            .collect()
    }
}
