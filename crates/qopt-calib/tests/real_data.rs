//! Real calibration data from `../shared/models/` (skipped with a message where absent):
//! the efficientnet_lite0 calibration photos through the `imagenet` preset, and the MNIST
//! calibration array, streamed into observer statistics on several threads. Checks the
//! preprocessing against the documented normalisation (RGB / 255, ImageNet mean/std): every
//! value lies in [(0 - mean) / std, (1 - mean) / std] per channel.

use std::path::PathBuf;

use qopt_calib::methods::{Method, ThresholdOptions, threshold};
use qopt_calib::source::{CalibData, InputSpec, SourceOptions, SourceSpec};
use qopt_calib::{NoProgress, ObserverConfig, Statistics};
use qopt_ir::{DType, Dim, Shape};
use rayon::prelude::*;

fn shared() -> Option<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        repo.join("../shared/models"),
        repo.join("../../shared/models"),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

fn input(dims: &[u64]) -> InputSpec {
    let mut d = vec![Dim::Sym("N".into())];
    d.extend(dims.iter().map(|&k| Dim::Known(k)));
    InputSpec {
        name: "input".into(),
        dtype: DType::F32,
        shape: Shape(d),
    }
}

#[test]
fn efficientnet_photos_imagenet_preset() {
    let Some(models) = shared() else {
        eprintln!("SKIP: ../shared/models not found");
        return;
    };
    let dir = models.join("photos/calib");
    let d = CalibData::open(
        &SourceSpec::Dir(dir),
        &[input(&[3, 224, 224])],
        &SourceOptions {
            limit: Some(16),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.len(), 16);
    let mean = [0.485f32, 0.456, 0.406];
    let std = [0.229f32, 0.224, 0.225];
    for s in d.samples(&NoProgress) {
        let s = s.unwrap();
        let a = s.inputs[0].1.as_f32().unwrap();
        assert_eq!(a.shape(), &[1, 3, 224, 224]);
        for c in 0..3 {
            let (lo, hi) = (
                (0.0 - mean[c]) / std[c] - 1e-5,
                (1.0 - mean[c]) / std[c] + 1e-5,
            );
            let ch = a.index_axis(ndarray::Axis(1), c);
            assert!(
                ch.iter().all(|&v| v >= lo && v <= hi),
                "{} channel {c}",
                s.origin
            );
        }
    }
}

#[test]
fn mnist_array_parallel_statistics_equal_serial() {
    let Some(models) = shared() else {
        eprintln!("SKIP: ../shared/models not found");
        return;
    };
    let d = CalibData::open(
        &SourceSpec::File(models.join("mnist/calib_x.npy")),
        &[input(&[1, 28, 28])],
        &SourceOptions::default(),
    )
    .unwrap();
    assert_eq!(d.len(), 128);
    let cfg = ObserverConfig::default();
    let mut serial = cfg.new_state().unwrap();
    for s in d.samples(&NoProgress) {
        serial.update(s.unwrap().inputs[0].1.as_f32().unwrap().as_slice().unwrap());
    }
    // Per-thread partial states over samples, merged: identical to the serial state.
    let parallel = (0..d.len())
        .into_par_iter()
        .fold(
            || cfg.new_state().unwrap(),
            |mut st, i| {
                st.update(
                    d.load(i).unwrap().inputs[0]
                        .1
                        .as_f32()
                        .unwrap()
                        .as_slice()
                        .unwrap(),
                );
                st
            },
        )
        .reduce(
            || cfg.new_state().unwrap(),
            |mut a, b| {
                a.merge(&b).unwrap();
                a
            },
        );
    assert_eq!(parallel, serial);
    let r = threshold(
        &Method::Kl { levels: None },
        &serial,
        &ThresholdOptions {
            symmetric: false,
            bits: 8,
        },
    )
    .unwrap();
    eprintln!(
        "mnist input kl range: {r:?} (min/max {:?}, zeros {})",
        serial.min_max, serial.zeros
    );
    assert!(r.min == 0.0 && r.max > 0.0 && r.max <= 1.0);
}
