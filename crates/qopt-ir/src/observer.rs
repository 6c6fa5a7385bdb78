//! State of a calibration observer node (see the `observe` and `collect` passes).
//!
//! The IR only stores this data so that it prints and travels with the graph;
//! the statistics are computed and consumed by `qopt-calib`.

/// Uniform histogram over `[lo, hi]` with `counts.len()` bins.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ObserverState {
    /// Histogram bins to keep (0: min/max only).
    pub bins: usize,
    /// Exponential moving average factor for min/max (ONNX Runtime's moving average), if any.
    pub ema: Option<f32>,
    /// Number of calibration samples seen.
    pub samples: u64,
    /// Running (or moving-average) min and max; `None` before any sample.
    pub min_max: Option<(f32, f32)>,
    /// Non-finite elements seen (skipped by every statistic).
    pub nonfinite: u64,
    /// Histogram of |x|.
    pub abs_hist: Option<Histogram>,
    /// Histogram of signed x.
    pub hist: Option<Histogram>,
}
