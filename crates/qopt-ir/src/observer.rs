//! State of a calibration observer node (see the `observe` and `collect` passes).
//!
//! The IR only stores this data so that it prints and travels with the graph;
//! the statistics are computed and consumed by `qopt-calib`. Every field merges
//! exactly (integer counts, min/max, [`ExactSum`]), so statistics gathered in any
//! order, on any number of threads or processes, combine into the same state.

/// Uniform histogram over `[lo, hi)` with `counts.len()` bins.
///
/// Histograms built by `qopt-calib` have a power-of-two bin width and `lo` = 0
/// (histogram of |x|) or `lo` = -`hi` (signed x), so that re-binning on range
/// growth and merging are exact; the type itself allows any uniform layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Width of one bin.
    pub fn bin_width(&self) -> f64 {
        (self.hi as f64 - self.lo as f64) / self.counts.len().max(1) as f64
    }

    /// Sum of all counts.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// An exact sum of f32 values: a 384-bit two's-complement fixed-point integer in units of
/// 2^-149 (the smallest f32 subnormal), so every f32 is an integer in these units and
/// additions never round. Sums of up to 2^64 values of any magnitude fit. Used for the
/// moving-average min/max, whose result must not depend on the order of the samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExactSum {
    /// Little-endian 64-bit limbs.
    pub limbs: [u64; 6],
}

impl ExactSum {
    /// Add one finite value (non-finite values are ignored: the caller counts them).
    pub fn add(&mut self, x: f32) {
        if !x.is_finite() || x == 0.0 {
            return;
        }
        let bits = x.to_bits();
        let exp = (bits >> 23) & 0xff;
        let frac = (bits & 0x7f_ffff) as u128;
        // x = mant * 2^(shift - 149) with mant < 2^24.
        let (mant, shift) = if exp == 0 {
            (frac, 0)
        } else {
            (frac | (1 << 23), exp as usize - 1)
        };
        let mut addend = [0u64; 6];
        let wide = mant << (shift % 64);
        let k = shift / 64;
        addend[k] = wide as u64;
        if k + 1 < 6 {
            addend[k + 1] = (wide >> 64) as u64;
        }
        if x < 0.0 {
            addend = negate(addend);
        }
        self.limbs = add_limbs(self.limbs, addend);
    }

    /// Add another exact sum (exact, commutative and associative).
    pub fn merge(&mut self, other: &ExactSum) {
        self.limbs = add_limbs(self.limbs, other.limbs);
    }

    /// The sum as f64: a pure function of the exact value, so equal sums give equal results.
    pub fn to_f64(&self) -> f64 {
        let negative = self.limbs[5] >> 63 == 1;
        let mag = if negative {
            negate(self.limbs)
        } else {
            self.limbs
        };
        let mut acc = 0.0f64;
        for &limb in mag.iter().rev() {
            acc = acc * 18446744073709551616.0 + limb as f64;
        }
        let v = acc * 2f64.powi(-149);
        if negative { -v } else { v }
    }
}

fn add_limbs(a: [u64; 6], b: [u64; 6]) -> [u64; 6] {
    let mut out = [0u64; 6];
    let mut carry = false;
    for i in 0..6 {
        let (s1, c1) = a[i].overflowing_add(b[i]);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        out[i] = s2;
        carry = c1 || c2;
    }
    out
}

fn negate(a: [u64; 6]) -> [u64; 6] {
    let mut inv = [0u64; 6];
    for i in 0..6 {
        inv[i] = !a[i];
    }
    add_limbs(inv, [1, 0, 0, 0, 0, 0])
}

/// Sums for the moving-average min/max: ONNX Runtime's `MinMaxCalibrater(moving_average=True)`
/// averages each calibration batch's min and max (`np.nanmean` over batches), which these
/// sums reproduce exactly and in any order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmaSums {
    /// Samples that had at least one finite element.
    pub samples: u64,
    pub min_sum: ExactSum,
    pub max_sum: ExactSum,
}

impl EmaSums {
    /// The averaged (min, max), if any sample contributed.
    pub fn mean(&self) -> Option<(f32, f32)> {
        (self.samples > 0).then(|| {
            let n = self.samples as f64;
            (
                (self.min_sum.to_f64() / n) as f32,
                (self.max_sum.to_f64() / n) as f32,
            )
        })
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObserverState {
    /// Histogram bins to keep (0: min/max only).
    pub bins: usize,
    /// Moving-average constant for min/max (ONNX Runtime's `averaging_constant`), if the
    /// moving average is wanted; the sums are then in `ema_sums`.
    pub ema: Option<f32>,
    /// Number of calibration samples seen.
    pub samples: u64,
    /// Running min and max over every finite element; `None` before any finite element.
    pub min_max: Option<(f32, f32)>,
    /// Non-finite elements seen (skipped by every statistic).
    pub nonfinite: u64,
    /// Finite elements that are exactly zero (they are counted in bin 0 of `abs_hist`;
    /// `kl` leaves them out, DESIGN.md §6).
    pub zeros: u64,
    /// Per-sample min/max sums for the moving average (present when `ema` is set).
    pub ema_sums: Option<EmaSums>,
    /// Histogram of |x|.
    pub abs_hist: Option<Histogram>,
    /// Histogram of signed x.
    pub hist: Option<Histogram>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sum_is_exact_and_order_free() {
        // 1e30 + 1 - 1e30 loses the 1 in any float type; the exact sum keeps it.
        let vals = [
            1e30f32,
            1.0,
            -1e30,
            f32::MIN_POSITIVE,
            -3.5,
            f32::from_bits(1),
        ];
        let mut a = ExactSum::default();
        vals.iter().for_each(|&v| a.add(v));
        let mut b = ExactSum::default();
        vals.iter().rev().for_each(|&v| b.add(v));
        assert_eq!(a, b);
        let expected = 1.0 + f32::MIN_POSITIVE as f64 - 3.5 + 2f64.powi(-149);
        assert_eq!(a.to_f64(), expected);
        // Split into partial sums and merged.
        let mut p = ExactSum::default();
        let mut q = ExactSum::default();
        vals[..2].iter().for_each(|&v| p.add(v));
        vals[2..].iter().for_each(|&v| q.add(v));
        q.merge(&p);
        assert_eq!(q, a);
        // Extremes do not overflow.
        let mut m = ExactSum::default();
        for _ in 0..1000 {
            m.add(f32::MAX);
        }
        assert_eq!(m.to_f64(), 1000.0 * f32::MAX as f64);
        let mut n = ExactSum::default();
        n.add(-f32::MAX);
        assert_eq!(n.to_f64(), -(f32::MAX as f64));
    }

    #[test]
    fn ema_sums_mean() {
        let mut s = EmaSums::default();
        assert_eq!(s.mean(), None);
        for (lo, hi) in [(-1.0f32, 2.0f32), (-3.0, 4.0)] {
            s.samples += 1;
            s.min_sum.add(lo);
            s.max_sum.add(hi);
        }
        assert_eq!(s.mean(), Some((-2.0, 3.0)));
    }
}
