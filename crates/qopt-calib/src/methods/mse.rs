//! `mse`: the range whose quantization has the least expected squared error over the histogram.
//!
//! The histogram is read as a density that is uniform inside each bin (the model of
//! PyTorch's `HistogramObserver._compute_quantization_error`, which integrates
//! `(x - q(x))^2` per bin; pytorch-quantization's `_compute_amax_mse` evaluates bin centres
//! instead). For a candidate quantizer with grid points `v_k = (k - zp) * s`, each value
//! rounds to its nearest grid point, and values beyond the ends clip to them, so the expected
//! error is a sum over the grid cells of `m2 - 2 v m1 + v^2 m0`, where `m0, m1, m2` are the
//! cell's zeroth to second moments. With prefix sums of the per-bin moments a cell costs O(1)
//! (bins cut by a cell edge are split in proportion), so one candidate costs O(levels), not
//! O(bins). Exact zeros are taken out of the density: zero is always on the grid, so they add
//! no error.
//!
//! Symmetric: candidates `t = j * w` for every occupied bin edge of the |x| histogram, scale
//! `t / qmax` with the grid `0..=qmax` (|x| folds the negative half onto the positive one).
//! Asymmetric: the grid of `QScheme::scale_zero_point` (ORT's `compute_scale_zp`, zero point
//! rounded) on the signed histogram, candidates at bin edges on each side of zero, searched by
//! coordinate descent (best `hi` for the current `lo`, then best `lo` for that `hi`, until
//! neither moves) from the full range.

use qopt_ir::{Histogram, Range};

use crate::qparams::QScheme;

/// Histogram moments with prefix sums, density uniform inside each bin.
struct Density {
    lo: f64,
    w: f64,
    counts: Vec<f64>,
    /// Prefix sums of the per-bin moments: `pre[k][j]` = sum over bins `< j`.
    pre: [Vec<f64>; 3],
}

impl Density {
    fn new(lo: f64, w: f64, counts: Vec<f64>) -> Density {
        let n = counts.len();
        let mut pre = [vec![0.0; n + 1], vec![0.0; n + 1], vec![0.0; n + 1]];
        for (j, &c) in counts.iter().enumerate() {
            let (a, b) = (lo + j as f64 * w, lo + (j + 1) as f64 * w);
            let m = Self::part(c, a, b);
            for k in 0..3 {
                pre[k][j + 1] = pre[k][j] + m[k];
            }
        }
        Density { lo, w, counts, pre }
    }

    /// Moments of `c` values spread uniformly over `[a, b]`.
    fn part(c: f64, a: f64, b: f64) -> [f64; 3] {
        [c, c * (a + b) / 2.0, c * (a * a + a * b + b * b) / 3.0]
    }

    /// Moments of the density on `[a, b]` (clamped to the histogram).
    fn moments(&self, a: f64, b: f64) -> [f64; 3] {
        let n = self.counts.len();
        let hi = self.lo + n as f64 * self.w;
        let (a, b) = (a.max(self.lo), b.min(hi));
        if b <= a {
            return [0.0; 3];
        }
        let ja = (((a - self.lo) / self.w) as usize).min(n - 1);
        let jb = (((b - self.lo) / self.w) as usize).min(n - 1);
        let frac = |j: usize, x0: f64, x1: f64| {
            let c = self.counts[j] * (x1 - x0) / self.w;
            Self::part(c, x0, x1)
        };
        if ja == jb {
            return frac(ja, a, b);
        }
        let edge = |j: usize| self.lo + j as f64 * self.w;
        let first = frac(ja, a, edge(ja + 1));
        let last = frac(jb, edge(jb), b);
        let mut m = [0.0; 3];
        for k in 0..3 {
            m[k] = first[k] + last[k] + self.pre[k][jb] - self.pre[k][ja + 1];
        }
        m
    }

    /// Expected squared error (summed over values) of rounding to the grid
    /// `v_k = (k - zp) * s`, `k` in `qmin..=qmax`, with clipping at the ends.
    fn error(&self, s: f64, zp: i32, qmin: i32, qmax: i32) -> f64 {
        let v = |k: i32| (k - zp) as f64 * s;
        let n = self.counts.len();
        let (lo, hi) = (self.lo, self.lo + n as f64 * self.w);
        // Only the grid cells that meet the data matter.
        let k_lo = ((lo / s).floor() as i64 + zp as i64).clamp(qmin as i64, qmax as i64) as i32;
        let k_hi = ((hi / s).ceil() as i64 + zp as i64).clamp(qmin as i64, qmax as i64) as i32;
        let mut err = 0.0;
        for k in k_lo..=k_hi {
            let a = if k == qmin {
                f64::NEG_INFINITY
            } else {
                v(k) - s / 2.0
            };
            let b = if k == qmax {
                f64::INFINITY
            } else {
                v(k) + s / 2.0
            };
            let [m0, m1, m2] = self.moments(a, b);
            if m0 > 0.0 {
                let x = v(k);
                err += (m2 - 2.0 * x * m1 + x * x * m0).max(0.0);
            }
        }
        err
    }
}

fn without_zeros(counts: &[u64], zero_bin: usize, zeros: u64) -> Vec<f64> {
    let mut c: Vec<f64> = counts.iter().map(|&v| v as f64).collect();
    if let Some(b) = c.get_mut(zero_bin) {
        *b = (*b - zeros as f64).max(0.0);
    }
    c
}

/// Symmetric `mse` threshold on a histogram of |x| over `[0, hi)` with `zeros` exact zeros in
/// bin 0; `qmax` is the largest grid level (127 for 8 bits).
pub fn mse_symmetric(h: &Histogram, zeros: u64, qmax: i32) -> Option<f64> {
    let n = crate::histogram::occupied_len(&h.counts);
    if n == 0 {
        return None;
    }
    let w = h.bin_width();
    let d = Density::new(0.0, w, without_zeros(&h.counts[..n], 0, zeros));
    let mut best: Option<(f64, f64)> = None;
    for j in 1..=n {
        let t = j as f64 * w;
        let e = d.error(t / qmax as f64, 0, 0, qmax);
        if best.is_none_or(|(b, _)| e < b) {
            best = Some((e, t));
        }
    }
    best.map(|(_, t)| t)
}

/// Asymmetric `mse` range on a signed histogram (zero at its middle edge) holding `zeros`
/// exact zeros, for the grid of `scheme` (asymmetric).
pub fn mse_asymmetric(h: &Histogram, zeros: u64, scheme: QScheme) -> Option<(f64, f64)> {
    let n = h.counts.len();
    let half = n / 2;
    let first = h.counts.iter().position(|&c| c != 0)?;
    let last = crate::histogram::occupied_len(&h.counts);
    let w = h.bin_width();
    let d = Density::new(h.lo as f64, w, without_zeros(&h.counts, half, zeros));
    // Candidate edges: lo in -(0..=neg) * w, hi in (0..=pos) * w.
    let neg = half.saturating_sub(first);
    let pos = last.saturating_sub(half);
    let (qmin, qmax) = scheme.qrange();
    let scheme = QScheme {
        symmetric: false,
        ..scheme
    };
    let eval = |a: usize, b: usize| -> f64 {
        let (lo, hi) = (-(a as f64) * w, b as f64 * w);
        if hi <= lo {
            return f64::INFINITY;
        }
        match scheme.scale_zero_point(Range::new(lo as f32, hi as f32)) {
            Ok((s, zp)) => d.error(s as f64, zp, qmin, qmax),
            Err(_) => f64::INFINITY,
        }
    };
    let argmin = |f: &dyn Fn(usize) -> f64, count: usize| -> usize {
        let mut best = (f64::INFINITY, count);
        for k in 0..=count {
            let e = f(k);
            if e < best.0 {
                best = (e, k);
            }
        }
        best.1
    };
    let (mut a, mut b) = (neg, pos);
    for _ in 0..32 {
        let nb = argmin(&|k| eval(a, k), pos);
        let na = argmin(&|k| eval(k, nb), neg);
        let moved = (na, nb) != (a, b);
        (a, b) = (na, nb);
        if !moved {
            break;
        }
    }
    Some((-(a as f64) * w, b as f64 * w))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute-force expected error: integrate each bin numerically on a fine grid.
    fn brute(d: &Density, s: f64, zp: i32, qmin: i32, qmax: i32) -> f64 {
        let mut e = 0.0;
        for (j, &c) in d.counts.iter().enumerate() {
            let steps = 2000;
            for t in 0..steps {
                let x = d.lo + (j as f64 + (t as f64 + 0.5) / steps as f64) * d.w;
                let q = ((x / s).round() as i64 + zp as i64).clamp(qmin as i64, qmax as i64);
                let xq = (q - zp as i64) as f64 * s;
                e += c / steps as f64 * (x - xq) * (x - xq);
            }
        }
        e
    }

    #[test]
    fn prefix_moments_match_brute_force() {
        let counts: Vec<f64> = (0..64).map(|j| ((j * 37) % 11) as f64).collect();
        let d = Density::new(-3.2, 0.1, counts);
        for &(s, zp, qmin, qmax) in &[
            (0.05, 0, -127, 127),
            (0.37, 3, -8, 7),
            (0.013, -40, -128, 127),
        ] {
            let fast = d.error(s, zp, qmin, qmax);
            let slow = brute(&d, s, zp, qmin, qmax);
            assert!(
                (fast - slow).abs() <= 1e-5 * slow.max(1e-12),
                "{fast} vs {slow}"
            );
        }
    }

    #[test]
    fn uniform_keeps_its_range_and_outliers_are_clipped() {
        // Uniform |x| on [0, 1): with 127 levels, clipping costs more than it saves.
        let h = Histogram {
            lo: 0.0,
            hi: 1.0,
            counts: vec![100; 1000],
        };
        let t = mse_symmetric(&h, 0, 127).unwrap();
        assert!(t > 0.98, "{t}");
        // Bell shape plus one far outlier at 0.999: the threshold clips far below it.
        let mut counts = vec![0u64; 1000];
        for (j, c) in counts.iter_mut().enumerate() {
            let x = j as f64 / 50.0;
            *c = (1e5 * (-0.5 * x * x).exp()).round() as u64;
        }
        counts[999] = 1;
        let h = Histogram {
            lo: 0.0,
            hi: 1.0,
            counts,
        };
        let t = mse_symmetric(&h, 0, 127).unwrap();
        assert!(t < 0.5, "{t}");
    }

    #[test]
    fn asymmetric_follows_a_skewed_distribution() {
        // Signed histogram of data uniform on [-0.25, 1): the best range is about that.
        let mut counts = vec![0u64; 2048];
        counts[1024 - 256..1024 + 1024]
            .iter_mut()
            .for_each(|c| *c = 50);
        let h = Histogram {
            lo: -1.0,
            hi: 1.0,
            counts,
        };
        let (lo, hi) = mse_asymmetric(&h, 0, QScheme::ACTIVATIONS_ASYMMETRIC).unwrap();
        assert!(
            (lo + 0.25).abs() < 0.02 && (hi - 1.0).abs() < 0.02,
            "{lo} {hi}"
        );
    }
}
