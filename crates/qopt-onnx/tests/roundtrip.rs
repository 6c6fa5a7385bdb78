//! Import -> export -> import gives the same graph: same ops, attributes, names, types, doc
//! strings, metadata and bit-identical tensors (`qopt_onnx::testing::graph_diff`), and the
//! second export is byte-identical to the first (export is deterministic and a fixpoint).
//! Runs on every real model present (`testing::real_models`, SKIP lines for the absent ones)
//! and on every committed model under `testdata/onnx/` that imports.

mod common;

use qopt_onnx::testing::{graph_diff, real_models, workspace_root};
use qopt_onnx::{ExportOptions, ImportOptions, export_bytes, import};
use std::path::Path;

fn round_trip(path: &Path) {
    let a = qopt_onnx::load(path).unwrap_or_else(|e| panic!("{e}"));
    let bytes = export_bytes(&a.graph, ExportOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let opts = ImportOptions {
        base_dir: path.parent().map(Path::to_path_buf),
        label: Some(format!("export of {}", path.display())),
    };
    let b = import(&bytes, opts).unwrap_or_else(|e| panic!("{e}"));
    if let Some(d) = graph_diff(&a.graph, &b.graph) {
        panic!("{}: the re-imported graph differs: {d}", path.display());
    }
    let again = export_bytes(&b.graph, ExportOptions::default()).unwrap();
    assert!(again == bytes, "{}: second export differs", path.display());
}

#[test]
fn real_models_round_trip_to_identical_graphs() {
    let models = real_models();
    for m in &models {
        round_trip(&m.path);
        eprintln!(
            "round-trip: {} ({}): identical graph",
            m.name,
            m.path.display()
        );
    }
    eprintln!("round-trip: {} real models checked", models.len());
}

#[test]
fn testdata_models_round_trip_to_identical_graphs() {
    let dir = workspace_root().join("testdata/onnx");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    paths.sort();
    let mut n = 0;
    for p in &paths {
        // The external_* error cases are meant to fail; everything else must round-trip.
        if qopt_onnx::load(p).is_ok() {
            round_trip(p);
            n += 1;
        }
    }
    assert!(n >= 15, "only {n} models imported");
}
