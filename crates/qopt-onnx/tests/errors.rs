//! Bad models give one clear error naming the file and the node, tensor or value, never a
//! panic (DESIGN.md §9); export refuses what ONNX cannot express. The models are built here
//! with onnx-protobuf's structs, field by field, so each test breaks exactly one rule.

use qopt_ir::{DType, Graph, ObserverState, Op, Shape, Tensor, TypeInfo, op};
use qopt_onnx::proto::attribute_proto::AttributeType;
use qopt_onnx::proto::{
    AttributeProto, FunctionProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TypeProto, ValueInfoProto, type_proto,
};
use qopt_onnx::{ExportOptions, ImportError, ImportOptions};

fn f32_type() -> TypeProto {
    let mut t = type_proto::Tensor::new();
    t.elem_type = 1;
    TypeProto {
        value: Some(type_proto::Value::TensorType(t)),
        ..Default::default()
    }
}

fn vi(name: &str) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        type_: Some(f32_type()).into(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    inputs: &[&str],
    outputs: &[&str],
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
            ..Default::default()
        }],
        graph: Some(GraphProto {
            name: "g".into(),
            node: nodes,
            initializer: inits,
            input: inputs.iter().map(|s| vi(s)).collect(),
            output: outputs.iter().map(|s| vi(s)).collect(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn tensor(name: &str, data_type: i32, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        data_type,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn attr(name: &str, ty: AttributeType) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: ty.into(),
        ..Default::default()
    }
}

fn opts() -> ImportOptions {
    ImportOptions {
        base_dir: None,
        label: Some("bad.onnx".into()),
    }
}

fn import_err(m: &ModelProto) -> String {
    let bytes = m.write_to_bytes().unwrap();
    let e = qopt_onnx::import(&bytes, opts()).unwrap_err().to_string();
    assert!(e.starts_with("bad.onnx: "), "{e}");
    e
}

/// A one-node model `x -> Relu -> y` plus whatever the test adds.
fn relu_model() -> ModelProto {
    model(
        vec![node("Relu", "r1", &["x"], &["y"])],
        vec![],
        &["x"],
        &["y"],
    )
}

#[test]
fn empty_garbage_and_truncated_bytes() {
    let e = qopt_onnx::import(&[], opts()).unwrap_err();
    assert!(matches!(e, ImportError::Empty { .. }));
    assert_eq!(
        e.to_string(),
        "bad.onnx: the file is empty, not an ONNX model"
    );
    let e = qopt_onnx::import(b"this is not an ONNX model at all", opts()).unwrap_err();
    assert!(e.to_string().starts_with("bad.onnx: "), "{e}");
    let bytes = relu_model().write_to_bytes().unwrap();
    for n in 1..bytes.len() {
        let e = qopt_onnx::import(&bytes[..n], opts()).unwrap_err();
        assert!(e.to_string().starts_with("bad.onnx: "), "{e}");
    }
    // A protobuf with no graph field is not a model.
    let e = import_err(&ModelProto {
        ir_version: 8,
        ..Default::default()
    });
    assert!(e.contains("it has no graph"), "{e}");
}

#[test]
fn missing_files_name_the_path() {
    let e = qopt_onnx::load("/no/such/model.onnx")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/no/such/model.onnx: cannot read"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let e = qopt_onnx::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn undefined_values_name_the_reader() {
    let mut m = relu_model();
    m.graph.as_mut().unwrap().node[0].input[0] = "nope".into();
    let e = import_err(&m);
    assert_eq!(
        e,
        "bad.onnx: Relu node 'r1' reads value 'nope', which no input, initializer or node defines"
    );
    let mut m = relu_model();
    m.graph.as_mut().unwrap().output[0].name = "gone".into();
    assert!(import_err(&m).contains("the graph output list reads value 'gone'"));
}

#[test]
fn a_value_defined_twice_is_an_error() {
    let mut m = relu_model();
    m.graph
        .as_mut()
        .unwrap()
        .node
        .push(node("Neg", "n1", &["x"], &["y"]));
    let e = import_err(&m);
    assert!(
        e.contains("value 'y' is defined twice") && e.contains("Neg node 'n1'"),
        "{e}"
    );
}

#[test]
fn cycles_are_errors() {
    let m = model(
        vec![
            node("Relu", "a", &["q"], &["p"]),
            node("Relu", "b", &["p"], &["q"]),
        ],
        vec![],
        &[],
        &["q"],
    );
    assert!(import_err(&m).contains("cycle"));
}

#[test]
fn a_model_using_onnx_ops_needs_an_opset() {
    let mut m = relu_model();
    m.opset_import.clear();
    assert!(import_err(&m).contains("imports no opset of the default domain"));
}

#[test]
fn local_functions_are_refused() {
    let mut m = relu_model();
    m.functions.push(FunctionProto {
        name: "MyFn".into(),
        domain: "my.fns".into(),
        ..Default::default()
    });
    assert!(import_err(&m).contains("local functions (my.fns::MyFn)"));
}

#[test]
fn corrupt_tensors_name_the_tensor() {
    let cases: Vec<(TensorProto, &str)> = vec![
        (
            TensorProto {
                raw_data: vec![1, 2, 3],
                ..tensor("w", 1, &[4])
            },
            "needs 16 bytes, got 3",
        ),
        (tensor("w", 1, &[2, 3]), "has 6 elements but no data"),
        (
            TensorProto {
                float_data: vec![1.0; 5],
                ..tensor("w", 1, &[2, 3])
            },
            "float_data has 5",
        ),
        (
            TensorProto {
                int32_data: vec![1, 300],
                ..tensor("w", 3, &[2])
            },
            "300 is not a valid int8",
        ),
        (
            TensorProto {
                int32_data: vec![70000],
                ..tensor("w", 10, &[1])
            },
            "not a valid float16",
        ),
        (tensor("w", 1, &[-1, 4]), "negative dimension"),
        (
            tensor("w", 1, &[1 << 40, 1 << 40, 1 << 40]),
            "too many elements",
        ),
        (tensor("w", 0, &[1]), "UNDEFINED"),
    ];
    for (t, needle) in cases {
        let m = model(
            vec![node("Add", "add", &["x", "w"], &["y"])],
            vec![t],
            &["x"],
            &["y"],
        );
        let e = import_err(&m);
        assert!(
            e.contains("tensor 'w'") && e.contains(needle),
            "{needle}: {e}"
        );
    }
}

#[test]
fn attributes_whose_type_and_payload_disagree_do_not_panic() {
    // onnx-protobuf's `as_value` hits `unreachable!` on these (DESIGN.md §11).
    let mut c = node("Constant", "", &[], &["c"]);
    c.attribute.push(attr("value", AttributeType::TENSOR));
    let m = model(vec![c], vec![], &[], &["c"]);
    let e = import_err(&m);
    assert!(
        e.contains("Constant node (output 'c'): attribute 'value'")
            && e.contains("holds no tensor"),
        "{e}"
    );

    let mut n = node("Conv", "conv", &["x", "x"], &["y"]);
    n.attribute.push(attr("pads", AttributeType::TENSOR));
    let m = model(vec![n], vec![], &["x"], &["y"]);
    let e = import_err(&m);
    assert!(e.contains("Conv node 'conv': attribute 'pads'"), "{e}");

    // A GRAPH attribute without a graph is carried opaquely; Conv has no such attribute, so the
    // node becomes custom with a warning.
    let mut n = node("Conv", "conv", &["x", "x"], &["y"]);
    n.attribute.push(attr("body", AttributeType::GRAPH));
    let m = model(vec![n], vec![], &["x"], &["y"]);
    let imp = qopt_onnx::import(&m.write_to_bytes().unwrap(), opts()).unwrap();
    assert!(
        imp.warnings[0].contains("Conv node 'conv'"),
        "{:?}",
        imp.warnings
    );

    let mut n = node("Relu", "r", &["x"], &["y"]);
    n.attribute.push(AttributeProto {
        name: "odd".into(),
        type_: protobuf::EnumOrUnknown::from_i32(99),
        ..Default::default()
    });
    let m = model(vec![n], vec![], &["x"], &["y"]);
    assert!(import_err(&m).contains("unknown attribute type 99"));

    let mut n = node("Relu", "r", &["x"], &["y"]);
    n.attribute.push(attr("", AttributeType::INT));
    let m = model(vec![n], vec![], &["x"], &["y"]);
    assert!(import_err(&m).contains("an attribute has no name"));
}

#[test]
fn malformed_constant_nodes() {
    let mut two = node("Constant", "k", &[], &["c"]);
    two.attribute.push(attr("value_int", AttributeType::INT));
    two.attribute
        .push(attr("value_float", AttributeType::FLOAT));
    let mut mistyped = node("Constant", "k", &[], &["c"]);
    mistyped
        .attribute
        .push(attr("value_float", AttributeType::INT));
    let mut unknown = node("Constant", "k", &[], &["c"]);
    unknown
        .attribute
        .push(attr("value_bytes", AttributeType::STRING));
    for (n, needle) in [
        (two, "exactly one value attribute, found 2"),
        (mistyped, "must have type FLOAT"),
        (unknown, "unknown Constant attribute 'value_bytes'"),
    ] {
        let e = import_err(&model(vec![n], vec![], &[], &["c"]));
        assert!(e.contains("Constant node 'k'") && e.contains(needle), "{e}");
    }
}

#[test]
fn missing_required_attributes_are_errors() {
    let m = model(
        vec![node("Concat", "cat", &["x", "x"], &["y"])],
        vec![],
        &["x"],
        &["y"],
    );
    assert_eq!(
        import_err(&m),
        "bad.onnx: Concat node 'cat': missing required attribute 'axis'"
    );
}

#[test]
fn non_tensor_graph_inputs_are_refused() {
    let mut m = relu_model();
    m.graph.as_mut().unwrap().input[0].type_ = Some(TypeProto {
        value: Some(type_proto::Value::SequenceType(Default::default())),
        ..Default::default()
    })
    .into();
    assert!(import_err(&m).contains("graph input 'x': sequence types are not supported"));
}

#[test]
fn soft_problems_are_warnings() {
    let mut m = relu_model();
    let g = m.graph.as_mut().unwrap();
    g.value_info.push(vi("ghost"));
    g.node.push(node("Relu", "dead", &["x"], &[""]));
    let imp = qopt_onnx::import(&m.write_to_bytes().unwrap(), opts()).unwrap();
    assert_eq!(imp.warnings.len(), 2, "{:?}", imp.warnings);
    assert!(imp.warnings[0].contains("Relu node 'dead' has no outputs"));
    assert!(imp.warnings[1].contains("'ghost'"));
}

fn small_graph() -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 4])));
    let r = g.add_simple("relu", op::Relu {}, &[x], "r");
    g.set_outputs(vec![r]);
    g
}

#[test]
fn export_refuses_what_onnx_cannot_hold() {
    let mut g = small_graph();
    let r = g.outputs()[0];
    let o = g.add_simple("obs", Op::Observer(Box::default()), &[r], "o");
    g.set_outputs(vec![o]);
    let e = qopt_onnx::export(&g, ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("qopt::Observer node 'obs': observer nodes have no ONNX form"),
        "{e}"
    );
    let _: ObserverState = ObserverState::default();

    let mut g = small_graph();
    g.add_input("untyped", TypeInfo::unknown());
    let e = qopt_onnx::export(&g, ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "graph input 'untyped' has no element type");

    let mut g = small_graph();
    let r = g.outputs()[0];
    let relu = r.node;
    let n = g.add_simple("neg", op::Neg {}, &[r], "n");
    g.connect(n, relu, 0);
    let e = qopt_onnx::export(&g, ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("the graph has a cycle through"), "{e}");
}

#[test]
fn a_graph_built_in_code_gets_an_opset_and_ir_version() {
    let mut g = small_graph();
    let c = g.add_const("c", Tensor::from_vec(&[4], vec![1f32, 2.0, 3.0, 4.0]));
    let r = g.outputs()[0];
    let s = g.add_simple(
        "sq",
        op::Unsqueeze {
            axes: Some(vec![0]),
        },
        &[r],
        "s",
    );
    let a = g.add_simple("add", op::Add {}, &[s, c], "a");
    g.set_outputs(vec![a]);
    let m = qopt_onnx::export(&g, ExportOptions::default()).unwrap();
    assert_eq!(m.opset_import[0].version, qopt_onnx::DEFAULT_OPSET);
    assert_eq!(
        m.ir_version, 8,
        "onnx helper.VERSION_TABLE: opset 17 -> IR 8"
    );
    // Opset 17 takes Unsqueeze axes as an input.
    let sq = m.graph.node.iter().find(|n| n.name == "sq").unwrap();
    assert_eq!(sq.input, ["r", "sq_axes"]);
    let back = qopt_onnx::import(&m.write_to_bytes().unwrap(), opts()).unwrap();
    let n = back.graph.find_value("s").unwrap().node;
    assert!(matches!(&back.graph.node(n).op, Op::Unsqueeze(u) if u.axes == Some(vec![0])));
}

#[test]
fn save_is_atomic_and_writes_external_data_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let e = qopt_onnx::save(&small_graph(), dir.path().join("no/such/dir/m.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no/such/dir/m.onnx: cannot write"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // Two 2 KiB tensors and a small one: the large ones go to m.onnx.data, 4096-aligned.
    let mut g = small_graph();
    // As export writes them, so that the re-imported graph is the same.
    g.meta.ir_version = 8;
    g.meta.set_opset("", 17);
    let big1 = g.add_const("big1", Tensor::from_vec(&[512], vec![1.5f32; 512]));
    let big2 = g.add_const("big2", Tensor::from_vec(&[512], vec![-2f32; 512]));
    let small = g.add_const("small", Tensor::from_vec(&[2], vec![7i64, 8]));
    let mut outs = g.outputs().to_vec();
    outs.extend([big1, big2, small]);
    g.set_outputs(outs);
    let path = dir.path().join("m.onnx");
    let opts = ExportOptions {
        external_data_threshold: 0,
    };
    qopt_onnx::save_with(&g, &path, opts).unwrap();
    let data = std::fs::read(dir.path().join("m.onnx.data")).unwrap();
    assert_eq!(data.len(), 4096 + 2048);
    assert_eq!(&data[4096..4100], &(-2f32).to_le_bytes());
    let back = qopt_onnx::load(&path).unwrap();
    assert_eq!(qopt_onnx::testing::graph_diff(&g, &back.graph), None);
    let m = ModelProto::parse_from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let small = m
        .graph
        .initializer
        .iter()
        .find(|t| t.name == "small")
        .unwrap();
    assert!(small.external_data.is_empty(), "small tensors stay inline");
}
