//! The scorer behind `thresholds{method=auto}`: for each value, the candidate range (one per
//! method, `qopt_calib::methods::auto::candidates`) that least disturbs the layers reading it.
//!
//! For every scoring sample the fp32 interpreter runs the model once; its hook streams the
//! values out in execution order. As soon as all inputs of a layer that reads an `auto` value
//! are there, the layer is evaluated (`qopt_interp::eval_node`) once in fp32 and once per
//! candidate with that value fake-quantized to the candidate's range (ONNX
//! QuantizeLinear/DequantizeLinear numerics, the target's symmetry), the layer's other inputs
//! staying fp32. A candidate's error is the layer output's relative squared error
//! `sum((y_q - y)^2) / sum(y^2)`, summed over the layers reading the value and over the
//! samples; the least error wins (ties: the earlier candidate, `auto::select`). Tensors are
//! dropped once the last layer that needs them has run, so memory stays near the model's own
//! working set.
//!
//! A value no supported layer reads (a graph output, or read only by custom ops) is scored by
//! the proxy of its own relative quantization error.
//!
//! The samples are the last `holdout` samples of the calibration source, which
//! `collect{holdout=K}` leaves out of the statistics (so `calib{method=auto holdout=K}` scores
//! on data the statistics never saw); with `holdout=0`, the last 4 calibration samples, which
//! were also counted in the statistics (a note says so).

use std::collections::{BTreeMap, HashMap};

use qopt_calib::methods::ThresholdOptions;
use qopt_calib::methods::auto::{self, Candidate};
use qopt_calib::qparams::{QScheme, fake_quantize_slice};
use qopt_interp::{Plan, PlanOptions, eval_node, is_supported};
use qopt_ir::{Graph, NodeId, Op, Tensor, ValueId};
use qopt_pass::{PassContext, PassError};

use crate::collect::{open_source, thread_count};

/// Default number of scoring samples without a hold-out.
const IN_SAMPLE: usize = 4;

/// One layer that reads an `auto` value.
struct Reader {
    node: NodeId,
    /// The node's inputs; constants are looked up in the graph.
    inputs: Vec<Option<ValueId>>,
    /// Distinct non-constant input values.
    needs: Vec<ValueId>,
    /// Indices (into the scored values) of the `auto` values among the inputs.
    scored: Vec<usize>,
}

/// Per value: quantization parameters of each candidate.
struct Scored {
    value: ValueId,
    params: Vec<(f32, i32)>,
    /// Summed layer errors per candidate, and whether any layer was evaluated.
    layer_err: Vec<f64>,
    layers_seen: bool,
    /// The proxy: the value's own relative quantization error per candidate.
    self_err: Vec<f64>,
}

fn as_f32(t: &Tensor) -> Option<std::borrow::Cow<'_, [f32]>> {
    let a = t.as_f32()?;
    Some(match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    })
}

/// `sum((a - b)^2) / sum(b^2)` over the float outputs (0 where the reference is all zero).
fn relative_error(q: &[Tensor], reference: &[Tensor]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in q.iter().zip(reference) {
        if let (Some(a), Some(b)) = (as_f32(a), as_f32(b)) {
            for (&x, &y) in a.iter().zip(b.iter()) {
                let d = x as f64 - y as f64;
                num += d * d;
                den += y as f64 * y as f64;
            }
        }
    }
    if den > 0.0 { num / den } else { num }
}

fn fake_quantize(t: &Tensor, (scale, zp): (f32, i32), qrange: (i32, i32)) -> Option<Tensor> {
    let xs = as_f32(t)?;
    let q = fake_quantize_slice(&xs, scale, zp, qrange.0, qrange.1);
    Some(Tensor::from_vec(t.shape(), q))
}

struct Scorer<'g> {
    g: &'g Graph,
    opset: i64,
    qrange: (i32, i32),
    readers: Vec<Reader>,
    /// Value -> readers needing it.
    wanted_by: BTreeMap<ValueId, Vec<usize>>,
    scored: Vec<Scored>,
    scored_index: BTreeMap<ValueId, usize>,
    // Per-sample state.
    pending: Vec<usize>,
    uses_left: HashMap<ValueId, usize>,
    cache: HashMap<ValueId, Tensor>,
    error: Option<String>,
}

impl Scorer<'_> {
    fn start_sample(&mut self) {
        self.pending = self.readers.iter().map(|r| r.needs.len()).collect();
        self.uses_left = self
            .wanted_by
            .iter()
            .map(|(v, rs)| (*v, rs.len()))
            .collect();
        self.cache.clear();
    }

    /// The interpreter produced `v`.
    fn produced(&mut self, v: ValueId, t: &Tensor) {
        if self.error.is_some() {
            return;
        }
        if let Some(&k) = self.scored_index.get(&v) {
            let s = &mut self.scored[k];
            if let Some(xs) = as_f32(t) {
                let den: f64 = xs.iter().map(|&x| x as f64 * x as f64).sum();
                for (c, &p) in s.params.iter().enumerate() {
                    let q = fake_quantize_slice(&xs, p.0, p.1, self.qrange.0, self.qrange.1);
                    let num: f64 = q
                        .iter()
                        .zip(xs.iter())
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum();
                    s.self_err[c] += if den > 0.0 { num / den } else { num };
                }
            }
        }
        let Some(rs) = self.wanted_by.get(&v).cloned() else {
            return;
        };
        self.cache.insert(v, t.clone());
        for r in rs {
            self.pending[r] -= 1;
            if self.pending[r] == 0 {
                if let Err(e) = self.evaluate(r) {
                    self.error = Some(e);
                    return;
                }
                for v in self.readers[r].needs.clone() {
                    let left = self.uses_left.get_mut(&v).expect("counted");
                    *left -= 1;
                    if *left == 0 {
                        self.cache.remove(&v);
                    }
                }
            }
        }
    }

    /// Run reader `r` in fp32 and with each candidate of each scored input.
    fn evaluate(&mut self, r: usize) -> Result<(), String> {
        let reader = &self.readers[r];
        let node = self.g.node(reader.node);
        let fetch = |v: &Option<ValueId>| -> Option<&Tensor> {
            let v = (*v)?;
            match self.g.const_value(v) {
                Some(c) => Some(&**c),
                None => self.cache.get(&v),
            }
        };
        let inputs: Vec<Option<&Tensor>> = reader.inputs.iter().map(fetch).collect();
        let n_out = node.outputs.len();
        let reference = eval_node(&node.op, self.opset, &inputs, n_out)
            .map_err(|e| format!("{}: {e}", self.g.describe(reader.node)))?;
        for &k in &reader.scored {
            let v = self.scored[k].value;
            let x = self.cache.get(&v).expect("an input of this reader");
            for c in 0..self.scored[k].params.len() {
                let Some(xq) = fake_quantize(x, self.scored[k].params[c], self.qrange) else {
                    continue;
                };
                let ins: Vec<Option<&Tensor>> = reader
                    .inputs
                    .iter()
                    .zip(&inputs)
                    .map(|(iv, t)| if *iv == Some(v) { Some(&xq) } else { *t })
                    .collect();
                let out = eval_node(&node.op, self.opset, &ins, n_out)
                    .map_err(|e| format!("{}: {e}", self.g.describe(reader.node)))?;
                self.scored[k].layer_err[c] += relative_error(&out, &reference);
            }
            self.scored[k].layers_seen = true;
        }
        Ok(())
    }
}

/// Choose a candidate for each value. Returns (value, chosen candidate), in input order.
pub fn choose(
    g: &Graph,
    cx: &mut PassContext,
    values: Vec<(ValueId, Vec<Candidate>)>,
    opts: &ThresholdOptions,
    holdout: usize,
) -> Result<Vec<(ValueId, Candidate)>, PassError> {
    let data = open_source(g, cx)?.ok_or_else(|| {
        PassError::msg(
            "method 'auto' scores candidate ranges on calibration samples: give --calib SOURCE",
        )
    })?;
    let total = data.len();
    if holdout > total {
        return Err(PassError::msg(format!(
            "holdout={holdout} is more than the {total} samples of {}",
            data.name()
        )));
    }
    let count = if holdout > 0 {
        holdout
    } else {
        IN_SAMPLE.min(total)
    };
    let samples: Vec<usize> = (total - count..total).collect();
    if holdout == 0 {
        cx.note(
            "thresholds",
            format!(
                "auto: scoring on the last {count} calibration samples, which the statistics also saw (calib{{method=auto holdout=K}} holds K out)"
            ),
        );
    }
    let scheme = if opts.symmetric {
        QScheme::ACTIVATIONS_SYMMETRIC
    } else {
        QScheme::ACTIVATIONS_ASYMMETRIC
    };
    let mut scored = Vec::with_capacity(values.len());
    let mut scored_index = BTreeMap::new();
    for (k, (v, cands)) in values.iter().enumerate() {
        let params = cands
            .iter()
            .map(|c| scheme.scale_zero_point(c.range))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PassError::msg(format!("value '{}': {e}", g.value_name(*v))))?;
        scored.push(Scored {
            value: *v,
            layer_err: vec![0.0; params.len()],
            self_err: vec![0.0; params.len()],
            params,
            layers_seen: false,
        });
        scored_index.insert(*v, k);
    }
    // The layers reading the scored values (observers and ops the interpreter lacks aside).
    let mut reader_of: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    for (k, (v, _)) in values.iter().enumerate() {
        for (n, _) in g.consumers(*v) {
            let op = &g.node(n).op;
            if matches!(op, Op::Observer(_)) || !is_supported(op) {
                continue;
            }
            let e = reader_of.entry(n).or_default();
            if !e.contains(&k) {
                e.push(k);
            }
        }
    }
    let mut readers = Vec::new();
    let mut wanted_by: BTreeMap<ValueId, Vec<usize>> = BTreeMap::new();
    for (n, ks) in reader_of {
        let inputs = g.inputs(n);
        let mut needs: Vec<ValueId> = inputs
            .iter()
            .flatten()
            .copied()
            .filter(|&v| g.const_value(v).is_none())
            .collect();
        needs.sort();
        needs.dedup();
        for &v in &needs {
            wanted_by.entry(v).or_default().push(readers.len());
        }
        readers.push(Reader {
            node: n,
            inputs,
            needs,
            scored: ks,
        });
    }
    let mut keep: Vec<ValueId> = wanted_by.keys().copied().collect();
    keep.extend(values.iter().map(|(v, _)| *v));
    keep.sort();
    keep.dedup();
    let mut plan = Plan::new(
        g,
        &PlanOptions {
            threads: Some(thread_count(cx)),
            fuse: true,
            keep,
            profile: false,
        },
    )
    .map_err(|e| PassError::msg(format!("auto: cannot run the model: {e}")))?;
    let mut scorer = Scorer {
        g,
        opset: g.meta.onnx_opset().unwrap_or(21),
        qrange: scheme.qrange(),
        readers,
        wanted_by,
        scored,
        scored_index,
        pending: vec![],
        uses_left: HashMap::new(),
        cache: HashMap::new(),
        error: None,
    };
    cx.progress
        .begin("scoring auto candidates", Some(samples.len() as u64));
    for &i in &samples {
        let s = data.load(i).map_err(|e| PassError::Io(e.to_string()))?;
        if !data
            .accept(&s, &qopt_calib::NoProgress)
            .map_err(|e| PassError::Io(e.to_string()))?
        {
            cx.progress.advance(1);
            continue;
        }
        let named: Vec<(&str, &Tensor)> = s.inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        scorer.start_sample();
        let outs = plan
            .run_with(&named, |v, t| scorer.produced(v, t))
            .map_err(|e| {
                PassError::Io(format!("{}: the fp32 interpreter failed: {e}", s.origin))
            })?;
        plan.recycle(outs);
        if let Some(e) = scorer.error.take() {
            return Err(PassError::msg(format!("auto: {}: {e}", s.origin)));
        }
        cx.progress.advance(1);
    }
    cx.progress.end();

    let mut out = Vec::with_capacity(values.len());
    for ((v, cands), s) in values.into_iter().zip(scorer.scored) {
        let errs = if s.layers_seen {
            s.layer_err
        } else {
            s.self_err
        };
        // `select` scores the candidates in order.
        let mut next = 0;
        let choice = auto::select(cands, |_| {
            next += 1;
            Ok::<f64, std::convert::Infallible>(errs[next - 1])
        })
        .unwrap_or_else(|never| match never {})
        .ok_or_else(|| {
            PassError::msg(format!(
                "value '{}': no candidate range for auto",
                g.value_name(v)
            ))
        })?;
        out.push((v, choice.chosen));
    }
    Ok(out)
}
