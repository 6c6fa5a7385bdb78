//! `qopt verify REF QUANT --data SOURCE`: the report's fields and the errors.
//!
//! References: a model compared with itself has identical outputs (SQNR infinite, cosine 1,
//! error 0: arithmetic identity); the metrics' formulas are checked against hand-computed
//! values in `qopt::verify::metrics`; here the JSON must hold sane values for a real
//! quantized model (cosine in [-1, 1], finite SQNR, top-1 agreement in [0, 1]).

use serde_json::Value;
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

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

const MODEL: &str = "graph g(%x: f32[1,3,8,8]) -> (%y) {
  %w = const f32[4,3,3,3] random(seed=1)
  %w2 = const f32[6,4,1,1] random(seed=2)
  %fw = const f32[5,6] random(seed=3)
  %fb = const f32[5] random(seed=4)
  %c = Conv(%x, %w) {pads=[1,1,1,1]} : f32[1,4,8,8]
  %r = Relu(%c) : f32[1,4,8,8]
  %c2 = Conv(%r, %w2) : f32[1,6,8,8]
  %p = GlobalAveragePool(%c2) : f32[1,6,1,1]
  %f = Flatten(%p) : f32[1,6]
  %y = Gemm(%f, %fw, %fb) {transB=1} : f32[1,5]
}
";

fn quantize(model: &Path, calib: &str, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "quantize",
        model.to_str().unwrap(),
        "--calib",
        calib,
        "-q",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&qopt(&args));
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every layer and output entry has cosine in [-1, 1], a non-negative max error, and a
/// finite SQNR.
fn check_sane(report: &Value) {
    for key in ["layers", "outputs"] {
        for e in report[key].as_array().unwrap() {
            let c = num(&e["cosine"]);
            assert!((-1.0..=1.0).contains(&c), "{e}");
            assert!(num(&e["max_abs_error"]) >= 0.0, "{e}");
            assert!(num(&e["sqnr_db"]).is_finite(), "{e}");
            assert!(e["elements"].as_u64().unwrap() > 0, "{e}");
        }
    }
}

#[test]
fn verify_small_model_reports_layers_outputs_and_sensitivity() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, MODEL).unwrap();
    let q = dir.path().join("q.onnx");
    quantize(&m, "random:8{seed=5}", &q, &[]);
    let json = dir.path().join("r.json");
    let svg = dir.path().join("r.svg");
    for engine in [None, Some("--reference")] {
        let mut args = vec![
            "verify",
            m.to_str().unwrap(),
            q.to_str().unwrap(),
            "--data",
            "random:4{seed=9}",
            "--json",
            json.to_str().unwrap(),
            "--sensitivity",
            "--plot",
            svg.to_str().unwrap(),
        ];
        args.extend(engine);
        let o = qopt(&args);
        ok(&o);
        let out = stdout(&o);
        assert!(out.contains("SQNR dB"), "{out}");
        let r = read_json(&json);
        assert_eq!(r["samples"], 4);
        let want = if engine.is_some() {
            "reference"
        } else {
            "int8"
        };
        assert!(r["engine"].as_str().unwrap().starts_with(want), "{r}");
        check_sane(&r);
        // The input, the Relu, the second conv, the pool and the Gemm input are quantized
        // activations with fp32 counterparts of the same name.
        let names: Vec<&str> = r["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap())
            .collect();
        for n in ["x", "r", "c2"] {
            assert!(names.contains(&n), "{names:?}");
        }
        let y = &r["outputs"][0];
        assert_eq!(y["name"], "y");
        let t = num(&y["top1_agreement"]);
        assert!((0.0..=1.0).contains(&t), "{y}");
        let s = &r["sensitivity"];
        assert_eq!(
            s["layers"].as_array().unwrap().len(),
            r["layers"].as_array().unwrap().len()
        );
        let ranked: Vec<f64> = s["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| num(&e["only_this_quantized_sqnr_db"]))
            .collect();
        assert!(ranked.windows(2).all(|w| w[0] <= w[1]), "{ranked:?}");
        // Regression: bypassing a layer keeps its Q's clamp. `qdq` drops the Relu into the
        // quantization of `r` (zero point at the bottom of the range); a bypass that removed
        // the clamp too ran the model without its Relu, far worse than fully quantized.
        let all = num(&s["all_quantized_sqnr_db"]);
        let none = num(&s["no_activation_quantized_sqnr_db"]);
        assert!(all.is_finite());
        assert!(
            none >= all - 3.0,
            "no activation quantized {none} dB, all {all} dB"
        );
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
        assert!(text.contains(">c2</text>"), "{text}");
    }
}

/// The fp32 model against itself: no quantized layer, outputs identical.
#[test]
fn verify_model_against_itself_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, MODEL).unwrap();
    let json = dir.path().join("r.json");
    let o = qopt(&[
        "verify",
        m.to_str().unwrap(),
        m.to_str().unwrap(),
        "--data",
        "random:2",
        "--json",
        json.to_str().unwrap(),
    ]);
    ok(&o);
    let r = read_json(&json);
    assert_eq!(r["engine"], "fp32");
    assert_eq!(r["layers"].as_array().unwrap().len(), 0);
    let y = &r["outputs"][0];
    assert_eq!(y["sqnr_db"], "inf");
    assert_eq!(num(&y["cosine"]), 1.0);
    assert_eq!(num(&y["max_abs_error"]), 0.0);
    assert_eq!(num(&y["top1_agreement"]), 1.0);
}

#[test]
fn mismatched_models_and_bad_data_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.qir");
    std::fs::write(&m, MODEL).unwrap();
    let other = dir.path().join("other.qir");
    std::fs::write(
        &other,
        "graph o(%x: f32[1,2,8,8]) -> (%y) {\n  %y = Relu(%x) : f32[1,2,8,8]\n}\n",
    )
    .unwrap();
    let fails = |args: &[&str], code: i32, needles: &[&str]| {
        let o = qopt(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in: {err}");
        }
    };
    let (m, other) = (m.to_str().unwrap(), other.to_str().unwrap());
    fails(
        &["verify", m, other, "--data", "random:2"],
        3,
        &[
            "models do not match",
            "input 'x'",
            "f32[1,3,8,8]",
            "f32[1,2,8,8]",
        ],
    );
    fails(
        &["verify", m, m, "--data", "/nonexistent/data"],
        3,
        &["/nonexistent/data", "no such file or folder"],
    );
    fails(
        &["verify", m, m, "--data", "random:2", "--json", m],
        2,
        &["refusing to overwrite"],
    );
}

/// The MNIST CNN and its data: the copy the repository ships (testdata/models, testdata/data),
/// else the shared models folder.
fn mnist() -> Option<(PathBuf, PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shipped = (
        root.join("testdata/models/mnist_cnn_bn.onnx"),
        root.join("testdata/data/mnist/calib_x.npy"),
        root.join("testdata/data/mnist/test_x.npy"),
    );
    if shipped.0.is_file() && shipped.1.is_file() && shipped.2.is_file() {
        return Some(shipped);
    }
    let d = qopt::onnx::testing::shared_models_dir()?;
    let shared = (
        d.join("mnist_cnn_bn.onnx"),
        d.join("mnist/calib_x.npy"),
        d.join("mnist/test_x.npy"),
    );
    (shared.0.is_file() && shared.1.is_file() && shared.2.is_file()).then_some(shared)
}

/// MNIST CNN quantized by qopt: every Conv/ReLU/pool activation is matched, the quantized
/// model agrees with fp32 on at least 95% of the test digits' top-1, and the output SQNR is
/// finite and positive.
#[test]
fn verify_mnist_quantized_by_qopt() {
    let Some((fp, calib, test)) = mnist() else {
        eprintln!("SKIP: mnist_cnn_bn.onnx not found (testdata/models or ../shared/models)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("mnist_q.onnx");
    quantize(&fp, calib.to_str().unwrap(), &q, &["--calib-limit", "32"]);
    let json = dir.path().join("r.json");
    let o = qopt(&[
        "verify",
        fp.to_str().unwrap(),
        q.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
        "--limit",
        "64",
        "--json",
        json.to_str().unwrap(),
    ]);
    ok(&o);
    eprintln!("{}", stdout(&o));
    let r = read_json(&json);
    check_sane(&r);
    assert!(r["layers"].as_array().unwrap().len() >= 5, "{r}");
    let out = &r["outputs"][0];
    assert!(num(&out["sqnr_db"]) > 0.0, "{out}");
    assert!(num(&out["top1_agreement"]) >= 0.95, "{out}");
    // fp32 against fp32: infinite SQNR.
    let o = qopt(&[
        "verify",
        fp.to_str().unwrap(),
        fp.to_str().unwrap(),
        "--data",
        test.to_str().unwrap(),
        "--limit",
        "8",
        "--json",
        json.to_str().unwrap(),
    ]);
    ok(&o);
    assert_eq!(read_json(&json)["outputs"][0]["sqnr_db"], "inf");
}
