//! Test helpers shared across the workspace: the real models present on this machine, with
//! realistic input shapes, and a structural comparison of two graphs.
//!
//! Real models live outside the repository (DESIGN.md §10):
//! - `testdata/external/ppocr/{det,rec,cls}.onnx`: PP-OCRv4 from the rapidocr-onnxruntime 1.4.4
//!   wheel, fetched by `tools/fetch_models.sh`;
//! - `shared/models/*.onnx` in the nearest folder at or above the workspace root that has one
//!   (`../shared/models` for a checkout beside it), or the folder in `$QOPT_SHARED_MODELS`.
//!
//! A test that needs them calls [`real_models`], which prints a `SKIP:` line for each expected
//! model that is absent, so a run without the cache says what it did not test.

use qopt_ir::{Attr, Graph, NodeId, Op};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A real model and the input shapes it is run with.
#[derive(Clone, Debug)]
pub struct RealModel {
    /// `ppocr/det`, `shared/mnist_cnn_bn`, ...
    pub name: String,
    pub path: PathBuf,
    /// A realistic shape for each input with dynamic dims; empty when every dynamic dim is the
    /// batch (run with 1).
    pub input_shapes: Vec<(String, Vec<usize>)>,
}

/// PP-OCRv4 models: file stem, input name, the shape rapidocr feeds them.
const PPOCR: [(&str, &str, [usize; 4]); 3] = [
    ("det", "x", [1, 3, 640, 640]),
    ("rec", "x", [1, 3, 48, 320]),
    ("cls", "x", [1, 3, 48, 192]),
];

/// Shared models the project expects (shared/models/README.md), with their input shapes.
const SHARED: [(&str, &str, [usize; 4]); 2] = [
    ("mnist_cnn_bn", "input", [1, 1, 28, 28]),
    ("efficientnet_lite0_keepbn", "input", [1, 3, 224, 224]),
];

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    p.canonicalize().unwrap_or(p)
}

/// Where the PP-OCR models are cached.
pub fn ppocr_dir() -> PathBuf {
    workspace_root().join("testdata/external/ppocr")
}

/// The shared reference models folder, if there is one.
pub fn shared_models_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("QOPT_SHARED_MODELS") {
        return Some(PathBuf::from(d));
    }
    workspace_root()
        .ancestors()
        .map(|a| a.join("shared/models"))
        .find(|p| p.is_dir())
}

fn shapes(input: &str, shape: &[usize]) -> Vec<(String, Vec<usize>)> {
    vec![(input.to_string(), shape.to_vec())]
}

/// The real models present, in a fixed order; prints `SKIP: ...` for each missing one.
pub fn real_models() -> Vec<RealModel> {
    let mut out = Vec::new();
    let ppocr = ppocr_dir();
    for (stem, input, shape) in PPOCR {
        let path = ppocr.join(format!("{stem}.onnx"));
        if path.is_file() {
            out.push(RealModel {
                name: format!("ppocr/{stem}"),
                path,
                input_shapes: shapes(input, &shape),
            });
        } else {
            eprintln!(
                "SKIP: {} is absent (run tools/fetch_models.sh)",
                path.display()
            );
        }
    }
    let Some(dir) = shared_models_dir() else {
        eprintln!(
            "SKIP: no shared/models folder at or above {} (set QOPT_SHARED_MODELS); \
             using the copy of mnist_cnn_bn in testdata/models",
            workspace_root().display()
        );
        // The repository ships one of the shared models (the README's main job uses it), so a
        // fresh clone still tests a real trained model.
        let path = workspace_root().join("testdata/models/mnist_cnn_bn.onnx");
        if path.is_file() {
            out.push(RealModel {
                name: "shared/mnist_cnn_bn".into(),
                path,
                input_shapes: shapes(SHARED[0].1, &SHARED[0].2),
            });
        }
        return out;
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "onnx") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    for (stem, _, _) in SHARED {
        if !found
            .iter()
            .any(|p| p.file_stem().is_some_and(|s| s == stem))
        {
            eprintln!("SKIP: {}/{stem}.onnx is absent", dir.display());
        }
    }
    for path in found {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let input_shapes = SHARED
            .iter()
            .find(|(s, _, _)| *s == stem)
            .map(|(_, input, shape)| shapes(input, shape))
            .unwrap_or_default();
        out.push(RealModel {
            name: format!("shared/{stem}"),
            path,
            input_shapes,
        });
    }
    out
}

/// Attribute equality where floats and tensors compare by their bits (NaN equals itself).
pub fn attr_bit_eq(a: &Attr, b: &Attr) -> bool {
    match (a, b) {
        (Attr::Float(x), Attr::Float(y)) => x.to_bits() == y.to_bits(),
        (Attr::Floats(x), Attr::Floats(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        (Attr::Tensor(x), Attr::Tensor(y)) => x.bit_eq(y),
        _ => a == b,
    }
}

fn op_diff(a: &Op, b: &Op) -> Option<String> {
    if a.op_type() != b.op_type() || a.domain() != b.domain() {
        return Some(format!("{} vs {}", a.qualified_name(), b.qualified_name()));
    }
    match (a, b) {
        (Op::Const(x), Op::Const(y)) => {
            (!x.bit_eq(y)).then(|| format!("constants differ: {x:?} vs {y:?}"))
        }
        _ => {
            let (x, y) = (a.attrs(), b.attrs());
            let same = x.len() == y.len()
                && x.iter()
                    .zip(&y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && attr_bit_eq(v1, v2));
            (!same).then(|| format!("attributes differ: {x:?} vs {y:?}"))
        }
    }
}

/// The first difference between two graphs, or `None` when they are the same: graph name,
/// metadata, inputs and outputs, and for every node (matched by its first output's name) its
/// name, doc, op and attributes (tensors bit for bit), output values (names, types, docs,
/// annotations) and inputs by name, and the order of the operator nodes.
pub fn graph_diff(a: &Graph, b: &Graph) -> Option<String> {
    if a.name != b.name {
        return Some(format!("graph name {:?} vs {:?}", a.name, b.name));
    }
    if a.meta != b.meta {
        return Some(format!("metadata {:?} vs {:?}", a.meta, b.meta));
    }
    let values = |g: &Graph, ids: Vec<qopt_ir::ValueId>| -> Vec<qopt_ir::ValueInfo> {
        ids.into_iter().map(|v| g.value(v).clone()).collect()
    };
    let (ia, ib) = (values(a, a.input_values()), values(b, b.input_values()));
    if ia != ib {
        return Some(format!("inputs {ia:?} vs {ib:?}"));
    }
    let (oa, ob) = (
        values(a, a.outputs().to_vec()),
        values(b, b.outputs().to_vec()),
    );
    if oa != ob {
        return Some(format!("outputs {oa:?} vs {ob:?}"));
    }
    let key = |g: &Graph, n: NodeId| g.node(n).outputs[0].name.clone();
    let index = |g: &Graph| -> BTreeMap<String, NodeId> {
        g.node_ids().into_iter().map(|n| (key(g, n), n)).collect()
    };
    let (na, nb) = (index(a), index(b));
    if na.len() != a.node_count() || nb.len() != b.node_count() {
        return Some("a node has the same first output name as another".into());
    }
    let ka: Vec<&String> = na.keys().collect();
    let kb: Vec<&String> = nb.keys().collect();
    if ka != kb {
        let only_a: Vec<&&String> = ka
            .iter()
            .filter(|k| !nb.contains_key(**k))
            .take(5)
            .collect();
        let only_b: Vec<&&String> = kb
            .iter()
            .filter(|k| !na.contains_key(**k))
            .take(5)
            .collect();
        return Some(format!(
            "node sets differ: only in the first {only_a:?}, only in the second {only_b:?}"
        ));
    }
    for (k, &x) in &na {
        let y = nb[k];
        let (p, q) = (a.node(x), b.node(y));
        let what = a.describe(x);
        if p.name != q.name || p.doc != q.doc {
            return Some(format!(
                "{what}: name/doc {:?}/{:?} vs {:?}/{:?}",
                p.name, p.doc, q.name, q.doc
            ));
        }
        if let Some(d) = op_diff(&p.op, &q.op) {
            return Some(format!("{what}: {d}"));
        }
        if p.outputs != q.outputs {
            return Some(format!(
                "{what}: outputs {:?} vs {:?}",
                p.outputs, q.outputs
            ));
        }
        let names = |g: &Graph, n: NodeId| -> Vec<Option<String>> {
            g.inputs(n)
                .into_iter()
                .map(|v| v.map(|v| g.value_name(v).to_string()))
                .collect()
        };
        let (ins_a, ins_b) = (names(a, x), names(b, y));
        if ins_a != ins_b {
            return Some(format!("{what}: inputs {ins_a:?} vs {ins_b:?}"));
        }
    }
    let ops = |g: &Graph| -> Vec<String> {
        g.topo_order()
            .unwrap_or_default()
            .into_iter()
            .filter(|&n| !g.node(n).op.is_source())
            .map(|n| key(g, n))
            .collect()
    };
    let (sa, sb) = (ops(a), ops(b));
    if sa != sb {
        let i = sa.iter().zip(&sb).position(|(x, y)| x != y).unwrap_or(0);
        return Some(format!(
            "node order differs at position {i}: {:?} vs {:?}",
            sa.get(i),
            sb.get(i)
        ));
    }
    None
}

/// A Python that can import onnx, onnxruntime and numpy, for the cross-checks against
/// ONNX Runtime: `$QOPT_PYTHON`, else `.venv/bin/python` at the workspace root. Prints a
/// `SKIP:` line naming `what` and returns `None` when there is none.
pub fn python_with_ort(what: &str) -> Option<PathBuf> {
    let py = std::env::var_os("QOPT_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    let ok = std::process::Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        eprintln!(
            "SKIP: {what}: {} cannot import onnx, onnxruntime and numpy \
             (set QOPT_PYTHON or run tools/test.sh, which creates .venv)",
            py.display()
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::op::{Conv, Relu};
    use qopt_ir::{DType, Shape, Tensor, TypeInfo};

    fn graph(w: f32, pads: Vec<i64>) -> Graph {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 1, 4, 4])));
        let k = g.add_const("k", Tensor::from_vec(&[1, 1, 1, 1], vec![w]));
        let c = g.add_simple(
            "conv",
            Conv {
                pads,
                ..Conv::default()
            },
            &[x, k],
            "c",
        );
        let r = g.add_simple("relu", Relu {}, &[c], "r");
        g.set_outputs(vec![r]);
        g
    }

    #[test]
    fn graph_diff_sees_every_kind_of_difference() {
        let a = graph(1.0, vec![]);
        assert_eq!(graph_diff(&a, &a.clone()), None);
        // Tensors compare by bits: -0.0 is not 0.0.
        let d = graph_diff(&graph(0.0, vec![]), &graph(-0.0, vec![])).unwrap();
        assert!(d.contains("constants differ"), "{d}");
        let d = graph_diff(&a, &graph(1.0, vec![1, 1, 1, 1])).unwrap();
        assert!(d.contains("attributes differ"), "{d}");
        let mut b = a.clone();
        let relu = b.find_value("r").unwrap().node;
        b.node_mut(relu).name = "relu2".into();
        assert!(graph_diff(&a, &b).unwrap().contains("name/doc"));
        let mut b = a.clone();
        b.meta.producer_name = "x".into();
        assert!(graph_diff(&a, &b).unwrap().contains("metadata"));
        let mut b = a.clone();
        let c = b.find_value("c").unwrap();
        b.value_mut(c).ty = TypeInfo::new(DType::F32, Shape::known(&[1, 1, 4, 4]));
        assert!(graph_diff(&a, &b).unwrap().contains("outputs"));
        let mut b = a.clone();
        let x = b.input_values()[0];
        b.connect(x, relu, 0);
        assert!(graph_diff(&a, &b).unwrap().contains("inputs"));
    }
}
