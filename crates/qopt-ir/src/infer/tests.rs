//! Tests of the inference driver: merging with recorded types, the report,
//! pinning input shapes, `infer_node`, and robustness on arbitrary graphs.

use super::testutil::*;
use super::{InferError, infer_node, infer_shapes, pin_input_shapes};
use crate::attr::Attr;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::graph::{Graph, TypeInfo, ValueId, ValueInfo};
use crate::op::{self, AttrError, Custom, Op};
use crate::tensor::Tensor;

fn conv_graph() -> (T, ValueId) {
    let mut t = T::new();
    let x = t.input("x", DType::F32, &[n(), k(3), sym("H"), sym("W")]);
    let w = t.konst_f32("w", &[16, 3, 3, 3]);
    let y = t.named("conv1", op::Conv::default(), &[x, w]);
    t.g.set_outputs(vec![y]);
    (t, y)
}

#[test]
fn more_precise_recorded_types_are_kept() {
    // The model recorded [batch,16,30,30] without a dtype; from [N,3,H,W] inference only
    // knows f32[N,16,?,?].
    let (mut t, y) = conv_graph();
    t.g.value_mut(y).ty = TypeInfo {
        dtype: None,
        shape: Some(Shape(vec![sym("batch"), k(16), k(30), k(30)])),
    };
    let r = infer_shapes(&mut t.g).unwrap();
    // The recorded sizes and symbol stay (ONNX keeps a recorded dim_param too).
    assert_eq!(t.ty(y), "f32[batch,16,30,30]");
    assert_eq!(r.changed, 1);
    assert!(r.unknown.is_empty());
    // Inference is idempotent.
    assert_eq!(infer_shapes(&mut t.g).unwrap().changed, 0);
}

#[test]
fn conflicting_recorded_types_are_errors() {
    let (mut t, y) = conv_graph();
    pin_input_shapes(&mut t.g, &[("x".into(), vec![k(1), k(3), k(32), k(32)])]).unwrap();
    t.g.value_mut(y).ty = TypeInfo::new(DType::F32, Shape::known(&[1, 16, 32, 32]));
    assert_eq!(
        t.run_err(),
        "Conv node 'conv1': output 'conv1_out' is recorded as f32[1,16,32,32] but its inputs \
         give f32[1,16,30,30]"
    );
    let (mut t, y) = conv_graph();
    t.g.value_mut(y).ty = TypeInfo {
        dtype: Some(DType::F16),
        shape: None,
    };
    assert!(
        t.run_err()
            .contains("recorded as f16[*] but its inputs give f32[N,16,?,?]")
    );
    let (mut t, y) = conv_graph();
    t.g.value_mut(y).ty = TypeInfo::new(DType::F32, Shape::known(&[1, 16]));
    assert!(t.run_err().contains("recorded as f32[1,16]"));
}

#[test]
fn pinning_inputs() {
    let (mut t, y) = conv_graph();
    pin_input_shapes(&mut t.g, &[("x".into(), vec![k(1), k(3), k(64), unk()])]).unwrap();
    t.run();
    // A pinned Unknown leaves the recorded symbol.
    assert_eq!(type_of(&t.g, "x"), "f32[1,3,64,W]");
    assert_eq!(t.ty(y), "f32[1,16,62,?]");

    let (mut t, _) = conv_graph();
    let e = pin_input_shapes(&mut t.g, &[("x".into(), vec![k(1), k(3), k(64)])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "graph input 'x': has rank 4 ([N,3,H,W]), cannot pin it to 3 dims [1,3,64]"
    );
    let e =
        pin_input_shapes(&mut t.g, &[("x".into(), vec![k(1), k(4), k(64), k(64)])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "graph input 'x': dim 1 is 3 in the model ([N,3,H,W]), cannot pin it to 4"
    );
    let e = pin_input_shapes(&mut t.g, &[("y".into(), vec![k(1)])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "graph input 'y': no such graph input (the inputs are: x)"
    );
    // An input of unknown rank takes the pinned shape whole.
    let mut t = T::new();
    let x = t.input_unranked("x", DType::F32);
    pin_input_shapes(&mut t.g, &[("x".into(), vec![k(2), sym("S")])]).unwrap();
    assert_eq!(t.ty(x), "f32[2,S]");
}

fn type_of(g: &Graph, name: &str) -> String {
    super::type_string(&g.value(g.find_value(name).unwrap()).ty)
}

#[test]
fn report_lists_unknown_outputs() {
    let mut t = T::new();
    let x = t.input("x", DType::F32, &[n(), k(4)]);
    let c = t.g.add_node(
        "nms",
        Op::Custom(Box::new(Custom {
            domain: "my.ops".into(),
            op_type: "Frobnicate".into(),
            attrs: vec![],
        })),
        &[Some(x)],
        vec![ValueInfo::new("f", TypeInfo::unknown())],
    );
    let r1 = t.node(op::Relu {}, &[ValueId::new(c, 0)]);
    // A custom op with a recorded type is not reported, and its consumers are inferred.
    let c2 = t.g.add_node(
        "known",
        Op::Custom(Box::new(Custom {
            domain: "my.ops".into(),
            op_type: "Frobnicate".into(),
            attrs: vec![],
        })),
        &[Some(x)],
        vec![ValueInfo::new(
            "g",
            TypeInfo::new(DType::F32, Shape(vec![n(), k(2)])),
        )],
    );
    let r2 = t.node(op::Relu {}, &[ValueId::new(c2, 0)]);
    let rep = infer_shapes(&mut t.g).unwrap();
    let names: Vec<(&str, &str)> = rep
        .unknown
        .iter()
        .map(|u| (u.description.as_str(), u.op.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("my.ops::Frobnicate node 'nms'", "my.ops::Frobnicate"),
            ("Relu node 'n1'", "Relu")
        ]
    );
    assert_eq!(t.ty(r1), "?[*]");
    assert_eq!(t.ty(r2), "f32[N,2]");
    assert!(
        rep.to_string()
            .contains("outputs left unknown:\n  my.ops::Frobnicate node 'nms' (f)")
    );
}

#[test]
fn infer_node_reads_recorded_types_and_writes_nothing() {
    let (t, y) = conv_graph();
    assert_eq!(t.infer_one(y.node), ["f32[N,16,?,?]"]);
    assert_eq!(t.ty(y), "?[*]");
    let mut g = Graph::new("g");
    let x = g.add_input("x", TypeInfo::unknown());
    g.remove_node(x.node);
    assert!(matches!(
        infer_node(&g, x.node),
        Err(InferError::Node { .. })
    ));
}

#[test]
fn wrong_output_counts_and_cycles() {
    let mut t = T::new();
    let x = t.input("x", DType::F32, &[k(2)]);
    t.multi(op::Relu {}, &[Some(x)], 2);
    assert_eq!(t.run_err(), "Relu node 'n1': has 2 outputs; Relu defines 1");

    let mut t = T::new();
    let x = t.input("x", DType::F32, &[k(2)]);
    let a = t.named("a", op::Relu {}, &[x]);
    let b = t.named("b", op::Relu {}, &[a]);
    t.g.connect(b, a.node, 0);
    assert!(
        t.run_err()
            .starts_with("the graph has a cycle through Relu node")
    );
}

#[test]
fn observers_and_constants() {
    let mut t = T::new();
    let x = t.input("x", DType::F32, &[n(), k(2)]);
    let o = t.node(Op::Observer(Box::default()), &[x]);
    let c = t.konst("c", Tensor::from_vec(&[2, 1], vec![1i64, 2]));
    t.run();
    assert_eq!(t.ty(o), "f32[N,2]");
    assert_eq!(t.ty(c), "i64[2,1]");
}

// ---- robustness: no panic on any graph --------------------------------------------------

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize].clone()
    }
}

fn any_dim(r: &mut Rng) -> Dim {
    r.pick(&[
        k(0),
        k(1),
        k(1),
        k(2),
        k(3),
        k(4),
        k(7),
        k(1 << 40),
        k(u64::MAX),
        n(),
        sym("H"),
        unk(),
    ])
}

fn any_int(r: &mut Rng) -> i64 {
    r.pick(&[
        0,
        1,
        2,
        3,
        -1,
        -2,
        -7,
        64,
        i64::MAX,
        i64::MIN,
        i32::MAX as i64,
    ])
}

/// An arbitrary input value: absent, typed input of any rank, or a small constant.
fn any_input(r: &mut Rng, g: &mut Graph, i: usize) -> Option<ValueId> {
    let dtype = r.pick(&DType::ALL);
    match r.below(6) {
        0 => None,
        1 => Some(g.add_input(
            format!("u{i}"),
            TypeInfo {
                dtype: Some(dtype),
                shape: None,
            },
        )),
        2 | 3 => {
            let rank = r.below(5) as usize;
            let dims = (0..rank).map(|_| any_dim(r)).collect();
            Some(g.add_input(format!("x{i}"), TypeInfo::new(dtype, Shape(dims))))
        }
        4 => {
            let len = r.below(5) as usize;
            let v: Vec<i64> = (0..len).map(|_| any_int(r)).collect();
            let t = if r.below(2) == 0 {
                Tensor::from_vec(&[len], v)
            } else {
                Tensor::scalar(v.first().copied().unwrap_or(3))
            };
            Some(g.add_const(format!("c{i}"), t))
        }
        _ => {
            let len = r.below(5) as usize;
            let v: Vec<f32> = (0..len)
                .map(|_| r.pick(&[0.0, 1.0, 2.0, 0.5, -1.0, f32::NAN, f32::INFINITY, 1e30]))
                .collect();
            Some(g.add_const(format!("f{i}"), Tensor::from_vec(&[len], v)))
        }
    }
}

/// Attributes the fuzzer tries on every op (an op that does not know one rejects it).
fn any_attr(r: &mut Rng) -> (String, Attr) {
    let ints = |r: &mut Rng| {
        let len = r.below(5) as usize;
        Attr::Ints((0..len).map(|_| any_int(r)).collect())
    };
    match r.below(17) {
        0 => ("axis".into(), Attr::Int(any_int(r))),
        1 => ("axes".into(), ints(r)),
        2 => ("perm".into(), ints(r)),
        3 => ("pads".into(), ints(r)),
        4 => ("strides".into(), ints(r)),
        5 => ("dilations".into(), ints(r)),
        6 => ("kernel_shape".into(), ints(r)),
        7 => ("group".into(), Attr::Int(any_int(r))),
        8 => ("blocksize".into(), Attr::Int(any_int(r))),
        9 => ("batch_dims".into(), Attr::Int(any_int(r))),
        10 => ("split".into(), ints(r)),
        11 => ("keepdims".into(), Attr::Int(r.pick(&[0, 1]))),
        12 => ("output_shape".into(), ints(r)),
        13 => ("output_padding".into(), ints(r)),
        14 => ("start".into(), Attr::Int(any_int(r))),
        15 => ("ceil_mode".into(), Attr::Int(r.pick(&[0, 1]))),
        _ => (
            "auto_pad".into(),
            Attr::String(
                r.pick(&["SAME_UPPER", "SAME_LOWER", "VALID", "NOTSET"])
                    .into(),
            ),
        ),
    }
}

/// Build an op from the table, filling in required attributes when it asks for them.
fn build_op(domain: &str, op_type: &str, mut attrs: Vec<(String, Attr)>) -> Option<Op> {
    for _ in 0..4 {
        match Op::from_parts(domain, op_type, &attrs) {
            Ok(op) => return Some(op),
            Err(AttrError::Missing(name)) => {
                let a = match name {
                    "equation" => Attr::String("ij,jk->ik".into()),
                    "kernel_shape" => Attr::Ints(vec![2, 2]),
                    "to" => Attr::Int(7),
                    _ => Attr::Int(1),
                };
                attrs.push((name.to_string(), a));
            }
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn no_panic_on_arbitrary_graphs() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut ran, mut ok) = (0, 0);
    for &(domain, op_type) in Op::known_ops() {
        for _ in 0..1000 {
            let mut attrs = Vec::new();
            for _ in 0..r.below(3) {
                attrs.push(any_attr(&mut r));
            }
            let Some(op) = build_op(domain, op_type, attrs) else {
                continue;
            };
            let mut g = Graph::new("fuzz");
            g.meta.set_opset("", r.pick(&[10, 11, 12, 13, 18, 21]));
            let n_in = r.below(10) as usize;
            let ins: Vec<Option<ValueId>> =
                (0..n_in).map(|i| any_input(&mut r, &mut g, i)).collect();
            let n_out = 1 + r.below(4) as usize;
            let outs = (0..n_out)
                .map(|i| ValueInfo::new(format!("y{i}"), TypeInfo::unknown()))
                .collect();
            let node = g.add_node("node", op, &ins, outs);
            // Shape-value chains feed some ops: a Shape of the first input into input 1.
            if r.below(4) == 0
                && let Some(Some(x)) = ins.first()
            {
                let s = g.add_simple("shape", op::Shape::default(), &[*x], "shape_out");
                g.connect(s, node, 1);
            }
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _ = infer_node(&g, node);
                infer_shapes(&mut g)
            }));
            match result {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(_)) => {}
                Err(_) => panic!("{op_type} panicked on {g:#?}"),
            }
            ran += 1;
        }
    }
    // Enough graphs get past the checks to exercise the shape arithmetic too.
    eprintln!("{ran} graphs, {ok} inferred without error");
    assert!(
        ran > Op::known_ops().len() * 100,
        "only {ran} graphs were built"
    );
    assert!(
        ok > ran / 10,
        "only {ok} of {ran} graphs inferred without error"
    );
}
