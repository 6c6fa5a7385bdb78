//! Streaming histograms whose bin width is a power of two, so growth and merge are exact.
//!
//! A histogram of |x| covers `[0, N * 2^k)`; a histogram of signed x covers
//! `[-(N/2) * 2^k, (N/2) * 2^k)`, with `N` bins of width `2^k`. The exponent `k` is the
//! smallest one whose range holds every value seen, so it is a function of the data's
//! extremes alone, not of the order in which the data arrived.
//!
//! Why powers of two: the bin of `x` is `floor(x / 2^k)`, and dividing an f32 by a power of
//! two is exact (done in f64, where no f32 times a power of two in our range can round), so
//! binning never rounds. When the range grows from `2^k` to `2^(k+m)`, old bin `j` becomes
//! `floor(j / 2^m)` (an arithmetic shift), and `floor(floor(y) / 2^m) = floor(y / 2^m)` for any
//! real `y`: a value binned early and then re-binned lands exactly where it would have landed
//! had the final range been known from the start. Hence the final counts are the same for
//! any order of samples, any split across threads, and any merge order. ONNX Runtime and
//! pytorch-quantization instead append bins of the first batch's width, which makes the bin
//! edges depend on which batch came first. The price is resolution: the data's maximum lies
//! in the upper half of the range, so at least N/2 bins cover the data (methods look only at
//! the occupied bins).

use qopt_ir::Histogram;

/// Smallest bin-width exponent: 2^-126 is the smallest normal f32, so `hi` stays normal.
pub const MIN_EXP: i32 = -126;

/// Which histogram: of |x| or of signed x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Abs,
    Signed,
}

/// Largest exponent for which the histogram's upper bound is a finite f32; values beyond
/// it (within 2x of f32::MAX) are counted in the last bin.
fn max_exp(bins: usize) -> i32 {
    let mut k = 127 - (bins as f64).log2().ceil() as i32;
    while (bins as f64) * 2f64.powi(k + 1) <= f32::MAX as f64 {
        k += 1;
    }
    k
}

fn span(bins: usize, side: Side) -> f64 {
    match side {
        Side::Abs => bins as f64,
        Side::Signed => (bins / 2) as f64,
    }
}

/// The smallest exponent whose range holds `[min, max]` (for `Side::Abs`, `min` is ignored
/// and `max` is the largest |x|).
pub fn exponent_for(bins: usize, side: Side, min: f32, max: f32) -> i32 {
    let s = span(bins, side);
    let (min, max) = (min as f64, max as f64);
    // The range [-s*2^k, s*2^k) must hold max (strictly) and, when signed, min.
    let fits = |k: i32| {
        let r = s * 2f64.powi(k);
        max < r && (side == Side::Abs || min >= -r)
    };
    let need = match side {
        Side::Abs => max,
        Side::Signed => max.max(-min),
    };
    let mut k = if need > 0.0 {
        ((need / s).log2().floor() as i32).clamp(MIN_EXP, max_exp(bins))
    } else {
        MIN_EXP
    };
    while k > MIN_EXP && fits(k - 1) {
        k -= 1;
    }
    while k < max_exp(bins) && !fits(k) {
        k += 1;
    }
    k
}

/// An empty histogram with exponent `k`.
pub fn empty(bins: usize, side: Side, k: i32) -> Histogram {
    let hi = (span(bins, side) * 2f64.powi(k)) as f32;
    Histogram {
        lo: if side == Side::Abs { 0.0 } else { -hi },
        hi,
        counts: vec![0; bins],
    }
}

/// The exponent of a histogram with this module's layout, or a description of why not.
pub fn exponent_of(h: &Histogram, side: Side) -> Result<i32, String> {
    let n = h.counts.len();
    if n < 2 || !n.is_multiple_of(2) {
        return Err(format!("{n} bins (need an even number, at least 2)"));
    }
    let w = h.bin_width();
    let k = w.log2().round() as i32;
    let ok_lo = match side {
        Side::Abs => h.lo == 0.0,
        Side::Signed => h.lo == -h.hi,
    };
    if !(w > 0.0 && 2f64.powi(k) == w && ok_lo && (MIN_EXP..=max_exp(n)).contains(&k)) {
        return Err(format!(
            "range [{}, {}) with {n} bins is not a power-of-two {} layout",
            h.lo,
            h.hi,
            if side == Side::Abs { "|x|" } else { "signed" }
        ));
    }
    Ok(k)
}

/// Re-bin `h` (exponent `from`) to the coarser exponent `to` (exact, see the module comment).
pub fn regrow(h: &mut Histogram, side: Side, from: i32, to: i32) {
    debug_assert!(to >= from);
    if to == from {
        return;
    }
    let n = h.counts.len();
    let shift = (to - from) as u32;
    let mut out = empty(n, side, to);
    for (j, &c) in h.counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let idx = match side {
            Side::Abs => j.checked_shr(shift).unwrap_or(0),
            Side::Signed => {
                let half = (n / 2) as i64;
                let rel = j as i64 - half;
                // Arithmetic shift: floor division by 2^shift, also for negative bins.
                ((rel >> shift.min(63)) + half) as usize
            }
        };
        out.counts[idx] += c;
    }
    *h = out;
}

/// Bin index mapping for one histogram: `floor(x / 2^k)`, offset for the signed layout.
#[derive(Clone, Copy)]
pub struct Binner {
    inv_width: f64,
    half: i64,
    last: i64,
    side: Side,
}

impl Binner {
    pub fn new(bins: usize, side: Side, k: i32) -> Binner {
        Binner {
            inv_width: 2f64.powi(-k),
            half: (bins / 2) as i64,
            last: bins as i64 - 1,
            side,
        }
    }

    /// The bin of a finite `x` (clamped into the last bin only beyond the largest exponent).
    #[inline]
    pub fn index(&self, x: f32) -> usize {
        match self.side {
            Side::Abs => ((x.abs() as f64 * self.inv_width) as i64).min(self.last) as usize,
            Side::Signed => {
                // floor() without a libm call (baseline x86-64 has no SSE4.1 round): truncate,
                // then step down for negative non-integers. Exact: y is exact and |y| < 2^63.
                let y = x as f64 * self.inv_width;
                let t = y as i64;
                let floor = t - ((t as f64) > y) as i64;
                (floor + self.half).clamp(0, self.last) as usize
            }
        }
    }
}

/// Add `other` into `into` (both this module's layout, same bin count): exact.
pub fn merge_into(into: &mut Histogram, other: &Histogram, side: Side) -> Result<(), String> {
    if into.counts.len() != other.counts.len() {
        return Err(format!(
            "{} bins vs {} bins",
            into.counts.len(),
            other.counts.len()
        ));
    }
    let ka = exponent_of(into, side)?;
    let kb = exponent_of(other, side)?;
    let k = ka.max(kb);
    regrow(into, side, ka, k);
    let mut o = other.clone();
    regrow(&mut o, side, kb, k);
    for (a, b) in into.counts.iter_mut().zip(&o.counts) {
        *a += b;
    }
    Ok(())
}

/// Index one past the last non-empty bin (0 for an empty histogram).
pub fn occupied_len(counts: &[u64]) -> usize {
    counts.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponent_is_the_smallest_that_fits() {
        // 2048 bins of 2^-11 cover [0, 1): 0.99 fits, 1.0 needs 2^-10.
        assert_eq!(exponent_for(2048, Side::Abs, 0.0, 0.99), -11);
        assert_eq!(exponent_for(2048, Side::Abs, 0.0, 1.0), -10);
        assert_eq!(exponent_for(2048, Side::Abs, 0.0, 0.0), MIN_EXP);
        // Signed: 1024 bins each side; -1.0 fits at 2^-10 (lower edge is inclusive), 1.0 does not.
        assert_eq!(exponent_for(2048, Side::Signed, -1.0, 0.5), -10);
        assert_eq!(exponent_for(2048, Side::Signed, -0.5, 1.0), -9);
        // Huge values stay finite: the top exponent keeps hi finite.
        let k = exponent_for(2048, Side::Abs, 0.0, f32::MAX);
        assert!(empty(2048, Side::Abs, k).hi.is_finite());
        assert_eq!(Binner::new(2048, Side::Abs, k).index(f32::MAX), 2047);
    }

    #[test]
    fn signed_binning_floors_tiny_negatives() {
        // -1e-40 * 2^-100 underflows in f32 (to -0, floor 0); in f64 it is exact (floor -1).
        let b = Binner::new(2048, Side::Signed, 100);
        assert_eq!(b.index(-1e-40), 1023);
        assert_eq!(b.index(1e-40), 1024);
        assert_eq!(b.index(0.0), 1024);
    }

    #[test]
    fn regrow_equals_direct_binning() {
        // Values binned at a fine exponent and re-binned land where direct binning puts them.
        let vals: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 4001) as f32 * 0.013 - 26.0)
            .collect();
        for side in [Side::Abs, Side::Signed] {
            let (k0, k1) = (-8, -3);
            let mut fine = empty(64, side, k0);
            let bf = Binner::new(64, side, k0);
            let mut coarse = empty(64, side, k1);
            let bc = Binner::new(64, side, k1);
            let r = fine.hi;
            for &v in &vals {
                let inside = match side {
                    Side::Abs => v.abs() < r,
                    Side::Signed => v >= -r && v < r,
                };
                if inside {
                    fine.counts[bf.index(v)] += 1;
                    coarse.counts[bc.index(v)] += 1;
                }
            }
            regrow(&mut fine, side, k0, k1);
            assert_eq!(fine, coarse);
        }
    }
}
