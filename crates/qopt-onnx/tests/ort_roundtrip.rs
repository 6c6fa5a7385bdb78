//! The round-trip guarantee checked by ONNX Runtime: import -> export with no passes gives a
//! model that `onnx.checker.check_model(full_check=True)` accepts and whose ORT outputs are
//! bitwise equal to the original's on the same random inputs (`tools/check_roundtrip.py`).
//!
//! Runs on every real model present and on the committed `testdata/onnx/` models that have
//! ORT reference outputs, plus one model saved with external data. Needs a Python with onnx,
//! onnxruntime and numpy: `$QOPT_PYTHON`, else `.venv/bin/python` at the workspace root;
//! without one the test prints a SKIP line and passes.

use qopt_onnx::testing::{real_models, workspace_root};
use qopt_onnx::{ExportOptions, save_with};
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> Option<PathBuf> {
    qopt_onnx::testing::python_with_ort("ONNX Runtime round-trip check")
}

/// Export `orig` to `out` and run the checker script; panics with its output on failure.
fn check(py: &Path, orig: &Path, out: &Path, shapes: &[(String, Vec<usize>)], opts: ExportOptions) {
    let m = qopt_onnx::load(orig).unwrap_or_else(|e| panic!("{e}"));
    save_with(&m.graph, out, opts).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(py);
    cmd.arg(workspace_root().join("tools/check_roundtrip.py"))
        .arg(orig)
        .arg(out);
    for (name, dims) in shapes {
        let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
        cmd.arg("--shape").arg(format!("{name}={}", d.join(",")));
    }
    let o = cmd.output().expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("== {}\n{}", orig.display(), text.trim_end());
    assert!(
        o.status.success() && text.contains("\nOK"),
        "{}: ONNX Runtime round-trip check failed:\n{text}",
        orig.display()
    );
}

#[test]
fn real_models_give_bit_identical_onnx_runtime_outputs() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let models = real_models();
    for m in &models {
        let out = dir
            .path()
            .join(format!("{}.onnx", m.name.replace('/', "_")));
        check(
            &py,
            &m.path,
            &out,
            &m.input_shapes,
            ExportOptions::default(),
        );
    }
    eprintln!(
        "ONNX Runtime round-trip: {} real models bit-identical",
        models.len()
    );
}

#[test]
fn testdata_models_give_bit_identical_onnx_runtime_outputs() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let td = workspace_root().join("testdata/onnx");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&td)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .map(|p| PathBuf::from(p.to_string_lossy().replace(".expected.json", ".onnx")))
        .collect();
    models.sort();
    assert!(models.len() >= 14);
    for orig in &models {
        let out = dir.path().join(orig.file_name().unwrap());
        // metadata.onnx has dynamic non-batch dims.
        let shapes = [("x".to_string(), vec![2, 3, 2, 2])];
        let shapes = if orig.ends_with("metadata.onnx") {
            &shapes[..]
        } else {
            &[]
        };
        check(&py, orig, &out, shapes, ExportOptions::default());
    }
}

#[test]
fn external_data_export_runs_in_onnx_runtime() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // Every tensor of 1 KiB or more goes to model.onnx.data.
    let opts = ExportOptions {
        external_data_threshold: 0,
    };
    let (orig, shapes) = match real_models().into_iter().find(|m| m.name.contains("mnist")) {
        Some(m) => (m.path, m.input_shapes),
        None => (workspace_root().join("testdata/onnx/tensors.onnx"), vec![]),
    };
    let out = dir.path().join("model.onnx");
    check(&py, &orig, &out, &shapes, opts);
    assert!(dir.path().join("model.onnx.data").is_file());
}
