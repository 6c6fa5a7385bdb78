//! The execution plan: a graph compiled once into an ordered list of steps, run many times.
//!
//! `Plan::new` checks that every op is supported (one error listing every unsupported op type
//! and its nodes, before anything runs), orders the nodes that lead to an output, decides the
//! fused groups (`fusion.rs`) and prepares constant weights (BatchNormalization folded into
//! Conv), and records after which step each value dies. `Plan::run` feeds the inputs, runs the
//! steps and frees every value at its last use: its f32 buffer goes back to the plan's
//! [`BufferPool`] for the next value, and the pool is kept between runs, so after the first run
//! with given input shapes, steady-state runs reuse the same buffers. Element-wise ops,
//! BatchNormalization and shape-only ops whose input dies at that step work in place.
//!
//! Kernels parallelise over tiles whose size depends only on shapes, on a rayon pool owned by
//! the plan, so outputs are identical for every thread count.

use crate::error::{InterpError, OpError, UnsupportedOp};
use crate::fusion::{Group, find_groups};
use crate::kernels::activation::{Activation, apply_inplace};
use crate::ops::conv::PreparedConv;
use crate::ops::{self, Ctx};
use crate::pool::BufferPool;
use qopt_ir::{Dim, Graph, NodeId, Op, Tensor, TypeInfo, ValueId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The opset assumed for graphs that do not record one (current ONNX semantics).
const DEFAULT_OPSET: i64 = 21;

#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// Worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// Fuse Conv+BatchNormalization and Conv/Gemm+activation (default). Fused-away values are
    /// not materialised, so a `run_with` hook does not see them; list values it must see in
    /// `keep`, or turn fusion off to see every value.
    pub fuse: bool,
    /// Values that stay visible to `run_with` hooks whatever `fuse` says.
    pub keep: Vec<ValueId>,
    /// Record the time of every step (see [`Plan::profile`]).
    pub profile: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            threads: None,
            fuse: true,
            keep: vec![],
            profile: false,
        }
    }
}

enum Kernel {
    /// An op run through `ops::execute`.
    Op(Op),
    /// A Conv with constant weights, maybe with a folded BatchNormalization and an activation.
    Conv(Box<PreparedConv>),
    /// A Gemm with a fused activation.
    Gemm(qopt_ir::op::Gemm, Activation),
    /// An element-wise activation of the step's input 0 (a fused multi-op pattern).
    Activation(Activation),
}

struct Step {
    kernel: Kernel,
    inputs: Vec<Option<usize>>,
    /// Value slots of the outputs, by output index (`None`: output nobody reads).
    outputs: Vec<Option<usize>>,
    /// Slots whose last reader is this step.
    frees: Vec<usize>,
    num_outputs: usize,
}

/// A graph input as the plan expects it.
#[derive(Clone, Debug)]
pub struct PlanInput {
    pub name: String,
    pub value: ValueId,
    pub ty: TypeInfo,
    slot: usize,
}

impl PlanInput {
    pub(crate) fn new(name: String, value: ValueId, ty: TypeInfo, slot: usize) -> PlanInput {
        PlanInput {
            name,
            value,
            ty,
            slot,
        }
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot
    }
}

/// Where a value lives during a run.
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

/// Time spent per op type over the runs of a profiled plan.
#[derive(Clone, Debug, Default)]
pub struct ProfileEntry {
    pub op_type: String,
    pub calls: u64,
    pub total: Duration,
}

pub struct Plan {
    steps: Vec<Step>,
    inputs: Vec<PlanInput>,
    outputs: Vec<usize>,
    /// Per slot: the value and, for constants, its tensor.
    values: Vec<ValueId>,
    names: Vec<String>,
    consts: Vec<Option<Arc<Tensor>>>,
    /// Node descriptions for error messages, by step.
    descs: Vec<String>,
    opset: i64,
    pool: rayon::ThreadPool,
    buffers: BufferPool,
    profile: Option<Vec<(Duration, u64)>>,
    /// Input shapes of the last run: a change clears the buffer pool.
    last_shapes: Vec<Vec<usize>>,
}

fn describe(g: &Graph, n: NodeId) -> String {
    g.describe(n)
}

impl Plan {
    pub fn new(g: &Graph, opts: &PlanOptions) -> Result<Plan, InterpError> {
        let order = g
            .topo_order()
            .map_err(|n| InterpError::Cycle(describe(g, n)))?;
        // Nodes some output depends on.
        let mut needed: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = g.outputs().iter().map(|v| v.node).collect();
        while let Some(n) = stack.pop() {
            if needed.insert(n) {
                stack.extend(g.inputs(n).into_iter().flatten().map(|v| v.node));
            }
        }
        for v in g.outputs() {
            if !g.contains(v.node) || v.slot >= g.node(v.node).outputs.len() {
                return Err(InterpError::DanglingOutput(format!("{v:?}")));
            }
        }
        let live: Vec<NodeId> = order.into_iter().filter(|n| needed.contains(n)).collect();

        let mut unsupported: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for &n in &live {
            let op = &g.node(n).op;
            if !ops::supported(op) {
                unsupported
                    .entry(op.qualified_name())
                    .or_default()
                    .push(describe(g, n));
            }
        }
        if !unsupported.is_empty() {
            return Err(InterpError::Unsupported(
                unsupported
                    .into_iter()
                    .map(|(op_type, nodes)| UnsupportedOp { op_type, nodes })
                    .collect(),
            ));
        }

        let keep: HashSet<ValueId> = opts.keep.iter().copied().collect();
        let groups: BTreeMap<NodeId, Group> = if opts.fuse {
            find_groups(g, &live, &keep)
        } else {
            BTreeMap::new()
        };
        let absorbed: HashSet<NodeId> = groups
            .values()
            .flat_map(|gr| gr.absorbed.iter().copied())
            .collect();

        // Slots: one per value that is read, produced or output.
        let mut slot_of: HashMap<ValueId, usize> = HashMap::new();
        let mut values = Vec::new();
        let mut names = Vec::new();
        let mut consts = Vec::new();
        let mut slot = |v: ValueId,
                        values: &mut Vec<ValueId>,
                        names: &mut Vec<String>,
                        consts: &mut Vec<Option<Arc<Tensor>>>|
         -> usize {
            *slot_of.entry(v).or_insert_with(|| {
                values.push(v);
                names.push(g.value(v).name.clone());
                consts.push(g.const_value(v).cloned());
                values.len() - 1
            })
        };

        let opset = g.meta.onnx_opset().unwrap_or(DEFAULT_OPSET);
        let mut inputs = Vec::new();
        for &n in g.input_nodes() {
            let v = ValueId::new(n, 0);
            let s = slot(v, &mut values, &mut names, &mut consts);
            inputs.push(PlanInput {
                name: g.value(v).name.clone(),
                value: v,
                ty: g.value(v).ty.clone(),
                slot: s,
            });
        }
        let mut steps = Vec::new();
        let mut descs = Vec::new();
        for &n in &live {
            let node = g.node(n);
            if node.op.is_source() || absorbed.contains(&n) {
                if node.op.is_const() {
                    slot(ValueId::new(n, 0), &mut values, &mut names, &mut consts);
                }
                continue;
            }
            let ins: Vec<Option<usize>> = g
                .inputs(n)
                .into_iter()
                .map(|v| v.map(|v| slot(v, &mut values, &mut names, &mut consts)))
                .collect();
            let (kernel, out_values): (Kernel, Vec<ValueId>) = match groups.get(&n) {
                Some(gr) => {
                    let kernel = match &node.op {
                        Op::Conv(c) => {
                            let w = g
                                .const_input(n, 1)
                                .expect("fusion checked constant weights");
                            let mut pc = PreparedConv::new(c, w, g.const_input(n, 2).map(|t| &**t))
                                .map_err(|e| e.at(describe(g, n)))?;
                            for (is_mul, vals) in &gr.affine {
                                if *is_mul {
                                    pc.scale(vals)
                                } else {
                                    pc.add_bias(vals)
                                }
                                .map_err(|e| e.at(describe(g, n)))?;
                            }
                            if let Some(bn) = gr.bn {
                                let Op::BatchNormalization(b) = &g.node(bn).op else {
                                    unreachable!("fusion found a BatchNormalization")
                                };
                                let p = |s: usize| {
                                    g.const_input(bn, s)
                                        .and_then(|t| t.as_f32())
                                        .map(|a| a.iter().copied().collect::<Vec<f32>>())
                                        .unwrap_or_default()
                                };
                                pc.fold_batchnorm(&p(1), &p(2), &p(3), &p(4), b.epsilon)
                                    .map_err(|e| e.at(describe(g, bn)))?;
                            }
                            pc.act = gr.act.unwrap_or_default();
                            Kernel::Conv(Box::new(pc))
                        }
                        Op::Gemm(o) => Kernel::Gemm(o.clone(), gr.act.unwrap_or_default()),
                        op => {
                            // A head whose output feeds a fused element-wise pattern: run the head
                            // as usual, then the pattern as its own step.
                            let head_out = ValueId::new(n, 0);
                            let hs = slot(head_out, &mut values, &mut names, &mut consts);
                            steps.push(Step {
                                kernel: Kernel::Op(op.clone()),
                                inputs: ins.clone(),
                                outputs: vec![Some(hs)],
                                frees: vec![],
                                num_outputs: node.outputs.len(),
                            });
                            descs.push(describe(g, n));
                            let act = gr.act.unwrap_or_default();
                            let out = slot(gr.output, &mut values, &mut names, &mut consts);
                            steps.push(Step {
                                kernel: Kernel::Activation(act),
                                inputs: vec![Some(hs)],
                                outputs: vec![Some(out)],
                                frees: vec![],
                                num_outputs: 1,
                            });
                            descs.push(describe(g, gr.output.node));
                            continue;
                        }
                    };
                    let ins = match kernel {
                        // Prepared convs read only X.
                        Kernel::Conv(_) => vec![ins[0]],
                        _ => ins,
                    };
                    steps.push(Step {
                        kernel,
                        inputs: ins,
                        outputs: vec![Some(slot(gr.output, &mut values, &mut names, &mut consts))],
                        frees: vec![],
                        num_outputs: 1,
                    });
                    descs.push(describe(g, n));
                    continue;
                }
                None => (
                    Kernel::Op(node.op.clone()),
                    (0..node.outputs.len())
                        .map(|s| ValueId::new(n, s))
                        .collect(),
                ),
            };
            let outs: Vec<Option<usize>> = out_values
                .iter()
                .map(|&v| {
                    (g.use_count(v) > 0 || keep.contains(&v))
                        .then(|| slot(v, &mut values, &mut names, &mut consts))
                })
                .collect();
            steps.push(Step {
                kernel,
                inputs: ins,
                outputs: outs,
                frees: vec![],
                num_outputs: node.outputs.len(),
            });
            descs.push(describe(g, n));
        }
        let outputs: Vec<usize> = g
            .outputs()
            .iter()
            .map(|&v| slot(v, &mut values, &mut names, &mut consts))
            .collect();

        // Last reader of each slot; graph outputs and constants never die.
        let mut last: Vec<Option<usize>> = vec![None; values.len()];
        for (i, st) in steps.iter().enumerate() {
            for s in st.inputs.iter().flatten() {
                last[*s] = Some(i);
            }
            // A value nobody reads dies where it is born.
            for s in st.outputs.iter().flatten() {
                if last[*s].is_none() {
                    last[*s] = Some(i);
                }
            }
        }
        for (s, l) in last.iter().enumerate() {
            if let Some(i) = *l
                && !outputs.contains(&s)
                && consts[s].is_none()
            {
                steps[i].frees.push(s);
            }
        }

        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("qopt-interp-{i}"))
            .build()
            .map_err(|e| InterpError::ThreadPool(e.to_string()))?;
        let profile = opts.profile.then(|| vec![(Duration::ZERO, 0); steps.len()]);
        Ok(Plan {
            steps,
            inputs,
            outputs,
            values,
            names,
            consts,
            descs,
            opset,
            pool,
            buffers: BufferPool::new(),
            profile,
            last_shapes: vec![],
        })
    }

    pub fn inputs(&self) -> &[PlanInput] {
        &self.inputs
    }

    /// Names of the graph outputs, in order.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs
            .iter()
            .map(|&s| self.names[s].as_str())
            .collect()
    }

    /// The values a `run_with` hook is called for: graph inputs and every step output.
    pub fn visible_values(&self) -> Vec<ValueId> {
        let mut v: Vec<ValueId> = self.inputs.iter().map(|i| i.value).collect();
        for st in &self.steps {
            v.extend(st.outputs.iter().flatten().map(|&s| self.values[s]));
        }
        v
    }

    /// (buffer requests the pool could not serve so far, elements the pool holds now).
    pub fn pool_stats(&self) -> (u64, usize) {
        (self.buffers.misses, self.buffers.held())
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Give output tensors back so their buffers serve the next run.
    pub fn recycle(&mut self, tensors: Vec<Tensor>) {
        for t in tensors {
            if let Tensor::F32(a) = t {
                self.buffers.give(a.into_raw_vec_and_offset().0);
            }
        }
    }

    /// Time per op type, most expensive first (empty unless `PlanOptions::profile`).
    pub fn profile(&self) -> Vec<ProfileEntry> {
        let Some(p) = &self.profile else {
            return vec![];
        };
        let mut by: BTreeMap<String, ProfileEntry> = BTreeMap::new();
        for (st, (d, c)) in self.steps.iter().zip(p) {
            let name = match &st.kernel {
                Kernel::Op(op) => op.op_type().to_string(),
                Kernel::Conv(c) => {
                    let kind = if c.attrs.group > 1 && c.w_shape.get(1) == Some(&1) {
                        "depthwise"
                    } else if c.w_shape[2..].iter().all(|&k| k == 1) {
                        "1x1"
                    } else {
                        "im2col"
                    };
                    format!(
                        "Conv({kind}){}",
                        if c.act != Activation::None {
                            "+act"
                        } else {
                            ""
                        }
                    )
                }
                Kernel::Gemm(..) => "Gemm".into(),
                Kernel::Activation(_) => "FusedActivation".into(),
            };
            let e = by.entry(name.clone()).or_insert_with(|| ProfileEntry {
                op_type: name,
                ..Default::default()
            });
            e.calls += c;
            e.total += *d;
        }
        let mut v: Vec<ProfileEntry> = by.into_values().collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(a.op_type.cmp(&b.op_type)));
        v
    }

    /// Time per step (node description, calls, total), in execution order (empty unless
    /// `PlanOptions::profile`).
    pub fn profile_steps(&self) -> Vec<(String, u64, Duration)> {
        let Some(p) = &self.profile else {
            return vec![];
        };
        self.descs
            .iter()
            .zip(p)
            .map(|(d, (t, c))| (d.clone(), *c, *t))
            .collect()
    }

    /// Run with inputs by name.
    pub fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, InterpError> {
        self.run_with(inputs, |_, _| {})
    }

    /// Run with inputs in the graph's input order.
    pub fn run_positional(&mut self, inputs: &[&Tensor]) -> Result<Vec<Tensor>, InterpError> {
        if inputs.len() != self.inputs.len() {
            return Err(InterpError::InputCount {
                expected: self.inputs.len(),
                got: inputs.len(),
            });
        }
        let names: Vec<String> = self.inputs.iter().map(|i| i.name.clone()).collect();
        let named: Vec<(&str, &Tensor)> = names
            .iter()
            .map(String::as_str)
            .zip(inputs.iter().copied())
            .collect();
        self.run(&named)
    }

    /// Run and also return the values in `capture` (copies of them), in that order.
    pub fn run_capture(
        &mut self,
        inputs: &[(&str, &Tensor)],
        capture: &[ValueId],
    ) -> Result<(Vec<Tensor>, Vec<Option<Tensor>>), InterpError> {
        let mut got: Vec<Option<Tensor>> = vec![None; capture.len()];
        let outs = self.run_with(inputs, |v, t| {
            if let Some(i) = capture.iter().position(|&c| c == v) {
                got[i] = Some(t.clone());
            }
        })?;
        Ok((outs, got))
    }

    fn check_inputs<'a>(
        &self,
        inputs: &[(&str, &'a Tensor)],
    ) -> Result<Vec<&'a Tensor>, InterpError> {
        check_inputs(&self.inputs, inputs)
    }

    /// Run, calling `hook(value, tensor)` for every graph input and every value a step
    /// produces, right after it is produced (see [`Plan::visible_values`]).
    pub fn run_with<F>(
        &mut self,
        inputs: &[(&str, &Tensor)],
        mut hook: F,
    ) -> Result<Vec<Tensor>, InterpError>
    where
        F: FnMut(ValueId, &Tensor) + Send,
    {
        let fed = self.check_inputs(inputs)?;
        let shapes: Vec<Vec<usize>> = fed.iter().map(|t| t.shape().to_vec()).collect();
        if shapes != self.last_shapes {
            // New shapes, new memory plan.
            self.buffers.clear();
            self.last_shapes = shapes;
        }
        let Plan {
            steps,
            inputs: pins,
            outputs,
            values,
            consts,
            descs,
            opset,
            pool,
            buffers,
            profile,
            ..
        } = self;
        let opset = *opset;
        pool.install(|| {
            let mut slots: Vec<Slot> = consts
                .iter()
                .map(|c| c.as_deref().map_or(Slot::Empty, Slot::Borrowed))
                .collect();
            for (pi, t) in pins.iter().zip(&fed) {
                slots[pi.slot] = Slot::Borrowed(t);
                hook(pi.value, t);
            }
            for (si, st) in steps.iter().enumerate() {
                let t0 = profile.is_some().then(Instant::now);
                let outs = exec_step(st, &mut slots, buffers, opset)
                    .map_err(|e| e.at(descs[si].clone()))?;
                if outs.len()
                    < st.outputs
                        .iter()
                        .rposition(Option::is_some)
                        .map_or(0, |p| p + 1)
                {
                    return Err(OpError(format!(
                        "produced {} outputs, {} are used",
                        outs.len(),
                        st.outputs.len()
                    ))
                    .at(descs[si].clone()));
                }
                for (o, t) in st.outputs.iter().zip(outs) {
                    if let Some(s) = o {
                        hook(values[*s], &t);
                        slots[*s] = Slot::Owned(t);
                    } else if let Tensor::F32(a) = t {
                        buffers.give(a.into_raw_vec_and_offset().0);
                    }
                }
                for &s in &st.frees {
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
            let mut result = Vec::with_capacity(outputs.len());
            for (i, &s) in outputs.iter().enumerate() {
                let later = outputs[i + 1..].contains(&s);
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
                        return Err(InterpError::DanglingOutput(format!("{:?}", values[s])));
                    }
                };
                result.push(t);
            }
            Ok(result)
        })
    }
}

fn type_string(ty: &TypeInfo) -> String {
    let d = ty.dtype.map_or("?".to_string(), |d| d.to_string());
    match &ty.shape {
        Some(s) => format!("{d}{s}"),
        None => format!("{d}[...]"),
    }
}

/// Whether input `k`'s tensor can be consumed by this step: owned, dying here, read once.
fn consumable(st: &Step, slots: &[Slot], k: usize) -> bool {
    let Some(Some(s)) = st.inputs.get(k) else {
        return false;
    };
    matches!(slots[*s], Slot::Owned(_))
        && st.frees.contains(s)
        && st.inputs.iter().filter(|i| **i == Some(*s)).count() == 1
}

fn take(st: &Step, slots: &mut [Slot], k: usize) -> Tensor {
    let s = st.inputs[k].expect("consumable input");
    match std::mem::replace(&mut slots[s], Slot::Empty) {
        Slot::Owned(t) => t,
        _ => unreachable!("consumable() checked ownership"),
    }
}

fn exec_step(
    st: &Step,
    slots: &mut [Slot],
    buffers: &mut BufferPool,
    opset: i64,
) -> Result<Vec<Tensor>, OpError> {
    // In-place and zero-copy paths first.
    if let Some(t) = try_inplace(st, slots)? {
        return Ok(vec![t]);
    }
    let ins: Vec<Option<&Tensor>> = st
        .inputs
        .iter()
        .map(|s| s.and_then(|s| slots[s].get()))
        .collect();
    if st
        .inputs
        .iter()
        .zip(&ins)
        .any(|(s, t)| s.is_some() && t.is_none())
    {
        return Err(OpError("an input was not computed".into()));
    }
    let mut ctx = Ctx {
        opset,
        pool: buffers,
    };
    match &st.kernel {
        Kernel::Op(op) => ops::execute(op, &mut ctx, &ins, st.num_outputs),
        Kernel::Conv(pc) => Ok(vec![pc.run(&mut ctx, ops::arg(&ins, 0)?)?]),
        Kernel::Gemm(o, act) => ops::gemm::run(o, &mut ctx, &ins, *act),
        Kernel::Activation(act) => {
            let x = ops::f32_arg(&ins, 0)?;
            let mut v = ctx.alloc(x.len());
            v.copy_from_slice(&ops::contig(x));
            apply_inplace(&mut v, *act);
            Ok(vec![ops::tensor(x.shape(), v)?])
        }
    }
}

/// Run the step in place on a dying input when the op allows it.
fn try_inplace(st: &Step, slots: &mut [Slot]) -> Result<Option<Tensor>, OpError> {
    let op = match &st.kernel {
        Kernel::Activation(act) => {
            if consumable(st, slots, 0)
                && slots[st.inputs[0].expect("input")]
                    .get()
                    .is_some_and(|t| t.dtype() == qopt_ir::DType::F32)
            {
                let mut t = take(st, slots, 0);
                if let Some(d) = t.view_mut::<f32>().and_then(|a| a.as_slice_mut()) {
                    apply_inplace(d, *act);
                }
                return Ok(Some(t));
            }
            return Ok(None);
        }
        Kernel::Op(op) => op,
        _ => return Ok(None),
    };
    if st.num_outputs != 1 && !matches!(op, Op::Dropout(_)) {
        return Ok(None);
    }
    let ins: Vec<Option<&Tensor>> = st
        .inputs
        .iter()
        .map(|s| s.and_then(|s| slots[s].get()))
        .collect();
    let Some(x) = ins.first().copied().flatten() else {
        return Ok(None);
    };
    // Shape-only ops: move the buffer.
    if let Some(shape) = ops::shape::zero_copy_shape(op, &ins) {
        if matches!(op, Op::Dropout(_)) && st.outputs.get(1).is_some_and(Option::is_some) {
            return Ok(None);
        }
        let shape = shape?;
        if consumable(st, slots, 0) {
            let t = take(st, slots, 0);
            return ops::shape::reshape_owned(t, &shape).map(Some);
        }
        return Ok(None);
    }
    // Unary f32 ops, and Clip with constant scalar bounds.
    let unary = match op {
        Op::Clip(_) if x.dtype() == qopt_ir::DType::F32 => {
            let (lo, hi) = ops::clip::f32_bounds(
                ins.get(1).copied().flatten(),
                ins.get(2).copied().flatten(),
            )?;
            Some(crate::ops::unary::Unary::Clip(lo, hi))
        }
        op => ops::unary::inplace_kind(op, x),
    };
    if let Some(u) = unary {
        if consumable(st, slots, 0) {
            let mut t = take(st, slots, 0);
            if let Some(d) = t.view_mut::<f32>().and_then(|a| a.as_slice_mut()) {
                u.apply_inplace(d);
                return Ok(Some(t));
            }
            return Err(OpError("in-place operand is not contiguous".into()));
        }
        return Ok(None);
    }
    if let Op::BatchNormalization(o) = op {
        if consumable(st, slots, 0) && x.dtype() == qopt_ir::DType::F32 && x.rank() >= 2 {
            let c = x.shape()[1];
            let inner: usize = x.shape()[2..].iter().product();
            let (a, b) = ops::batchnorm::affine(o, &ins, c)?;
            let mut t = take(st, slots, 0);
            if let Some(d) = t.view_mut::<f32>().and_then(|a| a.as_slice_mut()) {
                ops::batchnorm::apply_inplace(d, c, inner, &a, &b);
            }
            return Ok(Some(t));
        }
        return Ok(None);
    }
    // Binary arithmetic: overwrite whichever operand has the output's shape and dies here.
    if matches!(
        op,
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) | Op::PRelu(_)
    ) && ins.len() == 2
    {
        let (Some(a), Some(b)) = (ins[0], ins[1]) else {
            return Ok(None);
        };
        let target = [(a, b), (b, a)]
            .into_iter()
            .enumerate()
            .take(if matches!(op, Op::PRelu(_)) { 1 } else { 2 })
            .find(|(k, (t, other))| {
                consumable(st, slots, *k) && ops::binary::can_run_inplace(op, t, other)
            })
            .map(|(k, _)| k);
        if let Some(k) = target {
            let op = op.clone();
            let mut t = take(st, slots, k);
            let other_slot = st.inputs[1 - k].expect("binary operand");
            let other = slots[other_slot]
                .get()
                .ok_or_else(|| OpError("an input was not computed".into()))?;
            ops::binary::run_inplace(&op, &mut t, other, k == 1)?;
            return Ok(Some(t));
        }
    }
    Ok(None)
}

/// Match named inputs to a plan's inputs and check each one's dtype and shape (known dims
/// equal, a symbolic dim the same size wherever it appears); shared by the fp32 and INT8 plans.
pub(crate) fn check_inputs<'a>(
    pins: &[PlanInput],
    inputs: &[(&str, &'a Tensor)],
) -> Result<Vec<&'a Tensor>, InterpError> {
    let mut fed: Vec<Option<&Tensor>> = vec![None; pins.len()];
    for (name, t) in inputs {
        match pins.iter().position(|i| i.name == *name) {
            Some(i) => fed[i] = Some(t),
            None => {
                let all: Vec<&str> = pins.iter().map(|i| i.name.as_str()).collect();
                return Err(InterpError::UnknownInput(name.to_string(), all.join(", ")));
            }
        }
    }
    let mut syms: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(fed.len());
    for (pi, t) in pins.iter().zip(fed) {
        let Some(t) = t else {
            return Err(InterpError::MissingInput(pi.name.clone()));
        };
        let mismatch = || InterpError::InputMismatch {
            name: pi.name.clone(),
            expected: type_string(&pi.ty),
            got: format!("{}{:?}", t.dtype(), t.shape()).replace(' ', ""),
        };
        if pi.ty.dtype.is_some_and(|d| d != t.dtype()) {
            return Err(mismatch());
        }
        if let Some(s) = &pi.ty.shape {
            if s.rank() != t.rank() {
                return Err(mismatch());
            }
            for (d, &n) in s.dims().iter().zip(t.shape()) {
                match d {
                    Dim::Known(k) if *k as usize != n => return Err(mismatch()),
                    // "?" is how some exporters write an unknown dimension, not a name.
                    Dim::Sym(name)
                        if name != "?" && *syms.entry(name.as_str()).or_insert(n) != n =>
                    {
                        return Err(mismatch());
                    }
                    _ => {}
                }
            }
        }
        out.push(t);
    }
    Ok(out)
}
