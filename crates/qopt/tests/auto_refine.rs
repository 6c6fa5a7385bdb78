//! `calib{method=auto refine=0}` picks the whole-network assignment with the least output
//! error on its scoring samples, so on those samples it is at least as good as every method
//! used alone. Checked here independently of the pass's own simulation: each quantized model
//! (`fuse,calib{method=M},qdq`, a real QDQ graph) runs in qopt's interpreter with
//! QuantizeLinear/DequantizeLinear executed as ONNX defines them, against the fp32 model, on
//! the same samples (the last 16 of the shipped MNIST calibration set). The pass simulates
//! without quantizing biases to int32, so a small tolerance is allowed.

mod common;

use common::outputs;
use qopt::calib::source::{CalibData, SourceOptions, SourceSpec};
use qopt::passes::calib_inputs::apply_option;
use qopt::{PassContext, Pipeline};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rel_sq_err(q: &[Vec<f32>], r: &[Vec<f32>]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in q.iter().zip(r) {
        for (&u, &v) in a.iter().zip(b) {
            num += (u as f64 - v as f64).powi(2);
            den += (v as f64).powi(2);
        }
    }
    num / den
}

#[test]
fn refine_start_is_no_worse_than_any_single_method() {
    let model = repo().join("testdata/models/mnist_cnn_bn.onnx");
    let calib = repo().join("testdata/data/mnist/calib_x.npy");
    let fp32 = qopt::load(&model).expect("load").graph;
    let specs = qopt::passes::collect::input_specs(&fp32).expect("input specs");
    let spec = SourceSpec::parse(calib.to_str().unwrap()).expect("source");
    let opts = SourceOptions {
        limit: None,
        preprocess: None,
        strict: false,
    };
    let data = CalibData::open(&spec, &specs, &opts).expect("open data");
    let n = data.len();
    assert!(n >= 16, "calibration set has {n} samples");
    let xs: Vec<_> = (n - 16..n)
        .map(|i| data.load(i).expect("sample").inputs)
        .collect();
    let reference = outputs(&fp32, &xs);
    let err = |calib_opts: &str| {
        let mut g = qopt::load(&model).expect("load").graph;
        let mut cx = PassContext::new();
        apply_option(&mut cx, "calib", calib.to_str().unwrap()).expect("calib option");
        Pipeline::parse(&format!("fuse,calib{{{calib_opts}}},qdq"))
            .expect("pipeline")
            .run(&mut g, &mut cx)
            .expect("pipeline runs");
        rel_sq_err(&outputs(&g, &xs), &reference)
    };
    let refined = err("method=auto refine=0 refine-samples=16");
    let mut best = f64::INFINITY;
    for m in ["minmax", "percentile", "kl", "kl-signed", "mse", "admm"] {
        let e = err(&format!("method={m}"));
        eprintln!("{m:10} SQNR {:.2} dB", -10.0 * e.log10());
        best = best.min(e);
    }
    eprintln!("auto refine=0 SQNR {:.2} dB", -10.0 * refined.log10());
    assert!(
        refined <= best * 1.05,
        "auto refine {refined} vs best single method {best}"
    );
}
