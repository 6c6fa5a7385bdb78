//! `qdq` against ONNX Runtime's own quantizer, the independent reference
//! (`tools/check_qdq_ort.py`): a small CNN (conv + bias, Relu, depthwise conv, Relu6,
//! residual Add, MaxPool, Concat, GlobalAveragePool, Flatten, Gemm) is quantized by
//! `onnxruntime.quantization.quantize_static` (QDQ, per-channel, int8) with every
//! activation's range forced to the same min/max that qopt reads from `@range`. The two
//! models must agree on every activation's scale and zero point, on every int8 weight and
//! int32 bias, and on their outputs in ONNX Runtime; qopt's must pass
//! `onnx.checker.check_model(full_check=True)`.
//!
//! The model ONNX Runtime wrote is then read back as a QAT-style input: its parameters
//! arrive as `@q` equal to its initializers, and `qdq` adds nothing to it.
//!
//! Every graph of the `qdq` and `dynamic` snapshot cases, exported to ONNX, passes
//! `onnx.checker.check_model(full_check=True)` and runs in ONNX Runtime; the opset upgrade
//! (11 -> 13, Softmax rewritten) leaves what a model computes unchanged.

use qopt::ir::{Op, Range};
use qopt::passes::qdq::{QdqOptions, quantize};
use qopt::passes::target::Target;
use std::path::Path;
use std::process::Command;

fn python(py: &Path, args: &[&str]) -> String {
    let script = qopt::onnx::testing::workspace_root().join("tools/check_qdq_ort.py");
    let out = Command::new(py)
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "check_qdq_ort.py {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn qdq_matches_onnxruntime_quantize_static() {
    let Some(py) = qopt::onnx::testing::python_with_ort("qdq vs ONNX Runtime quantize_static")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8 path");
    python(&py, &["gen", d]);

    let mut model = qopt::load(&dir.path().join("model.onnx")).expect("load");
    let ranges: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ranges.json")).expect("ranges.json"),
    )
    .expect("json");
    let names = model.graph.value_names();
    for (name, r) in ranges.as_object().expect("object") {
        let v = names[name.as_str()];
        let (lo, hi) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
        model.graph.value_mut(v).ann.range = Some(Range::new(lo as f32, hi as f32));
    }
    let report =
        quantize(&mut model.graph, Target::OnnxRuntime, QdqOptions::default()).expect("qdq");
    assert_eq!((report.weights, report.biases), (5, 4));
    qopt::ir::verify(&model.graph).expect("valid graph");
    let out = dir.path().join("qopt.onnx");
    qopt::save(&model.graph, &out).expect("save");
    let text = python(&py, &["compare", d, out.to_str().unwrap()]);
    eprintln!("{text}");

    // ONNX Runtime's model as a QAT input.
    let mut ort = qopt::load(&dir.path().join("ort.onnx")).expect("load ort.onnx");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ort_qparams.json")).expect("json"),
    )
    .expect("json");
    let g = &ort.graph;
    let mut checked = 0;
    for n in g.node_ids() {
        if !matches!(g.node(n).op, Op::QuantizeLinear(_)) {
            continue;
        }
        let x = g.input(n, 0).expect("input");
        if g.const_value(x).is_some() {
            continue;
        }
        let name = g.value_name(x).trim_end_matches("_QuantizeLinear_Input");
        let q = g.value(qopt::ir::ValueId::new(n, 0)).ann.qparams.clone();
        let q = q.unwrap_or_else(|| panic!("no @q on the quantized '{name}'"));
        let e = &expected[name];
        assert_eq!(q.scale, vec![e[0][0].as_f64().unwrap() as f32], "{name}");
        assert_eq!(
            q.zero_point,
            vec![e[1][0].as_i64().unwrap() as i32],
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, expected.as_object().unwrap().len());
    let before = ort.graph.node_count();
    let report = quantize(&mut ort.graph, Target::OnnxRuntime, QdqOptions::default())
        .expect("qdq on a quantized model");
    assert_eq!(
        (report.activations, report.weights, report.biases),
        (0, 0, 0)
    );
    assert_eq!(ort.graph.node_count(), before);
}

/// The graphs of a snapshot case file after its pipeline (cases that end in an error are
/// skipped: they produce no model).
fn snapshot_models(file: &Path, out: &Path) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(file).expect("case file");
    let run = text.lines().next().expect("RUN line");
    let passes = run
        .split("--passes=")
        .nth(1)
        .expect("--passes")
        .split(" --target=")
        .next()
        .expect("pipeline")
        .trim()
        .to_string();
    let target = run
        .split("--target=")
        .nth(1)
        .map_or("onnxruntime", |t| t.split_whitespace().next().unwrap_or(""));
    let pipeline = qopt::Pipeline::parse(&passes).expect("pipeline");
    let mut models = vec![];
    for (i, case) in text.split("# -----").enumerate() {
        let mut g = qopt::ir::text::parse(case).expect("case parses");
        let mut cx = qopt::PassContext::new();
        cx.insert(Target::from_name(target).expect("target"));
        if pipeline.run(&mut g, &mut cx).is_err() {
            continue;
        }
        let stem = file.file_stem().unwrap().to_string_lossy();
        let path = out.join(format!("{stem}_{i}.onnx"));
        qopt::save(&g, &path).expect("save");
        models.push(path);
    }
    models
}

#[test]
fn snapshot_models_pass_the_checker_and_run() {
    let Some(py) = qopt::onnx::testing::python_with_ort("qdq snapshot models in ONNX Runtime")
    else {
        return;
    };
    let root = qopt::onnx::testing::workspace_root().join("testdata/passes");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut models = vec![];
    for pass in ["qdq", "dynamic"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(pass))
            .expect("case folder")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "qir"))
            .collect();
        files.sort();
        for f in files {
            models.extend(snapshot_models(&f, dir.path()));
        }
    }
    assert!(models.len() >= 20, "{} models", models.len());
    let mut args = vec!["check".to_string()];
    args.extend(models.iter().map(|p| p.to_string_lossy().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = python(&py, &args);
    assert_eq!(
        text.lines().filter(|l| l.ends_with("outputs")).count(),
        models.len()
    );
}

#[test]
fn opset_upgrade_keeps_softmax_meaning() {
    let Some(py) = qopt::onnx::testing::python_with_ort("opset upgrade in ONNX Runtime") else {
        return;
    };
    // Opset 11: Softmax over axis 1 of a rank-3 tensor normalises axes 1 and 2 together;
    // over the last axis it is the same in every opset.
    let src = r#"graph g(%t: f32[2,3,4]) -> (%a, %b, %c) {
  opset {"": 11}
  meta {ir_version=6}
  %a = Softmax(%t) {axis=1} : f32[2,3,4]
  %b = LogSoftmax(%t) {axis=2} : f32[2,3,4]
  %c = Hardmax(%t) {axis=0} : f32[2,3,4]
}"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let g = qopt::ir::text::parse(src).expect("parse");
    let before = dir.path().join("opset11.onnx");
    qopt::save(&g, &before).expect("save");
    let mut up = g.clone();
    qopt::passes::qdq::opset::upgrade(&mut up, 13).expect("upgrade");
    assert_eq!(up.meta.onnx_opset(), Some(13));
    let after = dir.path().join("opset13.onnx");
    qopt::save(&up, &after).expect("save");
    python(
        &py,
        &["same", before.to_str().unwrap(), after.to_str().unwrap()],
    );
    python(&py, &["check", after.to_str().unwrap()]);
}
