//! Import and export of the small models under `testdata/onnx/`, built by
//! `tools/gen_onnx_testdata.py` with the `onnx` Python package. Decoded tensors are compared
//! with ONNX Runtime's outputs for the same model (`<model>.expected.json`): ORT's TensorProto
//! reader is the independent reference. Export is compared with the original protobuf.

mod common;

use common::*;
use qopt_ir::{Attr, Dim, Op, Shape};
use qopt_onnx::proto::{NodeProto, TensorProto};
use qopt_onnx::{ABSENT_OUTPUT_NOTE, ImportOptions};

fn attr_names(n: &NodeProto) -> Vec<String> {
    let mut v: Vec<String> = n.attribute.iter().map(|a| a.name.clone()).collect();
    v.sort();
    v
}

fn node<'m>(m: &'m qopt_onnx::proto::ModelProto, name: &str) -> &'m NodeProto {
    m.graph
        .node
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn initializer<'m>(m: &'m qopt_onnx::proto::ModelProto, name: &str) -> Option<&'m TensorProto> {
    m.graph.initializer.iter().find(|t| t.name == name)
}

#[test]
fn every_dtype_in_raw_data_and_typed_fields() {
    // Reference: ORT's outputs of Identity(initializer) for each tensor.
    let m = load("tensors.onnx");
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let expected = expected_outputs("tensors.onnx");
    assert_eq!(expected.len(), 18);
    for (out, e) in &expected {
        let name = out.strip_suffix("_out").unwrap();
        let t = const_named(&m.graph, name);
        assert!(e.matches(t), "{name}: {t:?} vs {e:?}");
    }
}

#[test]
fn every_constant_node_form() {
    // Reference: ORT's outputs of Identity(Constant) for each form.
    let m = load("constants.onnx");
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    for (out, e) in &expected_outputs("constants.onnx") {
        let name = out.strip_suffix("_out").unwrap();
        assert!(e.matches(const_named(&m.graph, name)), "{name}");
        let v = m.graph.find_value(name).unwrap();
        assert_eq!(m.graph.node(v.node).doc, format!("doc of {name}"));
        assert_eq!(
            m.graph.node(v.node).name,
            name,
            "a Constant keeps its value name"
        );
    }
    // Constants become initializers with their doc strings.
    let x = export(&m.graph);
    assert!(!x.graph.node.iter().any(|n| n.op_type == "Constant"));
    let t = initializer(&x, "c_sparse_coords").unwrap();
    assert_eq!(t.doc_string, "doc of c_sparse_coords");
}

#[test]
fn external_data_is_read_relative_to_the_model() {
    let m = load("external.onnx");
    for (out, e) in &expected_outputs("external.onnx") {
        let name = out.strip_suffix("_out").unwrap();
        assert!(e.matches(const_named(&m.graph, name)), "{name}");
    }
    // From memory, with and without the folder to look in.
    let bytes = std::fs::read(testdata("external.onnx")).unwrap();
    let e = qopt_onnx::import(&bytes, ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("base_dir"), "{e}");
    let opts = ImportOptions {
        base_dir: Some(testdata("")),
        label: Some("ext".into()),
    };
    qopt_onnx::import(&bytes, opts).unwrap();
}

#[test]
fn bad_external_data_is_refused_with_a_clear_error() {
    for (file, needle) in [
        ("external_absolute.onnx", "is an absolute path"),
        ("external_escape.onnx", "contains '..'"),
        ("external_past_end.onnx", "the tensor needs bytes"),
        ("external_bad_length.onnx", "length is 12 bytes"),
        ("external_missing.onnx", "cannot open external data file"),
    ] {
        let e = qopt_onnx::load(testdata(file)).unwrap_err().to_string();
        assert!(e.contains(needle), "{file}: {e}");
        assert!(e.contains(file) && e.contains("tensor '"), "{file}: {e}");
    }
}

#[test]
fn unsupported_element_types_stay_opaque_constants() {
    let m = load("opaque_constant.onnx");
    assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
    assert!(m.warnings[0].contains("'w_i16'") && m.warnings[0].contains("INT16"));
    for (name, kind) in [("w_i16", "raw"), ("s", "strings")] {
        let v = m.graph.find_value(name).unwrap();
        let Op::Custom(c) = &m.graph.node(v.node).op else {
            panic!("{name}")
        };
        assert_eq!((c.domain.as_str(), c.op_type.as_str()), ("", "Constant"));
        assert_eq!(c.attrs[0].1.kind(), kind, "{name}");
    }
    // Exported unchanged: the int16 initializer's TensorProto is now a Constant's value.
    let orig = proto("opaque_constant.onnx");
    let x = export(&m.graph);
    let c = x.graph.node.iter().find(|n| n.output == ["w_i16"]).unwrap();
    assert_eq!(c.op_type, "Constant");
    assert_eq!(c.attribute[0].t.as_ref(), orig.graph.initializer.first());
    let s = x.graph.node.iter().find(|n| n.output == ["s"]).unwrap();
    let s0 = orig.graph.node.iter().find(|n| n.output == ["s"]).unwrap();
    assert_eq!(s.attribute, s0.attribute);
}

#[test]
fn names_docs_dims_and_metadata_survive() {
    let m = load("metadata.onnx");
    let g = &m.graph;
    let x = g.value(g.input_values()[0]);
    let sym = |s: &str| Dim::Sym(s.into());
    // dim_param -> Sym, dim_value -> Known, -1 and empty -> Unknown (onnx.proto Dimension).
    assert_eq!(
        x.ty.shape,
        Some(Shape(vec![
            sym("batch"),
            Dim::Known(3),
            Dim::Unknown,
            sym("p2o.DynamicDimension.0")
        ]))
    );
    assert_eq!(x.doc, "the image");
    let y = g.value(g.outputs()[0]);
    assert_eq!(y.doc, "the result");
    assert_eq!(
        y.ty.shape.as_ref().unwrap().dims()[2],
        Dim::Unknown,
        "no dim_value, no dim_param"
    );
    let r = g.value(g.find_value("r").unwrap());
    assert_eq!(r.doc, "after relu");
    assert_eq!(r.ty.shape.as_ref().unwrap().rank(), 4);
    let relu = node_named(g, "relu_1");
    assert_eq!(g.node(relu).doc, "first relu");
    assert_eq!(g.name, "meta_graph");
    assert_eq!(g.meta.graph_doc_string, "graph doc");
    assert_eq!(g.meta.producer_name, "gen_onnx_testdata");
    assert_eq!(g.meta.model_version, 7);
    assert_eq!(
        g.meta.opset_imports,
        vec![("".into(), 17), ("com.example".into(), 2)]
    );

    // Everything the original says is written back (the -1 dim becomes an unnamed dim).
    let orig = proto("metadata.onnx");
    let e = export(g);
    assert_eq!(e.ir_version, orig.ir_version);
    assert_eq!(e.opset_import, orig.opset_import);
    assert_eq!(e.producer_name, orig.producer_name);
    assert_eq!(e.producer_version, orig.producer_version);
    assert_eq!(e.domain, orig.domain);
    assert_eq!(e.model_version, orig.model_version);
    assert_eq!(e.doc_string, orig.doc_string);
    assert_eq!(e.metadata_props, orig.metadata_props);
    assert_eq!(e.graph.name, orig.graph.name);
    assert_eq!(e.graph.doc_string, orig.graph.doc_string);
    assert_eq!(e.graph.output, orig.graph.output);
    assert_eq!(e.graph.value_info, orig.graph.value_info);
    assert_eq!(e.graph.node, orig.graph.node);
    assert_eq!(e.graph.input[0].doc_string, orig.graph.input[0].doc_string);
    let d = &e.graph.input[0].type_.tensor_type().shape.dim[2];
    assert!(d.value.is_none(), "{d:?}");
}

#[test]
fn custom_ops_and_unknown_attributes_export_unchanged() {
    let m = load("custom_ops.onnx");
    let g = &m.graph;
    let frob = node_named(g, "frob");
    let Op::Custom(c) = &g.node(frob).op else {
        panic!()
    };
    assert_eq!(c.domain, "com.example");
    let kinds: Vec<(&str, &str)> = c
        .attrs
        .iter()
        .map(|(k, a)| (k.as_str(), a.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("f", "float"),
            ("floats", "floats"),
            ("g", "raw"),
            ("i", "int"),
            ("ints", "ints"),
            ("s", "string"),
            ("strings", "strings"),
            ("t", "tensor")
        ]
    );
    // Inputs ["x", "", "x"]: the empty name is an absent optional input.
    let x = g.input_values()[0];
    assert_eq!(g.inputs(frob), vec![Some(x), None, Some(x)]);
    // Outputs ["", "f1", "f2"]: the absent first output gets a marked placeholder.
    let outs = &g.node(frob).outputs;
    assert_eq!(outs.len(), 3);
    assert!(outs[0].ann.notes.contains_key(ABSENT_OUTPUT_NOTE));
    assert!(
        matches!(&g.node(node_named(g, "nosuch")).op, Op::Custom(c) if c.op_type == "NoSuchOp")
    );
    assert!(
        matches!(&g.node(node_named(g, "relu_alpha")).op, Op::Custom(c) if c.op_type == "Relu")
    );
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("Relu node 'relu_alpha'") && w.contains("alpha")),
        "{:?}",
        m.warnings
    );
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("If node 'if_1'") && w.contains("sub-graph")),
        "{:?}",
        m.warnings
    );
    // Every node is written back exactly as it was read.
    let orig = proto("custom_ops.onnx");
    let e = export(g);
    assert_eq!(e.graph.node, orig.graph.node);
    assert_eq!(e.opset_import, orig.opset_import);
}

/// The original node and the exported one have the same form: the same `axes`/`split`/
/// `num_outputs` attributes, every exported attribute as in the original (the exporter leaves
/// out attributes at their default), and the same number of inputs, with equal constant values
/// where the original had initializers.
fn assert_same_form(orig: &qopt_onnx::proto::ModelProto, exp: &qopt_onnx::proto::ModelProto) {
    let form = |n: &NodeProto| -> Vec<String> {
        attr_names(n)
            .into_iter()
            .filter(|k| ["axes", "split", "num_outputs"].contains(&k.as_str()))
            .collect()
    };
    for a in &orig.graph.node {
        let b = node(exp, &a.name);
        assert_eq!(form(a), form(b), "{}", a.name);
        for y in &b.attribute {
            let x = a.attribute.iter().find(|x| x.name == y.name);
            assert_eq!(x, Some(y), "{} attribute {}", a.name, y.name);
        }
        assert_eq!(a.input.len(), b.input.len(), "{}", a.name);
        for (ia, ib) in a.input.iter().zip(&b.input) {
            match initializer(orig, ia) {
                Some(t) => {
                    let u = initializer(exp, ib).unwrap_or_else(|| panic!("{}: {ib}", a.name));
                    assert_eq!((&t.dims, &t.raw_data), (&u.dims, &u.raw_data), "{}", a.name);
                }
                None => assert_eq!(ia, ib, "{}", a.name),
            }
        }
    }
    assert_eq!(orig.graph.node.len(), exp.graph.node.len());
}

#[test]
fn axes_and_split_are_fields_in_every_opset_and_written_in_the_opsets_form() {
    for v in [11, 13, 18, 21] {
        let file = format!("axes_opset{v}.onnx");
        let m = load(&file);
        assert!(m.warnings.is_empty(), "{file}: {:?}", m.warnings);
        let g = &m.graph;
        let field = |name: &str| -> (Option<Vec<i64>>, usize) {
            let n = node_named(g, name);
            let key = if name.starts_with("split") {
                "split"
            } else {
                "axes"
            };
            let f = g
                .node(n)
                .op
                .attrs()
                .into_iter()
                .find(|(k, _)| k == key)
                .map(|(_, a)| match a {
                    Attr::Ints(v) => v,
                    other => panic!("{other:?}"),
                });
            (f, g.inputs(n).len())
        };
        assert_eq!(field("squeeze"), (Some(vec![1]), 1), "{file}");
        assert_eq!(field("unsqueeze"), (Some(vec![0]), 1), "{file}");
        assert_eq!(field("reducesum"), (Some(vec![2]), 1), "{file}");
        assert_eq!(field("reducemean"), (Some(vec![-1]), 1), "{file}");
        assert_eq!(field("split_sizes"), (Some(vec![2, 4]), 1), "{file}");
        assert_eq!(field("split_even"), (None, 1), "{file}");
        assert_eq!(field("reducemax"), (None, 1), "{file}");
        // The axes initializers were folded away.
        assert!(
            !g.node_ids().iter().any(|&n| g.node(n).op.is_const()),
            "{file}"
        );

        let orig = proto(&file);
        let e = export(g);
        assert_eq!(e.opset_import, orig.opset_import);
        assert_same_form(&orig, &e);
    }
}

#[test]
fn runtime_axes_stay_inputs_and_cannot_go_below_opset_13() {
    let m = load("axes_dynamic_opset13.onnx");
    let g = &m.graph;
    let ax = g.input_values()[1];
    for name in ["squeeze_dyn", "reducesum_dyn"] {
        let n = node_named(g, name);
        assert_eq!(g.input(n, 1), Some(ax), "{name}");
        assert!(
            !g.node(n).op.attrs().iter().any(|(k, _)| k == "axes"),
            "{name}"
        );
    }
    let orig = proto("axes_dynamic_opset13.onnx");
    assert_same_form(&orig, &export(g));

    let mut g12 = g.clone();
    g12.meta.set_opset("", 12);
    let e = qopt_onnx::export(&g12, Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Squeeze node 'squeeze_dyn'") && e.contains("run-time input"),
        "{e}"
    );
}

#[test]
fn split18_num_outputs_is_implied_by_the_outputs() {
    let m = load("split18_uneven.onnx");
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let n = node_named(&m.graph, "split3");
    assert!(matches!(&m.graph.node(n).op, Op::Split(s) if s.split.is_none() && s.axis == 0));
    assert_same_form(&proto("split18_uneven.onnx"), &export(&m.graph));
}

#[test]
fn softmax_default_axis_depends_on_the_opset() {
    // Softmax-11: axis defaults to 1; Softmax-13: to -1 (onnx Operators.md).
    for (file, axis) in [("softmax_opset11.onnx", 1), ("softmax_opset13.onnx", -1)] {
        let m = load(file);
        let n = node_named(&m.graph, "softmax");
        assert!(
            matches!(&m.graph.node(n).op, Op::Softmax(s) if s.axis == axis),
            "{file}"
        );
        let e = export(&m.graph);
        let a = &node(&e, "softmax").attribute;
        assert_eq!((a[0].name.as_str(), a[0].i), ("axis", axis), "{file}");
    }
}

#[test]
fn clip6_bounds_become_inputs_and_go_back_to_attributes() {
    let m = load("clip_opset10.onnx");
    let g = &m.graph;
    let both = node_named(g, "clip_both");
    let bound = |n, slot| {
        g.const_input(n, slot)
            .map(|t| t.as_f32().unwrap().iter().copied().collect::<Vec<f32>>())
    };
    assert!(matches!(g.node(both).op, Op::Clip(_)));
    assert_eq!(bound(both, 1), Some(vec![-0.25]));
    assert_eq!(bound(both, 2), Some(vec![0.5]));
    let max = node_named(g, "clip_max");
    assert_eq!(g.input(max, 1), None);
    assert_eq!(bound(max, 2), Some(vec![0.3]));
    let orig = proto("clip_opset10.onnx");
    let e = export(g);
    assert!(
        e.graph.initializer.is_empty(),
        "bounds went back into attributes"
    );
    for (a, b) in orig.graph.node.iter().zip(&e.graph.node) {
        assert_eq!(
            (&a.input, &a.output, &a.name),
            (&b.input, &b.output, &b.name)
        );
        let mut x = a.attribute.clone();
        let mut y = b.attribute.clone();
        x.sort_by(|p, q| p.name.cmp(&q.name));
        y.sort_by(|p, q| p.name.cmp(&q.name));
        assert_eq!(x, y, "{}", a.name);
    }
}

#[test]
fn ir3_initializers_listed_as_inputs_are_constants() {
    let m = load("ir3_initializer_inputs.onnx");
    assert!(
        m.warnings.iter().any(|w| w.contains("'w'")),
        "{:?}",
        m.warnings
    );
    assert_eq!(m.graph.input_values().len(), 1);
    assert!(
        m.graph
            .node(m.graph.find_value("w").unwrap().node)
            .op
            .is_const()
    );
    // IR 3 requires every initializer among the inputs again.
    let e = export(&m.graph);
    assert_eq!(e.ir_version, 3);
    let names: Vec<&str> = e.graph.input.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["x", "w"]);
}

#[test]
fn unsorted_nodes_are_imported_and_exported_sorted() {
    let m = load("unsorted.onnx");
    let e = export(&m.graph);
    let names: Vec<&str> = e.graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
}

#[test]
fn resize10_is_kept_as_a_custom_op() {
    // Resize-10 computes like asymmetric coordinates, unlike the op table's Resize (opset 11+).
    let m = load("resize_opset10.onnx");
    let n = node_named(&m.graph, "resize10");
    assert!(matches!(&m.graph.node(n).op, Op::Custom(c) if c.op_type == "Resize"));
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("Resize node 'resize10'") && w.contains("custom op")),
        "{:?}",
        m.warnings
    );
    assert_eq!(
        export(&m.graph).graph.node,
        proto("resize_opset10.onnx").graph.node
    );
}
