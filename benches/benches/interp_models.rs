//! Whole models on the fp32 interpreter, one thread:
//! `cargo bench -p qopt-benches --bench interp_models`. EfficientNet-Lite0 (224x224) from the
//! shared models folder and PP-OCRv4 det (640x640) from testdata/external/ppocr or
//! /tmp/models; each is skipped with a message when its file is absent. `tools/bench_vs_ort.py`
//! compares the same runs with ONNX Runtime.

use criterion::{Criterion, criterion_group, criterion_main};
use qopt_interp::{Plan, PlanOptions};
use qopt_ir::Tensor;
use std::path::PathBuf;

fn find(names: &[&str]) -> Option<PathBuf> {
    let mut dirs = vec![
        qopt_onnx::testing::ppocr_dir(),
        PathBuf::from("/tmp/models/rapidocr_onnxruntime/models"),
    ];
    dirs.extend(qopt_onnx::testing::shared_models_dir());
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.exists())
}

fn model(c: &mut Criterion, label: &str, names: &[&str], input: &str, shape: &[usize]) {
    let Some(path) = find(names) else {
        eprintln!("SKIP: {label}: none of {names:?} found");
        return;
    };
    let g = qopt_onnx::load(&path).expect("import").graph;
    let mut plan = Plan::new(
        &g,
        &PlanOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .expect("plan");
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec(
        shape,
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect(),
    );
    let mut grp = c.benchmark_group("model");
    grp.sample_size(10);
    grp.bench_function(label, |b| {
        b.iter(|| {
            let out = plan.run(&[(input, &x)]).expect("run");
            plan.recycle(out);
        })
    });
    grp.finish();
}

fn models(c: &mut Criterion) {
    model(
        c,
        "efficientnet_lite0_224",
        &["efficientnet_lite0_keepbn.onnx"],
        "input",
        &[1, 3, 224, 224],
    );
    model(
        c,
        "ppocr_det_640",
        &["det.onnx", "ch_PP-OCRv4_det_infer.onnx"],
        "x",
        &[1, 3, 640, 640],
    );
}

criterion_group!(benches, models);
criterion_main!(benches);
