//! `admm`: MNN's alternating scale fit (`tools/quantization/quantizeWeight.cpp`,
//! `QuantizeWeightADMM`; "ADMM" in MNN's `feature_quantize_method`/`weight_quantize_method`).
//!
//! Minimises `sum w_i (x_i - alpha q_i)^2` over the scale `alpha` and the integers `q_i` by
//! alternating the two exact partial minimisations, from `alpha0 = max|x| / (qmax * 1.25)`:
//!
//! ```text
//! q_i   = clamp(round(x_i / alpha), -qmax, qmax)
//! alpha = sum(w_i x_i q_i) / sum(w_i q_i^2)
//! ```
//!
//! Each step cannot increase the error, and the q assignment takes finitely many values, so
//! the iteration reaches a fixed point; qopt stops there (MNN runs a fixed 1000 iterations,
//! which ends at the same point) and returns the threshold `alpha * qmax`. Weights use their
//! values (`w_i = 1`); activations use the histogram of |x| as weighted points (bin centres,
//! counts as weights, exact zeros left out: they add nothing to either sum). Rounding is
//! half-to-even like the quantizer (MNN's `roundf` rounds halves away from zero).

const MAX_ITERS: usize = 1000;

/// Fit the scale on weighted points `(x, weight)` (signs allowed); returns `alpha`.
pub fn admm_scale(points: &[(f64, f64)], qmax: i32) -> Option<f64> {
    let amax = points
        .iter()
        .filter(|p| p.1 > 0.0)
        .fold(0.0f64, |m, p| m.max(p.0.abs()));
    if amax == 0.0 {
        return None;
    }
    let qm = qmax as f64;
    let mut alpha = amax / (qm * 1.25);
    for _ in 0..MAX_ITERS {
        let (mut sxq, mut sqq) = (0.0, 0.0);
        for &(x, w) in points {
            let q = (x / alpha).round_ties_even().clamp(-qm, qm);
            sxq += w * x * q;
            sqq += w * q * q;
        }
        if sqq == 0.0 {
            break;
        }
        let next = sxq / sqq;
        if next == alpha || next.is_nan() || next <= 0.0 {
            break;
        }
        alpha = next;
    }
    Some(alpha)
}

/// `admm` threshold for raw values (weights).
pub fn admm_values(xs: &[f32], qmax: i32) -> Option<f64> {
    let pts: Vec<(f64, f64)> = xs
        .iter()
        .filter(|x| x.is_finite())
        .map(|&x| (x as f64, 1.0))
        .collect();
    admm_scale(&pts, qmax).map(|a| a * qmax as f64)
}

/// `admm` threshold for a histogram of |x| over `[0, hi)` with `zeros` exact zeros in bin 0.
pub fn admm_histogram(counts: &[u64], bin_width: f64, zeros: u64, qmax: i32) -> Option<f64> {
    let pts: Vec<(f64, f64)> = counts
        .iter()
        .enumerate()
        .map(|(j, &c)| {
            let c = if j == 0 { c.saturating_sub(zeros) } else { c };
            ((j as f64 + 0.5) * bin_width, c as f64)
        })
        .filter(|p| p.1 > 0.0)
        .collect();
    admm_scale(&pts, qmax).map(|a| a * qmax as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(xs: &[f32], alpha: f64, qmax: i32) -> f64 {
        let qm = qmax as f64;
        xs.iter()
            .map(|&x| {
                let x = x as f64;
                let q = (x / alpha).round_ties_even().clamp(-qm, qm);
                (x - alpha * q).powi(2)
            })
            .sum()
    }

    fn check(xs: &[f32]) -> f64 {
        let t = admm_values(xs, 127).unwrap();
        let alpha = t / 127.0;
        // A fixed point of the two updates (what MNN's 1000 iterations reach)...
        let (mut sxq, mut sqq) = (0.0, 0.0);
        for &x in xs {
            let q = (x as f64 / alpha).round_ties_even().clamp(-127.0, 127.0);
            sxq += x as f64 * q;
            sqq += q * q;
        }
        assert!(
            (sxq / sqq - alpha).abs() <= 1e-12 * alpha,
            "not a fixed point"
        );
        // ...that is no worse than the start: each update is an exact partial minimisation.
        let amax = xs.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()));
        assert!(error(xs, alpha, 127) <= error(xs, amax / (127.0 * 1.25), 127));
        t
    }

    #[test]
    fn fixed_point_no_worse_than_start() {
        let grid: Vec<f32> = (-127..=127).map(|k| k as f32 * 0.01).collect();
        let t = check(&grid);
        assert!(t > 1.2 && t <= 1.27, "{t}");
        let mut bulk: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.7919).sin()).collect();
        bulk.push(10.0);
        let t = check(&bulk);
        assert!(t < 10.0, "{t}");
        assert_eq!(admm_values(&[0.0, 0.0], 127), None);
    }

    #[test]
    fn histogram_points_match_values_at_bin_centres() {
        // Values placed at bin centres give the same fit through either entry point.
        let counts = [0u64, 3, 5, 2, 0, 1];
        let xs: Vec<f32> = counts
            .iter()
            .enumerate()
            .flat_map(|(j, &c)| std::iter::repeat_n((j as f32 + 0.5) * 0.25, c as usize))
            .collect();
        let a = admm_histogram(&counts, 0.25, 0, 127).unwrap();
        let b = admm_values(&xs, 127).unwrap();
        assert!((a - b).abs() < 1e-9, "{a} {b}");
    }
}
