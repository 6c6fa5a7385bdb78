//! The plan's public behaviour on small hand-built graphs: up-front rejection of unsupported
//! ops, input checking, NaN/Inf propagation, the value hook, fusion equivalence, buffer reuse,
//! `eval_node`. Expected values are derived by hand from the ONNX operator definitions.

use qopt_interp::{InterpError, Plan, PlanOptions, eval_node};
use qopt_ir::op::{self, Op};
use qopt_ir::{DType, Dim, Graph, Shape, Tensor, TypeInfo, ValueId};

fn input(g: &mut Graph, name: &str, dims: Vec<Dim>) -> ValueId {
    g.add_input(name, TypeInfo::new(DType::F32, Shape(dims)))
}

fn vals(t: &Tensor) -> Vec<f32> {
    t.as_f32().unwrap().iter().copied().collect()
}

#[test]
fn unsupported_ops_are_listed_before_running() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", vec![Dim::Known(2)]);
    let custom = |name: &str| Op::from_parts("my.domain", name, &[]).unwrap();
    let a = g.add_simple("frob1", custom("Frobnicate"), &[x], "a");
    let b = g.add_simple("frob2", custom("Frobnicate"), &[a], "b");
    let c = g.add_simple("nz", op::NonZero {}, &[b], "c");
    g.set_outputs(vec![c]);
    let err = Plan::new(&g, &PlanOptions::default())
        .err()
        .expect("unsupported");
    let InterpError::Unsupported(list) = &err else {
        panic!("{err}")
    };
    assert_eq!(list.len(), 2);
    let msg = err.to_string();
    assert!(msg.contains("my.domain::Frobnicate (used by my.domain::Frobnicate node 'frob1', my.domain::Frobnicate node 'frob2')"), "{msg}");
    assert!(msg.contains("NonZero (used by NonZero node 'nz')"), "{msg}");
}

#[test]
fn wrong_inputs_name_the_input_expected_and_got() {
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", vec![Dim::Sym("N".into()), Dim::Known(3)]);
    let y = input(&mut g, "y", vec![Dim::Sym("N".into()), Dim::Known(3)]);
    let s = g.add_simple("add", op::Add {}, &[x, y], "s");
    g.set_outputs(vec![s]);
    let mut plan = Plan::new(&g, &PlanOptions::default()).unwrap();
    let ok = Tensor::from_vec(&[2, 3], vec![1f32; 6]);
    let bad = Tensor::from_vec(&[2, 4], vec![1f32; 8]);
    let e = plan
        .run(&[("x", &ok), ("y", &bad)])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "input 'y': expected f32[N,3], got f32[2,4]");
    // N binds to 2 from x; y with N = 3 contradicts it.
    let other_n = Tensor::from_vec(&[3, 3], vec![1f32; 9]);
    assert!(
        plan.run(&[("x", &ok), ("y", &other_n)])
            .unwrap_err()
            .to_string()
            .contains("input 'y'")
    );
    let ints = Tensor::from_vec(&[2, 3], vec![1i64; 6]);
    assert_eq!(
        plan.run(&[("x", &ints), ("y", &ok)])
            .unwrap_err()
            .to_string(),
        "input 'x': expected f32[N,3], got i64[2,3]"
    );
    assert_eq!(
        plan.run(&[("x", &ok)]).unwrap_err().to_string(),
        "missing input 'y'"
    );
    assert!(
        plan.run(&[("x", &ok), ("y", &ok), ("z", &ok)])
            .unwrap_err()
            .to_string()
            .contains("'z' is not an input")
    );
    assert_eq!(
        vals(&plan.run(&[("x", &ok), ("y", &ok)]).unwrap()[0]),
        vec![2.0; 6]
    );
}

#[test]
fn nan_and_inf_propagate() {
    // Relu(NaN) = NaN, Relu(-inf) = 0, Sqrt(-1) = NaN, Exp(inf) = inf, x / 0 = inf.
    let mut g = Graph::new("t");
    let x = input(&mut g, "x", vec![Dim::Known(4)]);
    let r = g.add_simple("relu", op::Relu {}, &[x], "r");
    let z = g.add_const("zero", Tensor::scalar(0f32));
    let d = g.add_simple("div", op::Div {}, &[x, z], "d");
    let s = g.add_simple("sqrt", op::Sqrt {}, &[x], "s");
    g.set_outputs(vec![r, d, s]);
    let mut plan = Plan::new(&g, &PlanOptions::default()).unwrap();
    let t = Tensor::from_vec(&[4], vec![f32::NAN, f32::NEG_INFINITY, -1.0, 2.0]);
    let o = plan.run(&[("x", &t)]).unwrap();
    let r = vals(&o[0]);
    assert!(r[0].is_nan() && r[1] == 0.0 && r[2] == 0.0 && r[3] == 2.0);
    let d = vals(&o[1]);
    assert!(
        d[0].is_nan()
            && d[1] == f32::NEG_INFINITY
            && d[2] == f32::NEG_INFINITY
            && d[3] == f32::INFINITY
    );
    let s = vals(&o[2]);
    assert!(s[0].is_nan() && s[1].is_nan() && s[2].is_nan() && s[3] == 2f32.sqrt());
}

/// x -> Conv(1x1, w=2, b=1) -> BatchNormalization -> Clip(0, 6): the fused plan and the unfused
/// plan agree, and the hook sees every value of the unfused plan.
fn conv_bn_clip() -> (Graph, ValueId, ValueId) {
    let mut g = Graph::new("t");
    let x = input(
        &mut g,
        "x",
        vec![Dim::Known(1), Dim::Known(2), Dim::Known(2), Dim::Known(2)],
    );
    let w = g.add_const(
        "w",
        Tensor::from_vec(&[2, 2, 1, 1], vec![2f32, 0.0, 0.0, -1.0]),
    );
    let b = g.add_const("b", Tensor::from_vec(&[2], vec![1f32, 0.5]));
    let conv = g.add_simple("conv", op::Conv::default(), &[x, w, b], "c");
    let p = |n: &str, v: Vec<f32>, g: &mut Graph| g.add_const(n, Tensor::from_vec(&[2], v));
    let (sc, bi, me, va) = (
        p("scale", vec![1.0, 2.0], &mut g),
        p("bias", vec![0.0, 1.0], &mut g),
        p("mean", vec![1.0, 0.0], &mut g),
        p("var", vec![4.0, 1.0], &mut g),
    );
    let bn = g.add_simple(
        "bn",
        op::BatchNormalization {
            epsilon: 0.0,
            ..Default::default()
        },
        &[conv, sc, bi, me, va],
        "n",
    );
    let lo = g.add_const("lo", Tensor::scalar(0f32));
    let hi = g.add_const("hi", Tensor::scalar(6f32));
    let clip = g.add_simple("clip", op::Clip {}, &[bn, lo, hi], "y");
    g.set_outputs(vec![clip]);
    (g, conv, bn)
}

#[test]
fn fusion_matches_unfused_and_hooks_see_values() {
    let (g, conv, bn) = conv_bn_clip();
    let x = Tensor::from_vec(
        &[1, 2, 2, 2],
        vec![0f32, 1.0, 2.0, 3.0, 4.0, -5.0, 6.0, 100.0],
    );
    // Channel 0: conv = 2x + 1, bn = (conv - 1) / 2 = x, clip -> [0, 1, 2, 3].
    // Channel 1: conv = -x + 0.5, bn = 2 * conv + 1 = -2x + 2 -> [-6, 12, -10, -198] -> clip.
    let want = vec![0.0, 1.0, 2.0, 3.0, 0.0, 6.0, 0.0, 0.0];
    let mut fused = Plan::new(&g, &PlanOptions::default()).unwrap();
    assert_eq!(vals(&fused.run(&[("x", &x)]).unwrap()[0]), want);
    assert!(
        !fused.visible_values().contains(&conv),
        "fused Conv output is not materialised"
    );
    let mut unfused = Plan::new(
        &g,
        &PlanOptions {
            fuse: false,
            ..Default::default()
        },
    )
    .unwrap();
    let mut seen = vec![];
    let out = unfused
        .run_with(&[("x", &x)], |v, t| seen.push((v, vals(t))))
        .unwrap();
    assert_eq!(vals(&out[0]), want);
    let conv_val = &seen
        .iter()
        .find(|(v, _)| *v == conv)
        .expect("hook saw the conv output")
        .1;
    assert_eq!(conv_val, &vec![1.0, 3.0, 5.0, 7.0, -3.5, 5.5, -5.5, -99.5]);
    assert!(seen.iter().any(|(v, _)| *v == bn));
    // `keep` keeps a value visible with fusion on.
    let mut kept = Plan::new(
        &g,
        &PlanOptions {
            keep: vec![conv],
            ..Default::default()
        },
    )
    .unwrap();
    let (o, cap) = kept.run_capture(&[("x", &x)], &[conv]).unwrap();
    assert_eq!(vals(&o[0]), want);
    assert_eq!(vals(cap[0].as_ref().unwrap()), *conv_val);
}

#[test]
fn repeated_runs_reuse_buffers_and_agree() {
    let (g, ..) = conv_bn_clip();
    let mut plan = Plan::new(
        &g,
        &PlanOptions {
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let x = Tensor::from_vec(
        &[1, 2, 2, 2],
        vec![0f32, 1.0, 2.0, 3.0, 4.0, -5.0, 6.0, 100.0],
    );
    let a = plan.run_positional(&[&x]).unwrap();
    let b = plan.run_positional(&[&x]).unwrap();
    assert!(a[0].bit_eq(&b[0]));
    assert!(plan.run_positional(&[]).is_err());
}

#[test]
fn eval_node_folds_constants() {
    // Shape of a [2, 3] tensor, then Gather index 1 of it: 3.
    let t = Tensor::from_vec(&[2, 3], vec![0f32; 6]);
    let s = eval_node(&Op::Shape(op::Shape::default()), 13, &[Some(&t)], 1).unwrap();
    assert_eq!(s[0].to_i64_vec().unwrap(), vec![2, 3]);
    let g = eval_node(
        &Op::Gather(op::Gather { axis: 0 }),
        13,
        &[Some(&s[0]), Some(&Tensor::scalar(1i64))],
        1,
    )
    .unwrap();
    assert_eq!(g[0].to_i64_vec().unwrap(), vec![3]);
    let e = eval_node(
        &Op::Reshape(op::Reshape::default()),
        13,
        &[Some(&t), Some(&Tensor::from_vec(&[1], vec![7i64]))],
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("Reshape: cannot reshape"), "{e}");
    assert!(matches!(
        eval_node(&Op::Input, 13, &[], 1),
        Err(InterpError::Unsupported(_))
    ));
}

#[test]
fn odd_shapes_give_errors_not_panics() {
    // A few ops fed shapes that do not fit: every case must return an error.
    let m = |s: &[usize]| Tensor::from_vec(s, vec![1f32; s.iter().product()]);
    let cases: Vec<(Op, Vec<Tensor>)> = vec![
        (Op::MatMul(op::MatMul {}), vec![m(&[2, 3]), m(&[4, 5])]),
        (
            Op::Conv(op::Conv::default()),
            vec![m(&[1, 3, 4, 4]), m(&[2, 2, 3, 3])],
        ),
        (
            Op::Conv(op::Conv::default()),
            vec![m(&[1, 1, 2, 2]), m(&[1, 1, 5, 5])],
        ),
        (Op::Conv(op::Conv::default()), vec![m(&[3]), m(&[1])]),
        (Op::Gemm(op::Gemm::default()), vec![m(&[2, 3]), m(&[2, 3])]),
        (
            Op::Concat(op::Concat { axis: 1 }),
            vec![m(&[2, 3]), m(&[3, 3])],
        ),
        (Op::Concat(op::Concat { axis: 5 }), vec![m(&[2, 3])]),
        (
            Op::Transpose(op::Transpose { perm: vec![0, 0] }),
            vec![m(&[2, 3])],
        ),
        (Op::Softmax(op::Softmax { axis: 3 }), vec![m(&[2, 3])]),
        (Op::Add(op::Add {}), vec![m(&[2, 3]), m(&[4])]),
        (
            Op::MaxPool(op::MaxPool {
                kernel_shape: vec![5, 5],
                ..Default::default()
            }),
            vec![m(&[1, 1, 2, 2])],
        ),
        (
            Op::Expand(op::Expand {}),
            vec![m(&[2, 3]), Tensor::from_vec(&[2], vec![4i64, 3])],
        ),
        (
            Op::ConstantOfShape(op::ConstantOfShape::default()),
            vec![Tensor::from_vec(&[3], vec![1i64 << 40, 1 << 40, 1 << 40])],
        ),
        (
            Op::Split(op::Split {
                axis: 0,
                split: Some(vec![1, 5]),
            }),
            vec![m(&[4])],
        ),
        (
            Op::BatchNormalization(op::BatchNormalization::default()),
            vec![m(&[1, 2, 2]), m(&[3]), m(&[3]), m(&[3]), m(&[3])],
        ),
    ];
    for (op, ins) in cases {
        let refs: Vec<Option<&Tensor>> = ins.iter().map(Some).collect();
        let r = std::panic::catch_unwind(|| eval_node(&op, 17, &refs, 2));
        match r {
            Ok(Err(_)) => {}
            Ok(Ok(v)) => panic!("{} accepted bad shapes: {v:?}", op.op_type()),
            Err(_) => panic!("{} panicked", op.op_type()),
        }
    }
}
