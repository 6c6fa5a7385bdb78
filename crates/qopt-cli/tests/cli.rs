//! End-to-end tests of the `qopt` binary: the commands a user types, the exit codes, the
//! messages for bad input, and the safety of outputs (atomic, never over the input).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn qopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qopt"))
        .args(args)
        .output()
        .expect("run qopt")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A bad-input run: the given exit code, one clear `error:` line, no panic.
fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A small committed model from the ONNX test data that qopt reads.
fn small_model() -> PathBuf {
    let dir = root().join("testdata/onnx");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/onnx")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    models.sort();
    models
        .into_iter()
        .find(|p| qopt(&[p.to_str().unwrap()]).status.success())
        .expect("a committed model qopt can read")
}

const GRAPH: &str = "graph g(%x: f32[2,3]) -> (%y) {\n  %y = Relu(%x) : f32[2,3]\n}\n";

#[test]
fn list_passes_shows_names_and_summaries() {
    let o = qopt(&["--list-passes"]);
    assert!(o.status.success());
    let out = stdout(&o);
    for p in ["dce", "shape-infer"] {
        assert!(out.contains(p), "{out}");
    }
    assert!(
        out.contains("remove nodes that no graph output depends on"),
        "{out}"
    );
}

#[test]
fn unknown_pass_is_named_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, GRAPH).unwrap();
    let o = qopt(&["--passes=dce,nosuch", m.to_str().unwrap()]);
    assert_fails(
        &o,
        2,
        &[
            "unknown pass 'nosuch'",
            "column 5",
            "dce,nosuch",
            "      ^^^^^^",
        ],
    );
    let o = qopt(&["--passes=dce{x=1}", m.to_str().unwrap()]);
    assert_fails(&o, 2, &["pass 'dce' has no option 'x'"]);
}

#[test]
fn bad_model_files_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(PathBuf, Vec<u8>)> = vec![
        (d.join("empty.onnx"), vec![]),
        (
            d.join("garbage.onnx"),
            b"this is not a protobuf \xff\xfe\x00\x01".to_vec(),
        ),
        (
            d.join("syntax.qir"),
            b"graph g(%x: f32[2]) -> (%y) {\n  %y = Relu(%z)\n}\n".to_vec(),
        ),
    ];
    for (path, bytes) in &cases {
        std::fs::write(path, bytes).unwrap();
        let o = qopt(&[path.to_str().unwrap()]);
        assert_fails(&o, 3, &[path.file_name().unwrap().to_str().unwrap()]);
    }
    // The .qir error points at line and column.
    let o = qopt(&[cases[2].0.to_str().unwrap()]);
    assert_fails(&o, 3, &["syntax.qir:2:", "%z"]);
    // A truncated real model.
    let full = std::fs::read(small_model()).unwrap();
    let cut = d.join("cut.onnx");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    assert_fails(&qopt(&[cut.to_str().unwrap()]), 3, &["cut.onnx"]);
    // Missing file; unknown extension.
    assert_fails(
        &qopt(&[d.join("nope.onnx").to_str().unwrap()]),
        3,
        &["nope.onnx"],
    );
    assert_fails(
        &qopt(&["model.tflite"]),
        2,
        &["model.tflite", ".onnx or .qir"],
    );
}

#[test]
fn outputs_are_safe() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, GRAPH).unwrap();
    let ms = m.to_str().unwrap();
    // Never over the input, even spelled differently.
    let other = format!("{}/./m.qir", dir.path().display());
    assert_fails(
        &qopt(&[ms, "-o", &other]),
        2,
        &["refusing to overwrite the input"],
    );
    assert_eq!(std::fs::read_to_string(&m).unwrap(), GRAPH);
    // A folder that does not exist: nothing is written.
    let missing = dir.path().join("no/such/dir/out.onnx");
    assert_fails(
        &qopt(&[ms, "-o", missing.to_str().unwrap()]),
        5,
        &["does not exist"],
    );
    assert!(!dir.path().join("no").exists());
    // A failing pipeline writes nothing either.
    let out = dir.path().join("out.onnx");
    let bad = dir.path().join("bad.qir");
    std::fs::write(
        &bad,
        "graph g(%x: f32[1,3,8,8]) -> (%y) {\n  %w = const f32[4,2,3,3] random(seed=3)\n  %y = Conv(%x, %w)\n}\n",
    )
    .unwrap();
    let o = qopt(&[
        "--passes=shape-infer",
        bad.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_fails(&o, 4, &["pass 'shape-infer' failed", "3 channels"]);
    assert!(!out.exists());
    // A good run leaves exactly the output (no temporary files).
    let o = qopt(&["--passes=dce", ms, "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bad.qir", "m.qir", "out.onnx"]);
}

#[test]
fn instrumentation_dumps_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, GRAPH).unwrap();
    let o = qopt(&[
        "--passes=shape-infer,dce",
        "--print-after=dce",
        "--print-before=shape-infer",
        "--time-passes",
        m.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("# *** IR Dump Before shape-infer ***"),
        "{err}"
    );
    assert!(err.contains("# *** IR Dump After dce ***"), "{err}");
    assert!(err.contains("Pass execution timing report"), "{err}");
    assert_eq!(stdout(&o), GRAPH);
    let o = qopt(&["--passes=dce", "--print-after=nosuch", m.to_str().unwrap()]);
    assert_fails(&o, 2, &["unknown pass 'nosuch'"]);
}

#[test]
fn inspect_summarises_a_model() {
    let o = qopt(&["inspect", small_model().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for k in ["inputs:", "outputs:", "opset:", "parameters:", "ops:"] {
        assert!(out.contains(k), "{out}");
    }
}

#[test]
fn input_shape_pins_dims() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, "graph g(%x: f32[N,3]) -> (%y) {\n  %y = Relu(%x)\n}\n").unwrap();
    let o = qopt(&[
        "--passes=shape-infer",
        "--input-shape",
        "x=4,3",
        m.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("%y = Relu(%x) : f32[4,3]"),
        "{}",
        stdout(&o)
    );
    let o = qopt(&["--input-shape", "x=4,3,2", m.to_str().unwrap()]);
    assert_fails(&o, 2, &["--input-shape", "x"]);
    let o = qopt(&["--input-shape", "nosuch=1", m.to_str().unwrap()]);
    assert_fails(&o, 2, &["nosuch"]);
}

/// `qopt run` on an ONNX backend node test: the written output equals ONNX's expected one
/// (the reference data shipped with onnx 1.22.0).
#[test]
fn run_writes_outputs_matching_the_onnx_reference() {
    use ndarray::ArrayD;
    use ndarray_npy::read_npy;
    let case = root().join("testdata/onnx-node/test_conv_with_strides_padding");
    let data = case.join("test_data_set_0");
    let dir = tempfile::tempdir().unwrap();
    let o = qopt(&[
        "run",
        case.join("model.onnx").to_str().unwrap(),
        "--input",
        &format!("x={}", data.join("input_0.npy").display()),
        "--input",
        &format!("W={}", data.join("input_1.npy").display()),
        "--output-dir",
        dir.path().to_str().unwrap(),
        "--repeat",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("y: f32[1,1,4,3]"), "{out}");
    assert!(out.contains("latency over 3 runs"), "{out}");
    let got: ArrayD<f32> = read_npy(dir.path().join("y.npy")).unwrap();
    let want: ArrayD<f32> = read_npy(data.join("output_0.npy")).unwrap();
    assert_eq!(got.shape(), want.shape());
    for (a, b) in got.iter().zip(want.iter()) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    // A wrongly shaped input names the input, what was expected and what came.
    let o = qopt(&[
        "run",
        case.join("model.onnx").to_str().unwrap(),
        "--input",
        &format!("x={}", data.join("input_1.npy").display()),
        "--input",
        &format!("W={}", data.join("input_1.npy").display()),
    ]);
    assert_fails(
        &o,
        3,
        &["input 'x': expected f32[1,1,7,5], got f32[1,1,3,3]"],
    );
    let o = qopt(&["run", case.join("model.onnx").to_str().unwrap()]);
    assert_fails(&o, 2, &["no data for input 'x'"]);
}
