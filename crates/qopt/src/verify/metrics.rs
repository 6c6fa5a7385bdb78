//! Error metrics between an fp32 tensor and its quantized counterpart, accumulated over
//! samples: cosine similarity, signal-to-quantization-noise ratio, max absolute error and,
//! for classifier outputs, top-1 agreement.
//!
//! SQNR follows the usual definition (e.g. NVIDIA's pytorch-quantization and Qualcomm's AIMET
//! layer-wise reports): `10 * log10(sum(x^2) / sum((x - x_q)^2))` in dB, with the sums taken
//! over every element of every sample (not a mean of per-sample ratios, which one near-silent
//! sample would dominate). Cosine is likewise `sum(x * x_q) / sqrt(sum(x^2) * sum(x_q^2))` over
//! all elements. Sums are in f64 so that a million-element layer does not lose precision.

use serde::Serialize;

/// Running sums for one compared value.
#[derive(Clone, Debug, Default)]
pub struct Accum {
    pub elements: u64,
    dot: f64,
    ref_sq: f64,
    q_sq: f64,
    err_sq: f64,
    max_abs: f64,
    /// (rows whose argmax agrees, rows) for classifier-shaped values.
    top1: Option<(u64, u64)>,
}

/// The metrics of one value, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct Metrics {
    pub elements: u64,
    pub cosine: f64,
    /// dB; `+inf` when the two are identical (written as the string "inf" in JSON).
    #[serde(serialize_with = "ser_db")]
    pub sqnr_db: f64,
    pub max_abs_error: f64,
    /// Fraction of rows (samples x batch) whose argmax agrees; classifier outputs only.
    pub top1_agreement: Option<f64>,
}

/// JSON has no infinity: infinite dB values are written as the strings "inf" / "-inf".
pub fn ser_db<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else if x.is_nan() {
        s.serialize_str("nan")
    } else if *x > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// Whether a value of this shape is a classifier output: `[N, C]` or `[N, C, 1, 1]`, C > 1.
pub fn classifier_rows(shape: &[usize]) -> Option<(usize, usize)> {
    match shape {
        [n, c] | [n, c, 1, 1] if *c > 1 => Some((*n, *c)),
        _ => None,
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

/// SQNR in dB of a signal energy against an error energy.
pub fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

impl Accum {
    /// Add one sample: `x` the fp32 value, `q` the quantized model's (same shape, checked by
    /// the caller), `shape` their shape (for top-1).
    pub fn add(&mut self, x: &[f32], q: &[f32], shape: &[usize], top1: bool) {
        self.elements += x.len() as u64;
        for (&a, &b) in x.iter().zip(q) {
            let (a, b) = (a as f64, b as f64);
            self.dot += a * b;
            self.ref_sq += a * a;
            self.q_sq += b * b;
            let e = a - b;
            self.err_sq += e * e;
            // NaN in either compares false here but poisons the sums, which is what shows.
            if e.abs() > self.max_abs {
                self.max_abs = e.abs();
            }
        }
        if !top1 {
            return;
        }
        if let Some((n, c)) = classifier_rows(shape) {
            let (agree, rows) = self.top1.get_or_insert((0, 0));
            for r in 0..n {
                let (xr, qr) = (&x[r * c..(r + 1) * c], &q[r * c..(r + 1) * c]);
                *agree += (argmax(xr) == argmax(qr)) as u64;
                *rows += 1;
            }
        }
    }

    /// (signal energy, error energy) so far.
    pub fn energies(&self) -> (f64, f64) {
        (self.ref_sq, self.err_sq)
    }

    pub fn metrics(&self) -> Metrics {
        let denom = (self.ref_sq * self.q_sq).sqrt();
        let cosine = if denom > 0.0 {
            (self.dot / denom).clamp(-1.0, 1.0)
        } else if self.ref_sq == self.q_sq {
            // Both all zero: identical.
            1.0
        } else {
            0.0
        };
        Metrics {
            elements: self.elements,
            cosine,
            sqnr_db: sqnr_db(self.ref_sq, self.err_sq),
            max_abs_error: self.max_abs,
            top1_agreement: self.top1.map(|(a, r)| a as f64 / r.max(1) as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed reference values: x = [3, 4], q = [3, 3] gives dot 21, |x| 5, |q| 4.2426,
    /// cosine 0.98995; signal 25, noise 1, SQNR 13.979 dB; max error 1.
    #[test]
    fn metrics_match_hand_computed_values() {
        let mut a = Accum::default();
        a.add(&[3.0, 4.0], &[3.0, 3.0], &[1, 2], true);
        let m = a.metrics();
        assert!((m.cosine - 21.0 / (5.0 * 18f64.sqrt())).abs() < 1e-12);
        assert!((m.sqnr_db - 10.0 * 25f64.log10()).abs() < 1e-12);
        assert_eq!(m.max_abs_error, 1.0);
        // argmax of [3, 4] is 1, of [3, 3] is 0 (first maximum, as numpy.argmax).
        assert_eq!(m.top1_agreement, Some(0.0));
        let mut same = Accum::default();
        same.add(&[1.0, -2.0], &[1.0, -2.0], &[2], true);
        let m = same.metrics();
        assert_eq!(m.sqnr_db, f64::INFINITY);
        assert_eq!(m.cosine, 1.0);
        assert_eq!(m.top1_agreement, None);
    }

    #[test]
    fn classifier_shapes() {
        assert_eq!(classifier_rows(&[4, 10]), Some((4, 10)));
        assert_eq!(classifier_rows(&[1, 1000, 1, 1]), Some((1, 1000)));
        assert_eq!(classifier_rows(&[1, 1]), None);
        assert_eq!(classifier_rows(&[1, 3, 8, 8]), None);
    }
}
