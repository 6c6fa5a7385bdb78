//! `thresholds`: turn every observer's statistics into a calibrated range on the value it
//! watches (`@range=[min, max]`), then delete the observers (DESIGN.md §4, §5, §6).
//!
//! The method for a value is the `--override PATTERN=METHOD` matching its name or its
//! producer's name, else the pass's `method` option (`p`, `levels` set the percentile and
//! the KL grid), else the target's default method. The methods are `qopt_calib::methods`
//! (minmax, percentile, kl = TensorRT's EntropyCalibration2, kl-signed = ONNX Runtime's
//! entropy search, mse, admm), with the rules they share: ranges include 0, and they are
//! symmetric `[-t, t]` for targets whose activations are symmetric (TensorRT).
//!
//! `auto` scores each value's candidate ranges (one per method) by the error they cause in
//! the layers that read the value, measured with the fp32 interpreter on calibration samples
//! (`thresholds_auto`), and keeps the best. Values whose method was chosen by `auto` or by an
//! override carry a `@calib="METHOD"` note saying which method gave their range.
//!
//! A value whose observer saw no finite number gets no range (it stays fp32) and a warning.

use qopt_calib::methods::auto::{self, Candidate};
use qopt_calib::methods::{self, Method, ThresholdOptions};
use qopt_ir::{Attr, Graph, NodeId, ObserverState, Op, ValueId};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};
use rayon::prelude::*;

use crate::calib_inputs::{LayerRules, pass_method, target_spec};
use crate::observe::observers;
use crate::thresholds_auto;
use crate::thresholds_refine::{self, AutoValue};

/// The note naming the method behind a value's range, where it is not the pass's own.
pub const METHOD_NOTE: &str = "calib";

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "method",
        kind: OptKind::Str,
        default: None,
        help: "minmax|percentile|kl|kl-signed|mse|admm|auto (default: the target's)",
    },
    OptionSpec {
        name: "p",
        kind: OptKind::Float {
            min: 0.0,
            max: 100.0,
        },
        default: None,
        help: "percentile: the percentile of |x| kept (default 99.99)",
    },
    OptionSpec {
        name: "abs",
        kind: OptKind::Bool,
        default: None,
        help: "percentile: cut |x| (true, ONNX Runtime's symmetric form) or each tail (false); default: the target's symmetry",
    },
    OptionSpec {
        name: "levels",
        kind: OptKind::Int {
            min: 2,
            max: 1 << 20,
        },
        default: None,
        help: "kl, kl-signed: quantized levels the KL search compares with (default 128)",
    },
    OptionSpec {
        name: "holdout",
        kind: OptKind::Int {
            min: 0,
            max: i64::MAX,
        },
        default: Some("0"),
        help: "auto: score on the last K samples, left out by collect{holdout=K} (0: the last 4 calibration samples)",
    },
    OptionSpec {
        name: "refine",
        kind: OptKind::Int { min: 0, max: 100 },
        default: None,
        help: "auto: then pick the best whole-network assignment (each method everywhere, or the local choice) by the network's output error, and run K greedy per-value sweeps on it (0: the start only)",
    },
    OptionSpec {
        name: "refine-samples",
        kind: OptKind::Int {
            min: 1,
            max: i64::MAX,
        },
        default: Some("16"),
        help: "auto refine: the last N calibration samples the network runs on",
    },
];

pub struct Thresholds {
    method: Option<String>,
    p: Option<f64>,
    abs: Option<bool>,
    levels: Option<usize>,
    holdout: usize,
    refine: Option<usize>,
    refine_samples: usize,
}

impl Thresholds {
    pub fn create(o: &PassOptions) -> Result<Box<dyn Pass>, String> {
        let t = Thresholds {
            method: o.str("method").map(str::to_string),
            p: o.float("p"),
            abs: o.is_set("abs").then(|| o.bool("abs")),
            levels: o.int("levels").map(|l| l as usize),
            holdout: o.int("holdout").unwrap_or(0) as usize,
            refine: o.int("refine").map(|k| k as usize),
            refine_samples: o.int("refine-samples").unwrap_or(16) as usize,
        };
        // Check what can be checked before the model is loaded.
        if let Some(m) = &t.method {
            t.with_options(Method::parse(m).map_err(|e| e.to_string())?)?;
        }
        Ok(Box::new(t))
    }

    /// Apply the `p`, `abs` and `levels` options to the method they belong to.
    fn with_options(&self, mut m: Method) -> Result<Method, String> {
        if let Some(pv) = self.p {
            match &mut m {
                Method::Percentile { p, .. } if pv > 0.0 => *p = pv,
                Method::Percentile { .. } => return Err(format!("p={pv}: must be in (0, 100]")),
                other => {
                    return Err(format!(
                        "option p applies to method percentile, not {other}"
                    ));
                }
            }
        }
        if let Some(av) = self.abs {
            match &mut m {
                Method::Percentile { abs, .. } => *abs = Some(av),
                other => {
                    return Err(format!(
                        "option abs applies to method percentile, not {other}"
                    ));
                }
            }
        }
        if let Some(l) = self.levels {
            match &mut m {
                Method::Kl { levels } => *levels = Some(l),
                Method::KlSigned { levels, .. } => *levels = l,
                other => {
                    return Err(format!(
                        "option levels applies to methods kl and kl-signed, not {other}"
                    ));
                }
            }
        }
        Ok(m)
    }
}

fn state_of(g: &Graph, n: NodeId) -> &ObserverState {
    match &g.node(n).op {
        Op::Observer(s) => s,
        _ => unreachable!("observers() returns Observer nodes"),
    }
}

impl Pass for Thresholds {
    fn name(&self) -> &str {
        "thresholds"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let obs = observers(g);
        if obs.is_empty() {
            cx.note("thresholds", "no observers: nothing to calibrate");
            return Ok(Changed::No);
        }
        if obs.iter().all(|&(n, _)| state_of(g, n).samples == 0) {
            return Err(PassError::msg(
                "the observers hold no statistics: run 'collect' (with --calib or --load-stats) before 'thresholds', or use 'calib'",
            ));
        }
        let spec = target_spec(cx);
        let opts = ThresholdOptions {
            symmetric: spec.activations.symmetric,
            bits: 8,
        };
        let default = self
            .with_options(pass_method(self.method.as_deref(), cx).map_err(PassError::Failed)?)
            .map_err(PassError::Failed)?;
        let rules = cx.get::<LayerRules>().cloned().unwrap_or_default();

        // Decide every value's method; candidates for the `auto` ones.
        let mut plan: Vec<(NodeId, ValueId, Method, bool)> = Vec::new();
        let mut no_data: Vec<String> = Vec::new();
        let mut auto_values: Vec<(ValueId, Vec<Candidate>)> = Vec::new();
        let mut refine_values: Vec<AutoValue> = Vec::new();
        for &(n, v) in &obs {
            let (method, overridden) = match rules.override_for(g, v) {
                Some(o) => (o.method.clone(), true),
                None => (default.clone(), false),
            };
            let state = state_of(g, n);
            if state.min_max.is_none() {
                no_data.push(g.value_name(v).to_string());
                plan.push((n, v, method, overridden));
                continue;
            }
            if method == Method::Auto && !auto_values.iter().any(|(a, _)| *a == v) {
                // Each method's range once (the KL search is the costly one): the candidates
                // for `auto` and, for `refine`, the uniform starts.
                let by_method = auto::ranges_by_method(state, &opts)
                    .map_err(|e| PassError::msg(format!("value '{}': {e}", g.value_name(v))))?;
                let c = auto::distinct(&by_method);
                if self.refine.is_some() {
                    refine_values.push(AutoValue {
                        value: v,
                        candidates: c.clone(),
                        per_method: by_method,
                    });
                }
                auto_values.push((v, c));
            }
            plan.push((n, v, method, overridden));
        }
        let chosen = if auto_values.is_empty() {
            Vec::new()
        } else {
            thresholds_auto::choose(g, cx, auto_values, &opts, self.holdout)?
        };

        // Each value's threshold depends only on its own statistics: search them in parallel
        // (the KL search dominates the pass), then write them in plan order, so the result is
        // the same for any thread count.
        let search = |(n, v, method, overridden): &(NodeId, ValueId, Method, bool)| {
            if state_of(g, *n).min_max.is_none() {
                return Ok(None);
            }
            if *method == Method::Auto {
                let c = chosen
                    .iter()
                    .find(|(a, _)| a == v)
                    .map(|(_, c)| c.clone())
                    .expect("every auto value was scored");
                return Ok(Some((c.range, Some(c.method))));
            }
            let r = methods::threshold(method, state_of(g, *n), &opts).map_err(|e| {
                PassError::msg(format!(
                    "value '{}': method {method}: {e}",
                    g.value_name(*v)
                ))
            })?;
            Ok(Some((r, overridden.then_some(method.clone()))))
        };
        let threads = crate::collect::thread_count(cx).min(plan.len()).max(1);
        let found: Vec<Result<_, PassError>> =
            match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                Ok(pool) => pool.install(|| plan.par_iter().map(search).collect()),
                Err(_) => plan.iter().map(search).collect(),
            };
        for ((n, v, _, _), found) in plan.into_iter().zip(found) {
            if let Some((range, used)) = found? {
                let ann = &mut g.value_mut(v).ann;
                ann.range = Some(range);
                if let Some(m) = used {
                    ann.notes
                        .insert(METHOD_NOTE.into(), Attr::String(m.to_string()));
                }
            }
            // Observers are side nodes; one written by hand between a value and its readers
            // hands them back the value it watched.
            g.replace_all_uses(ValueId::new(n, 0), v);
            g.remove_node(n);
        }
        if !refine_values.is_empty() {
            let r = thresholds_refine::refine(
                g,
                cx,
                spec,
                &refine_values,
                self.refine.unwrap_or(0),
                self.refine_samples,
            )?;
            cx.note(
                "thresholds",
                format!(
                    "auto refine on {} samples: output SQNR {:.2} dB (local choice) -> {:.2} dB (start{}) -> {:.2} dB; {} of {} values changed, {} simulations",
                    r.samples,
                    thresholds_refine::sqnr_db(r.local),
                    thresholds_refine::sqnr_db(r.start),
                    r.start_method
                        .map(|m| format!(": {m} everywhere"))
                        .unwrap_or_default(),
                    thresholds_refine::sqnr_db(r.end),
                    r.changed_values,
                    refine_values.len(),
                    r.simulations
                ),
            );
        }
        if !no_data.is_empty() {
            cx.warn(
                "thresholds",
                format!(
                    "{} values saw no finite number and stay fp32: {}",
                    no_data.len(),
                    no_data.join(", ")
                ),
            );
        }
        cx.note(
            "thresholds",
            format!(
                "{} ranges by {default} ({} target, {})",
                obs.len() - no_data.len(),
                spec.target.name(),
                if opts.symmetric {
                    "symmetric"
                } else {
                    "asymmetric"
                }
            ),
        );
        Ok(Changed::Yes)
    }
}
