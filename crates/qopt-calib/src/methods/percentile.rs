//! `percentile{p=99.99}`: the threshold below which `p` percent of the values lie.
//!
//! Symmetric: on the histogram of |x| (exact zeros included, as in ONNX Runtime's
//! `PercentileCalibrater` with `symmetric=True`). Asymmetric: on the signed histogram, cutting
//! `(100 - p) / 2` percent from each tail, as ORT does with `symmetric=False`
//! (`HistogramCollector.compute_percentile` in `onnxruntime/python/tools/quantization/calibrate.py`).
//! ORT returns the lower edge of the bin where the cumulative count crosses the target; qopt
//! interpolates linearly inside that bin (values spread uniformly within a bin), so its
//! threshold lies within one bin width above ORT's. Counts are compared as integers, so the
//! crossing bin does not depend on floating-point cumulative sums.

use qopt_ir::Histogram;

/// Position (in value units) where the cumulative count first reaches `target`.
fn crossing(h: &Histogram, target: f64) -> f64 {
    let w = h.bin_width();
    let mut cum = 0.0f64;
    for (j, &c) in h.counts.iter().enumerate() {
        let next = cum + c as f64;
        if c > 0 && next >= target {
            let frac = ((target - cum) / c as f64).clamp(0.0, 1.0);
            return h.lo as f64 + (j as f64 + frac) * w;
        }
        cum = next;
    }
    h.hi as f64
}

/// Symmetric percentile threshold on a histogram of |x|.
pub fn percentile_abs(h: &Histogram, p: f64) -> Option<f64> {
    let total = h.total();
    (total > 0).then(|| crossing(h, p / 100.0 * total as f64))
}

/// Asymmetric percentile range on a signed histogram.
pub fn percentile_signed(h: &Histogram, p: f64) -> Option<(f64, f64)> {
    let total = h.total() as f64;
    if total == 0.0 {
        return None;
    }
    let cut = (100.0 - p) / 200.0;
    Some((crossing(h, cut * total), crossing(h, (1.0 - cut) * total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_known_answer() {
        // 1000 bins of width 0.001 with 10 values each: |x| uniform on [0, 1); the 99th
        // percentile is 0.99 exactly, the 50th 0.5.
        let h = Histogram {
            lo: 0.0,
            hi: 1.0,
            counts: vec![10; 1000],
        };
        assert!((percentile_abs(&h, 99.0).unwrap() - 0.99).abs() < 1e-9);
        assert!((percentile_abs(&h, 50.0).unwrap() - 0.5).abs() < 1e-9);
        assert!((percentile_abs(&h, 100.0).unwrap() - 1.0).abs() < 1e-9);
        // Signed uniform on [-1, 1): 98% keeps [-0.98, 0.98].
        let s = Histogram {
            lo: -1.0,
            hi: 1.0,
            counts: vec![5; 2000],
        };
        let (lo, hi) = percentile_signed(&s, 98.0).unwrap();
        assert!(
            (lo + 0.98).abs() < 1e-9 && (hi - 0.98).abs() < 1e-9,
            "{lo} {hi}"
        );
        assert_eq!(
            percentile_abs(
                &Histogram {
                    lo: 0.0,
                    hi: 1.0,
                    counts: vec![0; 4]
                },
                99.0
            ),
            None
        );
    }
}
