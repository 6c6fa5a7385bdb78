//! Whole models, INT8 plan against the fp32 plan, one thread:
//! `cargo bench -p qopt-benches --bench int8_models`. Each model is quantized in process by
//! qopt's own pipeline (`fuse,calib,qdq`, ONNX Runtime target, 4 random calibration samples:
//! the speed does not depend on the ranges) and both plans run the same input, interleaved in
//! one process so the ratio holds on a shared machine. EfficientNet-Lite0 comes from the shared
//! models folder, PP-OCRv4 cls from testdata/external/ppocr or /tmp/models; each is skipped
//! with a message when its file is absent.

use criterion::{Criterion, criterion_group, criterion_main};
use qopt_interp::{Plan, PlanOptions, QPlan, QPlanOptions};
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

fn quantize(g: &qopt::Graph) -> qopt::Graph {
    let mut q = g.clone();
    let mut cx = qopt::PassContext::new();
    cx.threads = Some(1);
    qopt::passes::calib_inputs::apply_option(&mut cx, "calib", "random:4{seed=1}")
        .expect("calib option");
    qopt::Pipeline::parse("fuse,calib,qdq")
        .expect("pipeline")
        .run(&mut q, &mut cx)
        .expect("quantize");
    q
}

fn model(c: &mut Criterion, label: &str, names: &[&str], input: &str, shape: &[usize]) {
    let Some(path) = find(names) else {
        eprintln!("SKIP: {label}: none of {names:?} found");
        return;
    };
    let mut g = qopt_onnx::load(&path).expect("import").graph;
    // Pin the input shape so calibration and both plans see the benchmarked size.
    if let Some(v) = g.find_value(input) {
        g.value_mut(v).ty.shape = Some(qopt_ir::Shape::known(shape));
    }
    let q = quantize(&g);
    let mut fp32 = Plan::new(
        &g,
        &PlanOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .expect("fp32 plan");
    let mut int8 = QPlan::new(
        &q,
        &QPlanOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .expect("int8 plan");
    let n: usize = shape.iter().product();
    let x = Tensor::from_vec(
        shape,
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect(),
    );
    let mut grp = c.benchmark_group(label);
    grp.sample_size(10);
    grp.bench_function("fp32", |b| {
        b.iter(|| {
            let out = fp32.run(&[(input, &x)]).expect("run");
            fp32.recycle(out);
        })
    });
    grp.bench_function(format!("int8_{}", int8.kernel_kind()), |b| {
        b.iter(|| int8.run(&[(input, &x)]).expect("run"))
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
        "ppocr_cls_48x192",
        &["cls.onnx", "ch_ppocr_mobile_v2.0_cls_infer.onnx"],
        "x",
        &[1, 3, 48, 192],
    );
}

criterion_group!(benches, models);
criterion_main!(benches);
