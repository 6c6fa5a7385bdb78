//! `kl-signed`: the entropy search on the signed histogram, as ONNX Runtime's
//! `EntropyCalibrater` does it (`HistogramCollector.get_entropy_threshold` in
//! `onnxruntime/python/tools/quantization/calibrate.py`, itself a port of MXNet's
//! `_get_optimal_threshold` in `python/mxnet/contrib/quantization.py`).
//!
//! For `i` from `levels/2` to `N/2`: the slice `[N/2 - i, N/2 + i + 1)` around the zero bin is
//! P with the outliers of each side added to its end bins; the slice is merged into `levels`
//! groups of `len / levels` bins (the remainder joins the last group's sum), each group's sum
//! is spread over its non-zero bins of P; both are smoothed (`smooth_distribution`, eps 1e-4)
//! and the candidate with the least KL(P || Q) gives the range `(edge[N/2 - i], edge[N/2 + i + 1])`,
//! clipped to the observed min/max.
//!
//! ORT's details are kept so results agree with it (tested against fixtures from ORT itself):
//! Q is an integer array, so each spread value is truncated toward zero; the spread covers
//! every bin of a group (also bins where P is zero; MXNet zeroes those); bins past the last
//! full group get no Q (their sum still counts in the last group); smoothing is in f32.
//! Defaults: 128 levels (ORT's `num_quantized_bins`); the histogram is the observer's (2048
//! bins), cropped symmetrically to the smallest half-width that holds every value, since
//! qopt's power-of-two histograms can have empty bins beyond the data.

use qopt_ir::Histogram;

/// ORT/MXNet `smooth_distribution(p, eps=1e-4)` in f32; `None` when all entries are zero.
fn smooth(p: &[i64]) -> Option<Vec<f32>> {
    let zeros = p.iter().filter(|&&v| v == 0).count();
    let nonzeros = p.len() - zeros;
    if nonzeros == 0 {
        return None;
    }
    let eps = 1e-4f32;
    let eps1 = (1e-4f64 * zeros as f64 / nonzeros as f64) as f32;
    Some(
        p.iter()
            .map(|&v| if v == 0 { eps } else { v as f32 - eps1 })
            .collect(),
    )
}

/// KL(P || Q) after normalising both (`onnxruntime ... calibrate.entropy`).
fn entropy(p: &[f32], q: &[f32]) -> f64 {
    let sp: f64 = p.iter().map(|&v| v as f64).sum();
    let sq: f64 = q.iter().map(|&v| v as f64).sum();
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let (pa, qb) = (a as f64 / sp, b as f64 / sq);
            if pa > 0.0 { pa * (pa / qb).ln() } else { 0.0 }
        })
        .sum()
}

/// The ORT search on `hist` (an even number of bins, zero at the middle edge); returns
/// `(lo, hi)` before clipping to the observed range, or `None` for an empty histogram.
pub fn kl_signed(h: &Histogram, levels: usize) -> Option<(f64, f64)> {
    let n_all = h.counts.len();
    let half_all = n_all / 2;
    let first = h.counts.iter().position(|&c| c != 0)?;
    let last = crate::histogram::occupied_len(&h.counts) - 1;
    // Smallest half-width around the zero edge holding every value.
    let half = (half_all - first.min(half_all))
        .max(last + 1 - half_all.min(last + 1))
        .max(1);
    let w = h.bin_width();
    let lo_edge = h.lo as f64 + (half_all - half) as f64 * w;
    let hist: Vec<i64> = h.counts[half_all - half..half_all + half]
        .iter()
        .map(|&c| c as i64)
        .collect();
    let edge = |k: usize| lo_edge + k as f64 * w;
    let num_bins = hist.len();
    let zero = num_bins / 2;
    let levels = levels.max(2);
    let half_levels = levels / 2;
    if half_levels > zero {
        return Some((edge(0), edge(num_bins)));
    }
    let mut best: Option<(f64, (f64, f64))> = None;
    for i in half_levels..=zero {
        let start = zero - i;
        let end = (zero + i + 1).min(num_bins);
        let sliced = &hist[start..end];
        let mut p = sliced.to_vec();
        p[0] += hist[..start].iter().sum::<i64>();
        *p.last_mut().expect("non-empty slice") += hist[end..].iter().sum::<i64>();
        let merged = sliced.len() / levels;
        let mut q = vec![0i64; p.len()];
        if merged > 0 {
            for l in 0..levels {
                let (s, e) = (l * merged, l * merged + merged);
                let mut sum: i64 = sliced[s..e].iter().sum();
                if l == levels - 1 {
                    sum += sliced[levels * merged..].iter().sum::<i64>();
                }
                let norm = p[s..e].iter().filter(|&&v| v != 0).count() as i64;
                if norm != 0 {
                    // numpy assigns a float into an int64 array: truncation toward zero.
                    q[s..e].iter_mut().for_each(|v| *v = sum / norm);
                }
            }
        }
        let d = match (smooth(&p), smooth(&q)) {
            (Some(ps), Some(qs)) => entropy(&ps, &qs),
            _ => f64::INFINITY,
        };
        if best.is_none_or(|(b, _)| d < b) {
            best = Some((d, (edge(start), edge(end))));
        }
    }
    best.map(|(_, r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_with_outliers_is_clipped() {
        // A discretised bell on the middle bins and a far outlier: the range must shrink well
        // inside the outlier's bin, and stay symmetric in bin count around zero.
        let n = 2048usize;
        let mut counts = vec![0u64; n];
        for (j, c) in counts.iter_mut().enumerate() {
            let x = (j as f64 + 0.5 - 1024.0) / 100.0;
            *c = (1e5 * (-0.5 * x * x).exp()).round() as u64;
        }
        counts[2040] += 2;
        let h = Histogram {
            lo: -1024.0,
            hi: 1024.0,
            counts,
        };
        let (lo, hi) = kl_signed(&h, 128).unwrap();
        assert!(hi < 900.0 && lo > -900.0, "{lo} {hi}");
        assert!(hi > 150.0, "{hi}");
        assert_eq!(
            lo + hi,
            1.0,
            "ORT's slice is one bin longer on the positive side"
        );
    }

    #[test]
    fn empty_histogram() {
        assert_eq!(
            kl_signed(
                &Histogram {
                    lo: -1.0,
                    hi: 1.0,
                    counts: vec![0; 8]
                },
                128
            ),
            None
        );
    }
}
