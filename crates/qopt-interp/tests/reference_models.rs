//! Real models against ONNX Runtime: `testdata/reference/<model>/` holds a fixed input and ORT's
//! outputs (written by `tools/gen_reference_outputs.py`); every output of the fp32 interpreter
//! must be within relative L2 error 1e-5 of ORT's. Models are looked up in
//! `testdata/external/ppocr/` (tools/fetch_models.sh), `/tmp/models/rapidocr_onnxruntime/models/`
//! and the shared models folder; a missing model is skipped with a message.
//!
//! The same check runs with fusion off (every op as written) and with 1 and 3 threads, whose
//! outputs must be bit-identical (DESIGN.md §9).

mod support;

use qopt_interp::{Plan, PlanOptions};
use qopt_ir::Tensor;
use std::path::PathBuf;

fn find_model(names: &[&str]) -> Option<PathBuf> {
    let mut dirs = vec![
        qopt_onnx::testing::ppocr_dir(),
        PathBuf::from("/tmp/models/rapidocr_onnxruntime/models"),
    ];
    dirs.extend(qopt_onnx::testing::shared_models_dir());
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.exists())
}

fn run(g: &qopt_ir::Graph, opts: &PlanOptions, feed: &[(&str, &Tensor)]) -> Vec<Tensor> {
    let mut plan = Plan::new(g, opts).expect("plan");
    // Twice: the second run reuses pooled buffers and must give the same result.
    let first = plan.run(feed).expect("run");
    let second = plan.run(feed).expect("second run");
    for (a, b) in first.iter().zip(&second) {
        assert!(a.bit_eq(b), "a second run on reused buffers differs");
    }
    second
}

#[test]
fn real_models_match_onnx_runtime() {
    let root = support::workspace_root().join("testdata/reference");
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!(
            "SKIP: {} is absent (run tools/gen_reference_outputs.py)",
            root.display()
        );
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.txt").exists())
        .collect();
    dirs.sort();
    let mut checked = 0;
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let list = std::fs::read_to_string(dir.join("model.txt")).expect("model.txt");
        let names: Vec<&str> = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let Some(model) = find_model(&names) else {
            eprintln!(
                "SKIP: {name}: none of {names:?} found (tools/fetch_models.sh fetches the PP-OCR models)"
            );
            continue;
        };
        let g = qopt_onnx::load(&model).expect("import").graph;
        let mut inputs: Vec<(String, Tensor)> = vec![];
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in &files {
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if let Some(input) = stem.strip_prefix("input_") {
                inputs.push((input.to_string(), support::read_npy(f).expect("input npy")));
            }
        }
        let feed: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let fused = run(
            &g,
            &PlanOptions {
                threads: Some(1),
                ..Default::default()
            },
            &feed,
        );
        let threaded = run(
            &g,
            &PlanOptions {
                threads: Some(3),
                ..Default::default()
            },
            &feed,
        );
        let unfused = run(
            &g,
            &PlanOptions {
                threads: Some(2),
                fuse: false,
                ..Default::default()
            },
            &feed,
        );
        for (i, ((f, t), u)) in fused.iter().zip(&threaded).zip(&unfused).enumerate() {
            let want =
                support::read_npy(&dir.join(format!("output_{i}.npy"))).expect("expected output");
            let ef = support::rel_l2(f, &want).expect("shape");
            let eu = support::rel_l2(u, &want).expect("shape");
            println!(
                "{name} output {i} {:?}: rel L2 vs ORT {ef:.2e} (fused), {eu:.2e} (unfused)",
                f.shape()
            );
            assert!(
                ef <= 1e-5,
                "{name} output {i}: relative L2 error {ef:.3e} > 1e-5 (fused)"
            );
            assert!(
                eu <= 1e-5,
                "{name} output {i}: relative L2 error {eu:.3e} > 1e-5 (unfused)"
            );
            assert!(f.bit_eq(t), "{name} output {i}: 1 and 3 threads differ");
        }
        checked += 1;
    }
    println!("{checked} real models checked against ONNX Runtime");
}
