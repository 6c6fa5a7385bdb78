//! The integer execution plan: a lowered graph (`lower/`) run many times.
//!
//! `QPlan::new` lowers the graph once for the kernel family [`KernelKind::detect`] picks (or the
//! one asked for) and records after which step each value dies; `QPlan::run` feeds the inputs,
//! runs the steps in order and frees every value at its last use (f32 buffers go back to the
//! plan's pool). Steps run one after another; the fp32 ops among them use the plan's rayon pool.

use super::lower::{Lowered, lower};
use super::steps::StepCx;
use crate::error::{InterpError, OpError};
use crate::kernels::int8::KernelKind;
use crate::plan::PlanInput;
use crate::pool::BufferPool;
use qopt_ir::{Graph, Tensor, ValueId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Options of an integer plan.
#[derive(Clone, Debug, Default)]
pub struct QPlanOptions {
    /// Worker threads for the fp32 ops (`None`: one per core).
    pub threads: Option<usize>,
    /// Kernel family; `None`: [`KernelKind::detect`] (`QOPT_KERNELS` or the best this CPU runs).
    pub kernels: Option<KernelKind>,
    /// Values a `run_with` hook must see. Quantized values are shown as stored (u8/i8) in the ONNX
    /// layout; a kept float value between an op and its QuantizeLinear keeps that op in fp32.
    pub keep: Vec<ValueId>,
    /// Record the time of every step.
    pub profile: bool,
}

/// How the graph was lowered.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoweringSummary {
    /// Steps computing in integers, by name (`QConv(1x1)`, `QAdd`, `LUT(Sigmoid)`, ...).
    pub integer: BTreeMap<String, usize>,
    /// Steps in fp32 or converting (fp32 ops, layout conversions, Q/DQ at the boundaries).
    pub other: BTreeMap<String, usize>,
}

enum Slot<'a> {
    Empty,
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

impl Slot<'_> {
    fn get(&self) -> Option<&Tensor> {
        match self {
            Slot::Empty => None,
            Slot::Borrowed(t) => Some(t),
            Slot::Owned(t) => Some(t),
        }
    }
}

pub struct QPlan {
    lowered: Lowered,
    /// Per step: slots whose last reader it is.
    frees: Vec<Vec<usize>>,
    kind: KernelKind,
    opset: i64,
    pool: rayon::ThreadPool,
    buffers: BufferPool,
    profile: Option<Vec<(Duration, u64)>>,
}

/// Whether some node output of `g` has no recorded shape.
fn has_untyped_values(g: &Graph) -> bool {
    g.node_ids()
        .into_iter()
        .any(|n| g.node(n).outputs.iter().any(|v| v.ty.shape.is_none()))
}

impl QPlan {
    /// Lowers `g` into an integer plan.
    pub fn new(g: &Graph, opts: &QPlanOptions) -> Result<QPlan, InterpError> {
        let kind = match opts.kernels {
            Some(k) => {
                k.check_supported()
                    .map_err(|e| InterpError::Kernels(e.to_string()))?;
                k
            }
            None => KernelKind::detect().map_err(|e| InterpError::Kernels(e.to_string()))?,
        };
        // The lowering reads ranks from the recorded value types (a global pool needs rank 4);
        // a model saved without value_info has none, so infer them on a copy first. Inference
        // failing (an op it does not know) leaves the graph as it is: the affected steps then
        // stay in fp32, as before.
        let inferred;
        let g = if has_untyped_values(g) {
            let mut copy = g.clone();
            match qopt_ir::infer::infer_shapes(&mut copy) {
                Ok(_) => {
                    inferred = copy;
                    &inferred
                }
                Err(_) => g,
            }
        } else {
            g
        };
        let mut lowered = lower(g, &opts.keep)?;
        for st in &mut lowered.steps {
            st.step.prepare(kind).map_err(|e| e.at(st.desc.clone()))?;
        }
        let nslots = lowered.slots.len();
        let mut last: Vec<Option<usize>> = vec![None; nslots];
        for (i, st) in lowered.steps.iter().enumerate() {
            for s in st.ins.iter().flatten() {
                last[*s] = Some(i);
            }
            for s in st.outs.iter().flatten() {
                if last[*s].is_none() {
                    last[*s] = Some(i);
                }
            }
        }
        let mut frees = vec![vec![]; lowered.steps.len()];
        for (s, l) in last.iter().enumerate() {
            let pinned = lowered.outputs.contains(&s) || lowered.slots[s].cst.is_some();
            if let (Some(l), false) = (l, pinned) {
                frees[*l].push(s);
            }
        }
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = opts.threads {
            b = b.num_threads(t.max(1));
        }
        let pool = b
            .build()
            .map_err(|e| InterpError::ThreadPool(e.to_string()))?;
        let profile = opts
            .profile
            .then(|| vec![(Duration::ZERO, 0); lowered.steps.len()]);
        Ok(QPlan {
            lowered,
            frees,
            kind,
            opset: g.meta.onnx_opset().unwrap_or(21),
            pool,
            buffers: BufferPool::new(),
            profile,
        })
    }

    /// The graph inputs, in order.
    pub fn inputs(&self) -> &[PlanInput] {
        &self.lowered.inputs
    }

    /// The kernel family the plan runs.
    pub fn kernel_kind(&self) -> KernelKind {
        self.kind
    }

    /// Why nodes that touch quantized values run in fp32 (for `--verbose`).
    pub fn notes(&self) -> &[String] {
        &self.lowered.notes
    }

    /// Steps by kind.
    pub fn summary(&self) -> LoweringSummary {
        let mut s = LoweringSummary::default();
        for st in &self.lowered.steps {
            let map = if st.step.is_integer() {
                &mut s.integer
            } else {
                &mut s.other
            };
            *map.entry(st.step.name()).or_default() += 1;
        }
        s
    }

    /// Time per step name over the runs of a profiled plan, slowest first.
    pub fn profile(&self) -> Vec<(String, u64, Duration)> {
        let Some(p) = &self.profile else {
            return vec![];
        };
        let mut by: BTreeMap<String, (u64, Duration)> = BTreeMap::new();
        for (st, (d, c)) in self.lowered.steps.iter().zip(p) {
            let e = by.entry(st.step.name()).or_default();
            e.0 += c;
            e.1 += *d;
        }
        let mut v: Vec<(String, u64, Duration)> =
            by.into_iter().map(|(k, (c, d))| (k, c, d)).collect();
        v.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        v
    }

    /// Time per step (node, step name, calls, total) in execution order.
    pub fn profile_steps(&self) -> Vec<(String, String, u64, Duration)> {
        let Some(p) = &self.profile else {
            return vec![];
        };
        self.lowered
            .steps
            .iter()
            .zip(p)
            .map(|(st, (d, c))| (st.desc.clone(), st.step.name(), *c, *d))
            .collect()
    }

    /// Run with inputs by name.
    pub fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, InterpError> {
        self.run_with(inputs, |_, _| {})
    }

    fn check_inputs<'a>(
        &self,
        inputs: &[(&str, &'a Tensor)],
    ) -> Result<Vec<&'a Tensor>, InterpError> {
        crate::plan::check_inputs(&self.lowered.inputs, inputs)
    }

    /// Run, calling `hook(value, tensor)` for every kept value ([`QPlanOptions::keep`]) right
    /// after it is produced (quantized values as u8/i8 in the ONNX layout).
    pub fn run_with<F>(
        &mut self,
        inputs: &[(&str, &Tensor)],
        mut hook: F,
    ) -> Result<Vec<Tensor>, InterpError>
    where
        F: FnMut(ValueId, &Tensor) + Send,
    {
        let fed = self.check_inputs(inputs)?;
        let QPlan {
            lowered,
            frees,
            kind,
            opset,
            pool,
            buffers,
            profile,
        } = self;
        let (kind, opset) = (*kind, *opset);
        pool.install(|| {
            let mut slots: Vec<Slot> = lowered
                .slots
                .iter()
                .map(|s| s.cst.as_deref().map_or(Slot::Empty, Slot::Borrowed))
                .collect();
            let show = |s: usize, t: &Tensor, hook: &mut F| -> Result<(), OpError> {
                let spec = &lowered.slots[s];
                if spec.kept.is_empty() {
                    return Ok(());
                }
                let plain;
                let t = if spec.nhwc {
                    plain = super::steps::layout::to_nchw(t)?;
                    &plain
                } else {
                    t
                };
                for &v in &spec.kept {
                    hook(v, t);
                }
                Ok(())
            };
            for (pi, t) in lowered.inputs.iter().zip(&fed) {
                slots[pi.slot()] = Slot::Borrowed(t);
                show(pi.slot(), t, &mut hook).map_err(|e| e.at(pi.name.clone()))?;
            }
            for (si, st) in lowered.steps.iter_mut().enumerate() {
                let t0 = profile.is_some().then(Instant::now);
                let ins: Vec<Option<&Tensor>> = st
                    .ins
                    .iter()
                    .map(|s| s.and_then(|s| slots[s].get()))
                    .collect();
                if st
                    .ins
                    .iter()
                    .zip(&ins)
                    .any(|(s, t)| s.is_some() && t.is_none())
                {
                    return Err(OpError("an input was not computed".into()).at(st.desc.clone()));
                }
                let mut cx = StepCx {
                    kind,
                    opset,
                    pool: buffers,
                };
                let outs = st
                    .step
                    .run(&mut cx, &ins)
                    .map_err(|e| e.at(st.desc.clone()))?;
                let needed = st
                    .outs
                    .iter()
                    .rposition(Option::is_some)
                    .map_or(0, |p| p + 1);
                if outs.len() < needed {
                    return Err(OpError(format!(
                        "produced {} outputs, {needed} are used",
                        outs.len()
                    ))
                    .at(st.desc.clone()));
                }
                for (o, t) in st.outs.iter().zip(outs) {
                    match o {
                        Some(s) => {
                            show(*s, &t, &mut hook).map_err(|e| e.at(st.desc.clone()))?;
                            slots[*s] = Slot::Owned(t);
                        }
                        None => {
                            if let Tensor::F32(a) = t {
                                buffers.give(a.into_raw_vec_and_offset().0);
                            }
                        }
                    }
                }
                for &s in &frees[si] {
                    if let Slot::Owned(Tensor::F32(a)) =
                        std::mem::replace(&mut slots[s], Slot::Empty)
                    {
                        buffers.give(a.into_raw_vec_and_offset().0);
                    }
                }
                if let (Some(p), Some(t0)) = (profile.as_mut(), t0) {
                    p[si].0 += t0.elapsed();
                    p[si].1 += 1;
                }
            }
            let mut result = Vec::with_capacity(lowered.outputs.len());
            for (i, &s) in lowered.outputs.iter().enumerate() {
                let later = lowered.outputs[i + 1..].contains(&s);
                let t = match std::mem::replace(&mut slots[s], Slot::Empty) {
                    Slot::Owned(t) if later => {
                        let c = t.clone();
                        slots[s] = Slot::Owned(t);
                        c
                    }
                    Slot::Owned(t) => t,
                    Slot::Borrowed(t) => {
                        slots[s] = Slot::Borrowed(t);
                        t.clone()
                    }
                    Slot::Empty => {
                        return Err(InterpError::DanglingOutput(lowered.slots[s].name.clone()));
                    }
                };
                result.push(t);
            }
            Ok(result)
        })
    }
}

/// Whether `g` is a quantized graph the integer plan is for: it has QuantizeLinear /
/// DequantizeLinear pairs or explicit integer operators (`qopt run` picks the plan by this).
pub fn is_quantized(g: &Graph) -> bool {
    use qopt_ir::Op;
    g.node_ids().into_iter().any(|n| {
        matches!(
            &g.node(n).op,
            Op::QuantizeLinear(_)
                | Op::DequantizeLinear(_)
                | Op::QLinearConv(_)
                | Op::QLinearMatMul(_)
                | Op::ConvInteger(_)
                | Op::MatMulInteger(_)
                | Op::DynamicQuantizeLinear(_)
                | Op::QLinearAdd(_)
                | Op::QLinearMul(_)
                | Op::QLinearGlobalAveragePool(_)
        ) || matches!(&g.node(n).op, Op::Custom(c) if c.domain == "com.microsoft" && c.op_type.starts_with('Q'))
    })
}
