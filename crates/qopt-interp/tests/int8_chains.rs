//! Element-wise chains between a DequantizeLinear and a QuantizeLinear lowered as one lookup
//! table (`int8/lower/chain.rs`): each pattern the quantizers emit, on hand-built QDQ graphs whose
//! input covers all 256 codes, against the float QDQ reference — the fp32 interpreter running the
//! same graph with QuantizeLinear/DequantizeLinear as ONNX defines them (`qopt run --reference`).
//! The table is evaluated from that same definition, so the outputs must be bit-identical; each
//! test also checks that the chain became one table (the regression: one step per op before).

use qopt_interp::int8::{QPlan, QPlanOptions};
use qopt_interp::kernels::int8::KernelKind;
use qopt_interp::{Plan, PlanOptions};
use qopt_ir::op::{self, Op};
use qopt_ir::{Attr, DType, Dim, Graph, Shape, Tensor, TypeInfo, ValueId};

/// `[1, 4, 8, 8]`: 256 values whose quantization (scale 0.05, zero point 0, i8/u8) is every code.
fn all_codes_input(dt: DType) -> Tensor {
    let lo = if dt == DType::I8 { -128 } else { 0 };
    Tensor::from_vec(
        &[1, 4, 8, 8],
        (0..256).map(|i| (lo + i) as f32 * 0.05).collect(),
    )
}

fn zp(dt: DType, z: i32) -> Tensor {
    match dt {
        DType::I8 => Tensor::scalar(z as i8),
        _ => Tensor::scalar(z as u8),
    }
}

/// `Q(v)` then `DQ` with (scale, zero point) of type `dt`: the quantized tensor and its view.
fn qdq(g: &mut Graph, name: &str, v: ValueId, s: f32, z: i32, dt: DType) -> (ValueId, ValueId) {
    let sc = g.add_const(format!("{name}_s"), Tensor::scalar(s));
    let zc = g.add_const(format!("{name}_z"), zp(dt, z));
    let q = g.add_simple(
        format!("{name}_q"),
        Op::from_parts("", "QuantizeLinear", &[]).unwrap(),
        &[v, sc, zc],
        format!("{name}_q"),
    );
    let d = g.add_simple(
        format!("{name}_dq"),
        Op::from_parts("", "DequantizeLinear", &[]).unwrap(),
        &[q, sc, zc],
        format!("{name}_dq"),
    );
    (q, d)
}

fn scalar(g: &mut Graph, name: &str, v: f32) -> ValueId {
    g.add_const(name, Tensor::scalar(v))
}

/// A graph with input `x` (f32 [1,4,8,8]) quantized at scale 0.05, then `body` on its DQ view.
fn graph(dt: DType, body: impl FnOnce(&mut Graph, ValueId) -> ValueId) -> Graph {
    let mut g = Graph::new("chain");
    let x = g.add_input(
        "x",
        TypeInfo::new(
            DType::F32,
            Shape(vec![
                Dim::Known(1),
                Dim::Known(4),
                Dim::Known(8),
                Dim::Known(8),
            ]),
        ),
    );
    let (_, xd) = qdq(&mut g, "x", x, 0.05, 0, dt);
    let y = body(&mut g, xd);
    g.set_outputs(vec![y]);
    g
}

/// Runs `g` with the INT8 plan (every kernel family this CPU runs) and the float reference;
/// asserts equal bits and returns the plan's integer step names (boundary Q/DQ left out).
fn check(g: &Graph, dt: DType) -> Vec<String> {
    let x = all_codes_input(dt);
    let mut reference = Plan::new(g, &PlanOptions::default()).unwrap();
    let want = reference.run(&[("x", &x)]).unwrap();
    let mut names = vec![];
    for kind in [KernelKind::Scalar, KernelKind::Avx2] {
        if kind.check_supported().is_err() {
            eprintln!("SKIP: kernel family {kind:?} not supported on this CPU");
            continue;
        }
        let mut plan = QPlan::new(
            g,
            &QPlanOptions {
                kernels: Some(kind),
                ..Default::default()
            },
        )
        .unwrap();
        let got = plan.run(&[("x", &x)]).unwrap();
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.shape(), b.shape());
            let (a, b) = (a.to_f64_vec(), b.to_f64_vec());
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert_eq!(p.to_bits(), q.to_bits(), "{kind:?} element {i}: {p} vs {q}");
            }
        }
        names = plan
            .summary()
            .integer
            .iter()
            // The graph's boundary Q (input) and DQ (output) are steps of their own.
            .filter(|(n, _)| !matches!(n.as_str(), "QuantizeLinear" | "DequantizeLinear"))
            .flat_map(|(n, &c)| std::iter::repeat_n(n.clone(), c))
            .collect();
    }
    names
}

/// HardSwish as PP-OCR exports it and qopt quantizes it: `Add(x, 3)` (its Clip folded into the
/// output range), `Mul(x, that)`, `Div(6)`, each followed by Q/DQ; x is read twice.
#[test]
fn hardswish_chain_is_one_table() {
    for dt in [DType::I8, DType::U8] {
        let g = graph(dt, |g, xd| {
            let three = scalar(g, "three", 3.0);
            let a = g.add_simple("add", op::Add {}, &[xd, three], "a");
            let (_, ad) = qdq(g, "a", a, 0.03, if dt == DType::I8 { -128 } else { 0 }, dt);
            let m = g.add_simple("mul", op::Mul {}, &[xd, ad], "m");
            let (_, md) = qdq(g, "m", m, 0.2, 10, dt);
            let six = scalar(g, "six", 6.0);
            let d = g.add_simple("div", op::Div {}, &[md, six], "d");
            let (_, dd) = qdq(g, "d", d, 0.04, 3, dt);
            dd
        });
        let names = check(&g, dt);
        assert_eq!(names, vec!["LUT(Add·Mul·Div)"], "{dt}");
    }
}

/// HardSwish written with its Clip: `x · Clip(x + 3, 0, 6) / 6`, float in between (no Q/DQ).
#[test]
fn float_hardswish_between_dq_and_q_is_one_table() {
    let dt = DType::I8;
    let g = graph(dt, |g, xd| {
        let three = scalar(g, "three", 3.0);
        let a = g.add_simple("add", op::Add {}, &[xd, three], "a");
        let (lo, hi) = (scalar(g, "lo", 0.0), scalar(g, "hi", 6.0));
        let c = g.add_simple("clip", op::Clip {}, &[a, lo, hi], "c");
        let m = g.add_simple("mul", op::Mul {}, &[xd, c], "m");
        let six = scalar(g, "six", 6.0);
        let d = g.add_simple("div", op::Div {}, &[m, six], "d");
        qdq(g, "d", d, 0.04, -5, dt).1
    });
    assert_eq!(check(&g, dt), vec!["LUT(Add·Clip·Mul·Div)"]);
}

/// `x · HardSigmoid(x)` with a Q/DQ after the HardSigmoid (x read twice, different scales).
#[test]
fn hardsigmoid_mul_same_input_is_one_table() {
    let dt = DType::U8;
    let g = graph(dt, |g, xd| {
        let h = g.add_simple("hs", op::HardSigmoid::default(), &[xd], "h");
        let (_, hd) = qdq(g, "h", h, 1.0 / 255.0, 0, dt);
        let m = g.add_simple("mul", op::Mul {}, &[xd, hd], "m");
        qdq(g, "m", m, 0.07, 20, dt).1
    });
    assert_eq!(check(&g, dt), vec!["LUT(HardSigmoid·Mul)"]);
}

/// A linear chain of single-op tables (`Sigmoid`, then `Neg`): their composition `g[f[i]]`.
#[test]
fn consecutive_tables_compose() {
    let dt = DType::I8;
    let g = graph(dt, |g, xd| {
        let s = g.add_simple("sig", op::Sigmoid {}, &[xd], "s");
        let (_, sd) = qdq(g, "s", s, 1.0 / 256.0, -128, dt);
        let n = g.add_simple("neg", op::Neg {}, &[sd], "n");
        qdq(g, "n", n, 1.0 / 200.0, 0, dt).1
    });
    assert_eq!(check(&g, dt), vec!["LUT(Sigmoid·Neg)"]);
}

/// A chain whose intermediate is also read elsewhere stops there: that value is computed (its
/// own table) and the rest of the chain starts from it.
#[test]
fn intermediate_used_elsewhere_is_kept() {
    let dt = DType::I8;
    let mut inner = None;
    let mut g = graph(dt, |g, xd| {
        let s = g.add_simple("sig", op::Sigmoid {}, &[xd], "s");
        let (sq, sd) = qdq(g, "s", s, 1.0 / 256.0, -128, dt);
        inner = Some(sq);
        let n = g.add_simple("neg", op::Neg {}, &[sd], "n");
        let (_, nd) = qdq(g, "n", n, 1.0 / 200.0, 0, dt);
        let e = g.add_simple("exp", op::Exp {}, &[nd], "e");
        qdq(g, "e", e, 0.01, -128, dt).1
    });
    // The Sigmoid's quantized output is a second graph output.
    let sq = inner.unwrap();
    let sd = g.add_simple(
        "s_out",
        Op::from_parts("", "DequantizeLinear", &[]).unwrap(),
        &[
            sq,
            g.input(sq.node, 1).unwrap(),
            g.input(sq.node, 2).unwrap(),
        ],
        "s_out",
    );
    let mut outs = g.outputs().to_vec();
    outs.push(sd);
    g.set_outputs(outs);
    let names = check(&g, dt);
    assert_eq!(names, vec!["LUT(Neg·Exp)", "LUT(Sigmoid)"]);
}

/// The last HardSwish of PP-OCR's classifier: `Div(6)` not quantized, a MaxPool, then the Q.
/// `Q(MaxPool(f(x))) = MaxPool(Q(f(x)))` (quantization is non-decreasing): a table then an integer
/// MaxPool, no fp32 Div or MaxPool.
#[test]
fn chain_into_max_pool_runs_in_integers() {
    let dt = DType::I8;
    let g = graph(dt, |g, xd| {
        let three = scalar(g, "three", 3.0);
        let a = g.add_simple("add", op::Add {}, &[xd, three], "a");
        let (_, ad) = qdq(g, "a", a, 0.03, -128, dt);
        let m = g.add_simple("mul", op::Mul {}, &[xd, ad], "m");
        let (_, md) = qdq(g, "m", m, 0.2, 10, dt);
        let six = scalar(g, "six", 6.0);
        let d = g.add_simple("div", op::Div {}, &[md, six], "d");
        let pool = Op::from_parts(
            "",
            "MaxPool",
            &[
                ("kernel_shape".into(), Attr::Ints(vec![2, 2])),
                ("strides".into(), Attr::Ints(vec![2, 2])),
            ],
        )
        .unwrap();
        let p = g.add_simple("pool", pool, &[d], "p");
        qdq(g, "p", p, 0.04, 3, dt).1
    });
    let names = check(&g, dt);
    assert_eq!(names, vec!["LUT(Add·Mul·Div)", "QMaxPool"]);
}

/// Regression (uses this file's harness; not a chain): a model saved without value_info has no
/// recorded shapes past its input, and the lowering reads a global pool's rank from them, so
/// GlobalAveragePool ran in fp32 ("the input's rank is not known to be 4", seen on the quantized
/// mnist_cnn_bn). QPlan now infers the missing types on a copy first. `add_simple` records no
/// output types, as such a model would.
#[test]
fn global_pool_without_recorded_shapes_runs_in_integers() {
    for dt in [DType::I8, DType::U8] {
        let g = graph(dt, |g, xd| {
            let p = g.add_simple(
                "gap",
                Op::from_parts("", "GlobalAveragePool", &[]).unwrap(),
                &[xd],
                "p",
            );
            assert!(
                g.value(p).ty.shape.is_none(),
                "the graph must leave p untyped"
            );
            let (_, pd) = qdq(g, "p", p, 0.02, 5, dt);
            pd
        });
        let names = check(&g, dt);
        assert_eq!(names, vec!["QGlobalAveragePool"], "{dt}");
    }
}
