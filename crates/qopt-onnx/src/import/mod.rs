//! ONNX model -> qopt [`Graph`].
//!
//! - Graph inputs become [`Op::Input`] nodes; initializers, sparse initializers and `Constant`
//!   nodes (PaddlePaddle exports keep every weight in one) become [`Op::Const`] nodes named
//!   after their value.
//! - Every other node goes through the op table (`Op::from_parts`), which fills in the spec's
//!   attribute defaults. An op outside the table, or a known op with an attribute the table does
//!   not know, becomes [`Op::Custom`] and is exported unchanged (the latter with a warning).
//! - Opset-dependent forms are canonicalised (see [`crate::opset`]): a constant `axes`/`split`
//!   input becomes the op's field, the softmax family gets its opset's default axis, and
//!   opset < 11 `Clip` bounds become constant inputs.
//! - A model with QuantizeLinear/DequantizeLinear nodes (QAT, or quantized before) gets their
//!   parameters as `@q` on the integer values (`qdq.rs`).
//! - Names, doc strings, value types (`input`, `output`, `value_info`) and model metadata are
//!   kept; a value that is read but never defined is an error naming the reader.
//!
//! Nodes may come in any order (ONNX requires a topological order, but the importer does not
//! rely on it); nodes are added in file order so that export reproduces it.

mod attr;
mod qdq;
pub(crate) mod tensor;
mod types;

use crate::error::ImportError;
use crate::opset::{self, moved_attr, with_moved_attr};
use attr::{decode_attr, has_subgraph};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, Message, ModelProto, NodeProto};
use qopt_ir::{
    Attr, AttrError, Custom, Graph, ModelMeta, NodeId, Op, Shape, Tensor, TypeInfo, ValueId,
    ValueInfo, verify,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use tensor::{DataDir, Decoded, checked_shape, decode_sparse, decode_tensor, type_name};
use types::decode_type;

/// The note the importer puts on a generated output value that stands for an absent optional
/// output (an empty output name before a non-empty one); the exporter writes it as `""` again
/// while nothing reads it.
pub const ABSENT_OUTPUT_NOTE: &str = "onnx.absent_output";

/// How to import a model.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The folder that external data locations are relative to: the model's folder.
    /// [`crate::load`] sets it; without it a model with external data is refused.
    pub base_dir: Option<PathBuf>,
    /// The model's name in error messages ([`crate::load`] uses the path; default `<memory>`).
    pub label: Option<String>,
}

/// An imported model.
#[derive(Debug)]
pub struct Imported {
    pub graph: Graph,
    /// Things the importer changed or dropped, one line each (node or value named).
    pub warnings: Vec<String>,
}

/// Import a model from its serialized bytes.
pub fn import(bytes: &[u8], opts: ImportOptions) -> Result<Imported, ImportError> {
    let file = label(&opts);
    if bytes.is_empty() {
        return Err(ImportError::Empty { file });
    }
    let decode = |msg: String| ImportError::Decode {
        file: file.clone(),
        msg,
    };
    check_top_level_lengths(bytes).map_err(decode)?;
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| decode(e.to_string()))?;
    import_model(&model, opts)
}

/// Check that every length-delimited field at the top level of the message fits in `bytes`.
///
/// rust-protobuf 3.4 reads a top-level message with no length limit, so a nested message
/// whose length runs past the end of a truncated file is parsed up to the end of the file and
/// accepted: a model cut in the middle of its graph would import as a smaller graph. Nested
/// fields are checked by the parser itself (a length past the enclosing message's end is
/// refused), so checking the top level closes the hole.
fn check_top_level_lengths(bytes: &[u8]) -> Result<(), String> {
    fn varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = b.get(*pos) else {
                return Err(format!("the file ends inside a varint at byte {pos}"));
            };
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("malformed varint before byte {pos}"))
    }
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let tag = varint(bytes, &mut pos)?;
        let skip = match tag & 7 {
            0 => {
                varint(bytes, &mut pos)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => varint(bytes, &mut pos)?,
            // Groups (3, 4) carry no length; the parser checks them and what they hold.
            3 | 4 => 0,
            w => return Err(format!("invalid wire type {w} at byte {start}")),
        };
        let remaining = (bytes.len() - pos) as u64;
        if skip > remaining {
            return Err(format!(
                "field {} at byte {start} needs {skip} bytes but the file has {remaining} left",
                tag >> 3
            ));
        }
        pos += skip as usize;
    }
    Ok(())
}

/// Import an already parsed model.
pub fn import_model(model: &ModelProto, opts: ImportOptions) -> Result<Imported, ImportError> {
    let mut imp = Importer {
        file: label(&opts),
        dir: DataDir(opts.base_dir.as_deref()),
        opset: 0,
        g: Graph::new(""),
        defined: HashMap::new(),
        taken: HashSet::new(),
        warnings: Vec::new(),
    };
    imp.run(model)?;
    Ok(Imported {
        graph: imp.g,
        warnings: imp.warnings,
    })
}

/// Read and import a model file; external data is looked up next to it.
pub fn load(path: impl AsRef<Path>) -> Result<Imported, ImportError> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        file: file.clone(),
        source,
    })?;
    let base_dir = Some(match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    });
    import(
        &bytes,
        ImportOptions {
            base_dir,
            label: Some(file),
        },
    )
}

fn label(opts: &ImportOptions) -> String {
    opts.label.clone().unwrap_or_else(|| "<memory>".to_string())
}

/// `Conv node 'conv1'`, or `Conv node (output 'y')` for an unnamed node.
fn describe(i: usize, np: &NodeProto) -> String {
    let op = if np.domain.is_empty() || np.domain == "ai.onnx" {
        np.op_type.clone()
    } else {
        format!("{}::{}", np.domain, np.op_type)
    };
    if !np.name.is_empty() {
        format!("{op} node '{}'", np.name)
    } else if let Some(o) = np.output.iter().find(|o| !o.is_empty()) {
        format!("{op} node (output '{o}')")
    } else {
        format!("{op} node #{i}")
    }
}

struct Importer<'a> {
    file: String,
    dir: DataDir<'a>,
    /// Version of the default ONNX domain (0 when the model imports none).
    opset: i64,
    g: Graph,
    /// Value name -> value, for everything defined so far.
    defined: HashMap<String, ValueId>,
    /// Every name in the model, so that generated names never collide.
    taken: HashSet<String>,
    warnings: Vec<String>,
}

/// A node waiting for its inputs to be connected once every value is defined.
struct Pending {
    node: NodeId,
    index: usize,
    inputs: Vec<String>,
    /// Constant inputs the importer created (opset < 11 Clip bounds), by slot.
    extra: Vec<(usize, ValueId)>,
}

impl Importer<'_> {
    fn model_err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Model {
            file: self.file.clone(),
            msg: msg.into(),
        }
    }

    fn node_err(&self, node: &str, msg: impl Into<String>) -> ImportError {
        ImportError::Node {
            file: self.file.clone(),
            node: node.to_string(),
            msg: msg.into(),
        }
    }

    fn tensor_err(&self, tensor: &str, msg: impl Into<String>) -> ImportError {
        ImportError::Tensor {
            file: self.file.clone(),
            tensor: tensor.to_string(),
            msg: msg.into(),
        }
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.taken.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    /// Record that `name` is defined by `v`; a second definition is an error.
    fn define(&mut self, name: &str, v: ValueId, what: &str) -> Result<(), ImportError> {
        if let Some(prev) = self.defined.insert(name.to_string(), v) {
            let prev = self.g.describe(prev.node);
            return Err(self.model_err(format!(
                "value '{name}' is defined twice: by {prev} and by {what}"
            )));
        }
        Ok(())
    }

    fn run(&mut self, model: &ModelProto) -> Result<(), ImportError> {
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| self.model_err("not an ONNX model: it has no graph"))?;
        if !model.functions.is_empty() {
            let names: Vec<String> = model
                .functions
                .iter()
                .map(|f| format!("{}::{}", f.domain, f.name))
                .collect();
            return Err(self.model_err(format!(
                "the model defines local functions ({}), which qopt does not support",
                names.join(", ")
            )));
        }
        self.read_meta(model);
        self.g.name = graph.name.clone();
        self.g.meta.graph_doc_string = graph.doc_string.clone();
        if !model.training_info.is_empty() {
            self.warnings.push(
                "the model's training_info was dropped (qopt keeps inference graphs only)".into(),
            );
        }
        if !graph.quantization_annotation.is_empty() {
            self.warnings.push(format!(
                "{} quantization_annotation entries were dropped",
                graph.quantization_annotation.len()
            ));
        }

        let uses_onnx = graph
            .node
            .iter()
            .any(|n| n.domain.is_empty() || n.domain == "ai.onnx");
        match self.g.meta.onnx_opset() {
            Some(v) => self.opset = v,
            None if uses_onnx => {
                return Err(self.model_err(
                    "the model uses ONNX operators but imports no opset of the default domain",
                ));
            }
            None => {}
        }
        if uses_onnx && self.opset < 11 {
            self.warnings.push(format!(
                "opset {} is older than 11, the oldest qopt supports; imported on a best-effort \
                 basis (Clip bounds become inputs; Resize-10 and ops with attributes later \
                 opsets removed are kept as custom ops)",
                self.opset
            ));
        }

        // Every name, so that generated names (Clip bounds, absent outputs) are fresh.
        let mut init_names: HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        for s in &graph.sparse_initializer {
            if let Some(v) = s.values.as_ref() {
                init_names.insert(v.name.as_str());
            }
        }
        self.taken.extend(init_names.iter().map(|s| s.to_string()));
        self.taken
            .extend(graph.input.iter().map(|v| v.name.clone()));
        for n in &graph.node {
            self.taken.extend(n.output.iter().cloned());
        }

        self.read_inputs(graph, &init_names)?;
        self.read_initializers(graph)?;
        let pending = self.read_nodes(graph)?;
        self.connect(graph, pending)?;
        let (meta, notes) = opset::completed_meta(&self.g);
        self.g.meta = meta;
        self.warnings.extend(notes);
        self.read_value_types(graph)?;
        self.fold_moved_inputs()?;
        qdq::annotate(&mut self.g);
        verify(&self.g).map_err(|e| self.model_err(e.to_string()))?;
        Ok(())
    }

    fn read_meta(&mut self, model: &ModelProto) {
        let mut opsets: Vec<(String, i64)> = Vec::new();
        for o in &model.opset_import {
            if !opsets.iter().any(|(d, _)| *d == o.domain) {
                opsets.push((o.domain.clone(), o.version));
            }
        }
        self.g.meta = ModelMeta {
            ir_version: model.ir_version,
            opset_imports: opsets,
            producer_name: model.producer_name.clone(),
            producer_version: model.producer_version.clone(),
            domain: model.domain.clone(),
            model_version: model.model_version,
            doc_string: model.doc_string.clone(),
            graph_doc_string: String::new(),
            metadata_props: model
                .metadata_props
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        };
    }

    fn read_inputs(
        &mut self,
        graph: &onnx_protobuf::GraphProto,
        init_names: &HashSet<&str>,
    ) -> Result<(), ImportError> {
        for vi in &graph.input {
            if vi.name.is_empty() {
                return Err(self.model_err("a graph input has no name"));
            }
            if init_names.contains(vi.name.as_str()) {
                // IR < 4 listed every initializer as an input too; the initializer is the
                // value an inference run sees.
                self.warnings.push(format!(
                    "graph input '{}' has an initializer; it is imported as a constant",
                    vi.name
                ));
                continue;
            }
            let ty = decode_type(vi.type_.as_ref())
                .map_err(|m| self.model_err(format!("graph input '{}': {m}", vi.name)))?;
            let v = self.g.add_input(&vi.name, ty);
            self.g.value_mut(v).doc = vi.doc_string.clone();
            self.define(&vi.name, v, &format!("graph input '{}'", vi.name))?;
        }
        Ok(())
    }

    fn read_initializers(&mut self, graph: &onnx_protobuf::GraphProto) -> Result<(), ImportError> {
        for t in &graph.initializer {
            if t.name.is_empty() {
                return Err(self.model_err("an initializer has no name"));
            }
            let v = match decode_tensor(t, self.dir).map_err(|m| self.tensor_err(&t.name, m))? {
                Decoded::Tensor(x) => self.g.add_const(&t.name, x),
                Decoded::Unsupported(code) => {
                    let a = AttributeProto {
                        name: "value".into(),
                        type_: AttributeType::TENSOR.into(),
                        t: Some(t.clone()).into(),
                        ..Default::default()
                    };
                    let raw = a
                        .write_to_bytes()
                        .map_err(|e| self.tensor_err(&t.name, e.to_string()))?;
                    self.warnings.push(format!(
                        "initializer '{}' has element type {}, which qopt cannot compute with; \
                         it is kept as an opaque Constant node",
                        t.name,
                        type_name(code)
                    ));
                    self.custom_constant(&t.name, vec![("value".into(), Attr::Raw(raw))], &t.dims)
                        .map_err(|m| self.tensor_err(&t.name, m))?
                }
            };
            self.g.node_mut(v.node).doc = t.doc_string.clone();
            self.define(&t.name, v, &format!("initializer '{}'", t.name))?;
        }
        for s in &graph.sparse_initializer {
            let name = s
                .values
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            if name.is_empty() {
                return Err(self.model_err("a sparse initializer has no name"));
            }
            let t = match decode_sparse(s, self.dir).map_err(|m| self.tensor_err(&name, m))? {
                Decoded::Tensor(t) => t,
                Decoded::Unsupported(code) => {
                    return Err(self.tensor_err(
                        &name,
                        format!(
                            "sparse tensor of element type {} is not supported",
                            type_name(code)
                        ),
                    ));
                }
            };
            let v = self.g.add_const(&name, t);
            self.define(&name, v, &format!("sparse initializer '{name}'"))?;
        }
        Ok(())
    }

    /// A `Constant` kept as an opaque custom node (its element type has no qopt tensor).
    fn custom_constant(
        &mut self,
        name: &str,
        attrs: Vec<(String, Attr)>,
        dims: &[i64],
    ) -> Result<ValueId, String> {
        let shape = checked_shape(dims, 1)?.0;
        let ty = TypeInfo {
            dtype: None,
            shape: Some(Shape::known(&shape)),
        };
        let op = Op::Custom(Box::new(Custom {
            domain: String::new(),
            op_type: "Constant".into(),
            attrs,
        }));
        let id = self
            .g
            .add_node(name, op, &[], vec![ValueInfo::new(name, ty)]);
        Ok(ValueId::new(id, 0))
    }

    fn read_nodes(
        &mut self,
        graph: &onnx_protobuf::GraphProto,
    ) -> Result<Vec<Pending>, ImportError> {
        let mut pending = Vec::new();
        for (i, np) in graph.node.iter().enumerate() {
            let desc = describe(i, np);
            let mut outs: Vec<&str> = np.output.iter().map(String::as_str).collect();
            while outs.last() == Some(&"") {
                outs.pop();
            }
            if outs.is_empty() {
                self.warnings
                    .push(format!("{desc} has no outputs; it was dropped"));
                continue;
            }
            let mut attrs: Vec<(String, Attr)> = Vec::with_capacity(np.attribute.len());
            for a in &np.attribute {
                if a.name.is_empty() {
                    return Err(self.node_err(&desc, "an attribute has no name"));
                }
                if attrs.iter().any(|(k, _)| *k == a.name) {
                    return Err(
                        self.node_err(&desc, format!("attribute '{}' is given twice", a.name))
                    );
                }
                let v = decode_attr(a, self.dir)
                    .map_err(|m| self.node_err(&desc, format!("attribute '{}': {m}", a.name)))?;
                attrs.push((a.name.clone(), v));
            }
            let default_domain = np.domain.is_empty() || np.domain == "ai.onnx";
            if default_domain && np.op_type == "Constant" {
                self.read_constant(np, &desc, &outs)?;
                continue;
            }
            if np.attribute.iter().any(has_subgraph) {
                self.warnings.push(format!(
                    "{desc} has a sub-graph; values it reads from the enclosing graph are not \
                     tracked as inputs, so passes may move or remove them"
                ));
            }
            let (op, extra) = self.build_op(np, &desc, attrs)?;
            let outputs = self.output_values(np, &outs);
            let id = self.g.add_node(np.name.clone(), op, &[], outputs);
            self.g.node_mut(id).doc = np.doc_string.clone();
            for slot in 0..outs.len() {
                let v = ValueId::new(id, slot);
                let name = self.g.value_name(v).to_string();
                self.define(&name, v, &desc)?;
            }
            let extra = extra
                .into_iter()
                .map(|(slot, name, t)| (slot, self.g.add_const(name, t)))
                .collect();
            pending.push(Pending {
                node: id,
                index: i,
                inputs: np.input.clone(),
                extra,
            });
        }
        Ok(pending)
    }

    /// Output values of a node; an empty name before a non-empty one (an absent optional
    /// output) gets a fresh name and [`ABSENT_OUTPUT_NOTE`].
    fn output_values(&mut self, np: &NodeProto, outs: &[&str]) -> Vec<ValueInfo> {
        let base = outs
            .iter()
            .find(|o| !o.is_empty())
            .map(|s| s.to_string())
            .unwrap_or_else(|| np.name.clone());
        outs.iter()
            .enumerate()
            .map(|(slot, &name)| {
                if name.is_empty() {
                    let fresh = self.fresh(&format!("{base}.absent{slot}"));
                    let mut v = ValueInfo::new(fresh, TypeInfo::unknown());
                    v.ann.notes.insert(ABSENT_OUTPUT_NOTE.into(), Attr::Int(1));
                    v
                } else {
                    ValueInfo::new(name, TypeInfo::unknown())
                }
            })
            .collect()
    }

    /// The op of a non-Constant node, after the opset-dependent attribute rewrites, and the
    /// constant inputs those rewrites create (slot, value name, tensor).
    #[allow(clippy::type_complexity)]
    fn build_op(
        &mut self,
        np: &NodeProto,
        desc: &str,
        orig: Vec<(String, Attr)>,
    ) -> Result<(Op, Vec<(usize, String, Tensor)>), ImportError> {
        let domain = if np.domain == "ai.onnx" {
            ""
        } else {
            np.domain.as_str()
        };
        let mut attrs = orig.clone();
        let mut extra = Vec::new();
        let has = |attrs: &[(String, Attr)], k: &str| attrs.iter().any(|(n, _)| n == k);
        if domain.is_empty() {
            match np.op_type.as_str() {
                "Softmax" | "LogSoftmax" | "Hardmax" if !has(&attrs, "axis") => {
                    let axis = if self.opset < opset::SOFTMAX_LAST_AXIS_SINCE {
                        1
                    } else {
                        -1
                    };
                    attrs.push(("axis".into(), Attr::Int(axis)));
                }
                // Split-18's `num_outputs` is implied by the node's outputs; a mismatch is left
                // for the op table to refuse (the node then stays custom).
                "Split" => {
                    if let Some(pos) = attrs.iter().position(|(k, a)| {
                        k == "num_outputs" && *a == Attr::Int(np.output.len() as i64)
                    }) {
                        attrs.remove(pos);
                    }
                }
                "Clip" if self.opset < opset::CLIP_INPUTS_SINCE => {
                    for (slot, key) in [(1, "min"), (2, "max")] {
                        if let Some(pos) = attrs.iter().position(|(k, _)| k == key) {
                            let (_, a) = attrs.remove(pos);
                            let v = match a {
                                Attr::Float(v) => v,
                                other => {
                                    return Err(self.node_err(
                                        desc,
                                        format!(
                                            "attribute '{key}': expected float, got {}",
                                            other.kind()
                                        ),
                                    ));
                                }
                            };
                            let base = np.output.first().cloned().unwrap_or_default();
                            let name = self.fresh(&format!("{base}_{key}"));
                            extra.push((slot, name, Tensor::scalar(v)));
                        }
                    }
                }
                _ => {}
            }
        }
        // Resize-10 has Resize-11's attributes but computes like `asymmetric` coordinates
        // (onnx Changelog.md, Resize-11): the op table's Resize would misread it.
        let parts: Result<Op, String> = if domain.is_empty()
            && np.op_type == "Resize"
            && self.opset < 11
        {
            Err("Resize before opset 11 computes differently from the op table's Resize".into())
        } else {
            match Op::from_parts(domain, &np.op_type, &attrs) {
                Ok(op) => Ok(op),
                Err(AttrError::Missing(name)) => {
                    return Err(self.node_err(desc, format!("missing required attribute '{name}'")));
                }
                Err(e) => Err(e.to_string()),
            }
        };
        match parts {
            Ok(op) => Ok((op, extra)),
            Err(why) => {
                self.warnings.push(format!(
                    "{desc}: {why}; imported as a custom op and exported unchanged"
                ));
                let op = Op::Custom(Box::new(Custom {
                    domain: domain.to_string(),
                    op_type: np.op_type.clone(),
                    attrs: orig,
                }));
                Ok((op, Vec::new()))
            }
        }
    }

    /// A `Constant` node (onnx Operators.md `Constant`): exactly one of `value`,
    /// `sparse_value`, `value_float(s)`, `value_int(s)`, `value_string(s)`.
    fn read_constant(
        &mut self,
        np: &NodeProto,
        desc: &str,
        outs: &[&str],
    ) -> Result<(), ImportError> {
        if outs.len() != 1 || outs[0].is_empty() {
            return Err(self.node_err(desc, "a Constant node must have exactly one output"));
        }
        if np.input.iter().any(|s| !s.is_empty()) {
            return Err(self.node_err(desc, "a Constant node takes no inputs"));
        }
        let [a] = np.attribute.as_slice() else {
            return Err(self.node_err(
                desc,
                format!(
                    "a Constant node needs exactly one value attribute, found {}",
                    np.attribute.len()
                ),
            ));
        };
        let out = outs[0];
        let expect = match a.name.as_str() {
            "value" => AttributeType::TENSOR,
            "sparse_value" => AttributeType::SPARSE_TENSOR,
            "value_float" => AttributeType::FLOAT,
            "value_floats" => AttributeType::FLOATS,
            "value_int" => AttributeType::INT,
            "value_ints" => AttributeType::INTS,
            "value_string" => AttributeType::STRING,
            "value_strings" => AttributeType::STRINGS,
            other => {
                return Err(self.node_err(desc, format!("unknown Constant attribute '{other}'")));
            }
        };
        if a.type_.enum_value() != Ok(expect) {
            return Err(self.node_err(
                desc,
                format!(
                    "attribute '{}' must have type {expect:?}, has {:?}",
                    a.name,
                    a.type_.enum_value()
                ),
            ));
        }
        let bad = |m: String| self.tensor_err(out, m);
        let decoded = match expect {
            AttributeType::TENSOR => match a.t.as_ref() {
                Some(t) => decode_tensor(t, self.dir).map_err(bad)?,
                None => return Err(self.node_err(desc, "attribute 'value' holds no tensor")),
            },
            AttributeType::SPARSE_TENSOR => match a.sparse_tensor.as_ref() {
                Some(s) => decode_sparse(s, self.dir).map_err(bad)?,
                None => return Err(self.node_err(desc, "attribute 'sparse_value' holds no tensor")),
            },
            AttributeType::FLOAT => Decoded::Tensor(Tensor::scalar(a.f)),
            AttributeType::INT => Decoded::Tensor(Tensor::scalar(a.i)),
            AttributeType::FLOATS => {
                Decoded::Tensor(Tensor::from_vec(&[a.floats.len()], a.floats.clone()))
            }
            AttributeType::INTS => {
                Decoded::Tensor(Tensor::from_vec(&[a.ints.len()], a.ints.clone()))
            }
            _ => Decoded::Unsupported(8),
        };
        let v = match decoded {
            Decoded::Tensor(t) => self.g.add_const(out, t),
            Decoded::Unsupported(code) => {
                self.warnings.push(format!(
                    "{desc}: element type {} has no qopt tensor; the node is kept as an opaque \
                     Constant",
                    type_name(code)
                ));
                let raw = decode_attr(a, self.dir).map_err(|m| self.node_err(desc, m))?;
                let dims: Vec<i64> = match (&a.t.0, expect) {
                    (Some(t), AttributeType::TENSOR) => t.dims.clone(),
                    (_, AttributeType::STRINGS) => vec![a.strings.len() as i64],
                    (_, AttributeType::SPARSE_TENSOR) => a
                        .sparse_tensor
                        .as_ref()
                        .map(|s| s.dims.clone())
                        .unwrap_or_default(),
                    _ => vec![],
                };
                self.custom_constant(out, vec![(a.name.clone(), raw)], &dims)
                    .map_err(|m| self.tensor_err(out, m))?
            }
        };
        self.g.node_mut(v.node).doc = np.doc_string.clone();
        self.define(out, v, desc)
    }

    fn connect(
        &mut self,
        graph: &onnx_protobuf::GraphProto,
        pending: Vec<Pending>,
    ) -> Result<(), ImportError> {
        for p in pending {
            for (slot, name) in p.inputs.iter().enumerate() {
                if name.is_empty() {
                    continue;
                }
                let Some(&v) = self.defined.get(name) else {
                    return Err(ImportError::Undefined {
                        file: self.file.clone(),
                        user: describe(p.index, &graph.node[p.index]),
                        value: name.clone(),
                    });
                };
                self.g.connect(v, p.node, slot);
            }
            for (slot, v) in p.extra {
                self.g.connect(v, p.node, slot);
            }
        }
        let mut outputs = Vec::with_capacity(graph.output.len());
        for vi in &graph.output {
            let Some(&v) = self.defined.get(&vi.name) else {
                return Err(ImportError::Undefined {
                    file: self.file.clone(),
                    user: "the graph output list".into(),
                    value: vi.name.clone(),
                });
            };
            outputs.push(v);
        }
        self.g.set_outputs(outputs);
        Ok(())
    }

    /// Types and doc strings from `value_info` and the graph outputs. Inputs and constants
    /// keep the types they were created with: those are authoritative.
    fn read_value_types(&mut self, graph: &onnx_protobuf::GraphProto) -> Result<(), ImportError> {
        for vi in &graph.value_info {
            let Some(&v) = self.defined.get(&vi.name) else {
                self.warnings.push(format!(
                    "value_info names '{}', which the graph does not define; ignored",
                    vi.name
                ));
                continue;
            };
            match decode_type(vi.type_.as_ref()) {
                // ONNX Runtime refuses element type 0 in value_info, so the exporter writes an
                // intermediate value's type only with its element type: a shape alone is dropped.
                Ok(ty) if ty.dtype.is_none() && ty.shape.is_some() => self.warnings.push(format!(
                    "value_info of '{}' has a shape but no element type; ignored",
                    vi.name
                )),
                Ok(ty) => self.set_type(v, ty),
                Err(m) => self.warnings.push(format!(
                    "value_info of '{}': {m}; its type is left unknown",
                    vi.name
                )),
            }
            if !vi.doc_string.is_empty() {
                self.g.value_mut(v).doc = vi.doc_string.clone();
            }
        }
        for (vi, &v) in graph.output.iter().zip(&self.g.outputs().to_vec()) {
            let ty = decode_type(vi.type_.as_ref())
                .map_err(|m| self.model_err(format!("graph output '{}': {m}", vi.name)))?;
            self.set_type(v, ty);
            if !vi.doc_string.is_empty() {
                self.g.value_mut(v).doc = vi.doc_string.clone();
            }
        }
        Ok(())
    }

    fn set_type(&mut self, v: ValueId, ty: TypeInfo) {
        if !matches!(self.g.node(v.node).op, Op::Input | Op::Const(_)) {
            self.g.value_mut(v).ty = ty;
        }
    }

    /// Fold constant `axes`/`split` inputs into the op's field and drop the edge; a constant
    /// left without readers by that is removed.
    fn fold_moved_inputs(&mut self) -> Result<(), ImportError> {
        let mut freed: Vec<NodeId> = Vec::new();
        for n in self.g.node_ids() {
            let Some(m) = moved_attr(&self.g.node(n).op) else {
                continue;
            };
            let Some(src) = self.g.input(n, m.slot) else {
                continue;
            };
            let Some(t) = self.g.const_value(src) else {
                continue;
            };
            let values = match t.as_ref() {
                Tensor::I64(_) | Tensor::I32(_) if t.rank() <= 1 => {
                    t.to_i64_vec().unwrap_or_default()
                }
                _ => {
                    return Err(self.node_err(
                        &self.g.describe(n),
                        format!(
                            "input '{}' must be a 1-D integer tensor, got {} {:?}",
                            m.key,
                            t.dtype(),
                            t.shape()
                        ),
                    ));
                }
            };
            let op = with_moved_attr(&self.g.node(n).op, m, values)
                .map_err(|e| self.node_err(&self.g.describe(n), e))?;
            self.g.node_mut(n).op = op;
            self.g.disconnect(n, m.slot);
            freed.push(src.node);
        }
        freed.sort();
        freed.dedup();
        for c in freed {
            if self.g.successors(c).is_empty() && !self.g.outputs().iter().any(|o| o.node == c) {
                self.g.remove_node(c);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_lengths_must_fit_the_file() {
        // ir_version = 8, then graph (field 7) announcing 3 bytes.
        assert!(check_top_level_lengths(&[0x08, 0x08, 0x3a, 0x03, 1, 2, 3]).is_ok());
        let e = check_top_level_lengths(&[0x08, 0x08, 0x3a, 0x03, 1, 2]).unwrap_err();
        assert!(e.contains("field 7 at byte 2 needs 3 bytes"), "{e}");
        assert!(check_top_level_lengths(&[0x08]).is_err(), "varint cut off");
        assert!(check_top_level_lengths(&[0x0f]).is_err(), "wire type 7");
        assert!(
            check_top_level_lengths(&[0x09, 1, 2]).is_err(),
            "fixed64 cut off"
        );
    }
}
