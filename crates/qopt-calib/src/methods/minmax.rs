//! `minmax`: the running min/max of everything observed, or its moving average.
//!
//! The moving average follows ONNX Runtime's `MinMaxCalibrater(moving_average=True)`
//! (`onnxruntime/python/tools/quantization/calibrate.py`): ORT reduces each calibration
//! batch to its min and max and, with the default `max_intermediate_outputs=None`, returns
//! `np.nanmean` of those per-batch values; `averaging_constant` only enters when ORT folds
//! chunks of batches together (`merge_range`), an order-dependent step qopt does not copy
//! because statistics must merge exactly. Each qopt sample is one batch.

use qopt_ir::ObserverState;

use crate::stats::Statistics;

/// The (min, max) of an observer, averaged per sample when the observer keeps a moving average.
pub fn minmax(state: &ObserverState) -> Option<(f64, f64)> {
    state.range_min_max().map(|(a, b)| (a as f64, b as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ObserverConfig;

    #[test]
    fn running_and_averaged() {
        // Known answer: samples [-1, 3] and [-3, 1]: running range [-3, 3], averaged [-2, 2].
        let mut s = ObserverConfig { bins: 0, ema: None }.new_state().unwrap();
        s.update(&[-1.0, 3.0]);
        s.update(&[-3.0, 1.0]);
        assert_eq!(minmax(&s), Some((-3.0, 3.0)));
        let mut e = ObserverConfig {
            bins: 0,
            ema: Some(0.01),
        }
        .new_state()
        .unwrap();
        e.update(&[-1.0, 3.0]);
        e.update(&[-3.0, 1.0]);
        assert_eq!(minmax(&e), Some((-2.0, 2.0)));
    }
}
