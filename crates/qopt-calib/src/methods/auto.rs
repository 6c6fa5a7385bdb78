//! `auto`: per value, the candidate range (one from every other method) with the least error
//! as measured by the caller.
//!
//! The error needs the interpreter (run the layer with the value fake-quantized to a
//! candidate range and compare its output with fp32, on held-back calibration samples, as the
//! `thresholds` pass will do), so this module only builds the candidates and picks the best
//! under a scoring callback. Candidates come in a fixed order (minmax, percentile, percentile of |x|, kl,
//! kl-signed, mse, admm); identical ranges are scored once (the first method keeps them);
//! ties and NaN scores resolve to the earlier candidate, so the choice is deterministic.

use qopt_ir::{ObserverState, Range};

use super::{Method, MethodError, ThresholdOptions, threshold};

/// One candidate range and the method that proposed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub method: Method,
    pub range: Range,
}

/// The methods `auto` draws candidates from, in order.
pub fn candidate_methods() -> Vec<Method> {
    vec![
        Method::MinMax { ema: None },
        Method::Percentile {
            p: 99.99,
            abs: None,
        },
        // ONNX Runtime's symmetric percentile, clipped to the observed range: for an
        // asymmetric target one cut over both tails (the same range as above when symmetric).
        Method::Percentile {
            p: 99.99,
            abs: Some(true),
        },
        Method::Kl { levels: None },
        Method::KlSigned {
            levels: 128,
            bins: None,
        },
        Method::Mse,
        Method::Admm,
    ]
}

/// Every candidate method's range for one observer, in [`candidate_methods`] order; `None`
/// where the method cannot run on it (no histogram).
pub fn ranges_by_method(
    state: &ObserverState,
    opts: &ThresholdOptions,
) -> Result<Vec<(Method, Option<Range>)>, MethodError> {
    let mut out = Vec::new();
    for m in candidate_methods() {
        match threshold(&m, state, opts) {
            Ok(range) => out.push((m, Some(range))),
            Err(MethodError::NoHistogram(_)) => out.push((m, None)),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The distinct candidates among [`ranges_by_method`]'s ranges (the first method keeps a
/// repeated range).
pub fn distinct(by_method: &[(Method, Option<Range>)]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    for (m, r) in by_method {
        if let Some(range) = *r
            && !out.iter().any(|c| c.range == range)
        {
            out.push(Candidate {
                method: m.clone(),
                range,
            });
        }
    }
    out
}

/// Candidate ranges for one observer; methods that cannot run on it (no histogram) are
/// skipped, and repeated ranges are dropped.
pub fn candidates(
    state: &ObserverState,
    opts: &ThresholdOptions,
) -> Result<Vec<Candidate>, MethodError> {
    Ok(distinct(&ranges_by_method(state, opts)?))
}

/// What `auto` chose for one value.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoChoice {
    pub chosen: Candidate,
    /// Every candidate with its score, in candidate order.
    pub scores: Vec<(Candidate, f64)>,
}

/// Score every candidate and keep the least (first on ties; NaN counts as worst).
pub fn select<E>(
    candidates: Vec<Candidate>,
    mut score: impl FnMut(&Candidate) -> Result<f64, E>,
) -> Result<Option<AutoChoice>, E> {
    let mut scores = Vec::with_capacity(candidates.len());
    let mut best: Option<(f64, usize)> = None;
    for (i, c) in candidates.into_iter().enumerate() {
        let s = score(&c)?;
        let key = if s.is_nan() { f64::INFINITY } else { s };
        if best.is_none_or(|(b, _)| key < b) {
            best = Some((key, i));
        }
        scores.push((c, s));
    }
    Ok(best.map(|(_, i)| AutoChoice {
        chosen: scores[i].0.clone(),
        scores,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ObserverConfig, Statistics};

    fn state() -> ObserverState {
        // A bell with a far outlier: minmax keeps the outlier, the others clip.
        let mut s = ObserverConfig::default().new_state().unwrap();
        let xs: Vec<f32> = (0..20000)
            .map(|i| {
                let u = (i as f32 + 0.5) / 20000.0;
                (u - 0.5) * 4.0 * (1.0 - (u - 0.5).abs())
            })
            .chain([40.0])
            .collect();
        s.update(&xs);
        s
    }

    #[test]
    fn picks_the_least_scored_candidate() {
        let opts = ThresholdOptions::default();
        let cands = candidates(&state(), &opts).unwrap();
        assert!(cands.len() >= 3, "{cands:?}");
        assert_eq!(cands[0].method, Method::MinMax { ema: None });
        // A synthetic scorer: distance of the range's max from 1.5.
        let choice = select(cands.clone(), |c| {
            Ok::<_, ()>((c.range.max - 1.5).abs() as f64)
        })
        .unwrap()
        .unwrap();
        let best = cands
            .iter()
            .map(|c| (c.range.max - 1.5).abs())
            .fold(f32::INFINITY, f32::min);
        assert_eq!((choice.chosen.range.max - 1.5).abs(), best);
        assert_eq!(choice.scores.len(), cands.len());
        // Ties go to the first candidate; NaN never wins; errors propagate.
        let tie = select(cands.clone(), |_| Ok::<_, ()>(1.0))
            .unwrap()
            .unwrap();
        assert_eq!(tie.chosen, cands[0]);
        let nan = select(cands.clone(), |c| {
            Ok::<_, ()>(if c.method == cands[0].method {
                f64::NAN
            } else {
                2.0
            })
        })
        .unwrap()
        .unwrap();
        assert_eq!(nan.chosen, cands[1]);
        assert_eq!(select(cands, |_| Err::<f64, _>("boom")), Err("boom"));
        assert_eq!(select(vec![], |_| Ok::<_, ()>(0.0)), Ok(None));
    }
}
