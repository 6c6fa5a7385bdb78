//! `eq`: EasyQuant scale optimisation (Wu et al., "EasyQuant: Post-training Quantization via
//! Scale Optimization", 2020; DESIGN.md §6). Runs after `thresholds`, before `qdq`.
//!
//! For each weighted layer (Conv 2-D, Gemm, MatMul with a 2-D constant weight) in topological
//! order, on the first `samples` calibration samples:
//! - its input comes from the fake-quantized network upstream (every value the target
//!   quantizes goes through QuantizeLinear/DequantizeLinear numerics with the scales chosen so
//!   far, weights through their quantized values), its target is the fp32 layer output;
//! - `rounds` times: the weight scales (per output channel where the target quantizes the op
//!   per channel) and then the input activation scale are searched on `steps` points of
//!   `[alpha*S, beta*S]`, `S` the calibrated scale, maximising cosine similarity
//!   ([`search`]);
//! - the layer keeps the result only if its output cosine (mean over samples) is no worse than
//!   with the calibrated scales; the values are recorded as the note
//!   `@eq_cos=[before, after]` on the layer output.
//!
//! What `qdq` reads: a weight's chosen scales as `@q` on the weight constant (symmetric int8,
//! per channel), the activation scale by rescaling the `@range` of the value (of the range
//! that sets the scale of its same-scale group) by the chosen factor, noted `@eq_scale`.
//! An activation scale is searched at the first layer reading it; a value read by an earlier
//! node, with `@q` or a fixed-output scale, keeps its scale. `bits` sets the grid (7 for
//! int7, where the paper's gains are largest); give `qdq` the same `bits`.
//!
//! Finally the whole fake-quantized network is simulated with the calibrated and with the
//! chosen scales; if the network output cosine dropped, every change is undone (a warning
//! says so). Both figures are in the pass's note.

mod layer;
mod search;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ndarray::Array2;
use qopt_calib::qparams::{QScheme, dequantize_tensor, quantize_tensor};
use qopt_interp::eval_node;
use qopt_ir::{Attr, DType, Graph, NodeId, Op, QParams, Range, Tensor, ValueId};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};
use rayon::prelude::*;

use crate::calib_inputs::target_spec;
use crate::collect::{load_accepted, open_source};
use crate::qdq::constants::{fits_weight, weight_params, weight_scheme};
use crate::qdq::params::{activation_scheme, resolve};
use crate::target::{InputRole, QuantPlan, TargetSpec, plan};
use layer::Layer;
use search::SampleView;

/// The note with a layer's output cosine before and after `eq`.
pub const COS_NOTE: &str = "eq_cos";
/// The note with the factor `eq` applied to a value's calibrated range.
pub const SCALE_NOTE: &str = "eq_scale";

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "rounds",
        kind: OptKind::Int { min: 1, max: 100 },
        default: Some("2"),
        help: "alternations of weight and activation search per layer",
    },
    OptionSpec {
        name: "alpha",
        kind: OptKind::Float { min: 0.0, max: 1.0 },
        default: Some("0.5"),
        help: "lowest candidate scale, as a fraction of the calibrated one",
    },
    OptionSpec {
        name: "beta",
        kind: OptKind::Float {
            min: 1.0,
            max: 1000.0,
        },
        default: Some("2"),
        help: "highest candidate scale, as a multiple of the calibrated one",
    },
    OptionSpec {
        name: "steps",
        kind: OptKind::Int { min: 2, max: 10000 },
        default: Some("100"),
        help: "candidate scales on [alpha*S, beta*S]",
    },
    OptionSpec {
        name: "samples",
        kind: OptKind::Int {
            min: 1,
            max: 1 << 20,
        },
        default: Some("50"),
        help: "calibration samples (the first N of --calib) the search runs on",
    },
    OptionSpec {
        name: "bits",
        kind: OptKind::Int { min: 2, max: 8 },
        default: Some("8"),
        help: "bits of the weight and activation grids (7: int7); give qdq the same",
    },
];

/// `eq`'s options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EqOptions {
    pub rounds: usize,
    pub alpha: f32,
    pub beta: f32,
    pub steps: usize,
    pub samples: usize,
    pub bits: u32,
}

impl Default for EqOptions {
    fn default() -> Self {
        EqOptions {
            rounds: 2,
            alpha: 0.5,
            beta: 2.0,
            steps: 100,
            samples: 50,
            bits: 8,
        }
    }
}

impl EqOptions {
    /// The candidate factors: `steps` points from `alpha` to `beta`.
    fn grid(&self) -> Vec<f32> {
        let n = self.steps.max(2);
        (0..n)
            .map(|i| self.alpha + (self.beta - self.alpha) * i as f32 / (n - 1) as f32)
            .collect()
    }
}

pub struct Eq {
    pub options: EqOptions,
}

impl Eq {
    pub fn create(o: &PassOptions) -> Result<Box<dyn Pass>, String> {
        let d = EqOptions::default();
        let options = EqOptions {
            rounds: o.int("rounds").map_or(d.rounds, |v| v as usize),
            alpha: o.float("alpha").map_or(d.alpha, |v| v as f32),
            beta: o.float("beta").map_or(d.beta, |v| v as f32),
            steps: o.int("steps").map_or(d.steps, |v| v as usize),
            samples: o.int("samples").map_or(d.samples, |v| v as usize),
            bits: o.int("bits").map_or(d.bits, |v| v as u32),
        };
        if options.alpha <= 0.0 || options.alpha >= options.beta {
            return Err(format!(
                "alpha={} beta={}: need 0 < alpha < beta",
                options.alpha, options.beta
            ));
        }
        Ok(Box::new(Eq { options }))
    }
}

/// What [`optimise`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EqReport {
    /// Layers searched, and how many of them kept new scales.
    pub layers: usize,
    pub improved: usize,
    /// Mean network output cosine (fp32 vs fake-quantized) on the samples, before and after.
    pub network_before: f64,
    pub network_after: f64,
    /// Whether the result was undone because the network cosine dropped.
    pub reverted: bool,
    /// Per layer: (node name, cosine before, cosine after).
    pub per_layer: Vec<(String, f64, f64)>,
}

impl Pass for Eq {
    fn name(&self) -> &str {
        "eq"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let spec = target_spec(cx);
        let data = open_source(g, cx)?.ok_or_else(|| {
            PassError::msg("eq searches scales on calibration samples: give --calib SOURCE")
        })?;
        let samples = load_accepted(&data, 0..data.len(), self.options.samples)?;
        if samples.is_empty() {
            return Err(PassError::msg(format!(
                "eq: {} holds no usable sample",
                data.name()
            )));
        }
        let report = optimise(g, spec, &samples, &self.options).map_err(PassError::msg)?;
        if cx.verbose {
            for (name, b, a) in &report.per_layer {
                cx.note("eq", format!("{name}: cosine {b:.6} -> {a:.6}"));
            }
        }
        let summary = format!(
            "{} of {} layers improved; network output cosine {:.6} -> {:.6} on {} samples ({} bits)",
            report.improved,
            report.layers,
            report.network_before,
            report.network_after,
            samples.len(),
            self.options.bits
        );
        if report.reverted {
            cx.warn(
                "eq",
                format!("{summary}: the network got worse, calibrated scales kept"),
            );
            return Ok(Changed::No);
        }
        cx.note("eq", summary);
        Ok(Changed::from_bool(report.improved > 0))
    }
}

/// Per-sample tensors of one value.
type PerSample = Vec<Arc<Tensor>>;

/// The fake-quantization state of the network: activation and weight parameters.
pub(crate) struct QState {
    params: BTreeMap<ValueId, QParams>,
    /// (node, slot) of each planned weight -> its constant and parameters.
    weights: BTreeMap<(NodeId, usize), (ValueId, QParams)>,
    /// Fake-quantized weight tensors by (constant, node, slot).
    wfq: BTreeMap<(NodeId, usize), Arc<Tensor>>,
    bits: u32,
}

fn fq_weight_tensor(t: &Tensor, p: &QParams) -> Option<Tensor> {
    let q = quantize_tensor(t, p, true).ok()?;
    dequantize_tensor(&q, p).ok()
}

impl QState {
    pub(crate) fn new(
        g: &Graph,
        spec: &TargetSpec,
        qp: &QuantPlan,
        bits: u32,
    ) -> Result<QState, String> {
        // Values left without a range stay fp32 here as in `qdq` (its warning says so).
        let params = resolve(g, spec, qp, bits, &mut Vec::new()).map_err(|e| e.to_string())?;
        let mut st = QState {
            params,
            weights: BTreeMap::new(),
            wfq: BTreeMap::new(),
            bits,
        };
        for ci in &qp.constants {
            let InputRole::Weight { axis } = ci.role else {
                continue;
            };
            let Some(c) = g.input(ci.node, ci.slot) else {
                continue;
            };
            let Some(t) = g.const_value(c) else { continue };
            let Some(w) = t.as_f32() else { continue };
            let op_type = g.node(ci.node).op.op_type().to_string();
            let axis = axis.filter(|_| spec.weights.is_per_channel(&op_type));
            let p = match g.value(c).ann.qparams.clone() {
                Some(q) if fits_weight(&q, w.shape(), axis) => q,
                _ => match weight_params(weight_scheme(bits), &w.view(), axis, t) {
                    Ok(p) => p,
                    Err(_) => continue,
                },
            };
            st.set_weight(g, ci.node, ci.slot, c, p);
        }
        Ok(st)
    }

    /// The network unquantized: `simulate` under it runs fp32.
    pub(crate) fn fp32(bits: u32) -> QState {
        QState {
            params: BTreeMap::new(),
            weights: BTreeMap::new(),
            wfq: BTreeMap::new(),
            bits,
        }
    }

    /// Re-read the activation parameters from the graph's ranges (weights unchanged).
    pub(crate) fn reset_activations(
        &mut self,
        g: &Graph,
        spec: &TargetSpec,
        qp: &QuantPlan,
    ) -> Result<(), String> {
        self.params =
            resolve(g, spec, qp, self.bits, &mut Vec::new()).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn set_weight(&mut self, g: &Graph, n: NodeId, slot: usize, c: ValueId, p: QParams) {
        let t = g.const_value(c).expect("a constant");
        if let Some(fq) = fq_weight_tensor(t, &p) {
            self.wfq.insert((n, slot), Arc::new(fq));
        }
        self.weights.insert((n, slot), (c, p));
    }

    fn qrange(&self, p: &QParams) -> (i32, i32) {
        QScheme {
            dtype: p.dtype,
            symmetric: false,
            narrow: false,
            bits: self.bits,
        }
        .qrange()
    }

    /// `t` as the quantized network reads value `v`: through Q/DQ when `v` is quantized.
    fn read(&self, v: ValueId, t: &Arc<Tensor>) -> Arc<Tensor> {
        match self.params.get(&v) {
            Some(p) if p.scale.len() == 1 => match t.as_f32() {
                Some(a) => {
                    let xs: Vec<f32> = a.iter().copied().collect();
                    let (qmin, qmax) = self.qrange(p);
                    let q = search::fake_quantize(&xs, p.scale[0], p.zero_point[0], qmin, qmax);
                    Arc::new(Tensor::from_vec(t.shape(), q))
                }
                None => t.clone(),
            },
            _ => t.clone(),
        }
    }
}

/// Mean over samples of the cosine between the first outputs of `q` and `fp`.
fn mean_cosine(q: &[Vec<Tensor>], fp: &[Vec<Tensor>]) -> f64 {
    let mut sum = 0.0;
    for (a, b) in q.iter().zip(fp) {
        let mut per = 0.0;
        for (ta, tb) in a.iter().zip(b) {
            let (Some(x), Some(y)) = (ta.as_f32(), tb.as_f32()) else {
                continue;
            };
            let (mut d, mut nx, mut ny) = (0f64, 0f64, 0f64);
            for (&u, &v) in x.iter().zip(y.iter()) {
                d += u as f64 * v as f64;
                nx += u as f64 * u as f64;
                ny += v as f64 * v as f64;
            }
            per += search::cosine(d, nx, ny);
        }
        sum += per / a.len().max(1) as f64;
    }
    sum / q.len().max(1) as f64
}

/// The walk through the network in topological order, sample by sample in parallel.
struct Walk<'a> {
    g: &'a Graph,
    opset: i64,
    /// fp32 values (search mode only) and the quantized network's values before their own
    /// Q/DQ.
    fp: BTreeMap<ValueId, PerSample>,
    q: BTreeMap<ValueId, PerSample>,
    uses_left: BTreeMap<ValueId, usize>,
}

impl<'a> Walk<'a> {
    fn new(
        g: &'a Graph,
        samples: &[Vec<(String, Tensor)>],
        with_fp: bool,
    ) -> Result<Walk<'a>, String> {
        let mut w = Walk {
            g,
            opset: g.meta.onnx_opset().unwrap_or(21),
            fp: BTreeMap::new(),
            q: BTreeMap::new(),
            uses_left: BTreeMap::new(),
        };
        for v in g.input_values() {
            let name = g.value_name(v);
            let per: PerSample = samples
                .iter()
                .map(|s| {
                    s.iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, t)| Arc::new(t.clone()))
                        .ok_or_else(|| format!("a sample lacks graph input '{name}'"))
                })
                .collect::<Result<_, _>>()?;
            if with_fp {
                w.fp.insert(v, per.clone());
            }
            w.q.insert(v, per);
        }
        for n in g.node_ids() {
            for v in g.inputs(n).into_iter().flatten() {
                if g.const_value(v).is_none() {
                    *w.uses_left.entry(v).or_default() += 1;
                }
            }
        }
        Ok(w)
    }

    /// fp32 outputs of `n` per sample.
    fn eval_fp(&self, n: NodeId) -> Result<Vec<Vec<Tensor>>, String> {
        let node = self.g.node(n);
        let inputs = self.g.inputs(n);
        let count = self.fp.values().next().map_or(0, Vec::len);
        (0..count)
            .into_par_iter()
            .map(|i| {
                let ins: Vec<Option<&Tensor>> = inputs
                    .iter()
                    .map(|v| {
                        v.and_then(|v| {
                            self.g
                                .const_value(v)
                                .map(|t| &**t)
                                .or_else(|| self.fp.get(&v).map(|p| &*p[i]))
                        })
                    })
                    .collect();
                eval_node(&node.op, self.opset, &ins, node.outputs.len())
                    .map_err(|e| format!("{}: {e}", self.g.describe(n)))
            })
            .collect()
    }

    /// Quantized-network outputs of `n` per sample under `st`.
    fn eval_q(&self, n: NodeId, st: &QState) -> Result<Vec<Vec<Tensor>>, String> {
        let node = self.g.node(n);
        let inputs = self.g.inputs(n);
        let count = self.q.values().next().map_or(0, Vec::len);
        (0..count)
            .into_par_iter()
            .map(|i| {
                let held: Vec<Option<Arc<Tensor>>> = inputs
                    .iter()
                    .enumerate()
                    .map(|(slot, v)| {
                        let v = (*v)?;
                        if let Some(w) = st.wfq.get(&(n, slot)) {
                            return Some(w.clone());
                        }
                        if let Some(t) = self.g.const_value(v) {
                            return Some(t.clone());
                        }
                        self.q.get(&v).map(|p| st.read(v, &p[i]))
                    })
                    .collect();
                let ins: Vec<Option<&Tensor>> = held.iter().map(|t| t.as_deref()).collect();
                eval_node(&node.op, self.opset, &ins, node.outputs.len())
                    .map_err(|e| format!("{}: {e}", self.g.describe(n)))
            })
            .collect()
    }

    fn store(map: &mut BTreeMap<ValueId, PerSample>, n: NodeId, outs: Vec<Vec<Tensor>>) {
        let slots = outs.first().map_or(0, Vec::len);
        let mut per: Vec<PerSample> = vec![Vec::with_capacity(outs.len()); slots];
        for o in outs {
            for (s, t) in o.into_iter().enumerate() {
                per[s].push(Arc::new(t));
            }
        }
        for (s, p) in per.into_iter().enumerate() {
            map.insert(ValueId::new(n, s), p);
        }
    }

    fn release_inputs(&mut self, n: NodeId) {
        let mut seen = BTreeSet::new();
        for v in self.g.inputs(n).into_iter().flatten() {
            if self.g.const_value(v).is_some() {
                continue;
            }
            seen.insert(v);
            if let Some(left) = self.uses_left.get_mut(&v) {
                *left -= 1;
                if *left == 0 && !self.g.is_graph_output(v) {
                    self.fp.remove(&v);
                    self.q.remove(&v);
                }
            }
        }
    }

    fn outputs(&self, map: &BTreeMap<ValueId, PerSample>) -> Vec<Vec<Tensor>> {
        let outs = self.g.outputs();
        let count = map.values().next().map_or(0, Vec::len);
        (0..count)
            .map(|i| {
                outs.iter()
                    .filter_map(|v| map.get(v).map(|p| (*p[i]).clone()))
                    .collect()
            })
            .collect()
    }
}

/// Run the quantized network under `st` and return its outputs per sample.
pub(crate) fn simulate(
    g: &Graph,
    samples: &[Vec<(String, Tensor)>],
    st: &QState,
) -> Result<Vec<Vec<Tensor>>, String> {
    let mut w = Walk::new(g, samples, false)?;
    let order = g
        .topo_order()
        .map_err(|n| format!("the graph has a cycle through {}", g.describe(n)))?;
    for n in order {
        if g.node(n).op.is_source() {
            continue;
        }
        let outs = w.eval_q(n, st)?;
        Walk::store(&mut w.q, n, outs);
        w.release_inputs(n);
    }
    // The quantized network's outputs pass through their own Q/DQ too.
    let outs = w.outputs(&w.q);
    Ok(outs
        .into_iter()
        .map(|o| {
            o.into_iter()
                .zip(g.outputs())
                .map(|(t, v)| (*st.read(*v, &Arc::new(t))).clone())
                .collect()
        })
        .collect())
}

/// How the scale of an activation is set: the values whose ranges determine it.
fn scale_owners(g: &Graph, qp: &QuantPlan, v: ValueId) -> Option<Vec<ValueId>> {
    if qp.fixed.contains_key(&v) {
        return None;
    }
    let members = match qp.groups.iter().find(|gr| gr.members.contains(&v)) {
        Some(gr) => {
            if gr
                .members
                .iter()
                .any(|m| g.value(*m).ann.qparams.is_some() || qp.fixed.contains_key(m))
            {
                return None;
            }
            match gr.source {
                Some(s) => vec![s],
                None => gr.members.clone(),
            }
        }
        None => vec![v],
    };
    (members
        .iter()
        .all(|m| g.value(*m).ann.qparams.is_none() && g.value(*m).ann.range.is_some()))
    .then_some(members)
}

/// The members whose parameters follow the owners of `v`'s scale.
fn scale_followers(qp: &QuantPlan, v: ValueId) -> Vec<ValueId> {
    match qp.groups.iter().find(|gr| gr.members.contains(&v)) {
        Some(gr) => gr.members.clone(),
        None => vec![v],
    }
}

/// The body of the `eq` pass: search the scales of `g` on `samples` (graph input name ->
/// tensor, per sample) and write them as `@q` on weights and rescaled `@range`s.
pub fn optimise(
    g: &mut Graph,
    spec: &TargetSpec,
    samples: &[Vec<(String, Tensor)>],
    opts: &EqOptions,
) -> Result<EqReport, String> {
    let qp = plan(g, spec);
    let start_state = QState::new(g, spec, &qp, opts.bits)?;
    let mut st = QState::new(g, spec, &qp, opts.bits)?;
    let act_scheme = activation_scheme(spec, opts.bits);
    let (qmin, qmax) = act_scheme.qrange();
    let wqmax = weight_scheme(opts.bits).qrange().1;
    let grid = opts.grid();
    let mut report = EqReport::default();

    let order = g
        .topo_order()
        .map_err(|n| format!("the graph has a cycle through {}", g.describe(n)))?;
    let mut walk = Walk::new(g, samples, true)?;
    let mut consumed: BTreeSet<ValueId> = BTreeSet::new();
    let mut frozen: BTreeSet<ValueId> = BTreeSet::new();
    let mut claimed: BTreeSet<ValueId> = BTreeSet::new();
    // Results to write into the graph: weight parameters, range factors, layer cosines.
    let mut weight_out: BTreeMap<ValueId, QParams> = BTreeMap::new();
    let mut range_out: BTreeMap<ValueId, f32> = BTreeMap::new();
    let mut cos_out: Vec<(ValueId, f64, f64)> = Vec::new();

    for &n in &order {
        if g.node(n).op.is_source() {
            continue;
        }
        let fp_outs = walk.eval_fp(n)?;
        let weight = st.weights.get(&(n, 1)).cloned();
        let x = g.input(n, 0).filter(|v| g.const_value(*v).is_none());
        let searchable = matches!(g.node(n).op, Op::Conv(_) | Op::Gemm(_) | Op::MatMul(_));
        let mut q_outs = None;
        if let (true, Some((wc, wp0)), Some(x)) = (searchable, weight, x)
            && !claimed.contains(&wc)
            && let Some(xs) = walk.q.get(&x).cloned()
            && let (Some(in_t), Some(out_t)) = (xs.first(), fp_outs.first().and_then(|o| o.first()))
            && in_t.dtype() == DType::F32
            && let Some(l) = Layer::of(g, n, in_t.shape(), out_t.shape())
        {
            claimed.insert(wc);
            let owners = if consumed.contains(&x) {
                None
            } else {
                scale_owners(g, &qp, x).filter(|o| o.iter().all(|m| !frozen.contains(m)))
            };
            let act = owners.as_ref().and_then(|_| st.params.get(&x).cloned());
            let res = search_layer(
                &walk,
                n,
                &l,
                &mut st,
                (x, &xs, &scale_followers(&qp, x)),
                (wc, &wp0),
                act.as_ref(),
                &fp_outs,
                opts,
                &grid,
                ((qmin, qmax), wqmax),
            )?;
            report.layers += 1;
            if let Some(o) = &owners {
                frozen.extend(o.iter().copied());
            }
            let (before, after, af, kept_q) = res;
            if after > before {
                report.improved += 1;
            }
            report.per_layer.push((g.describe(n), before, after));
            cos_out.push((ValueId::new(n, 0), before, after));
            if let Some(p) = st.weights.get(&(n, 1)).map(|(_, p)| p.clone())
                && p != wp0
            {
                weight_out.insert(wc, p);
            }
            if af != 1.0
                && let Some(o) = &owners
            {
                for m in o {
                    range_out.insert(*m, af);
                }
            }
            q_outs = Some(kept_q);
        }
        let q_outs = match q_outs {
            Some(q) => q,
            None => walk.eval_q(n, &st)?,
        };
        for v in g.inputs(n).into_iter().flatten() {
            consumed.insert(v);
        }
        Walk::store(&mut walk.fp, n, fp_outs);
        Walk::store(&mut walk.q, n, q_outs);
        walk.release_inputs(n);
    }
    let fp_final = walk.outputs(&walk.fp);
    drop(walk);

    // Write the results, then check the whole network against the calibrated start.
    let original = g.clone();
    for (c, p) in &weight_out {
        g.value_mut(*c).ann.qparams = Some(p.clone());
    }
    for (v, f) in &range_out {
        let ann = &mut g.value_mut(*v).ann;
        if let Some(r) = ann.range {
            ann.range = Some(Range::new(r.min * f, r.max * f));
            ann.notes.insert(SCALE_NOTE.into(), Attr::Float(*f));
        }
    }
    for (v, b, a) in &cos_out {
        g.value_mut(*v)
            .ann
            .notes
            .insert(COS_NOTE.into(), Attr::Floats(vec![*b as f32, *a as f32]));
    }
    let before = simulate(&original, samples, &start_state)?;
    report.network_before = mean_cosine(&before, &fp_final);
    let qp_after = plan(g, spec);
    let after_state = QState::new(g, spec, &qp_after, opts.bits)?;
    let after = simulate(g, samples, &after_state)?;
    report.network_after = mean_cosine(&after, &fp_final);
    if report.network_after < report.network_before {
        *g = original;
        report.reverted = true;
    }
    Ok(report)
}

/// A searched layer: (cosine before, cosine after, activation factor kept, the quantized
/// outputs with the kept scales).
type LayerOutcome = (f64, f64, f32, Vec<Vec<Tensor>>);

/// Search one layer; returns (cosine before, cosine after, activation factor kept, the
/// quantized outputs with the kept scales). Updates `st` with the kept scales.
#[allow(clippy::too_many_arguments)]
fn search_layer(
    walk: &Walk,
    n: NodeId,
    l: &Layer,
    st: &mut QState,
    (x, xs, followers): (ValueId, &PerSample, &[ValueId]),
    (wc, wp0): (ValueId, &QParams),
    act: Option<&QParams>,
    fp_outs: &[Vec<Tensor>],
    opts: &EqOptions,
    grid: &[f32],
    ((qmin, qmax), wqmax): ((i32, i32), i32),
) -> Result<LayerOutcome, String> {
    let g = walk.g;
    let q_start = walk.eval_q(n, st)?;
    let before = mean_cosine(&q_start, fp_outs);
    let act_start = st.params.get(&x).cloned();

    let in_shape = xs[0].shape().to_vec();
    let out_shape = fp_outs[0][0].shape().to_vec();
    let ys: Vec<Vec<f32>> = fp_outs
        .iter()
        .map(|o| {
            o[0].as_f32()
                .map_or_else(Vec::new, |a| a.iter().copied().collect())
        })
        .collect();
    let x_pre: Vec<Vec<f32>> = xs
        .iter()
        .map(|t| {
            t.as_f32()
                .map_or_else(Vec::new, |a| a.iter().copied().collect())
        })
        .collect();
    // Units sharing one weight scale.
    let per_channel = wp0.scale.len() == l.cout && wp0.axis == Some(l.axis);
    let units: Vec<Vec<usize>> = if per_channel {
        (0..l.cout).map(|c| vec![c]).collect()
    } else {
        vec![(0..l.cout).collect()]
    };
    let base = wp0.scale.clone();
    let mut wf = vec![1.0f32; units.len()];
    let mut af = 1.0f32;

    // The activation search's positions: the same on every sample.
    let np = l.positions(&out_shape);
    let pos = search::act_positions(np, xs.len(), l.cout);
    let per = pos.len();
    let (k, groups) = (l.k(), l.groups());
    let (act_x, act_y) = if act.is_some() {
        let mut xg = vec![Array2::<f32>::zeros((per * xs.len(), k)); groups];
        let mut y = Array2::<f32>::zeros((per * xs.len(), l.cout));
        for (i, (xv, yv)) in x_pre.iter().zip(&ys).enumerate() {
            for (j, &p) in pos.iter().enumerate() {
                let r = i * per + j;
                for (grp, m) in xg.iter_mut().enumerate() {
                    let row = m.row_mut(r).into_slice().expect("standard layout");
                    l.input_row(xv, &in_shape, &out_shape, grp, p, row);
                }
                for c in 0..l.cout {
                    y[(r, c)] = l.output_at(yv, &out_shape, p, c);
                }
            }
        }
        (xg, y)
    } else {
        (vec![], Array2::zeros((0, 0)))
    };

    let fq_input = |af: f32| -> Vec<Vec<f32>> {
        match act {
            Some(p) => x_pre
                .par_iter()
                .map(|xv| search::fake_quantize(xv, p.scale[0] * af, p.zero_point[0], qmin, qmax))
                .collect(),
            None => match st.params.get(&x) {
                Some(p) if p.scale.len() == 1 => {
                    let (lo, hi) = st.qrange(p);
                    x_pre
                        .par_iter()
                        .map(|xv| search::fake_quantize(xv, p.scale[0], p.zero_point[0], lo, hi))
                        .collect()
                }
                _ => x_pre.clone(),
            },
        }
    };
    let scales_of = |wf: &[f32]| -> Vec<f32> {
        if per_channel {
            base.iter().zip(wf).map(|(b, f)| b * f).collect()
        } else {
            vec![base[0] * wf[0]]
        }
    };

    for _ in 0..opts.rounds {
        let xq = fq_input(af);
        let views: Vec<SampleView> = xq
            .iter()
            .zip(&ys)
            .map(|(x, y)| SampleView { x, y })
            .collect();
        let stats = search::Stats::gather(l, &views, &in_shape, &out_shape);
        drop(views);
        drop(xq);
        let unit_base: Vec<f32> = if per_channel {
            base.clone()
        } else {
            vec![base[0]]
        };
        wf = search::search_weights(l, &stats, &units, &unit_base, &wf, grid, wqmax);
        if let Some(p) = act {
            let scales = scales_of(&wf);
            let wq_rows: Vec<Vec<f32>> = (0..l.cout)
                .map(|c| {
                    let s = if per_channel { scales[c] } else { scales[0] };
                    search::fq_weight_row(&l.w_rows[c], s, wqmax)
                })
                .collect();
            af = search::search_activation(
                l,
                &act_x,
                act_y.view(),
                per,
                &wq_rows,
                (p.scale[0], p.zero_point[0], qmin, qmax),
                af,
                grid,
            );
        }
    }

    // Apply, measure, keep only if not worse.
    let mut wp = wp0.clone();
    wp.scale = scales_of(&wf);
    st.set_weight(g, n, 1, wc, wp);
    if let Some(p) = act {
        let mut np = p.clone();
        np.scale[0] *= af;
        set_act(st, followers, &np);
    }
    let q_end = walk.eval_q(n, st)?;
    let after = mean_cosine(&q_end, fp_outs);
    if after >= before {
        return Ok((before, after, af, q_end));
    }
    st.set_weight(g, n, 1, wc, wp0.clone());
    if let Some(p) = act_start {
        set_act(st, followers, &p);
    }
    Ok((before, before, 1.0, q_start))
}

/// Give `x` and the members of its same-scale group (`followers`) the parameters `p`.
fn set_act(st: &mut QState, followers: &[ValueId], p: &QParams) {
    for m in followers {
        st.params.insert(*m, p.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::op::Conv;
    use qopt_ir::{Shape, TypeInfo};

    /// The statistics form of a channel's cosine (`search::weight_cosines`: im2col geometry,
    /// Gram matrix, bias terms) equals the cosine computed directly from the convolution
    /// that the fp32 interpreter runs (`eval_node`, the ONNX Conv the backend tests check)
    /// with the weights fake-quantized: strided, padded, grouped.
    #[test]
    fn statistics_cosine_matches_direct_convolution() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 4, 5, 5])));
        let wv: Vec<f32> = (0..4 * 2 * 3 * 3)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.031)
            .collect();
        let w = g.add_const("w", Tensor::from_vec(&[4, 2, 3, 3], wv));
        let b = g.add_const("b", Tensor::from_vec(&[4], vec![0.3f32, -0.2, 0.1, 0.05]));
        let conv = Conv {
            group: 2,
            pads: vec![1, 0, 1, 2],
            strides: vec![2, 1],
            ..Default::default()
        };
        let y = g.add_simple("conv", conv, &[x, w, b], "y");
        let n = y.node;
        let xs: Vec<Tensor> = (0..3)
            .map(|s| {
                let d: Vec<f32> = (0..100)
                    .map(|i| (((i * 7 + s * 13) % 17) as f32 - 8.0) * 0.1)
                    .collect();
                Tensor::from_vec(&[1, 4, 5, 5], d)
            })
            .collect();
        let wt = g.const_value(w).unwrap().clone();
        let bt = g.const_value(b).unwrap().clone();
        let ys: Vec<Tensor> = xs
            .iter()
            .map(|x| {
                eval_node(&g.node(n).op, 13, &[Some(x), Some(&wt), Some(&bt)], 1)
                    .unwrap()
                    .remove(0)
            })
            .collect();
        let l = Layer::of(&g, n, xs[0].shape(), ys[0].shape()).expect("a searchable conv");
        let xv: Vec<Vec<f32>> = xs
            .iter()
            .map(|t| t.as_f32().unwrap().iter().copied().collect())
            .collect();
        let yv: Vec<Vec<f32>> = ys
            .iter()
            .map(|t| t.as_f32().unwrap().iter().copied().collect())
            .collect();
        let views: Vec<SampleView> = xv
            .iter()
            .zip(&yv)
            .map(|(x, y)| SampleView { x, y })
            .collect();
        let st = search::Stats::gather(&l, &views, xs[0].shape(), ys[0].shape());
        let base = 0.02f32;
        for c in 0..4 {
            for f in [0.7f32, 1.0, 1.6] {
                let predicted = search::weight_cosines(&l, &st, &[c], base, &[f], 127)[0];
                // Direct: channel c of the conv with every weight of channel c quantized.
                let mut wq: Vec<f32> = wt.as_f32().unwrap().iter().copied().collect();
                let kk = 2 * 9;
                let q = search::fq_weight_row(&wq[c * kk..(c + 1) * kk], f * base, 127);
                wq[c * kk..(c + 1) * kk].copy_from_slice(&q);
                let wq = Tensor::from_vec(&[4, 2, 3, 3], wq);
                let (mut d, mut nq, mut yy) = (0f64, 0f64, 0f64);
                for (x, y) in xs.iter().zip(&ys) {
                    let o = eval_node(&g.node(n).op, 13, &[Some(x), Some(&wq), Some(&bt)], 1)
                        .unwrap()
                        .remove(0);
                    let (o, y) = (o.as_f32().unwrap(), y.as_f32().unwrap());
                    let hw = o.shape()[2] * o.shape()[3];
                    let os = o.as_slice().unwrap();
                    let ysl = y.as_slice().unwrap();
                    for p in 0..hw {
                        let (a, t) = (os[c * hw + p] as f64, ysl[c * hw + p] as f64);
                        d += a * t;
                        nq += a * a;
                        yy += t * t;
                    }
                }
                let direct = search::cosine(d, nq, yy);
                assert!(
                    (predicted - direct).abs() < 1e-5,
                    "channel {c} factor {f}: statistics {predicted} vs direct {direct}"
                );
            }
        }
    }
}
