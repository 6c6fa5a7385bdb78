//! Shared helpers for qopt-onnx's integration tests: paths of the committed models under
//! `testdata/onnx/` and the reference values `tools/gen_onnx_testdata.py` stored beside them
//! (ONNX Runtime's outputs, `<model>.expected.json`).
#![allow(dead_code)]

use qopt_ir::{DType, Graph, Op, Tensor};
use qopt_onnx::proto::{Message, ModelProto};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn testdata(name: &str) -> PathBuf {
    qopt_onnx::testing::workspace_root()
        .join("testdata/onnx")
        .join(name)
}

/// Import a committed model, failing the test with the importer's message.
pub fn load(name: &str) -> qopt_onnx::Imported {
    qopt_onnx::load(testdata(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// The committed model as parsed protobuf (the reference for what export must keep).
pub fn proto(name: &str) -> ModelProto {
    let bytes = std::fs::read(testdata(name)).unwrap();
    ModelProto::parse_from_bytes(&bytes).unwrap()
}

/// Export and parse back the protobuf.
pub fn export(g: &Graph) -> ModelProto {
    qopt_onnx::export(g, qopt_onnx::ExportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A reference tensor: numpy dtype name, shape and little-endian bytes.
#[derive(Debug)]
pub struct Expected {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Expected {
    /// Whether `t` holds exactly these bits.
    pub fn matches(&self, t: &Tensor) -> bool {
        t.dtype() == self.dtype && t.shape() == self.shape && t.to_le_bytes() == self.bytes
    }
}

fn numpy_dtype(s: &str) -> DType {
    match s {
        "float32" => DType::F32,
        "float16" => DType::F16,
        "float64" => DType::F64,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "bool" => DType::Bool,
        other => panic!("dtype {other}"),
    }
}

/// ONNX Runtime's outputs for `<model>.onnx`, by output name.
pub fn expected_outputs(model: &str) -> BTreeMap<String, Expected> {
    let path = testdata(&model.replace(".onnx", ".expected.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (name, e) in v["outputs"].as_object().unwrap() {
        let hex = e["hex"].as_str().unwrap();
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        out.insert(
            name.clone(),
            Expected {
                dtype: numpy_dtype(e["dtype"].as_str().unwrap()),
                shape: e["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
                bytes,
            },
        );
    }
    out
}

/// The tensor of the constant named `name`.
pub fn const_named<'g>(g: &'g Graph, name: &str) -> &'g Tensor {
    let v = g
        .find_value(name)
        .unwrap_or_else(|| panic!("no value {name}"));
    match &g.node(v.node).op {
        Op::Const(t) => t,
        other => panic!("{name} is {other:?}, not a constant"),
    }
}

/// The node whose ONNX name is `name`.
pub fn node_named(g: &Graph, name: &str) -> qopt_ir::NodeId {
    g.node_ids()
        .into_iter()
        .find(|&n| g.node(n).name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}
