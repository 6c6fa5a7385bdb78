//! `dynamic` against ONNX Runtime's `quantize_dynamic` (`tools/check_dynamic_ort.py`, the
//! independent reference) on a small transformer encoder
//! (`testdata/models/transformer_tiny.onnx`, made by `tools/gen_transformer.py`): qopt's
//! model passes `onnx.checker.check_model(full_check=True)`, runs in ONNX Runtime, and its
//! outputs are within the error of ORT's own dynamic quantization of the same model: the
//! defaults (per-tensor weights) give ORT's outputs exactly when ORT also keeps
//! activation x activation MatMuls float (qopt's choice); per-channel 7-bit weights do no
//! worse than ORT's defaults.

use std::process::Command;

fn check(options: &str, const_b_only: bool) -> serde_json::Value {
    let Some(py) = qopt::onnx::testing::python_with_ort("dynamic vs ONNX Runtime quantize_dynamic")
    else {
        return serde_json::Value::Null;
    };
    let root = qopt::onnx::testing::workspace_root();
    let model = root.join("testdata/models/transformer_tiny.onnx");
    let mut m = qopt::load(&model).expect("load");
    let pipeline = qopt::Pipeline::parse(&format!("dynamic{options}")).expect("pipeline");
    pipeline
        .run(&mut m.graph, &mut qopt::PassContext::new())
        .expect("dynamic");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("dynamic.onnx");
    qopt::save(&m.graph, &out).expect("save");
    let mut cmd = Command::new(py);
    cmd.arg(root.join("tools/check_dynamic_ort.py"))
        .arg(&model)
        .arg(&out);
    if const_b_only {
        cmd.arg("--const-b-only");
    }
    let o = cmd.output().expect("run python");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "check_dynamic_ort.py failed:\n{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{text}");
    serde_json::from_str(&text).expect("json report")
}

fn rel(r: &serde_json::Value, who: &str) -> f64 {
    r[who]["rel_l2"].as_f64().expect("rel_l2")
}

#[test]
fn defaults_give_ort_outputs() {
    let r = check("", true);
    if r.is_null() {
        return;
    }
    // 12 weight MatMuls and the Gemm classifier; 9 activations quantized at run time.
    assert_eq!(r["qopt"]["MatMulInteger"], 13);
    assert_eq!(r["qopt"]["DynamicQuantizeLinear"], 9);
    assert_eq!(r["ort"]["MatMulInteger"], 13);
    assert_eq!(r["qopt"]["max_abs"], r["ort"]["max_abs"]);
    assert_eq!(rel(&r, "qopt"), rel(&r, "ort"));
}

#[test]
fn per_channel_7bit_no_worse_than_ort_defaults() {
    let r = check("{per-channel=true reduce-range=true}", false);
    if r.is_null() {
        return;
    }
    assert!(
        rel(&r, "qopt") <= rel(&r, "ort"),
        "qopt error {} vs ORT {}",
        rel(&r, "qopt"),
        rel(&r, "ort")
    );
}
