//! `collect`: stream the calibration data through the fp32 interpreter and accumulate every
//! observer's statistics (DESIGN.md §4, §6, §7).
//!
//! - Statistics come from `--load-stats FILE...` (merged exactly, refused when collected on
//!   another model), from the `--calib` source, or both; `--save-stats FILE` writes the
//!   result, so a calibration set can be sharded across processes (README "Calibration").
//! - The samples are split among worker threads; each worker owns an interpreter plan (built
//!   once, with the observed values kept visible through fusion) and a private copy of every
//!   observer's statistics, and pulls sample indices from a shared counter. The copies are
//!   merged at the end. Statistics merge exactly and in any order (`qopt_calib::stats`), so the
//!   result is the same, bit for bit, for any thread count and any work split.
//! - Memory is flat in the number of samples: a worker holds one sample and the plan's buffers;
//!   every activation is binned and dropped as the interpreter produces it.
//! - A sample with NaN/Inf values is skipped and counted in a warning, or with `--strict`
//!   fails the pass naming it. An unreadable or wrongly sized sample fails the pass naming the
//!   file and sample; when several fail, the first in sample order is reported, whatever the
//!   thread timing.
//! - `holdout=K` leaves the last K samples of the source out of the statistics, for
//!   `thresholds{method=auto holdout=K}` to score candidate ranges on unseen data.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use qopt_calib::source::{CalibData, InputSpec, SourceOptions, SourceSpec};
use qopt_calib::statsfile::{self, StatsSet};
use qopt_calib::{ObserverConfig, Statistics};
use qopt_interp::{Plan, PlanOptions};
use qopt_ir::{DType, Graph, NodeId, ObserverState, Op, Shape, Tensor, ValueId};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};

use crate::CalibSourceArg;
use crate::calib_inputs::CalibSettings;
use crate::observe::observers;

pub const OPTIONS: &[OptionSpec] = &[OptionSpec {
    name: "holdout",
    kind: OptKind::Int {
        min: 0,
        max: i64::MAX,
    },
    default: Some("0"),
    help: "leave the last K samples out of the statistics (scored by thresholds{method=auto})",
}];

pub struct Collect {
    holdout: usize,
}

impl Collect {
    pub fn create(o: &PassOptions) -> Result<Box<dyn Pass>, String> {
        Ok(Box::new(Collect {
            holdout: o.int("holdout").unwrap_or(0) as usize,
        }))
    }
}

/// The statistics-file fingerprint of a graph's observed values (names and shapes).
pub fn stats_fingerprint(g: &Graph, obs: &[(NodeId, ValueId)]) -> String {
    let unknown = Shape(vec![]);
    statsfile::fingerprint(obs.iter().map(|&(_, v)| {
        let vi = g.value(v);
        (vi.name.as_str(), vi.ty.shape.as_ref().unwrap_or(&unknown))
    }))
}

/// The graph inputs as the calibration sources need them (known type and rank).
pub fn input_specs(g: &Graph) -> Result<Vec<InputSpec>, PassError> {
    g.input_values()
        .into_iter()
        .map(|v| {
            let vi = g.value(v);
            let shape = vi.ty.shape.clone().ok_or_else(|| {
                PassError::msg(format!(
                    "graph input '{}' has no known shape; give --input-shape {}=D0,D1,...",
                    vi.name, vi.name
                ))
            })?;
            Ok(InputSpec {
                name: vi.name.clone(),
                dtype: vi.ty.dtype.unwrap_or(DType::F32),
                shape,
            })
        })
        .collect()
}

/// Open the `--calib` source of the context for this graph (`None` without `--calib`).
pub fn open_source(g: &Graph, cx: &PassContext) -> Result<Option<CalibData>, PassError> {
    let Some(CalibSourceArg(arg)) = cx.get::<CalibSourceArg>() else {
        return Ok(None);
    };
    let settings = cx.get::<CalibSettings>().cloned().unwrap_or_default();
    let spec = SourceSpec::parse(arg).map_err(|e| PassError::Io(e.to_string()))?;
    let opts = SourceOptions {
        limit: settings.limit,
        preprocess: settings.preprocess.clone(),
        strict: settings.strict,
    };
    let data = CalibData::open(&spec, &input_specs(g)?, &opts)
        .map_err(|e| PassError::Io(e.to_string()))?;
    Ok(Some(data))
}

/// The samples of `data` at `indices` that the source accepts (inputs by name), in order.
pub fn load_accepted(
    data: &CalibData,
    indices: impl IntoIterator<Item = usize>,
    limit: usize,
) -> Result<Vec<Vec<(String, Tensor)>>, PassError> {
    let mut samples = Vec::new();
    for i in indices {
        if samples.len() == limit {
            break;
        }
        let s = data.load(i).map_err(|e| PassError::Io(e.to_string()))?;
        if data
            .accept(&s, &qopt_calib::NoProgress)
            .map_err(|e| PassError::Io(e.to_string()))?
        {
            samples.push(s.inputs);
        }
    }
    Ok(samples)
}

/// Worker threads for `n` jobs: the context's thread count (default: all cores), at most `n`.
pub fn thread_count(cx: &PassContext) -> usize {
    cx.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Feed one interpreter output to the observers watching it.
fn observe_tensor(states: &mut [ObserverState], t: &Tensor) {
    let owned;
    let a = match t.as_f32() {
        Some(a) => a,
        None if t.dtype().is_float() => {
            owned = t.cast(DType::F32);
            owned.as_f32().expect("cast to f32")
        }
        None => return,
    };
    let copy;
    let xs = match a.as_slice() {
        Some(xs) => xs,
        None => {
            copy = a.iter().copied().collect::<Vec<f32>>();
            &copy
        }
    };
    for s in states {
        s.update(xs);
    }
}

/// What the workers found, besides statistics.
#[derive(Default)]
struct Outcome {
    /// (position in the work list, message) of failed samples.
    errors: Vec<(usize, String)>,
    /// (sample index, origin, NaN/Inf count) of skipped samples.
    skipped: Vec<(usize, String, u64)>,
    used: usize,
}

/// Run the samples `work` through the interpreter on `threads` workers; returns one set of
/// partial statistics per worker, each parallel to `configs`.
fn run_workers(
    g: &Graph,
    data: &CalibData,
    work: &[usize],
    watched: &[ValueId],
    configs: &[ObserverConfig],
    threads: usize,
    cx: &PassContext,
) -> Result<(Vec<Vec<ObserverState>>, Outcome), PassError> {
    let workers = threads.min(work.len()).max(1);
    let plan_threads = (threads / workers).max(1);
    let mut keep: Vec<ValueId> = watched.to_vec();
    keep.dedup();
    // Build one plan up front, so an unsupported op is reported once, before any worker starts.
    let opts = PlanOptions {
        threads: Some(plan_threads),
        fuse: true,
        keep,
        profile: false,
    };
    let mut first_plan = Some(
        Plan::new(g, &opts)
            .map_err(|e| PassError::msg(format!("cannot run the model for calibration: {e}")))?,
    );
    let next = AtomicUsize::new(0);
    let stop = AtomicUsize::new(usize::MAX);
    let outcome = Mutex::new(Outcome::default());
    let progress = cx.progress.clone();
    let mut plans = Vec::with_capacity(workers);
    for _ in 0..workers {
        plans.push(match first_plan.take() {
            Some(p) => Ok(p),
            None => Plan::new(g, &opts),
        });
    }
    let partials: Vec<Result<Vec<ObserverState>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plans
            .into_iter()
            .map(|plan| {
                let (next, stop, outcome, progress) = (&next, &stop, &outcome, &progress);
                scope.spawn(move || -> Result<Vec<ObserverState>, String> {
                    let mut plan = plan.map_err(|e| e.to_string())?;
                    let mut states: Vec<ObserverState> = configs
                        .iter()
                        .map(|c| c.new_state().map_err(|e| e.to_string()))
                        .collect::<Result<_, _>>()?;
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= work.len() || k >= stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = work[k];
                        match run_sample(&mut plan, data, i, watched, &mut states) {
                            Ok(None) => outcome.lock().expect("no panics").used += 1,
                            Ok(Some((origin, n))) => outcome
                                .lock()
                                .expect("no panics")
                                .skipped
                                .push((i, origin, n)),
                            Err(msg) => {
                                stop.fetch_min(k, Ordering::Relaxed);
                                outcome.lock().expect("no panics").errors.push((k, msg));
                            }
                        }
                        progress.advance(1);
                    }
                    Ok(states)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a calibration worker panicked".into()))
            })
            .collect()
    });
    let outcome = outcome.into_inner().expect("no panics");
    if let Some((_, msg)) = outcome.errors.iter().min_by_key(|(k, _)| *k) {
        return Err(PassError::Io(msg.clone()));
    }
    let partials = partials
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(PassError::Failed)?;
    Ok((partials, outcome))
}

/// Load sample `i`, run it, update `states`. `Ok(Some(origin, count))`: skipped for NaN/Inf.
fn run_sample(
    plan: &mut Plan,
    data: &CalibData,
    i: usize,
    watched: &[ValueId],
    states: &mut [ObserverState],
) -> Result<Option<(String, u64)>, String> {
    let s = data.load(i).map_err(|e| e.to_string())?;
    if !data
        .accept(&s, &qopt_calib::NoProgress)
        .map_err(|e| e.to_string())?
    {
        return Ok(Some((s.origin, s.nonfinite)));
    }
    let named: Vec<(&str, &Tensor)> = s.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let outs = plan
        .run_with(&named, |v, t| {
            // `watched` is sorted: the observers of v are one run of it.
            let lo = watched.partition_point(|&w| w < v);
            let hi = watched.partition_point(|&w| w <= v);
            if lo < hi {
                observe_tensor(&mut states[lo..hi], t);
            }
        })
        .map_err(|e| format!("{}: the fp32 interpreter failed: {e}", s.origin))?;
    plan.recycle(outs);
    Ok(None)
}

fn observer_state_mut(g: &mut Graph, n: NodeId) -> &mut ObserverState {
    match &mut g.node_mut(n).op {
        Op::Observer(s) => s,
        _ => unreachable!("observers() returns Observer nodes"),
    }
}

fn list_some(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

impl Collect {
    fn collect_source(
        &self,
        g: &mut Graph,
        cx: &mut PassContext,
        data: &CalibData,
        obs: &[(NodeId, ValueId)],
    ) -> Result<(), PassError> {
        let settings = cx.get::<CalibSettings>().cloned().unwrap_or_default();
        let total = data.len();
        if self.holdout >= total {
            return Err(PassError::msg(format!(
                "holdout={} leaves no samples for statistics: {} has {total}",
                self.holdout,
                data.name()
            )));
        }
        let counted = total - self.holdout;
        let work: Vec<usize> = (0..counted)
            .filter(|i| settings.shard.is_none_or(|(s, k)| i % k == s))
            .collect();
        if work.is_empty() {
            let (s, k) = settings.shard.unwrap_or((0, 1));
            return Err(PassError::msg(format!(
                "--calib-shard {s}/{k} selects none of the {counted} samples of {}",
                data.name()
            )));
        }
        // Observers sorted by the value they watch, so a hook finds them by binary search.
        let mut order: Vec<usize> = (0..obs.len()).collect();
        order.sort_by_key(|&j| (obs[j].1, j));
        let watched: Vec<ValueId> = order.iter().map(|&j| obs[j].1).collect();
        let configs: Vec<ObserverConfig> = order
            .iter()
            .map(|&j| match &g.node(obs[j].0).op {
                Op::Observer(s) => ObserverConfig {
                    bins: s.bins,
                    ema: s.ema,
                },
                _ => unreachable!("observers() returns Observer nodes"),
            })
            .collect();
        let threads = thread_count(cx);
        cx.progress.begin("calibrating", Some(work.len() as u64));
        let result = run_workers(g, data, &work, &watched, &configs, threads, cx);
        cx.progress.end();
        let (partials, mut outcome) = result?;
        for (pos, &j) in order.iter().enumerate() {
            let (n, v) = obs[j];
            let name = g.value_name(v).to_string();
            let state = observer_state_mut(g, n);
            for p in &partials {
                state.merge(&p[pos]).map_err(|e| {
                    PassError::msg(format!("observer of '{name}': cannot merge: {e}"))
                })?;
            }
        }
        outcome.skipped.sort();
        if !outcome.skipped.is_empty() {
            let listed: Vec<String> = outcome
                .skipped
                .iter()
                .map(|(_, o, n)| format!("{o} ({n} NaN/Inf)"))
                .collect();
            cx.warn(
                "collect",
                format!(
                    "skipped {} of {} calibration samples with NaN/Inf values: {}",
                    outcome.skipped.len(),
                    work.len(),
                    list_some(&listed)
                ),
            );
        }
        if outcome.used == 0 {
            return Err(PassError::Io(format!(
                "no usable calibration sample in {}: every sample has NaN/Inf values",
                data.name()
            )));
        }
        cx.note(
            "collect",
            format!(
                "{} samples from {} on {threads} thread(s), {} values observed",
                outcome.used,
                data.name(),
                obs.len()
            ),
        );
        Ok(())
    }
}

impl Pass for Collect {
    fn name(&self) -> &str {
        "collect"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let obs = observers(g);
        if obs.is_empty() {
            return Err(PassError::msg(
                "the graph has no Observer nodes: run 'observe' first (or 'calib' for all three steps)",
            ));
        }
        let settings = cx.get::<CalibSettings>().cloned().unwrap_or_default();
        let data = open_source(g, cx)?;
        if data.is_none() && settings.load_stats.is_empty() {
            return Err(PassError::msg(
                "no calibration data: give --calib SOURCE (a folder of images or .npy files, a .npy/.npz file, random:N) or --load-stats FILE",
            ));
        }
        let fingerprint = stats_fingerprint(g, &obs);
        if !settings.load_stats.is_empty() {
            let set = statsfile::load(&settings.load_stats, Some(&fingerprint)).map_err(|e| {
                let hint = match e {
                    statsfile::StatsFileError::Fingerprint { .. } => {
                        " (or with other --target, --keep-fp32, --override or --input-shape options)"
                    }
                    _ => "",
                };
                PassError::Io(format!("{e}{hint}"))
            })?;
            for &(n, v) in &obs {
                let name = g.value_name(v).to_string();
                if let Some(loaded) = set.values.get(&name) {
                    observer_state_mut(g, n).merge(loaded).map_err(|e| {
                        PassError::Io(format!(
                            "statistics of '{name}' do not fit its observer (observe{{bins=..}} differs?): {e}"
                        ))
                    })?;
                }
            }
            cx.note(
                "collect",
                format!(
                    "merged statistics of {} values from {} file(s)",
                    set.values.len(),
                    settings.load_stats.len()
                ),
            );
        }
        if let Some(data) = &data {
            self.collect_source(g, cx, data, &obs)?;
        }
        let unseen: Vec<String> = obs
            .iter()
            .filter(|&&(n, _)| matches!(&g.node(n).op, Op::Observer(s) if s.samples == 0))
            .map(|&(_, v)| g.value_name(v).to_string())
            .collect();
        if !unseen.is_empty() {
            cx.warn(
                "collect",
                format!(
                    "{} observed values got no statistics (no graph output depends on them): {}",
                    unseen.len(),
                    list_some(&unseen)
                ),
            );
        }
        let nonfinite: Vec<String> = obs
            .iter()
            .filter(|&&(n, _)| matches!(&g.node(n).op, Op::Observer(s) if s.nonfinite > 0))
            .map(|&(_, v)| g.value_name(v).to_string())
            .collect();
        if !nonfinite.is_empty() {
            cx.warn(
                "collect",
                format!(
                    "NaN/Inf appeared inside the model in {} values (left out of their statistics): {}",
                    nonfinite.len(),
                    list_some(&nonfinite)
                ),
            );
        }
        if let Some(path) = &settings.save_stats {
            let mut values = BTreeMap::new();
            for &(n, v) in &obs {
                if let Op::Observer(s) = &g.node(n).op {
                    values
                        .entry(g.value_name(v).to_string())
                        .or_insert_with(|| (**s).clone());
                }
            }
            statsfile::save(
                path,
                &StatsSet {
                    fingerprint,
                    values,
                },
            )
            .map_err(|e| PassError::Io(e.to_string()))?;
        }
        Ok(Changed::Yes)
    }
}
