//! Round-trip, error and property tests of the `.qir` format.

use super::*;
use std::path::PathBuf;

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn dump(g: &crate::Graph) -> String {
    print(g, &PrintOptions::default())
}

fn with_blobs(g: &crate::Graph) -> String {
    print(g, &PrintOptions { blobs: true })
}

/// The text after the leading comment lines (which the printer does not reproduce).
fn body(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Reference: each file under testdata/qir/ was written by hand in canonical form.
#[test]
fn canonical_files_print_back_unchanged() {
    let mut n = 0;
    for e in std::fs::read_dir(repo_path("testdata/qir")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "qir") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let g = parse(&text).unwrap_or_else(|e| panic!("{}", e.in_file(p.display().to_string())));
        let want = body(&text);
        let got = if want.contains("\nblobs {") {
            with_blobs(&g)
        } else {
            dump(&g)
        };
        assert_eq!(got, want, "{}", p.display());
        n += 1;
    }
    assert!(n >= 6);
}

// ---- graph equality -------------------------------------------------------------------------

/// Structural equality that ignores node indices: nodes are matched by the names of their
/// outputs (and inputs by position), ops and values compared through `Debug` (exact for every
/// float but NaN payloads), and every tensor compared bit for bit.
fn assert_same(a: &crate::Graph, b: &crate::Graph) {
    assert_eq!(a.name, b.name);
    assert_eq!(a.meta, b.meta);
    let names = |g: &crate::Graph, vs: &[crate::ValueId]| -> Vec<String> {
        vs.iter().map(|&v| g.value_name(v).to_string()).collect()
    };
    assert_eq!(names(a, &a.input_values()), names(b, &b.input_values()));
    assert_eq!(names(a, a.outputs()), names(b, b.outputs()));

    fn tensors(op: &crate::Op) -> Vec<std::sync::Arc<crate::Tensor>> {
        let mut v: Vec<_> = op.as_const().cloned().into_iter().collect();
        for (_, at) in op.attrs() {
            if let crate::Attr::Tensor(t) = at {
                v.push(t);
            }
        }
        v
    }
    // Sorted (outputs/op, description, tensors): zero-output nodes have no name to match by.
    let canon = |g: &crate::Graph| {
        let mut m = Vec::new();
        for n in g.node_ids() {
            let node = g.node(n);
            let ins: Vec<Option<String>> = g
                .inputs(n)
                .iter()
                .map(|v| v.map(|v| g.value_name(v).to_string()))
                .collect();
            let key = format!(
                "{:?}/{}",
                node.outputs.iter().map(|v| &v.name).collect::<Vec<_>>(),
                node.op.qualified_name()
            );
            let desc = format!(
                "{:?} {:?} {:?} {:?} {:?}",
                node.name, node.doc, node.op, node.outputs, ins
            );
            m.push((key, (desc, tensors(&node.op))));
        }
        m.sort_by(|x, y| (&x.0, &x.1.0).cmp(&(&y.0, &y.1.0)));
        m
    };
    let (ca, cb) = (canon(a), canon(b));
    assert_eq!(ca.len(), cb.len());
    for ((ka, (da, ta)), (kb, (db, tb))) in ca.iter().zip(&cb) {
        assert_eq!(ka, kb);
        assert_eq!(da, db);
        assert_eq!(ta.len(), tb.len());
        for (x, y) in ta.iter().zip(tb) {
            assert!(x.bit_eq(y), "{ka}: {x:?} vs {y:?}");
        }
    }
}

/// Print with blobs, parse, and check both the text fixpoint and graph equality.
fn round_trip(g: &crate::Graph) -> crate::Graph {
    let text = with_blobs(g);
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n--- text:\n{text}"));
    assert_eq!(with_blobs(&back), text);
    assert_eq!(dump(&back), dump(g));
    assert_same(g, &back);
    back
}

// ---- blobs ------------------------------------------------------------------------------------

/// Reference: testdata/qir/blobs.qir is written by tools/gen_qir_blobs.py (numpy bytes, FNV-1a
/// from the specification, base64 from Python's standard library); the values below are the
/// script's defining formulas.
#[test]
fn blob_file_matches_the_python_reference() {
    let text = std::fs::read_to_string(repo_path("testdata/qir/blobs.qir")).unwrap();
    let g = parse(&text).unwrap();
    let w = g.const_value(g.find_value("w").unwrap()).unwrap();
    let want: Vec<f32> = (0..80).map(|i| i as f32 * 0.5 - 3.0).collect();
    assert_eq!(w.shape(), &[4, 20]);
    assert_eq!(
        w.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
        want
    );

    let y = g.find_value("y").unwrap();
    let q = g.value(y).ann.qparams.as_ref().unwrap();
    let scales: Vec<f32> = (0..20).map(|i| (0.01 * (i as f64 + 1.0)) as f32).collect();
    assert_eq!(
        (q.axis, &q.scale, &q.zero_point),
        (Some(1), &scales, &vec![0; 20])
    );

    let c = g.find_value("c").unwrap().node;
    let attrs = g.node(c).op.attrs();
    let crate::Attr::Tensor(t) = &attrs[0].1 else {
        panic!("{attrs:?}")
    };
    let half: Vec<f64> = (0..20).map(|i| i as f64 / 8.0).collect();
    assert_eq!(t.to_f64_vec(), half);
    assert_eq!(attrs[1].1, crate::Attr::Raw((0..100).collect()));
    let crate::Attr::Tensor(same) = &attrs[2].1 else {
        panic!()
    };
    assert!(same.bit_eq(w));

    let o = g.find_value("o").unwrap().node;
    let crate::Op::Observer(st) = &g.node(o).op else {
        panic!()
    };
    let counts: Vec<u64> = (0..20).map(|i| i * i).collect();
    assert_eq!(st.abs_hist.as_ref().unwrap().counts, counts);

    assert_eq!(with_blobs(&g), body(&text));
    round_trip(&g);
}

#[test]
fn dumps_leave_blobs_out_and_say_how_to_keep_them() {
    let text = std::fs::read_to_string(repo_path("testdata/qir/blobs.qir")).unwrap();
    let g = parse(&text).unwrap();
    let d = dump(&g);
    assert!(!d.contains("blobs {"));
    assert_eq!(d, g.to_string());
    let e = parse(&d).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(
        e.message.contains("no blobs section") && e.message.contains("-o x.qir"),
        "{e}"
    );
    assert_eq!(e.source_line.chars().nth(e.column - 1), Some('#'), "{e}");
}

#[test]
fn blob_errors() {
    let text = std::fs::read_to_string(repo_path("testdata/qir/blobs.qir")).unwrap();
    // A missing blob.
    let first_blob = text.lines().position(|l| l == "blobs {").unwrap() + 1;
    let cut: String = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != first_blob)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let e = parse(&cut).unwrap_err();
    assert!(e.message.contains("is not in the blobs section"), "{e}");
    // Bytes that do not match the hash, and bytes of the wrong length.
    let line = text.lines().nth(first_blob).unwrap();
    let (name, _) = line.split_once(" = ").unwrap();
    let wrong = text.replace(line, &format!("{name} = \"AAAAAAAAAAA=\""));
    let e = parse(&wrong).unwrap_err();
    assert!(e.message.contains("does not fit"), "{e}");
    let swapped = text.replacen("AABAwAAA", "AABAwAAB", 1);
    let e = parse(&swapped).unwrap_err();
    assert!(e.message.contains("does not match"), "{e}");
    let bad64 = text.replace(line, &format!("{name} = \"***\""));
    assert!(parse(&bad64).unwrap_err().message.contains("base64"));
}

// ---- a graph built in code ------------------------------------------------------------------------

fn built() -> crate::Graph {
    use crate::{DType, Dim, Shape, Tensor, TypeInfo, ValueInfo};
    let mut g = crate::Graph::new("built");
    g.meta.ir_version = 8;
    g.meta.set_opset("", 17);
    g.meta.set_opset("com.microsoft", 1);
    g.meta.doc_string = "model \"doc\"".into();
    g.meta.graph_doc_string = "graph doc".into();
    g.meta.domain = "ai.qopt".into();
    g.meta.model_version = 3;
    g.meta.metadata_props = vec![("k".into(), "v".into()), ("k".into(), "dup".into())];
    let n = Dim::Sym("N".into());
    let x = g.add_input(
        "x",
        TypeInfo::new(DType::F32, Shape(vec![n.clone(), Dim::Known(4)])),
    );
    let big: Vec<f32> = (0..64).map(|i| (i as f32).sin()).collect();
    let w = g.add_const("w", Tensor::from_vec(&[4, 16], big));
    let b = g.add_const("b", Tensor::from_vec(&[16], vec![0.5f32; 16]));
    let dead = g.add_const("dead", Tensor::from_vec(&[3], vec![1i64, 2, 3]));
    let mm = g.add_simple("mm", crate::op::MatMul {}, &[x, w], "mm");
    let add = g.add_simple("add", crate::op::Add {}, &[mm, b], "add");
    // A hole in the node indices, as passes leave them.
    let tmp = g.add_simple("tmp", crate::op::Relu {}, &[add], "tmp");
    g.remove_node(tmp.node);
    let split = g.add_node(
        "split",
        crate::op::Split {
            axis: 1,
            split: None,
        },
        &[Some(add)],
        vec![
            ValueInfo::new(
                "s0",
                TypeInfo::new(DType::F32, Shape(vec![n.clone(), Dim::Known(8)])),
            ),
            ValueInfo::new("s1", TypeInfo::unknown()),
        ],
    );
    g.value_mut(crate::ValueId::new(split, 1)).ann.range = Some(crate::Range::new(-1.0, 1.0));
    g.set_outputs(vec![
        crate::ValueId::new(split, 0),
        crate::ValueId::new(split, 1),
        dead,
        x,
    ]);
    g
}

#[test]
fn built_graph_round_trips_and_prints_deterministically() {
    let g = built();
    crate::verify(&g).unwrap();
    let back = round_trip(&g);
    crate::verify(&back).unwrap();
    assert_eq!(dump(&g), dump(&g.clone()));
    assert_eq!(dump(&g), dump(&built()));
    let d = dump(&g);
    // Constants by first use, unused last; ops in topological order.
    let order: Vec<&str> = d
        .lines()
        .filter_map(|l| l.trim().strip_prefix('%'))
        .map(|l| l.split([' ', ',']).next().unwrap())
        .collect();
    assert_eq!(order, ["w", "b", "dead", "mm", "add", "s0"]);
    assert!(
        d.contains("%s0, %s1 = Split(%add) {axis=1} : f32[N,8], ? @range=[-1.0, 1.0]"),
        "{d}"
    );
    assert!(d.contains("  meta {ir_version=8 domain=\"ai.qopt\" model_version=3 doc=\"model \\\"doc\\\"\" graph_doc=\"graph doc\"}\n"), "{d}");
    assert!(d.contains("  props {\"k\"=\"v\" \"k\"=\"dup\"}\n"), "{d}");
}

// ---- hand-written, non-canonical input ----------------------------------------------------------

#[test]
fn hand_written_forms_parse_and_normalise() {
    let src = r#"
# RUN: --passes=dce
# Leading comments, and comments and line breaks between tokens.
graph g(%x: f32[1,4],   # the input
        %s: ?[*]) -> (%y, %r, %z, %q) {
  %w = const f32[4] random(seed=1)          # hand-written weights
  %b = const f32[1] 2                       # an int where a float goes; a scalar for [1]
  %big = const i8[32] random(seed=7, lo=-3, hi=3)
  %fill = const f16[2,3] splat(-0.5)
  %flags = const bool[3] [1, 0, true]
  %y = ai.onnx::Add(%x, %w) : f32[1,4]
    @q=i8(axis=1, s=[1, 0.5, 0.25, 0.125])  # zp defaults to zeros
  %r = Relu(%y) {} : f32[1,4]
  %z = LeakyRelu(%r) {alpha=1}
  %q = Add(%big, %fill)
}
"#;
    let g = parse(src).unwrap();
    let w = g.const_value(g.find_value("w").unwrap()).unwrap();
    // Reference: SplitMix64(seed=1) mapped to [-1, 1) in Python (see random.rs tests).
    assert_eq!(
        w.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
        vec![0.13312314f32, 0.49156353, 0.9420055, -0.11128157]
    );
    let big = g.const_value(g.find_value("big").unwrap()).unwrap();
    assert!(
        big.to_i64_vec()
            .unwrap()
            .iter()
            .all(|v| (-3..=3).contains(v))
    );
    let y = g.find_value("y").unwrap();
    assert!(matches!(g.node(y.node).op, crate::Op::Add(_)));
    assert_eq!(
        g.value(y).ann.qparams.as_ref().unwrap().zero_point,
        vec![0; 4]
    );
    let z = g.find_value("z").unwrap();
    assert!(matches!(&g.node(z.node).op, crate::Op::LeakyRelu(l) if l.alpha == 1.0));
    let d = dump(&g);
    assert!(d.contains("%b = const f32[1] [2.0]\n"), "{d}");
    assert!(
        d.contains("%flags = const bool[3] [true, false, true]\n"),
        "{d}"
    );
    assert!(
        d.contains("%fill = const f16[2,3] [-0.5, -0.5, -0.5, -0.5, -0.5, -0.5]\n"),
        "{d}"
    );
    assert!(d.contains("%s: ?)"), "{d}");
    assert!(d.contains("%z = LeakyRelu(%r) {alpha=1.0}\n"), "{d}");
    assert!(d.contains("%big = const i8[32] {min="), "{d}");
    round_trip(&g);
}

#[test]
fn crlf_tabs_and_a_byte_order_mark_are_whitespace() {
    let src = "\u{feff}graph g(%x: f32[2])\t-> (%y) {\r\n\t%y = Relu(%x)\r\n}\r\n";
    let g = parse(src).unwrap();
    assert_eq!(
        dump(&g),
        "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x)\n}\n"
    );
}

// ---- errors ---------------------------------------------------------------------------------------

/// Each bad input gives an error at the right line and column, naming the problem.
#[test]
fn errors_point_at_the_problem() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("", 1, 1, "expected 'graph'"),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%nope)\n}\n",
            2,
            13,
            "unknown value %nope",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x)\n  %y = Relu(%x)\n}\n",
            3,
            3,
            "%y is already defined (line 2)",
        ),
        (
            "graph g(%x: f32[2]) -> (%x) {\n  %x = Relu(%x)\n}\n",
            2,
            3,
            "already defined (line 1)",
        ),
        (
            "graph g(%x: f33[2]) -> (%x) {\n}\n",
            1,
            13,
            "unknown element type 'f33'",
        ),
        ("graph g(%x: f32) -> (%x) {\n}\n", 1, 16, "expected '['"),
        (
            "graph g(%x: f32[2,-1]) -> (%x) {\n}\n",
            1,
            19,
            "bad dimension -1",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Conv(%x) {pads=1.5}\n}\n",
            2,
            18,
            "Conv: attribute `pads`: expected ints, got float",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x) {alpha=1.0}\n}\n",
            2,
            18,
            "Relu: unknown attribute `alpha`",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Concat(%x)\n}\n",
            2,
            8,
            "Concat: missing required attribute `axis`",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Resize(%x) {mode=\"fancy\"}\n}\n",
            2,
            20,
            "expected one of nearest",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Foo(%x) {s=\"abc}\n}\n",
            2,
            19,
            "unterminated string",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x\n}\n",
            3,
            1,
            "expected ')' or ','",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x)\n",
            3,
            1,
            "expected '}' to close the graph body",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n}\n",
            1,
            25,
            "graph output %y is not defined",
        ),
        (
            "graph g(%x: f32[2]) -> (%x) {\n}\nextra\n",
            3,
            1,
            "expected the end of the file",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const f32[3] [1.0, 2.0]\n}\n",
            2,
            21,
            "f32[3] needs 3 elements, got 2",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const i8[2] [1, 300]\n}\n",
            2,
            24,
            "300 is out of range for i8",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const i8[2] [1, 2.5]\n}\n",
            2,
            24,
            "expected an integer",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const f32[N] [1.0]\n}\n",
            2,
            14,
            "known element type and shape",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const f32[20] {min=0.0} # a comment\n}\n",
            2,
            32,
            "expected a content hash",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const f32[20] {min=0.0}\n}\n",
            3,
            1,
            "expected the content hash",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const f32[99999,99999] splat(0.0)\n}\n",
            2,
            31,
            "more than",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = const f32[2] random(lo=0)\n}\n",
            2,
            21,
            "needs a seed",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y, %z = const f32[] 1.0\n}\n",
            2,
            12,
            "exactly one value",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y, %z = Relu(%x) : f32[2]\n}\n",
            2,
            21,
            "2 outputs but 1 types",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x) {a=1 a=2}\n}\n",
            2,
            22,
            "given twice",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x) : f32[2] @range=[0.0, 1.0] @range=[0.0, 1.0]\n}\n",
            2,
            45,
            "@range is given twice",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x) : f32[2] @q=i8(zp=0)\n}\n",
            2,
            29,
            "need a scale",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x) doc(\"d\")\n}\n",
            2,
            17,
            "follows its loc",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Foo(%x) {r=raw<not base64!>}\n}\n",
            2,
            23,
            "bad base64",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Foo(%x) {v=[1, \"a\"]}\n}\n",
            2,
            19,
            "not both",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Foo(%x) {v=nan(0x1)}\n}\n",
            2,
            19,
            "not the bit pattern",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Foo(%x) {v=\"\\q\"}\n}\n",
            2,
            20,
            "unknown escape",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  meta {producer=\"x\"}\n}\n",
            2,
            9,
            "unknown meta field",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Observer(%x) {bins=-1}\n}\n",
            2,
            27,
            "non-negative",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x) ; \n}\n",
            2,
            17,
            "unexpected character ';'",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  y = Relu(%x)\n}\n",
            2,
            3,
            "expected a statement",
        ),
        (
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(% x)\n}\n",
            2,
            13,
            "expected a value name after '%'",
        ),
    ];
    let mut bad = Vec::new();
    for &(src, line, col, msg) in cases {
        match parse(src) {
            Ok(_) => bad.push(format!("accepted:\n{src}")),
            Err(e) if !e.message.contains(msg) || (e.line, e.column) != (line, col) => {
                bad.push(format!("{e}\n  wanted {line}:{col}: {msg}"))
            }
            Err(e) => assert!(e.to_string().ends_with('^'), "{e}"),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

// ---- random graphs ----------------------------------------------------------------------------------

/// Builds random small graphs that use every feature of the format, from one seed.
struct Gen {
    r: random::SplitMix64,
    counter: usize,
}

const PIECES: &[&str] = &[
    "", "a", "b c", "\"", "\\", "\n", "\t", "\r", "\u{1}", "\u{7f}", "ü", "🙂", "#", "%", "/x/y",
    "{", "}", "=", "0", "nan", "inf", "_", ".", "::", "@", "const", "Observer", "loc", "doc", "-1",
    "range", "q",
];

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            r: random::SplitMix64::new(seed),
            counter: 0,
        }
    }
    fn below(&mut self, n: usize) -> usize {
        (self.r.next_u64() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.r.next_unit() < p
    }
    fn pick<T: Clone>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())].clone()
    }
    fn string(&mut self) -> String {
        (0..self.below(4)).map(|_| self.pick(PIECES)).collect()
    }
    fn unique(&mut self) -> String {
        self.counter += 1;
        let p = self.pick(&[
            "v",
            "/backbone/conv",
            "a b",
            "ü",
            "",
            "x.y_",
            "%",
            "\"",
            "#",
            "1",
        ]);
        format!("{p}_{}", self.counter)
    }
    fn f32(&mut self) -> f32 {
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-45,
        ];
        match self.below(4) {
            0 => self.pick(&special),
            1 => f32::from_bits(self.r.next_u64() as u32),
            2 => f32::from_bits(0x7fc0_0000 | (self.r.next_u64() as u32 & 0x803f_ffff)),
            _ => (self.r.next_unit() * 200.0 - 100.0) as f32,
        }
    }
    fn dtype(&mut self) -> crate::DType {
        self.pick(&crate::DType::ALL)
    }
    fn tensor(&mut self) -> crate::Tensor {
        let dtype = self.dtype();
        let rank = self.below(4);
        let mut shape: Vec<usize> = (0..rank).map(|_| self.below(5)).collect();
        if self.chance(0.3) {
            shape = vec![17 + self.below(30)];
        }
        let n: usize = shape.iter().product();
        let mode = self.below(3);
        let first = self.r.next_u64();
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| {
                let x = if mode == 0 { first } else { self.r.next_u64() };
                let mut b = x.to_le_bytes()[..dtype.size()].to_vec();
                if dtype == crate::DType::Bool {
                    b[0] &= 1;
                }
                if dtype == crate::DType::F32 && mode == 2 {
                    b = self.f32().to_le_bytes().to_vec();
                }
                b
            })
            .collect();
        crate::Tensor::from_le_bytes(dtype, &shape, &bytes).unwrap()
    }
    fn attr(&mut self) -> crate::Attr {
        use crate::Attr;
        let n = self.below(5);
        match self.below(8) {
            0 => Attr::Int(self.r.next_u64() as i64 >> self.below(64)),
            1 => Attr::Float(self.f32()),
            2 => Attr::String(self.string()),
            3 => Attr::Ints((0..n).map(|_| self.r.next_u64() as i64 >> 40).collect()),
            4 => Attr::Floats((0..n).map(|_| self.f32()).collect()),
            5 => Attr::Strings((0..n).map(|_| self.string()).collect()),
            6 => Attr::Tensor(std::sync::Arc::new(self.tensor())),
            _ => Attr::Raw(
                (0..self.below(100))
                    .map(|_| self.r.next_u64() as u8)
                    .collect(),
            ),
        }
    }
    fn ty(&mut self) -> crate::TypeInfo {
        use crate::{Dim, Shape};
        let dtype = self.chance(0.8).then(|| self.dtype());
        let shape = self.chance(0.8).then(|| {
            Shape(
                (0..self.below(4))
                    .map(|_| match self.below(3) {
                        0 => Dim::Known(self.r.next_u64() >> self.below(64)),
                        1 => Dim::Sym(
                            self.pick(&[
                                "N",
                                "batch size",
                                "p2o.DynamicDimension.0",
                                "1x",
                                "",
                                "?",
                                "_",
                                ".a",
                            ])
                            .to_string(),
                        ),
                        _ => Dim::Unknown,
                    })
                    .collect(),
            )
        });
        crate::TypeInfo { dtype, shape }
    }
    fn list<T>(&mut self, n: usize, f: impl Fn(&mut Gen) -> T) -> Vec<T> {
        (0..n).map(|_| f(self)).collect()
    }
    fn annotations(&mut self) -> crate::Annotations {
        let mut a = crate::Annotations::default();
        if self.chance(0.3) {
            a.range = Some(crate::Range::new(self.f32(), self.f32()));
        }
        if self.chance(0.3) {
            let per_channel = self.chance(0.5);
            let n = if per_channel { 1 + self.below(40) } else { 1 };
            let same = self.chance(0.3);
            a.qparams = Some(crate::QParams {
                dtype: self.pick(&[crate::DType::I8, crate::DType::U8, crate::DType::I32]),
                scale: if same {
                    vec![0.5; n]
                } else {
                    self.list(n, |g| g.f32())
                },
                zero_point: if same {
                    vec![0; n]
                } else {
                    self.list(n, |g| g.r.next_u64() as i32)
                },
                axis: per_channel.then(|| self.below(4)),
            });
        }
        for _ in 0..self.below(3) {
            let k = self.string();
            let v = self.attr();
            a.notes.insert(k, v);
        }
        a
    }
    fn value(&mut self) -> crate::ValueInfo {
        let mut v = crate::ValueInfo::new(self.unique(), crate::TypeInfo::unknown());
        if self.chance(0.6) {
            v.ty = self.ty();
        }
        if self.chance(0.4) {
            v.ann = self.annotations();
        }
        if self.chance(0.1) {
            v.doc = self.string();
        }
        v
    }
    fn observer(&mut self) -> crate::ObserverState {
        let hist = |g: &mut Gen| {
            g.chance(0.5).then(|| {
                let n = g.pick(&[0, 3, 16, 17, 64]);
                let zero = g.chance(0.3);
                crate::Histogram {
                    lo: g.f32(),
                    hi: g.f32(),
                    counts: g.list(n, |g| {
                        if zero {
                            0
                        } else {
                            g.r.next_u64() >> g.below(64)
                        }
                    }),
                }
            })
        };
        crate::ObserverState {
            bins: self.below(3000),
            ema: self.chance(0.5).then(|| self.f32()),
            samples: self.r.next_u64(),
            min_max: self.chance(0.5).then(|| (self.f32(), self.f32())),
            nonfinite: self.r.next_u64() >> 40,
            zeros: self.r.next_u64() >> 40,
            ema_sums: self.chance(0.5).then(|| {
                let mut limbs = || {
                    let mut l = [0u64; 6];
                    l.iter_mut().for_each(|x| *x = self.r.next_u64());
                    crate::observer::ExactSum { limbs: l }
                };
                let (min_sum, max_sum) = (limbs(), limbs());
                crate::observer::EmaSums {
                    samples: self.r.next_u64() >> 20,
                    min_sum,
                    max_sum,
                }
            }),
            abs_hist: hist(self),
            hist: hist(self),
        }
    }
    /// An op and how many outputs it gets.
    fn op(&mut self) -> (crate::Op, usize) {
        use crate::{Attr, Op};
        let a = |k: &str, v: Attr| (k.to_string(), v);
        type Known<'a> = (&'a str, &'a str, Vec<(String, Attr)>);
        let known: Vec<Known> = vec![
            ("", "Relu", vec![]),
            ("", "Add", vec![]),
            (
                "",
                "Conv",
                vec![
                    a("pads", Attr::Ints(vec![1, 1, 1, 1])),
                    a("group", Attr::Int(2)),
                    a("auto_pad", Attr::String("SAME_UPPER".into())),
                ],
            ),
            (
                "",
                "Resize",
                vec![
                    a("mode", Attr::String("linear".into())),
                    a("cubic_coeff_a", Attr::Float(self.f32())),
                ],
            ),
            (
                "",
                "Gemm",
                vec![
                    a("alpha", Attr::Float(self.f32())),
                    a("transB", Attr::Int(1)),
                ],
            ),
            (
                "",
                "Cast",
                vec![a("to", Attr::Int(self.dtype().onnx_code() as i64))],
            ),
            (
                "",
                "ConstantOfShape",
                vec![a("value", Attr::Tensor(std::sync::Arc::new(self.tensor())))],
            ),
            (
                "",
                "ReduceMean",
                vec![a("axes", Attr::Ints(vec![])), a("keepdims", Attr::Int(0))],
            ),
            (
                "",
                "Split",
                vec![a("axis", Attr::Int(-1)), a("split", Attr::Ints(vec![1, 2]))],
            ),
            ("ai.onnx", "Concat", vec![a("axis", Attr::Int(0))]),
            ("com.microsoft", "QLinearAdd", vec![]),
        ];
        match self.below(14) {
            0..=7 => {
                let (d, t, attrs) = self.pick(&known);
                let outs = if t == "Split" { 1 + self.below(3) } else { 1 };
                (Op::from_parts(d, t, &attrs).unwrap(), outs)
            }
            8 => (Op::Observer(Box::new(self.observer())), 1),
            _ => {
                let domain =
                    self.pick(&["", "", "my.domain", "a b", "qopt", "0d", "com.microsoft"]);
                let op_type = self.pick(&[
                    "Foo",
                    "const",
                    "Observer",
                    "Op With Space",
                    "9lives",
                    "graph",
                    "_",
                    "loc",
                    "doc",
                    "nan",
                ]);
                let mut attrs: Vec<(String, Attr)> = Vec::new();
                for _ in 0..self.below(5) {
                    let k = self.string();
                    if !attrs.iter().any(|(n, _)| *n == k) {
                        let v = self.attr();
                        attrs.push((k, v));
                    }
                }
                (
                    Op::from_parts(domain, op_type, &attrs).unwrap(),
                    self.below(4),
                )
            }
        }
    }

    fn graph(&mut self) -> crate::Graph {
        let mut g = crate::Graph::new(self.string());
        if self.chance(0.5) {
            let (n_opsets, n_props) = (self.below(3), self.below(3));
            g.meta = crate::ModelMeta {
                ir_version: self.below(11) as i64,
                opset_imports: self.list(n_opsets, |g| (g.string(), g.below(22) as i64)),
                producer_name: self.string(),
                producer_version: self.string(),
                domain: self.string(),
                model_version: self.r.next_u64() as i64,
                doc_string: self.string(),
                graph_doc_string: self.string(),
                metadata_props: self.list(n_props, |g| (g.string(), g.string())),
            };
        }
        let mut values: Vec<crate::ValueId> = Vec::new();
        for _ in 0..self.below(4) {
            let info = self.value();
            let v = g.add_input(&info.name, info.ty.clone());
            *g.value_mut(v) = info;
            if self.chance(0.2) {
                g.node_mut(v.node).name = self.string();
            }
            if self.chance(0.1) {
                g.node_mut(v.node).doc = self.string();
            }
            values.push(v);
        }
        for _ in 0..self.below(12) {
            if self.chance(0.35) {
                let name = self.unique();
                let v = g.add_const(&name, self.tensor());
                if self.chance(0.2) {
                    g.value_mut(v).ann = self.annotations();
                }
                if self.chance(0.1) {
                    g.node_mut(v.node).name = self.string();
                    g.node_mut(v.node).doc = self.string();
                }
                values.push(v);
                continue;
            }
            let (op, n_out) = self.op();
            let inputs: Vec<Option<crate::ValueId>> = (0..self.below(4))
                .map(|_| (!values.is_empty() && self.chance(0.8)).then(|| self.pick(&values)))
                .collect();
            let outs = self.list(n_out, |g| g.value());
            let id = g.add_node(self.pick(&["", "", "n", "/a/b"]), op, &inputs, outs);
            if self.chance(0.1) {
                g.node_mut(id).doc = self.string();
            }
            values.extend((0..n_out).map(|s| crate::ValueId::new(id, s)));
            if self.chance(0.1) {
                // Leave a hole in the node indices, as passes do.
                let dead = g.add_simple("dead", crate::op::Relu {}, &[], self.unique());
                g.remove_node(dead.node);
            }
        }
        let n_outs = if values.is_empty() { 0 } else { self.below(4) };
        let outs = self.list(n_outs, |g| g.pick(&values));
        g.set_outputs(outs);
        g
    }
}

#[test]
fn generated_graphs_round_trip() {
    // A fixed sweep in addition to the proptest below, so every run covers these seeds.
    for seed in 0..300 {
        let g = Gen::new(seed).graph();
        round_trip(&g);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// Tokens of the format, to make garbage that gets past the first few characters.
    const TOKENS: &[&str] = &[
        "graph",
        "g",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "<",
        ">",
        ",",
        "=",
        ":",
        "::",
        "->",
        "@",
        "*",
        "?",
        "_",
        "%x",
        "%y",
        "%\"a b\"",
        "\"s\"",
        "\"",
        "f32",
        "i8",
        "bool",
        "f32[2]",
        "?[*]",
        "const",
        "splat(1.0)",
        "random(seed=1)",
        "[1, 2]",
        "1",
        "-1",
        "1.5",
        "1e-5",
        "nan",
        "nan(0x7fc00001)",
        "inf",
        "-inf",
        "#0123456789abcdef",
        "#",
        "# comment\n",
        "\n",
        " ",
        "Relu",
        "Observer",
        "loc",
        "doc",
        "opset",
        "meta",
        "props",
        "blobs",
        "tensor<f32[] 1.0>",
        "raw<AA==>",
        "raw<",
        "floats[]",
        "hist(",
        "@range=",
        "@q=i8(s=0.1, zp=0)",
        "%y = Relu(%x)",
        "99999999999999999999",
        "\\u{",
        "\u{0}",
        "é",
    ];

    fn corpus() -> Vec<String> {
        let mut v = vec![
            "graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%x)\n}\n".to_string(),
            dump(&built()),
            with_blobs(&built()),
        ];
        for e in std::fs::read_dir(repo_path("testdata/qir")).unwrap() {
            v.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
        v
    }

    /// The property every input must keep: no panic, and anything accepted prints to a text
    /// that parses back to the same text.
    pub(super) fn check(src: &str) -> Result<(), TestCaseError> {
        if let Ok(g) = parse(src) {
            let t = with_blobs(&g);
            let back =
                parse(&t).map_err(|e| TestCaseError::fail(format!("{e}\n--- reprinted:\n{t}")))?;
            prop_assert_eq!(with_blobs(&back), t);
            let _ = dump(&g);
        }
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Delete(usize, usize),
        Insert(usize, usize),
        Duplicate(usize),
        Replace(usize, char),
        Truncate(usize),
        /// Change the next digit: keeps the syntax, changes values, shapes and hashes.
        Digit(usize, u8),
        SwapLines(usize, usize),
        DeleteLine(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 1..20usize).prop_map(|(a, n)| Edit::Delete(a, n)),
            (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Edit::Insert(a, t)),
            any::<usize>().prop_map(Edit::Duplicate),
            (any::<usize>(), any::<char>()).prop_map(|(a, c)| Edit::Replace(a, c)),
            any::<usize>().prop_map(Edit::Truncate),
            (any::<usize>(), 0..10u8).prop_map(|(a, d)| Edit::Digit(a, d)),
            (any::<usize>(), 0..10u8).prop_map(|(a, d)| Edit::Digit(a, d)),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
            any::<usize>().prop_map(Edit::DeleteLine),
        ]
    }

    fn apply(src: &str, edits: &[Edit]) -> String {
        let mut s = src.to_string();
        let at = |s: &str, a: usize| s.floor_char_boundary(a % (s.len() + 1));
        for e in edits {
            match *e {
                Edit::Delete(a, n) => {
                    let a = at(&s, a);
                    let b = s.floor_char_boundary((a + n).min(s.len()));
                    s.replace_range(a..b, "");
                }
                Edit::Insert(a, t) => {
                    let a = at(&s, a);
                    s.insert_str(a, TOKENS[t]);
                }
                Edit::Duplicate(a) => {
                    let lines: Vec<&str> = s.lines().collect();
                    if !lines.is_empty() {
                        let i = a % lines.len();
                        let mut v = lines.clone();
                        v.insert(i, lines[i]);
                        s = v.join("\n");
                    }
                }
                Edit::Replace(a, c) => {
                    let a = at(&s, a);
                    if let Some(old) = s[a..].chars().next() {
                        s.replace_range(a..a + old.len_utf8(), &c.to_string());
                    }
                }
                Edit::Truncate(a) => {
                    let a = at(&s, a);
                    s.truncate(a);
                }
                Edit::Digit(a, d) => {
                    let a = at(&s, a);
                    if let Some(i) = s[a..].find(|c: char| c.is_ascii_digit()) {
                        s.replace_range(a + i..a + i + 1, &d.to_string());
                    }
                }
                Edit::SwapLines(a, b) => {
                    let mut v: Vec<&str> = s.lines().collect();
                    if !v.is_empty() {
                        let n = v.len();
                        v.swap(a % n, b % n);
                        s = v.join("\n");
                    }
                }
                Edit::DeleteLine(a) => {
                    let mut v: Vec<&str> = s.lines().collect();
                    if !v.is_empty() {
                        let n = v.len();
                        v.remove(a % n);
                        s = v.join("\n");
                    }
                }
            }
        }
        s
    }

    proptest! {
        // PROPTEST_CASES=100000 runs a longer fuzzing session.
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_graphs_round_trip(seed in any::<u64>()) {
            round_trip(&Gen::new(seed).graph());
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,200}") {
            check(&s)?;
        }

        #[test]
        fn token_soup_never_panics(toks in prop::collection::vec(0..TOKENS.len(), 0..80), head in any::<bool>()) {
            let mut s = if head { "graph g(%x: f32[2]) -> (%y) {\n".to_string() } else { String::new() };
            for t in toks {
                s.push_str(TOKENS[t]);
                s.push(' ');
            }
            check(&s)?;
        }

        #[test]
        fn mutated_files_never_panic(i in any::<prop::sample::Index>(), edits in prop::collection::vec(edit(), 1..4)) {
            let c = corpus();
            let src = apply(&c[i.index(c.len())], &edits);
            check(&src)?;
        }
    }
}

/// Inputs that once found a bug (kept under testdata/fuzz/qir/) keep the property.
#[test]
fn fuzz_regressions() {
    let dir = repo_path("testdata/fuzz/qir");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "qir") {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok-")
            && let Err(e) = parse(&std::fs::read_to_string(&p).unwrap())
        {
            panic!("{}", e.in_file(name));
        }
        let src = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        if let Err(e) = props::check(&src) {
            panic!("{}: {e}", p.display());
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}

/// Size check on a model-sized graph (40 MB of weights): `cargo test -p qopt-ir --release
/// large_graph -- --ignored --nocapture` prints the timings.
#[test]
#[ignore = "slow in debug builds; run with --release"]
fn large_graph_round_trips() {
    use crate::{DType, Shape, Tensor, TypeInfo};
    let mut g = crate::Graph::new("large");
    let mut x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 1000])));
    let mut r = random::SplitMix64::new(3);
    for i in 0..100 {
        let w: Vec<f32> = (0..100_000).map(|_| r.next_unit() as f32).collect();
        let w = g.add_const(format!("w{i}"), Tensor::from_vec(&[100, 1000], w));
        x = g.add_simple(
            format!("mm{i}"),
            crate::op::Add {},
            &[x, w],
            format!("/layer{i}/out"),
        );
    }
    g.set_outputs(vec![x]);
    let t = std::time::Instant::now();
    let text = with_blobs(&g);
    let printed = t.elapsed();
    let t = std::time::Instant::now();
    let back = parse(&text).unwrap();
    let parsed = t.elapsed();
    eprintln!(
        "{} MB of text: print {printed:?}, parse {parsed:?}",
        text.len() >> 20
    );
    assert_same(&g, &back);
}
