//! Threshold methods against independent references: `testdata/calib/methods.json`, written by
//! `tools/calib_reference.py` (a Python re-implementation of TensorRT's entropy search from the
//! GTC 2017 description, ONNX Runtime's own HistogramCollector and MinMaxCalibrater, a
//! brute-force MSE integration, and MNN's ADMM loop). Both sides read the same histogram
//! counts from the fixture. Run with `--nocapture` to see the comparison figures.

use qopt_calib::methods::{self, Method, ThresholdOptions, admm, kl, mse, percentile};
use qopt_calib::{ObserverConfig, Statistics};
use qopt_ir::{Histogram, ObserverState};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/calib/methods.json"
    );
    let text = std::fs::read_to_string(path).expect("testdata/calib/methods.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn hist(v: &Value) -> Histogram {
    Histogram {
        lo: v["lo"].as_f64().unwrap() as f32,
        hi: v["hi"].as_f64().unwrap() as f32,
        counts: v["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect(),
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

/// The observer state the fixture's histograms describe.
fn state(case: &Value) -> ObserverState {
    ObserverState {
        bins: 2048,
        samples: 1,
        min_max: Some((f(&case["min"]) as f32, f(&case["max"]) as f32)),
        zeros: case["zeros"].as_u64().unwrap(),
        abs_hist: Some(hist(&case["abs_hist"])),
        hist: Some(hist(&case["signed_hist"])),
        ..ObserverState::default()
    }
}

fn cases() -> Vec<Value> {
    fixture()["cases"].as_array().unwrap().clone()
}

#[test]
fn kl_matches_python_tensorrt_reference() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let abs = hist(&case["abs_hist"]);
        let w = abs.bin_width();
        let zeros = case["zeros"].as_u64().unwrap();
        let ours = kl::kl_threshold(&abs.counts, w, zeros, 128);
        let reference = &case["trt_kl"]["qopt_layout"];
        match ours {
            None => assert!(reference.is_null(), "{name}"),
            Some(t) => {
                let r = f(&reference["threshold"]);
                eprintln!(
                    "kl {name}: qopt {t} python {r} (bin width {w}, diff {} bins)",
                    (t - r) / w
                );
                assert!((t - r).abs() <= w, "{name}: {t} vs {r}");
            }
        }
        // The same search on a TensorRT-style histogram spanning exactly [0, max|x|].
        let tight = hist(&case["tight_abs_hist"]);
        let m = kl::kl_bins(&tight.counts, 128);
        let reference = &case["trt_kl"]["tight_layout"]["bins_kept"];
        eprintln!("kl {name} tight layout: qopt {m:?} python {reference}");
        assert_eq!(m.map(|m| m as u64), reference.as_u64(), "{name}");
        // Through the method entry point the threshold is clipped to max |x|.
        let r = methods::threshold(
            &Method::Kl { levels: None },
            &state(&case),
            &ThresholdOptions::default(),
        )
        .unwrap();
        let amax = f(&case["min"]).abs().max(f(&case["max"]));
        assert!(
            r.max as f64 <= amax + 1e-6 && r.min == -r.max,
            "{name}: {r:?}"
        );
    }
}

#[test]
fn kl_signed_matches_onnxruntime_entropy() {
    let asym = ThresholdOptions {
        symmetric: false,
        bits: 8,
    };
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let w = hist(&case["signed_hist"]).bin_width();
        let r = methods::threshold(
            &Method::KlSigned {
                levels: 128,
                bins: None,
            },
            &state(&case),
            &asym,
        )
        .unwrap();
        let (lo, hi) = (f(&case["ort_entropy"]["lo"]), f(&case["ort_entropy"]["hi"]));
        eprintln!(
            "kl-signed {name}: qopt [{}, {}] ORT [{lo}, {hi}] (bin width {w}, diff {} / {} bins)",
            r.min,
            r.max,
            (r.min as f64 - lo) / w,
            (r.max as f64 - hi) / w
        );
        // Including 0 is qopt's rule (DESIGN.md §5); ORT's range may stop short of it.
        let lo = lo.min(0.0);
        assert!((r.min as f64 - lo).abs() <= w, "{name}: {} vs {lo}", r.min);
        assert!((r.max as f64 - hi).abs() <= w, "{name}: {} vs {hi}", r.max);
    }
}

#[test]
fn percentile_matches_onnxruntime() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let (min, max) = (f(&case["min"]), f(&case["max"]));
        // Symmetric (ORT's histogram of |x|): ORT returns the lower edge of the crossing bin,
        // qopt interpolates inside it, so qopt is at most one bin above; both clip to [min, max].
        let abs = hist(&case["abs_hist"]);
        let w = abs.bin_width();
        let t = percentile::percentile_abs(&abs, 99.99).unwrap();
        let (olo, ohi) = (
            f(&case["ort_percentile_sym"]["lo"]),
            f(&case["ort_percentile_sym"]["hi"]),
        );
        let (qlo, qhi) = ((-t).max(min), t.min(max));
        eprintln!("percentile sym {name}: qopt [{qlo}, {qhi}] ORT [{olo}, {ohi}] (bin width {w})");
        assert!(
            qhi >= ohi - 1e-6 && qhi <= ohi + w + 1e-6,
            "{name}: {qhi} vs {ohi}"
        );
        assert!(
            qlo <= olo + 1e-6 && qlo >= olo - w - 1e-6,
            "{name}: {qlo} vs {olo}"
        );
        // The same cut through the method for an asymmetric target (`percentile{abs=true}`,
        // ORT's `CalibTensorRangeSymmetric=True` with int8 activations): [max(-t, min),
        // min(t, max)], widened to include 0 as every qopt range is.
        let asym = ThresholdOptions {
            symmetric: false,
            bits: 8,
        };
        let m = Method::Percentile {
            p: 99.99,
            abs: Some(true),
        };
        let r = methods::threshold(&m, &state(&case), &asym).unwrap();
        assert!(
            (r.max as f64 - qhi.max(0.0)).abs() <= 1e-5 * qhi.abs().max(1.0),
            "{name}: {} vs {qhi}",
            r.max
        );
        assert!(
            (r.min as f64 - qlo.min(0.0)).abs() <= 1e-5 * qlo.abs().max(1.0),
            "{name}: {} vs {qlo}",
            r.min
        );
        // Asymmetric (ORT's signed histogram, (100 - p) / 2 percent cut from each tail).
        let signed = hist(&case["signed_hist"]);
        let w = signed.bin_width();
        let asym = ThresholdOptions {
            symmetric: false,
            bits: 8,
        };
        let r = methods::threshold(
            &Method::Percentile { p: 99.9, abs: None },
            &state(&case),
            &asym,
        )
        .unwrap();
        let (olo, ohi) = (
            f(&case["ort_percentile_asym"]["lo"]),
            f(&case["ort_percentile_asym"]["hi"]),
        );
        eprintln!(
            "percentile asym {name}: qopt [{}, {}] ORT [{olo}, {ohi}] (bin width {w})",
            r.min, r.max
        );
        let olo = olo.min(0.0);
        assert!(
            (r.min as f64) >= olo - 1e-6 && (r.min as f64) <= olo + w + 1e-6,
            "{name}"
        );
        assert!(
            (r.max as f64) >= ohi - 1e-6 && (r.max as f64) <= ohi + w + 1e-6,
            "{name}"
        );
    }
}

#[test]
fn mse_matches_brute_force_integration() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let abs = hist(&case["abs_hist"]);
        let w = abs.bin_width();
        let t = mse::mse_symmetric(&abs, case["zeros"].as_u64().unwrap(), 127).unwrap();
        let r = f(&case["mse_sym"]["threshold"]);
        eprintln!(
            "mse {name}: qopt {t} python {r} (bin width {w}, diff {} bins)",
            (t - r) / w
        );
        assert!((t - r).abs() <= 2.0 * w, "{name}: {t} vs {r}");
    }
}

#[test]
fn admm_matches_mnn_loop() {
    for case in cases() {
        let name = case["name"].as_str().unwrap();
        let abs = hist(&case["abs_hist"]);
        let t = admm::admm_histogram(
            &abs.counts,
            abs.bin_width(),
            case["zeros"].as_u64().unwrap(),
            127,
        )
        .unwrap();
        let r = f(&case["admm"]["threshold"]);
        eprintln!(
            "admm {name}: qopt {t} python {r} (rel diff {:e})",
            (t - r).abs() / r
        );
        assert!((t - r).abs() <= 1e-9 * r, "{name}: {t} vs {r}");
    }
}

#[test]
fn streaming_histograms_match_python_layout() {
    let fx = fixture();
    let b = &fx["binning"];
    let bins = b["bins"].as_u64().unwrap() as usize;
    let mut s = ObserverConfig { bins, ema: None }.new_state().unwrap();
    for batch in b["batches"].as_array().unwrap() {
        let xs: Vec<f32> = batch
            .as_array()
            .unwrap()
            .iter()
            .map(|v| f(v) as f32)
            .collect();
        s.update(&xs);
    }
    assert_eq!(s.abs_hist.unwrap(), hist(&b["abs_hist"]));
    assert_eq!(s.hist.unwrap(), hist(&b["signed_hist"]));
}

#[test]
fn moving_average_matches_onnxruntime_minmax_calibrater() {
    let fx = fixture();
    let e = &fx["minmax_ema"];
    let batches: Vec<Vec<f32>> = e["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_array().unwrap().iter().map(|v| f(v) as f32).collect())
        .collect();
    let run = |ema| {
        let mut s = ObserverConfig { bins: 0, ema }.new_state().unwrap();
        batches.iter().for_each(|b| s.update(b));
        s.range_min_max().unwrap()
    };
    let (lo, hi) = run(Some(0.01));
    let (olo, ohi) = (
        f(&e["ort_moving_average"][0]),
        f(&e["ort_moving_average"][1]),
    );
    eprintln!("moving average: qopt [{lo}, {hi}] ORT [{olo}, {ohi}]");
    // ORT averages in float32; qopt sums exactly: agreement to float32 rounding.
    assert!(
        (lo as f64 - olo).abs() <= 1e-6 * olo.abs() && (hi as f64 - ohi).abs() <= 1e-6 * ohi.abs()
    );
    let (lo, hi) = run(None);
    assert_eq!(
        (lo as f64, hi as f64),
        (f(&e["ort_plain"][0]), f(&e["ort_plain"][1]))
    );
}
