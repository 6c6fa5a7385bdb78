//! `fuse` on the real models (PP-OCRv4 det/rec/cls, EfficientNet-Lite0, the MNIST CNN):
//! every BatchNormalization folds, the result verifies and is the same on a second run, the
//! graph's inputs and outputs keep their names, and the exported fused model computes what
//! the original computes: `tools/check_fused.py` runs both in ONNX Runtime (graph
//! optimisations off) and requires 1e-5 relative L2 on every output (a Sigmoid output is
//! compared on its logits; the script says why).
//!
//! Prints node counts before and after and the time `fuse` took (it must stay far below a
//! second: the assertion allows 2 s for slow, loaded CI machines in debug builds).
//! Models that are absent print a SKIP line (`qopt_onnx::testing::real_models`); without a
//! Python with onnxruntime the ORT comparison prints a SKIP line.

use qopt_ir::{Dim, Graph, verify};
use qopt_onnx::testing::{python_with_ort, real_models, workspace_root};
use qopt_passes::fuse::{DEFAULT_ITERS, FUSED_ACT, fuse_graph, rules::Topics};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

fn op_counts(g: &Graph) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in g.node_ids() {
        *m.entry(g.node(n).op.op_type().to_string()).or_insert(0) += 1;
    }
    m
}

fn output_names(g: &Graph) -> Vec<String> {
    g.outputs()
        .iter()
        .map(|&o| g.value_name(o).to_string())
        .collect()
}

#[test]
fn fuse_real_models() {
    let py = python_with_ort("fused models against ONNX Runtime");
    let dir = tempfile::tempdir().unwrap();
    for m in real_models() {
        let mut g = qopt_onnx::load(&m.path).unwrap().graph;
        let pins: Vec<(String, Vec<Dim>)> = m
            .input_shapes
            .iter()
            .map(|(k, s)| (k.clone(), s.iter().map(|&d| Dim::Known(d as u64)).collect()))
            .collect();
        qopt_ir::pin_input_shapes(&mut g, &pins).unwrap();
        let g0 = g.clone();

        let t = Instant::now();
        let r = fuse_graph(&mut g, Topics::ALL, true, DEFAULT_ITERS).unwrap();
        let dt = t.elapsed();
        verify(&g).unwrap();
        let (c0, c1) = (op_counts(&g0), op_counts(&g));
        let count = |c: &BTreeMap<String, usize>, k: &str| c.get(k).copied().unwrap_or(0);
        let ops = [
            "BatchNormalization",
            "Conv",
            "ConvTranspose",
            "Add",
            "Mul",
            "MatMul",
            "Gemm",
        ]
        .iter()
        .map(|k| format!("{k} {}->{}", count(&c0, k), count(&c1, k)))
        .collect::<Vec<_>>()
        .join(", ");
        let marked = g
            .node_ids()
            .iter()
            .filter(|&&n| g.node(n).outputs[0].ann.notes.contains_key(FUSED_ACT))
            .count();
        eprintln!(
            "{}: {} -> {} nodes in {:.1} ms ({} iterations); {ops}; {marked} fused activations",
            m.name,
            r.nodes_before,
            r.nodes_after,
            dt.as_secs_f64() * 1e3,
            r.iterations
        );
        assert!(r.saturated, "{}", m.name);
        assert!(dt.as_secs_f64() < 2.0, "{}: fuse took {dt:?}", m.name);
        assert_eq!(count(&c1, "BatchNormalization"), 0, "{}", m.name);
        assert_eq!(output_names(&g), output_names(&g0));
        assert_eq!(g.input_values(), g0.input_values());

        // Same input, same graph.
        let mut again = g0.clone();
        fuse_graph(&mut again, Topics::ALL, true, DEFAULT_ITERS).unwrap();
        assert_eq!(format!("{again:?}"), format!("{g:?}"), "{}", m.name);

        let Some(py) = &py else { continue };
        let out = dir
            .path()
            .join(format!("{}.onnx", m.name.replace('/', "_")));
        qopt_onnx::save(&g, &out).unwrap();
        let mut cmd = Command::new(py);
        cmd.arg(workspace_root().join("tools/check_fused.py"))
            .arg(&m.path)
            .arg(&out);
        for (name, dims) in &m.input_shapes {
            let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            cmd.arg("--shape").arg(format!("{name}={}", d.join(",")));
        }
        let o = cmd.output().expect("run python");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("{}", text.trim_end());
        assert!(
            o.status.success() && text.contains("\nOK"),
            "{}: the fused model differs from the original in ONNX Runtime:\n{text}",
            m.name
        );
    }
}
