//! Tests of `fuse` and `fold-bias` on small graphs built in Rust.
//!
//! References:
//! - numeric cases load fixtures made by `tools/gen_fuse_fixtures.py`: ONNX Runtime's outputs
//!   of the *unfused* graph (all ORT graph optimisations off). The f64 evaluator
//!   (`refeval.rs`, plain loops from the ONNX op definitions) is first checked against ORT on
//!   the unfused graph, then the fused graph must match ORT within 1e-5 relative L2;
//! - the other cases check structure (which nodes remain, names, notes), where the expected
//!   graph follows from the rule's definition.

use super::refeval::{eval, rel_l2};
use super::{FUSED_ACT, Fuse, FuseReport, fuse_graph, rules::Topics};
use crate::fold_bias;
use ndarray::ArrayD;
use qopt_ir::op;
use qopt_ir::{
    Attr, DType, Graph, NodeId, Op, Shape, Tensor, TypeInfo, ValueId, ValueInfo, verify,
};
use qopt_pass::{Changed, Pass, PassContext};
use std::collections::HashMap;

// ---- helpers ---------------------------------------------------------------------------

struct Fixture(HashMap<String, Tensor>);

impl Fixture {
    fn load(case: &str) -> Fixture {
        let path = format!(
            "{}/../testdata/passes/fuse/fixtures/{case}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut m = HashMap::new();
        for line in text.lines().filter(|l| l.starts_with("tensor ")) {
            let mut it = line.split_whitespace().skip(1);
            let name = it.next().unwrap().to_string();
            let dims = it.next().unwrap();
            let shape: Vec<usize> = if dims == "scalar" {
                vec![]
            } else {
                dims.split(',').map(|d| d.parse().unwrap()).collect()
            };
            let vals: Vec<f32> = it.map(|v| v.parse().unwrap()).collect();
            m.insert(name, Tensor::from_vec(&shape, vals));
        }
        Fixture(m)
    }

    fn t(&self, name: &str) -> Tensor {
        self.0[name].clone()
    }

    fn a(&self, name: &str) -> ArrayD<f64> {
        f64_array(&self.0[name])
    }
}

fn f64_array(t: &Tensor) -> ArrayD<f64> {
    match t.cast(DType::F64) {
        Tensor::F64(a) => a,
        _ => unreachable!(),
    }
}

fn input(g: &mut Graph, name: &str, shape: &[usize]) -> ValueId {
    g.add_input(name, TypeInfo::new(DType::F32, Shape::known(shape)))
}

fn node(
    g: &mut Graph,
    name: &str,
    op: impl Into<Op>,
    ins: &[Option<ValueId>],
    out: &str,
) -> ValueId {
    let n = g.add_node(
        name,
        op,
        ins,
        vec![ValueInfo::new(out, TypeInfo::unknown())],
    );
    ValueId::new(n, 0)
}

/// A deterministic pseudo-random tensor (an LCG; the numbers only need to be generic).
fn rand(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect();
    Tensor::from_vec(shape, v)
}

fn conv_op(pads: i64) -> op::Conv {
    op::Conv {
        pads: vec![pads; 4],
        ..Default::default()
    }
}

/// BatchNormalization with random parameters for `c` channels, named `<name>.scale` etc.
fn bn(g: &mut Graph, name: &str, x: ValueId, c: usize, seed: u64, out: &str) -> ValueId {
    let s = g.add_const(format!("{name}.scale"), rand(&[c], seed, 0.5, 1.5));
    let b = g.add_const(format!("{name}.bias"), rand(&[c], seed + 1, -1.0, 1.0));
    let m = g.add_const(format!("{name}.mean"), rand(&[c], seed + 2, -1.0, 1.0));
    let v = g.add_const(format!("{name}.var"), rand(&[c], seed + 3, 0.1, 2.0));
    node(
        g,
        name,
        op::BatchNormalization::default(),
        &[Some(x), Some(s), Some(b), Some(m), Some(v)],
        out,
    )
}

fn count(g: &Graph, op_type: &str) -> usize {
    g.node_ids()
        .into_iter()
        .filter(|&n| g.node(n).op.op_type() == op_type)
        .count()
}

fn find_node(g: &Graph, op_type: &str) -> NodeId {
    let v: Vec<NodeId> = g
        .node_ids()
        .into_iter()
        .filter(|&n| g.node(n).op.op_type() == op_type)
        .collect();
    assert_eq!(v.len(), 1, "expected one {op_type}");
    v[0]
}

fn producer_of(g: &Graph, name: &str) -> NodeId {
    g.find_value(name)
        .unwrap_or_else(|| panic!("no value {name}"))
        .node
}

fn fuse(g: &mut Graph) -> FuseReport {
    let r = fuse_graph(g, Topics::ALL, true, super::DEFAULT_ITERS).unwrap();
    verify(g).unwrap();
    assert!(r.saturated);
    r
}

fn fold_bias(g: &mut Graph) -> Changed {
    let c = fold_bias::FoldBias.run(g, &mut PassContext::new()).unwrap();
    verify(g).unwrap();
    c
}

/// Fixture case: the evaluator matches ORT on the unfused graph, and after `run` the fused
/// graph matches ORT within 1e-5 relative L2.
fn numeric_case(case: &str, build: fn(&Fixture) -> Graph, run: fn(&mut Graph)) -> Graph {
    let fx = Fixture::load(case);
    let g0 = build(&fx);
    verify(&g0).unwrap();
    let inputs: Vec<(String, ArrayD<f64>)> = g0
        .input_nodes()
        .iter()
        .map(|&n| (g0.node(n).name.clone(), fx.a(&g0.node(n).name)))
        .collect();
    let inputs: Vec<(&str, ArrayD<f64>)> = inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let ort = fx.a("expected.y");
    let before = &eval(&g0, &inputs)[0];
    let e0 = rel_l2(&ort, before);
    assert!(e0 < 1e-6, "{case}: reference evaluator vs ORT: {e0}");
    let mut g1 = g0.clone();
    run(&mut g1);
    verify(&g1).unwrap();
    let after = &eval(&g1, &inputs)[0];
    let e1 = rel_l2(&ort, after);
    assert!(e1 < 1e-5, "{case}: fused vs ORT: {e1}");
    g1
}

// ---- fixture graphs (mirror tools/gen_fuse_fixtures.py) -------------------------------------

fn build_conv_bn_nobias(fx: &Fixture) -> Graph {
    let mut g = Graph::new("conv_bn_nobias");
    let x = input(&mut g, "x", &[1, 3, 6, 6]);
    let w = g.add_const("w", fx.t("w"));
    let c = node(
        &mut g,
        "conv",
        op::Conv {
            pads: vec![1; 4],
            strides: vec![2, 2],
            ..Default::default()
        },
        &[Some(x), Some(w)],
        "c",
    );
    let p: Vec<ValueId> = ["bn.scale", "bn.bias", "bn.mean", "bn.var"]
        .iter()
        .map(|n| g.add_const(*n, fx.t(n)))
        .collect();
    let b = node(
        &mut g,
        "bn",
        op::BatchNormalization::default(),
        &[Some(c), Some(p[0]), Some(p[1]), Some(p[2]), Some(p[3])],
        "b",
    );
    let y = node(&mut g, "relu", op::Relu {}, &[Some(b)], "y");
    g.set_outputs(vec![y]);
    g
}

fn build_convt_add_bn(fx: &Fixture) -> Graph {
    let mut g = Graph::new("convt_add_bn");
    let x = input(&mut g, "x", &[1, 4, 3, 3]);
    let w = g.add_const("w", fx.t("w"));
    let t = node(
        &mut g,
        "convt",
        op::ConvTranspose {
            group: 2,
            strides: vec![2, 2],
            pads: vec![0, 1, 1, 0],
            output_padding: vec![1, 0],
            ..Default::default()
        },
        &[Some(x), Some(w)],
        "t",
    );
    let cb = g.add_const("cb", fx.t("cb"));
    let a = node(&mut g, "add", op::Add {}, &[Some(t), Some(cb)], "a");
    let p: Vec<ValueId> = ["bn.scale", "bn.bias", "bn.mean", "bn.var"]
        .iter()
        .map(|n| g.add_const(*n, fx.t(n)))
        .collect();
    let b = node(
        &mut g,
        "bn",
        op::BatchNormalization {
            epsilon: 1e-3,
            ..Default::default()
        },
        &[Some(a), Some(p[0]), Some(p[1]), Some(p[2]), Some(p[3])],
        "b",
    );
    let y = node(&mut g, "relu", op::Relu {}, &[Some(b)], "y");
    g.set_outputs(vec![y]);
    g
}

fn build_gemm_bn(fx: &Fixture) -> Graph {
    let mut g = Graph::new("gemm_bn");
    let a = input(&mut g, "a", &[3, 5]);
    let w = g.add_const("w", fx.t("w"));
    let c = g.add_const("c", fx.t("c"));
    let gm = node(
        &mut g,
        "gemm",
        op::Gemm {
            trans_b: 1,
            alpha: 0.7,
            beta: 0.5,
            ..Default::default()
        },
        &[Some(a), Some(w), Some(c)],
        "g",
    );
    let p: Vec<ValueId> = ["bn.scale", "bn.bias", "bn.mean", "bn.var"]
        .iter()
        .map(|n| g.add_const(*n, fx.t(n)))
        .collect();
    let y = node(
        &mut g,
        "bn",
        op::BatchNormalization::default(),
        &[Some(gm), Some(p[0]), Some(p[1]), Some(p[2]), Some(p[3])],
        "y",
    );
    g.set_outputs(vec![y]);
    g
}

fn build_dwconv_affine(fx: &Fixture) -> Graph {
    let mut g = Graph::new("dwconv_affine");
    let x = input(&mut g, "x", &[2, 3, 5, 5]);
    let w = g.add_const("w", fx.t("w"));
    let b = g.add_const("b", fx.t("b"));
    let c = node(
        &mut g,
        "conv",
        op::Conv {
            group: 3,
            pads: vec![1; 4],
            ..Default::default()
        },
        &[Some(x), Some(w), Some(b)],
        "c",
    );
    let k: Vec<ValueId> = ["k_mul", "k_add", "k_sub", "k_div"]
        .iter()
        .map(|n| g.add_const(*n, fx.t(n)))
        .collect();
    let m = node(&mut g, "mul", op::Mul {}, &[Some(k[0]), Some(c)], "m");
    let a = node(&mut g, "add", op::Add {}, &[Some(m), Some(k[1])], "a");
    let s = node(&mut g, "sub", op::Sub {}, &[Some(a), Some(k[2])], "s");
    let y = node(&mut g, "div", op::Div {}, &[Some(s), Some(k[3])], "y");
    g.set_outputs(vec![y]);
    g
}

fn build_matmul_add(fx: &Fixture) -> Graph {
    let mut g = Graph::new("matmul_add");
    let a = input(&mut g, "a", &[3, 5]);
    let w = g.add_const("w", fx.t("w"));
    let c = g.add_const("c", fx.t("c"));
    let m = node(&mut g, "matmul", op::MatMul {}, &[Some(a), Some(w)], "m");
    let y = node(&mut g, "add", op::Add {}, &[Some(m), Some(c)], "y");
    g.set_outputs(vec![y]);
    g
}

fn run_fuse(g: &mut Graph) {
    fuse(g);
}

fn run_fold_bias(g: &mut Graph) {
    fold_bias(g);
}

// ---- BatchNormalization -------------------------------------------------------------------

#[test]
fn bn_folds_into_conv_without_bias() {
    let g = numeric_case("conv_bn_nobias", build_conv_bn_nobias, run_fuse);
    assert_eq!(count(&g, "BatchNormalization"), 0);
    let conv = find_node(&g, "Conv");
    // The conv keeps its node name and takes the BN output's name; a bias was created.
    assert_eq!(g.node(conv).name, "conv");
    assert_eq!(g.node(conv).outputs[0].name, "b");
    let ins = g.inputs(conv);
    assert_eq!(ins.len(), 3);
    assert_eq!(g.value_name(ins[1].unwrap()), "w");
    assert_eq!(g.value_name(ins[2].unwrap()), "bn.bias");
    // x, w, bias, conv, relu.
    assert_eq!(g.node_count(), 5);
    assert_eq!(
        g.node(conv).outputs[0].ann.notes.get(FUSED_ACT),
        Some(&Attr::String("Relu".into()))
    );
    assert_eq!(g.value_name(g.outputs()[0]), "y");
}

#[test]
fn bn_folds_through_a_paddle_style_conv_transpose_add_chain() {
    // ConvTranspose (group 2) -> Add(bias [1,6,1,1]) -> BN -> Relu: one ConvTranspose left.
    let g = numeric_case("convt_add_bn", build_convt_add_bn, run_fuse);
    assert_eq!(count(&g, "BatchNormalization") + count(&g, "Add"), 0);
    let t = find_node(&g, "ConvTranspose");
    assert_eq!(g.node(t).name, "convt");
    assert_eq!(g.node(t).outputs[0].name, "b");
    assert_eq!(g.value_name(g.inputs(t)[2].unwrap()), "cb");
    assert_eq!(g.node_count(), 5);
}

#[test]
fn bn_folds_into_gemm_with_trans_b_and_beta() {
    let g = numeric_case("gemm_bn", build_gemm_bn, run_fuse);
    assert_eq!(count(&g, "BatchNormalization"), 0);
    let gm = find_node(&g, "Gemm");
    let Op::Gemm(o) = &g.node(gm).op else {
        unreachable!()
    };
    assert_eq!((o.alpha, o.beta, o.trans_b), (0.7, 1.0, 1));
    assert_eq!(g.node(gm).outputs[0].name, "y");
}

#[test]
fn bn_is_not_folded_when_the_conv_output_has_another_user() {
    // conv -> bn -> y1, conv -> relu -> y2: folding would compute the conv twice.
    let mut g = Graph::new("two_users");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[3, 2, 3, 3], 1, -1.0, 1.0));
    let c = node(&mut g, "conv", conv_op(1), &[Some(x), Some(w)], "c");
    let y1 = bn(&mut g, "bn", c, 3, 10, "y1");
    let y2 = node(&mut g, "relu", op::Relu {}, &[Some(c)], "y2");
    g.set_outputs(vec![y1, y2]);
    let before = format!("{g:?}");
    let r = fuse(&mut g);
    assert!(!r.changed);
    assert_eq!(format!("{g:?}"), before);
    assert!(
        r.refusals
            .iter()
            .any(|m| m.contains("BatchNormalization 'bn'") && m.contains("2 uses")),
        "{:?}",
        r.refusals
    );
}

#[test]
fn bn_is_not_folded_when_the_conv_output_is_a_graph_output() {
    let mut g = Graph::new("output_use");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[3, 2, 3, 3], 1, -1.0, 1.0));
    let c = node(&mut g, "conv", conv_op(1), &[Some(x), Some(w)], "c");
    let y = bn(&mut g, "bn", c, 3, 10, "y");
    g.set_outputs(vec![c, y]);
    fuse(&mut g);
    assert_eq!(count(&g, "BatchNormalization"), 1);
    assert_eq!(count(&g, "Conv"), 1);
}

/// Two convs sharing one weight, each followed by a BN; and a variant where only one has a BN.
fn shared_weight_graph(second_bn: bool) -> Graph {
    let mut g = Graph::new("shared");
    let x = input(&mut g, "x", &[1, 2, 5, 5]);
    let w = g.add_const("w", rand(&[3, 2, 3, 3], 2, -1.0, 1.0));
    let c1 = node(&mut g, "conv1", conv_op(1), &[Some(x), Some(w)], "c1");
    let c2 = node(&mut g, "conv2", conv_op(1), &[Some(x), Some(w)], "c2");
    let y1 = bn(&mut g, "bn1", c1, 3, 20, "y1");
    let y2 = if second_bn {
        bn(&mut g, "bn2", c2, 3, 30, "y2")
    } else {
        c2
    };
    g.set_outputs(vec![y1, y2]);
    g
}

fn eval_x(g: &Graph) -> Vec<ArrayD<f64>> {
    let x = f64_array(&rand(&[1, 2, 5, 5], 99, -1.0, 1.0));
    eval(g, &[("x", x)])
}

#[test]
fn shared_weights_fold_per_conv() {
    // Reference: the f64 evaluator on the unfused graph (BN applied after the conv).
    for second_bn in [true, false] {
        let g0 = shared_weight_graph(second_bn);
        let mut g = g0.clone();
        fuse(&mut g);
        assert_eq!(count(&g, "BatchNormalization"), 0);
        assert_eq!(count(&g, "Conv"), 2);
        for (a, b) in eval_x(&g0).iter().zip(&eval_x(&g)) {
            assert!(rel_l2(a, b) < 1e-6);
        }
        let w1 = g
            .value_name(g.inputs(producer_of(&g, "y1"))[1].unwrap())
            .to_string();
        let w2 = g
            .value_name(g.inputs(g.outputs()[1].node)[1].unwrap())
            .to_string();
        if second_bn {
            // The original weight is gone: the first folded copy takes its name.
            assert_eq!((w1.as_str(), w2.as_str()), ("w", "w_1"));
        } else {
            // conv2 still reads the original; conv1's folded copy gets a fresh name.
            assert_eq!((w1.as_str(), w2.as_str()), ("w_1", "w"));
        }
    }
}

// ---- per-channel constants ----------------------------------------------------------------

#[test]
fn per_channel_mul_add_sub_div_fold_into_a_depthwise_conv() {
    let g = numeric_case("dwconv_affine", build_dwconv_affine, run_fuse);
    for op in ["Mul", "Add", "Sub", "Div"] {
        assert_eq!(count(&g, op), 0, "{op}");
    }
    let conv = find_node(&g, "Conv");
    assert_eq!(g.node(conv).outputs[0].name, "y");
    assert_eq!(g.node_count(), 4);
}

#[test]
fn constants_that_are_not_per_channel_do_not_fold() {
    // Mul by [1,1,1,W] scales columns, not channels; a rank-5 constant would change the shape.
    for shape in [&[1usize, 1, 1, 4][..], &[1, 3, 1, 1, 1], &[2, 3, 1, 1]] {
        let mut g = Graph::new("not_per_channel");
        let x = input(&mut g, "x", &[1, 2, 4, 4]);
        let w = g.add_const("w", rand(&[3, 2, 1, 1], 3, -1.0, 1.0));
        let c = node(
            &mut g,
            "conv",
            op::Conv::default(),
            &[Some(x), Some(w)],
            "c",
        );
        let k = g.add_const("k", rand(shape, 4, 0.5, 1.5));
        let y = node(&mut g, "mul", op::Mul {}, &[Some(c), Some(k)], "y");
        g.set_outputs(vec![y]);
        let before = format!("{g:?}");
        assert!(!fuse(&mut g).changed, "{shape:?}");
        assert_eq!(format!("{g:?}"), before);
    }
}

#[test]
fn residual_add_of_two_activations_is_left_alone() {
    // conv -> Add(conv, x) -> relu: the Add's other operand is not a constant.
    let mut g = Graph::new("residual");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[2, 2, 3, 3], 5, -1.0, 1.0));
    let b = g.add_const("b", rand(&[2], 6, -1.0, 1.0));
    let c = node(
        &mut g,
        "conv",
        conv_op(1),
        &[Some(x), Some(w), Some(b)],
        "c",
    );
    let a = node(&mut g, "add", op::Add {}, &[Some(c), Some(x)], "a");
    let y = node(&mut g, "relu", op::Relu {}, &[Some(a)], "y");
    g.set_outputs(vec![y]);
    let before = format!("{g:?}");
    assert!(!fuse(&mut g).changed);
    assert_eq!(format!("{g:?}"), before);
}

// ---- MatMul + Add -> Gemm -----------------------------------------------------------------

#[test]
fn matmul_add_becomes_gemm_when_2d() {
    let g = numeric_case("matmul_add", build_matmul_add, run_fuse);
    assert_eq!(count(&g, "MatMul") + count(&g, "Add"), 0);
    let gm = find_node(&g, "Gemm");
    assert_eq!(g.node(gm).name, "matmul");
    assert_eq!(g.node(gm).outputs[0].name, "y");
    assert_eq!(g.node(gm).op, Op::Gemm(op::Gemm::default()));
}

#[test]
fn batched_matmul_add_is_left_alone() {
    let mut g = Graph::new("batched");
    let a = input(&mut g, "a", &[2, 3, 5]);
    let w = g.add_const("w", rand(&[5, 4], 7, -1.0, 1.0));
    let c = g.add_const("c", rand(&[4], 8, -1.0, 1.0));
    let m = node(&mut g, "matmul", op::MatMul {}, &[Some(a), Some(w)], "m");
    let y = node(&mut g, "add", op::Add {}, &[Some(m), Some(c)], "y");
    g.set_outputs(vec![y]);
    let before = format!("{g:?}");
    assert!(!fuse(&mut g).changed);
    assert_eq!(format!("{g:?}"), before);
}

// ---- Identity / Dropout -----------------------------------------------------------------

#[test]
fn identity_and_dropout_are_removed_and_names_follow_the_producer() {
    let mut g = Graph::new("id");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[2, 2, 1, 1], 9, -1.0, 1.0));
    let c = node(
        &mut g,
        "conv",
        op::Conv::default(),
        &[Some(x), Some(w)],
        "c",
    );
    let i = node(&mut g, "id", op::Identity {}, &[Some(c)], "i");
    let ratio = g.add_const("ratio", Tensor::scalar(0.5f32));
    let dn = g.add_node(
        "drop",
        op::Dropout::default(),
        &[Some(i), Some(ratio)],
        vec![
            ValueInfo::new("d", TypeInfo::unknown()),
            ValueInfo::new("mask", TypeInfo::unknown()),
        ],
    );
    let y = node(
        &mut g,
        "relu",
        op::Relu {},
        &[Some(ValueId::new(dn, 0))],
        "y",
    );
    g.set_outputs(vec![y]);
    fuse(&mut g);
    assert_eq!(count(&g, "Identity") + count(&g, "Dropout"), 0);
    let relu = find_node(&g, "Relu");
    assert_eq!(g.value_name(g.inputs(relu)[0].unwrap()), "c");
    assert_eq!(
        g.value(ValueId::new(find_node(&g, "Conv"), 0))
            .ann
            .notes
            .get(FUSED_ACT),
        Some(&Attr::String("Relu".into()))
    );
    // x, w, conv, relu: the dropout's ratio constant went with it.
    assert_eq!(g.node_count(), 4);
}

#[test]
fn an_identity_to_a_graph_output_goes_and_the_producer_takes_the_name() {
    let mut g = Graph::new("id_out");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[2, 2, 1, 1], 25, -1.0, 1.0));
    let c = node(
        &mut g,
        "conv",
        op::Conv::default(),
        &[Some(x), Some(w)],
        "c",
    );
    let y = node(&mut g, "id", op::Identity {}, &[Some(c)], "y");
    g.set_outputs(vec![y]);
    fuse(&mut g);
    assert_eq!(count(&g, "Identity"), 0);
    assert_eq!(g.node(g.outputs()[0].node).name, "conv");
    assert_eq!(g.value_name(g.outputs()[0]), "y");
}

#[test]
fn an_identity_from_input_to_output_keeps_the_output_name() {
    let mut g = Graph::new("passthrough");
    let x = input(&mut g, "x", &[2]);
    let y = node(&mut g, "id", op::Identity {}, &[Some(x)], "y");
    g.set_outputs(vec![y]);
    let before = format!("{g:?}");
    assert!(!fuse(&mut g).changed);
    assert_eq!(format!("{g:?}"), before);
}

#[test]
fn two_outputs_that_become_one_value_keep_both_names() {
    // y1 = Identity(r), r: one e-class, two output names; the Identity stays to carry y1.
    let mut g = Graph::new("dup");
    let x = input(&mut g, "x", &[2]);
    let r = node(&mut g, "relu", op::Relu {}, &[Some(x)], "r");
    let y1 = node(&mut g, "id", op::Identity {}, &[Some(r)], "y1");
    g.set_outputs(vec![y1, r]);
    let before = format!("{g:?}");
    assert!(!fuse(&mut g).changed);
    assert_eq!(format!("{g:?}"), before);
}

#[test]
fn dropout_in_training_mode_or_with_a_used_mask_stays() {
    for (training, mask_used) in [(true, false), (false, true)] {
        let mut g = Graph::new("drop");
        let x = input(&mut g, "x", &[2]);
        let t = g.add_const("t", Tensor::scalar(training));
        let dn = g.add_node(
            "drop",
            op::Dropout::default(),
            &[Some(x), None, Some(t)],
            vec![
                ValueInfo::new("d", TypeInfo::unknown()),
                ValueInfo::new("mask", TypeInfo::unknown()),
            ],
        );
        let mut outs = vec![ValueId::new(dn, 0)];
        if mask_used {
            outs.push(ValueId::new(dn, 1));
        }
        g.set_outputs(outs);
        fuse(&mut g);
        assert_eq!(
            count(&g, "Dropout"),
            1,
            "training {training}, mask used {mask_used}"
        );
    }
}

#[test]
fn weights_behind_identity_fold_like_initializers() {
    // Some exporters write Constant -> Identity -> Conv; the analysis sees through it.
    let mut g = Graph::new("const_identity");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w0 = g.add_const("w0", rand(&[3, 2, 3, 3], 11, -1.0, 1.0));
    let w = node(&mut g, "wid", op::Identity {}, &[Some(w0)], "w");
    let c = node(&mut g, "conv", conv_op(1), &[Some(x), Some(w)], "c");
    let y = bn(&mut g, "bn", c, 3, 12, "y");
    g.set_outputs(vec![y]);
    let g0 = g.clone();
    fuse(&mut g);
    assert_eq!(count(&g, "BatchNormalization") + count(&g, "Identity"), 0);
    let x = f64_array(&rand(&[1, 2, 4, 4], 13, -1.0, 1.0));
    let (a, b) = (eval(&g0, &[("x", x.clone())]), eval(&g, &[("x", x)]));
    assert!(rel_l2(&a[0], &b[0]) < 1e-6);
}

// ---- activations --------------------------------------------------------------------------

#[test]
fn fused_activation_marks() {
    type AddActivation = fn(&mut Graph, ValueId) -> ValueId;
    let cases: [(&str, AddActivation, Option<&str>); 4] = [
        (
            "relu6",
            |g, c| {
                let lo = g.add_const("lo", Tensor::scalar(0f32));
                let hi = g.add_const("hi", Tensor::scalar(6f32));
                node(g, "clip", op::Clip {}, &[Some(c), Some(lo), Some(hi)], "y")
            },
            Some("Clip"),
        ),
        (
            "clip_0_1",
            |g, c| {
                let lo = g.add_const("lo", Tensor::scalar(0f32));
                let hi = g.add_const("hi", Tensor::scalar(1f32));
                node(g, "clip", op::Clip {}, &[Some(c), Some(lo), Some(hi)], "y")
            },
            None,
        ),
        (
            "leaky",
            |g, c| node(g, "lrelu", op::LeakyRelu { alpha: 0.1 }, &[Some(c)], "y"),
            Some("LeakyRelu"),
        ),
        (
            "sigmoid",
            |g, c| node(g, "sig", op::Sigmoid {}, &[Some(c)], "y"),
            None,
        ),
    ];
    for (name, act, want) in cases {
        let mut g = Graph::new(name);
        let x = input(&mut g, "x", &[1, 2, 4, 4]);
        let w = g.add_const("w", rand(&[2, 2, 1, 1], 14, -1.0, 1.0));
        let c = node(
            &mut g,
            "conv",
            op::Conv::default(),
            &[Some(x), Some(w)],
            "c",
        );
        let y = act(&mut g, c);
        g.set_outputs(vec![y]);
        fuse(&mut g);
        let got = g.value(c).ann.notes.get(FUSED_ACT).cloned();
        assert_eq!(got, want.map(|s| Attr::String(s.into())), "{name}");
    }
}

#[test]
fn a_stale_fused_act_mark_is_removed() {
    let mut g = Graph::new("stale");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[2, 2, 1, 1], 15, -1.0, 1.0));
    let c = node(
        &mut g,
        "conv",
        op::Conv::default(),
        &[Some(x), Some(w)],
        "c",
    );
    g.value_mut(c)
        .ann
        .notes
        .insert(FUSED_ACT.into(), Attr::String("Relu".into()));
    g.set_outputs(vec![c]);
    assert!(fuse(&mut g).changed);
    assert!(g.value(c).ann.notes.is_empty());
}

// ---- determinism, idempotence, options ----------------------------------------------------

/// An EfficientNet-like stack: conv-bn-relu6 blocks with a residual Add and shared inputs.
fn block_stack() -> Graph {
    let mut g = Graph::new("blocks");
    let x = input(&mut g, "x", &[1, 4, 6, 6]);
    let mut h = x;
    for i in 0..4u64 {
        let w = g.add_const(format!("w{i}"), rand(&[4, 4, 3, 3], 100 + i, -0.5, 0.5));
        let c = node(
            &mut g,
            &format!("conv{i}"),
            conv_op(1),
            &[Some(h), Some(w)],
            &format!("c{i}"),
        );
        let b = bn(
            &mut g,
            &format!("bn{i}"),
            c,
            4,
            200 + 10 * i,
            &format!("b{i}"),
        );
        let lo = g.add_const(format!("lo{i}"), Tensor::scalar(0f32));
        let hi = g.add_const(format!("hi{i}"), Tensor::scalar(6f32));
        let r = node(
            &mut g,
            &format!("clip{i}"),
            op::Clip {},
            &[Some(b), Some(lo), Some(hi)],
            &format!("r{i}"),
        );
        h = if i % 2 == 1 {
            node(
                &mut g,
                &format!("res{i}"),
                op::Add {},
                &[Some(r), Some(h)],
                &format!("a{i}"),
            )
        } else {
            r
        };
    }
    g.set_outputs(vec![h]);
    g
}

#[test]
fn fusion_is_deterministic_and_idempotent() {
    let g0 = block_stack();
    let (mut a, mut b) = (g0.clone(), g0.clone());
    let ra = fuse(&mut a);
    fuse(&mut b);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_eq!(count(&a, "BatchNormalization"), 0);
    // Each block loses the BN and its 4 parameters and gains a bias.
    assert_eq!(
        (ra.nodes_before, ra.nodes_after),
        (g0.node_count(), g0.node_count() - 4 * 4)
    );
    let before = format!("{a:?}");
    assert!(!fuse(&mut a).changed);
    assert_eq!(format!("{a:?}"), before);
    // Reference: the f64 evaluator on the unfused graph.
    let x = f64_array(&rand(&[1, 4, 6, 6], 7, -1.0, 1.0));
    let (y0, y1) = (eval(&g0, &[("x", x.clone())]), eval(&a, &[("x", x)]));
    assert!(rel_l2(&y0[0], &y1[0]) < 1e-6);
}

#[test]
fn options_select_rule_tables() {
    let reg = crate::registry();
    let spec = qopt_pass::pipeline::parse_and_resolve("fuse{bn=false act=false}", &reg).unwrap();
    let mut passes = spec.instantiate(&reg).unwrap();
    let mut g = block_stack();
    passes[0].run(&mut g, &mut PassContext::new()).unwrap();
    assert_eq!(count(&g, "BatchNormalization"), 4);
    assert!(
        g.node_ids()
            .iter()
            .all(|&n| g.node(n).outputs[0].ann.notes.is_empty())
    );
    assert!(reg.get("fold-bias").is_some());
}

#[test]
fn a_graph_with_nothing_to_fuse_is_unchanged() {
    let mut g = Graph::new("plain");
    let x = input(&mut g, "x", &[2]);
    let y = node(&mut g, "relu", op::Relu {}, &[Some(x)], "y");
    g.set_outputs(vec![y]);
    let mut cx = PassContext::new();
    assert_eq!(Fuse::default().run(&mut g, &mut cx).unwrap(), Changed::No);
}

// ---- fold-bias ----------------------------------------------------------------------------

#[test]
fn fold_bias_matmul_add_and_conv_add() {
    numeric_case("matmul_add", build_matmul_add, run_fold_bias);

    let mut g = Graph::new("conv_add");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[3, 2, 3, 3], 16, -1.0, 1.0));
    let c = node(
        &mut g,
        "conv",
        op::Conv {
            pads: vec![1; 4],
            ..Default::default()
        },
        &[Some(x), Some(w)],
        "c",
    );
    let k = g.add_const("k", rand(&[1, 3, 1, 1], 17, -1.0, 1.0));
    let a = node(&mut g, "add", op::Add {}, &[Some(k), Some(c)], "a");
    let k2 = g.add_const("k2", rand(&[3, 1, 1], 18, -1.0, 1.0));
    let s = node(&mut g, "sub", op::Sub {}, &[Some(a), Some(k2)], "s");
    let k3 = g.add_const("k3", rand(&[3, 1, 1], 19, 0.5, 1.5));
    let y = node(&mut g, "mul", op::Mul {}, &[Some(s), Some(k3)], "y");
    g.set_outputs(vec![y]);
    let g0 = g.clone();
    assert_eq!(fold_bias(&mut g), Changed::Yes);
    // Add and Sub folded, the weight untouched (same constant), Mul left for `fuse`.
    assert_eq!(count(&g, "Add") + count(&g, "Sub"), 0);
    assert_eq!(count(&g, "Mul"), 1);
    let conv = find_node(&g, "Conv");
    assert_eq!(g.inputs(conv)[1], Some(w));
    assert_eq!(g.node(conv).outputs[0].name, "s");
    let xv = f64_array(&rand(&[1, 2, 4, 4], 20, -1.0, 1.0));
    let (y0, y1) = (eval(&g0, &[("x", xv.clone())]), eval(&g, &[("x", xv)]));
    assert!(rel_l2(&y0[0], &y1[0]) < 1e-6);
}

#[test]
fn fold_bias_leaves_bn_and_identity() {
    let mut g = Graph::new("bn_only");
    let x = input(&mut g, "x", &[1, 2, 4, 4]);
    let w = g.add_const("w", rand(&[3, 2, 3, 3], 21, -1.0, 1.0));
    let c = node(&mut g, "conv", conv_op(1), &[Some(x), Some(w)], "c");
    let i = node(&mut g, "id", op::Identity {}, &[Some(c)], "i");
    let y = bn(&mut g, "bn", i, 3, 22, "y");
    g.set_outputs(vec![y]);
    assert_eq!(fold_bias(&mut g), Changed::No);
}

#[test]
fn a_deep_network_folds_every_block() {
    // 150 conv-bn-relu6 blocks with residual Adds every other block (a ResNet-sized graph):
    // every BN folds, residual Adds stay, and the e-graph saturates.
    let mut g = Graph::new("deep");
    let x = input(&mut g, "x", &[1, 8, 4, 4]);
    let mut h = x;
    for i in 0..150u64 {
        let w = g.add_const(format!("w{i}"), rand(&[8, 8, 3, 3], 100 + i, -0.5, 0.5));
        let c = node(
            &mut g,
            &format!("conv{i}"),
            conv_op(1),
            &[Some(h), Some(w)],
            &format!("c{i}"),
        );
        let b = bn(
            &mut g,
            &format!("bn{i}"),
            c,
            8,
            200 + 10 * i,
            &format!("b{i}"),
        );
        let lo = g.add_const(format!("lo{i}"), Tensor::scalar(0f32));
        let hi = g.add_const(format!("hi{i}"), Tensor::scalar(6f32));
        let r = node(
            &mut g,
            &format!("clip{i}"),
            op::Clip {},
            &[Some(b), Some(lo), Some(hi)],
            &format!("r{i}"),
        );
        h = if i % 2 == 1 {
            node(
                &mut g,
                &format!("res{i}"),
                op::Add {},
                &[Some(r), Some(h)],
                &format!("a{i}"),
            )
        } else {
            r
        };
    }
    g.set_outputs(vec![h]);
    let t = std::time::Instant::now();
    let r = fuse(&mut g);
    eprintln!("fuse on {} nodes: {:?}", r.nodes_before, t.elapsed());
    assert_eq!(count(&g, "BatchNormalization"), 0);
    assert_eq!(count(&g, "Add"), 75);
    assert_eq!(r.nodes_after, r.nodes_before - 150 * 4);
}

#[test]
fn ranks_missing_from_the_graph_are_inferred() {
    // A = Relu(a) has no recorded type; shape inference gives it rank 2, so MatMul + Add
    // still becomes a Gemm, and the graph's recorded types stay as they were elsewhere.
    let mut g = Graph::new("untyped");
    let a = input(&mut g, "a", &[2, 3]);
    let r = node(&mut g, "relu", op::Relu {}, &[Some(a)], "r");
    let w = g.add_const("w", rand(&[3, 4], 23, -1.0, 1.0));
    let c = g.add_const("c", rand(&[4], 24, -1.0, 1.0));
    let m = node(&mut g, "matmul", op::MatMul {}, &[Some(r), Some(w)], "m");
    let y = node(&mut g, "add", op::Add {}, &[Some(m), Some(c)], "y");
    g.set_outputs(vec![y]);
    fuse(&mut g);
    assert_eq!(count(&g, "Gemm"), 1);
    assert_eq!(g.value(r).ty, TypeInfo::unknown());
}

#[test]
fn malformed_layers_are_refused_not_panicked_on() {
    // Each graph is structurally valid but its numbers do not fit the fold: the fold is
    // refused with a reason and the graph is left as it was.
    type Build = fn(&mut Graph, ValueId) -> ValueId;
    let cases: [(&str, Build); 5] = [
        ("weight of rank 2", |g, x| {
            let w = g.add_const("w", rand(&[3, 2], 30, -1.0, 1.0));
            node(g, "conv", op::Conv::default(), &[Some(x), Some(w)], "c")
        }),
        ("BN parameters of the wrong length", |g, x| {
            let w = g.add_const("w", rand(&[2, 2, 1, 1], 31, -1.0, 1.0));
            let c = node(g, "conv", op::Conv::default(), &[Some(x), Some(w)], "c");
            bn(g, "bn5", c, 5, 32, "c5")
        }),
        ("ConvTranspose groups that do not divide Cin", |g, x| {
            let w = g.add_const("w", rand(&[2, 1, 1, 1], 33, -1.0, 1.0));
            let op = op::ConvTranspose {
                group: 3,
                ..Default::default()
            };
            node(g, "convt", op, &[Some(x), Some(w)], "c")
        }),
        ("a bias of the wrong length", |g, x| {
            let w = g.add_const("w", rand(&[2, 2, 1, 1], 34, -1.0, 1.0));
            let b = g.add_const("b", rand(&[3], 35, -1.0, 1.0));
            node(
                g,
                "conv",
                op::Conv::default(),
                &[Some(x), Some(w), Some(b)],
                "c",
            )
        }),
        ("an f64 constant after an f32 conv", |g, x| {
            let w = g.add_const("w", rand(&[2, 2, 1, 1], 36, -1.0, 1.0));
            let c = node(g, "conv", op::Conv::default(), &[Some(x), Some(w)], "c0");
            let k = g.add_const("k", rand(&[2, 1, 1], 37, -1.0, 1.0).cast(DType::F64));
            node(g, "mul", op::Mul {}, &[Some(c), Some(k)], "c")
        }),
    ];
    for (what, build) in cases {
        let mut g = Graph::new("bad");
        let x = input(&mut g, "x", &[1, 2, 2, 2]);
        let c = build(&mut g, x);
        let y = if g.node(c.node).op.op_type() == "BatchNormalization" || what.contains("f64") {
            c
        } else {
            bn(&mut g, "bn", c, 2, 38, "y")
        };
        g.set_outputs(vec![y]);
        let before = format!("{g:?}");
        let r = fuse(&mut g);
        assert!(!r.changed, "{what}");
        assert_eq!(format!("{g:?}"), before, "{what}");
        assert!(!r.refusals.is_empty(), "{what}");
    }
}
