//! `eq` (EasyQuant) on real models: the network output cosine against the fp32 model, on
//! held-out samples the calibration never saw, must be at least that of the calibrated
//! starting point (`fuse,calib{method=kl},qdq` against `fuse,calib{method=kl},eq,qdq`).
//! The reference is the fp32 model run by qopt's fp32 interpreter; both quantized models run
//! in the same interpreter (QuantizeLinear/DequantizeLinear with ONNX numerics).
//! tools/compare_eq.py measures the same in ONNX Runtime, with top-1 and SQNR.
//!
//! Models come from ../shared/models (README there); without them the tests print SKIP.

mod common;

use common::outputs;
use qopt::calib::source::{CalibData, SourceOptions, SourceSpec};
use qopt::ir::Tensor;
use qopt::passes::calib_inputs::apply_option;
use qopt::{Graph, PassContext, Pipeline};
use std::path::Path;

fn samples(g: &Graph, source: &str, limit: usize) -> Vec<Vec<(String, Tensor)>> {
    let specs = qopt::passes::collect::input_specs(g).expect("input specs");
    let spec = SourceSpec::parse(source).expect("source");
    let opts = SourceOptions {
        limit: Some(limit),
        preprocess: None,
        strict: false,
    };
    let data = CalibData::open(&spec, &specs, &opts).expect("open data");
    (0..data.len())
        .map(|i| data.load(i).expect("sample").inputs)
        .collect()
}

fn mean_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        let d: f64 = x.iter().zip(y).map(|(&u, &v)| u as f64 * v as f64).sum();
        let nx: f64 = x.iter().map(|&u| (u as f64).powi(2)).sum();
        let ny: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum();
        s += d / (nx * ny).sqrt().max(1e-30);
    }
    s / a.len() as f64
}

fn quantize(model: &Path, pipeline: &str, calib: &str) -> Graph {
    let mut g = qopt::load(model).expect("load").graph;
    let mut cx = PassContext::new();
    apply_option(&mut cx, "calib", calib).expect("calib option");
    Pipeline::parse(pipeline)
        .expect("pipeline")
        .run(&mut g, &mut cx)
        .expect("pipeline runs");
    g
}

/// Held-out output cosine of KL alone and KL + eq, at `bits`.
fn check(model: &str, calib: &str, eval: &str, eval_n: usize, eq_opts: &str, bits: u32) {
    let Some(dir) = qopt::onnx::testing::shared_models_dir() else {
        eprintln!("SKIP: ../shared/models not found");
        return;
    };
    let path = dir.join(model);
    if !path.is_file() {
        eprintln!("SKIP: {} not found", path.display());
        return;
    }
    let calib = dir.join(calib).display().to_string();
    let fp = qopt::load(&path).expect("load").graph;
    let xs = samples(&fp, &dir.join(eval).display().to_string(), eval_n);
    let reference = outputs(&fp, &xs);
    let levels = 1 << (bits - 1);
    let base = format!("fuse,calib{{method=kl levels={levels}}}");
    let q = format!("qdq{{bits={bits}}}");
    let kl = quantize(&path, &format!("{base},{q}"), &calib);
    let eq = quantize(
        &path,
        &format!("{base},eq{{bits={bits} {eq_opts}}},{q}"),
        &calib,
    );
    let (c_kl, c_eq) = (
        mean_cosine(&outputs(&kl, &xs), &reference),
        mean_cosine(&outputs(&eq, &xs), &reference),
    );
    eprintln!("{model} int{bits}: held-out cosine kl {c_kl:.6}, kl+eq {c_eq:.6}");
    assert!(
        c_eq >= c_kl,
        "{model} int{bits}: eq lowered the held-out cosine: {c_kl} -> {c_eq}"
    );
}

#[test]
fn eq_keeps_or_improves_mnist_cnn_bn() {
    for bits in [8, 7] {
        check(
            "mnist_cnn_bn.onnx",
            "mnist/calib_x.npy",
            "mnist/test_x.npy",
            300,
            "",
            bits,
        );
    }
}

#[test]
fn eq_keeps_or_improves_efficientnet_lite0() {
    // Fewer search samples and steps than the defaults keep the debug-build test short;
    // tools/compare_eq.py runs the defaults.
    check(
        "efficientnet_lite0_keepbn.onnx",
        "photos/calib",
        "photos/eval",
        32,
        "samples=8 steps=25 rounds=1",
        7,
    );
}
