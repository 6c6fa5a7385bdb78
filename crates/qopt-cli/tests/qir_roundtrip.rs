//! `.onnx -> .qir -> .onnx` through the CLI loses nothing (issue 2): on every real model,
//! `qopt m.onnx -o m.qir` then `qopt m.qir -o back.onnx` gives a graph identical to the
//! imported one (tensors bit for bit) and, checked by ONNX Runtime through
//! `tools/check_roundtrip.py`, bit-identical outputs to the original model.

use qopt_onnx::testing::{graph_diff, python_with_ort, real_models, workspace_root};
use std::process::Command;

fn qopt(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_qopt"))
        .args(args)
        .output()
        .expect("run qopt");
    assert!(
        o.status.success(),
        "qopt {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn real_models_survive_qir_round_trip() {
    let models = real_models();
    let py = python_with_ort("ONNX Runtime check of the .qir round trip");
    let dir = tempfile::tempdir().unwrap();
    for m in &models {
        let stem = m.name.replace('/', "_");
        let qir = dir.path().join(format!("{stem}.qir"));
        let back = dir.path().join(format!("{stem}.onnx"));
        qopt(&[m.path.to_str().unwrap(), "-o", qir.to_str().unwrap()]);
        qopt(&[qir.to_str().unwrap(), "-o", back.to_str().unwrap()]);
        let a = qopt_onnx::load(&m.path).unwrap().graph;
        let b = qopt_onnx::load(&back).unwrap().graph;
        assert_eq!(
            graph_diff(&a, &b),
            None,
            "{}: graph changed through .qir",
            m.name
        );
        if let Some(py) = &py {
            let mut cmd = Command::new(py);
            cmd.arg(workspace_root().join("tools/check_roundtrip.py"))
                .arg(&m.path)
                .arg(&back);
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
            assert!(
                o.status.success() && text.contains("\nOK"),
                "{}: {text}",
                m.name
            );
            eprintln!(
                "{}: .onnx -> .qir -> .onnx: identical graph, ONNX Runtime outputs bit-identical",
                m.name
            );
        } else {
            eprintln!("{}: .onnx -> .qir -> .onnx: identical graph", m.name);
        }
    }
    eprintln!("qir round trip checked on {} real models", models.len());
}
