//! Streaming statistics on [`ObserverState`]: update from an f32 slice, exact merge.
//!
//! Memory is O(bins) per observer whatever the number of samples: activations are
//! binned and dropped, never kept (DESIGN.md §6). Every statistic is an integer count,
//! a min/max or an [`qopt_ir::ExactSum`], and histograms re-bin exactly (see
//! [`crate::histogram`]), so a state built from samples in any order, on any number of
//! threads, or merged from partial states in any grouping is the same state, bit for bit.

use crate::histogram::{self, Binner, Side};
use qopt_ir::{EmaSums, Histogram, ObserverState};
use rayon::prelude::*;

/// Default number of histogram bins (TensorRT's EntropyCalibration2 uses 2048).
pub const DEFAULT_BINS: usize = 2048;

/// Slices longer than this are scanned in parallel chunks (results are identical).
const PAR_CHUNK: usize = 1 << 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatsError {
    #[error("histogram bins must be an even number from 2 to 1048576 (or 0 for none), got {0}")]
    Bins(usize),
    #[error("moving-average constant must be in [0, 1], got {0}")]
    Ema(f32),
    #[error("cannot merge statistics with {0} histogram bins into statistics with {1}")]
    BinsMismatch(usize, usize),
    #[error("cannot merge statistics with moving average {0:?} into statistics with {1:?}")]
    EmaMismatch(Option<f32>, Option<f32>),
    #[error("{which} histogram: {reason}")]
    Layout { which: &'static str, reason: String },
}

/// How an observer accumulates: histogram bins (0 for min/max only) and moving average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ObserverConfig {
    pub bins: usize,
    pub ema: Option<f32>,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        ObserverConfig {
            bins: DEFAULT_BINS,
            ema: None,
        }
    }
}

impl ObserverConfig {
    /// An empty state with this configuration.
    pub fn new_state(&self) -> Result<ObserverState, StatsError> {
        if self.bins != 0 && (!self.bins.is_multiple_of(2) || self.bins > 1 << 20) {
            return Err(StatsError::Bins(self.bins));
        }
        if let Some(c) = self.ema
            && !(0.0..=1.0).contains(&c)
        {
            return Err(StatsError::Ema(c));
        }
        Ok(ObserverState {
            bins: self.bins,
            ema: self.ema,
            ema_sums: self.ema.map(|_| EmaSums::default()),
            ..ObserverState::default()
        })
    }
}

/// Finite-value summary of one slice (the first pass of an update).
#[derive(Clone, Copy, Debug)]
struct Scan {
    finite: u64,
    nonfinite: u64,
    zeros: u64,
    min: f32,
    max: f32,
}

impl Scan {
    const EMPTY: Scan = Scan {
        finite: 0,
        nonfinite: 0,
        zeros: 0,
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
    };

    fn of(xs: &[f32]) -> Scan {
        let mut s = Scan::EMPTY;
        for &x in xs {
            if x.is_finite() {
                s.finite += 1;
                s.zeros += (x == 0.0) as u64;
                s.min = s.min.min(x);
                s.max = s.max.max(x);
            } else {
                s.nonfinite += 1;
            }
        }
        s
    }

    fn join(a: Scan, b: Scan) -> Scan {
        Scan {
            finite: a.finite + b.finite,
            nonfinite: a.nonfinite + b.nonfinite,
            zeros: a.zeros + b.zeros,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        }
    }
}

/// Count `xs` into the two histograms (finite values only).
fn bin_into(abs: &mut [u64], signed: &mut [u64], ba: Binner, bs: Binner, xs: &[f32]) {
    for &x in xs {
        if x.is_finite() {
            abs[ba.index(x)] += 1;
            signed[bs.index(x)] += 1;
        }
    }
}

/// Statistics operations on an observer's state.
pub trait Statistics {
    /// Accumulate one calibration sample's values of the observed tensor.
    fn update(&mut self, xs: &[f32]);
    /// Merge another state into this one, exactly.
    fn merge(&mut self, other: &ObserverState) -> Result<(), StatsError>;
    /// The min/max range: the moving average if configured, else the running min/max.
    fn range_min_max(&self) -> Option<(f32, f32)>;
}

impl Statistics for ObserverState {
    fn update(&mut self, xs: &[f32]) {
        let scan = if xs.len() > PAR_CHUNK {
            xs.par_chunks(PAR_CHUNK)
                .map(Scan::of)
                .reduce(|| Scan::EMPTY, Scan::join)
        } else {
            Scan::of(xs)
        };
        self.samples += 1;
        self.nonfinite += scan.nonfinite;
        if scan.finite == 0 {
            return;
        }
        self.zeros += scan.zeros;
        self.min_max = Some(match self.min_max {
            Some((lo, hi)) => (lo.min(scan.min), hi.max(scan.max)),
            None => (scan.min, scan.max),
        });
        if self.ema.is_some() {
            let sums = self.ema_sums.get_or_insert_with(EmaSums::default);
            sums.samples += 1;
            sums.min_sum.add(scan.min);
            sums.max_sum.add(scan.max);
        }
        if self.bins == 0 {
            return;
        }
        let n = self.bins;
        let amax = scan.max.abs().max(scan.min.abs());
        let ka = grow(&mut self.abs_hist, n, Side::Abs, 0.0, amax);
        let ks = grow(&mut self.hist, n, Side::Signed, scan.min, scan.max);
        let (ba, bs) = (
            Binner::new(n, Side::Abs, ka),
            Binner::new(n, Side::Signed, ks),
        );
        let abs = &mut self.abs_hist.as_mut().expect("grown").counts;
        let signed = &mut self.hist.as_mut().expect("grown").counts;
        if xs.len() > PAR_CHUNK {
            // Integer counts: the parallel sum equals the serial one exactly.
            let (pa, ps) = xs
                .par_chunks(PAR_CHUNK)
                .fold(
                    || (vec![0u64; n], vec![0u64; n]),
                    |(mut a, mut s), chunk| {
                        bin_into(&mut a, &mut s, ba, bs, chunk);
                        (a, s)
                    },
                )
                .reduce(
                    || (vec![0u64; n], vec![0u64; n]),
                    |(mut a, mut s), (a2, s2)| {
                        a.iter_mut().zip(&a2).for_each(|(x, y)| *x += y);
                        s.iter_mut().zip(&s2).for_each(|(x, y)| *x += y);
                        (a, s)
                    },
                );
            abs.iter_mut().zip(&pa).for_each(|(x, y)| *x += y);
            signed.iter_mut().zip(&ps).for_each(|(x, y)| *x += y);
        } else {
            bin_into(abs, signed, ba, bs, xs);
        }
    }

    fn merge(&mut self, other: &ObserverState) -> Result<(), StatsError> {
        if self.bins != other.bins {
            return Err(StatsError::BinsMismatch(other.bins, self.bins));
        }
        if self.ema != other.ema {
            return Err(StatsError::EmaMismatch(other.ema, self.ema));
        }
        // Check both histograms before changing anything, so a failed merge leaves self intact.
        let mut abs = self.abs_hist.clone();
        merge_hist(&mut abs, &other.abs_hist, Side::Abs, "|x|")?;
        let mut hist = self.hist.clone();
        merge_hist(&mut hist, &other.hist, Side::Signed, "signed")?;
        self.abs_hist = abs;
        self.hist = hist;
        self.samples += other.samples;
        self.nonfinite += other.nonfinite;
        self.zeros += other.zeros;
        self.min_max = match (self.min_max, other.min_max) {
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            (x, None) => x,
            (None, y) => y,
        };
        self.ema_sums = match (self.ema_sums, other.ema_sums) {
            (Some(mut a), Some(b)) => {
                a.samples += b.samples;
                a.min_sum.merge(&b.min_sum);
                a.max_sum.merge(&b.max_sum);
                Some(a)
            }
            (x, None) => x,
            (None, y) => y,
        };
        Ok(())
    }

    fn range_min_max(&self) -> Option<(f32, f32)> {
        match (self.ema, &self.ema_sums) {
            (Some(_), Some(sums)) => sums.mean(),
            _ => self.min_max,
        }
    }
}

/// Make sure `h` exists and its range holds `[min, max]`; returns its exponent.
fn grow(h: &mut Option<Histogram>, bins: usize, side: Side, min: f32, max: f32) -> i32 {
    let need = histogram::exponent_for(bins, side, min, max);
    match h {
        None => {
            *h = Some(histogram::empty(bins, side, need));
            need
        }
        Some(h) => {
            // Our own histograms always have the layout; a foreign one is rebuilt from scratch
            // only if it was never valid, which `merge` rejects before it gets here.
            let have = histogram::exponent_of(h, side).unwrap_or(need);
            let k = have.max(need);
            histogram::regrow(h, side, have, k);
            k
        }
    }
}

fn merge_hist(
    into: &mut Option<Histogram>,
    other: &Option<Histogram>,
    side: Side,
    which: &'static str,
) -> Result<(), StatsError> {
    let layout = |reason| StatsError::Layout { which, reason };
    match (into.as_mut(), other) {
        (_, None) => {
            if let Some(h) = into {
                histogram::exponent_of(h, side).map_err(layout)?;
            }
        }
        (None, Some(o)) => {
            histogram::exponent_of(o, side).map_err(layout)?;
            *into = Some(o.clone());
        }
        (Some(h), Some(o)) => histogram::merge_into(h, o, side).map_err(layout)?,
    }
    Ok(())
}

/// Build a state from one set of values (weights: a single "sample").
pub fn state_of_values(xs: &[f32], cfg: ObserverConfig) -> Result<ObserverState, StatsError> {
    let mut s = cfg.new_state()?;
    s.update(xs);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic heavy-tailed test signal with NaN/Inf sprinkled in.
    fn sample(i: usize, len: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(len);
        let mut s = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for j in 0..len {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            let x = ((u - 0.5) * 4.0).powi(3) * (1.0 + i as f64);
            v.push(match j % 997 {
                0 => f32::NAN,
                1 if i.is_multiple_of(3) => f32::INFINITY,
                2 => 0.0,
                _ => x as f32,
            });
        }
        v
    }

    fn cfg() -> ObserverConfig {
        ObserverConfig {
            bins: 2048,
            ema: Some(0.01),
        }
    }

    #[test]
    fn order_and_split_do_not_matter() {
        // Samples of growing range force re-binning at different moments per order.
        let samples: Vec<Vec<f32>> = (0..12).map(|i| sample(i, 3000 + 100 * i)).collect();
        let mut forward = cfg().new_state().unwrap();
        samples.iter().for_each(|s| forward.update(s));
        let mut backward = cfg().new_state().unwrap();
        samples.iter().rev().for_each(|s| backward.update(s));
        assert_eq!(forward, backward);
        // Three "threads" with interleaved samples, merged in two different groupings.
        let mut parts: Vec<ObserverState> = (0..3).map(|_| cfg().new_state().unwrap()).collect();
        for (i, s) in samples.iter().enumerate() {
            parts[(i * 7) % 3].update(s);
        }
        let mut m1 = parts[0].clone();
        m1.merge(&parts[1]).unwrap();
        m1.merge(&parts[2]).unwrap();
        let mut m2 = parts[2].clone();
        let mut p10 = parts[1].clone();
        p10.merge(&parts[0]).unwrap();
        m2.merge(&p10).unwrap();
        assert_eq!(m1, forward);
        assert_eq!(m2, forward);
        assert_eq!(forward.samples, 12);
        assert!(forward.nonfinite > 0 && forward.zeros > 0);
        // The histograms count every finite value exactly once.
        let finite: u64 = samples.iter().flatten().filter(|x| x.is_finite()).count() as u64;
        assert_eq!(forward.abs_hist.as_ref().unwrap().total(), finite);
        assert_eq!(forward.hist.as_ref().unwrap().total(), finite);
    }

    #[test]
    fn parallel_scan_equals_serial() {
        // A slice long enough for the rayon path, compared with the same values fed in pieces
        // short enough for the serial path and merged.
        let big = sample(5, 3 * PAR_CHUNK + 123);
        let mut whole = ObserverConfig::default().new_state().unwrap();
        whole.update(&big);
        let mut pieces = ObserverConfig::default().new_state().unwrap();
        for c in big.chunks(PAR_CHUNK / 2) {
            let mut p = ObserverConfig::default().new_state().unwrap();
            p.update(c);
            pieces.merge(&p).unwrap();
        }
        pieces.samples = 1; // one sample, fed in pieces
        assert_eq!(whole, pieces);
    }

    #[test]
    fn minmax_and_moving_average() {
        let mut s = cfg().new_state().unwrap();
        s.update(&[1.0, 2.0, f32::NAN]);
        s.update(&[-4.0, 0.5]);
        s.update(&[f32::NAN]); // no finite value: not in the average
        assert_eq!(s.min_max, Some((-4.0, 2.0)));
        assert_eq!(s.range_min_max(), Some((-1.5, 1.25)));
        assert_eq!((s.samples, s.nonfinite), (3, 2));
        let mut plain = ObserverConfig::default().new_state().unwrap();
        plain.update(&[1.0, 2.0]);
        plain.update(&[-4.0, 0.5]);
        assert_eq!(plain.range_min_max(), Some((-4.0, 2.0)));
    }

    #[test]
    fn histogram_bins_hold_the_right_values() {
        let mut s = ObserverConfig { bins: 8, ema: None }.new_state().unwrap();
        // max |x| = 3 -> 8 bins of width 0.5 for |x|; signed: 4 bins each side of width 1.
        s.update(&[0.0, 0.3, -0.6, 3.0, -2.5]);
        let a = s.abs_hist.as_ref().unwrap();
        assert_eq!((a.lo, a.hi), (0.0, 4.0));
        assert_eq!(a.counts, vec![2, 1, 0, 0, 0, 1, 1, 0]);
        let h = s.hist.as_ref().unwrap();
        assert_eq!((h.lo, h.hi), (-4.0, 4.0));
        assert_eq!(h.counts, vec![0, 1, 0, 1, 2, 0, 0, 1]);
        assert_eq!(s.zeros, 1);
    }

    #[test]
    fn bad_config_and_mismatched_merges_are_errors() {
        assert_eq!(
            ObserverConfig { bins: 7, ema: None }.new_state(),
            Err(StatsError::Bins(7))
        );
        assert!(matches!(
            ObserverConfig {
                bins: 8,
                ema: Some(2.0)
            }
            .new_state(),
            Err(StatsError::Ema(_))
        ));
        let mut a = ObserverConfig { bins: 8, ema: None }.new_state().unwrap();
        let b = ObserverConfig {
            bins: 16,
            ema: None,
        }
        .new_state()
        .unwrap();
        assert_eq!(a.merge(&b), Err(StatsError::BinsMismatch(16, 8)));
        let mut c = ObserverConfig { bins: 8, ema: None }.new_state().unwrap();
        c.update(&[1.0]);
        c.abs_hist.as_mut().unwrap().hi = 3.0; // not a power-of-two layout
        let before = a.clone();
        assert!(matches!(a.merge(&c), Err(StatsError::Layout { .. })));
        assert_eq!(a, before);
    }

    #[test]
    fn memory_does_not_grow_with_samples() {
        let mut s = ObserverConfig::default().new_state().unwrap();
        for i in 0..200 {
            s.update(&sample(i, 500));
        }
        assert_eq!(s.abs_hist.as_ref().unwrap().counts.len(), DEFAULT_BINS);
        assert_eq!(s.hist.as_ref().unwrap().counts.len(), DEFAULT_BINS);
    }
}
