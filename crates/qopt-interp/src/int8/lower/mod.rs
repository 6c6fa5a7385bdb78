//! Lowering a quantized graph to an integer plan (DESIGN.md §7, issue 6).
//!
//! The graph is walked once in topological order. DequantizeLinear outputs are not computed:
//! they are views of a quantized tensor with known parameters (`qdq.rs`), which an integer step
//! reads directly. Each other node is matched against the integer patterns (`rules.rs`: a Conv,
//! Gemm or MatMul between DQ inputs and a Q output, optionally through Relu/Clip, becomes one
//! integer kernel whose output is the Q's tensor; likewise Add/Mul, pools, Concat, element-wise
//! ops as lookup tables, and ops that only move elements) and the explicit integer operators
//! (`explicit.rs`: QLinearConv, QLinearMatMul, QLinearAdd, ConvInteger, MatMulInteger,
//! DynamicQuantizeLinear, QGemm, ...). A node no pattern takes runs as the fp32 interpreter's op,
//! on dequantized inputs, followed by the graph's own QuantizeLinear: the QDQ reference semantics.
//! When a node that touches quantized values falls back like that, a note says why
//! (`qopt run --verbose` prints them): a pattern the lowering does not recognise is never a wrong
//! integer result, only a slower one.
//!
//! Layout: quantized rank-4 tensors that feed convs and pools are kept channels-last; every step
//! declares the layout it reads, and conversions are inserted (once per value and layout) where
//! a consumer needs the other one (`steps/layout.rs`).

mod chain;
mod explicit;
pub mod qdq;
mod rules;

use crate::error::{InterpError, UnsupportedOp};
use crate::int8::steps::Step;
use crate::int8::steps::float::{Float, LogicalShape};
use crate::int8::steps::layout::Convert;
use crate::int8::steps::lut::{LutStep, Table};
use crate::int8::steps::quantize::{Dequantize, Quantize};
use crate::plan::PlanInput;
use qdq::{Dq, QParams};
use qopt_ir::{Graph, NodeId, Op, Tensor, ValueId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// A value slot of the plan.
pub struct SlotSpec {
    pub name: String,
    /// Constant contents.
    pub cst: Option<Arc<Tensor>>,
    /// Stored channels-last (`[N, H, W, C]`).
    pub nhwc: bool,
    /// Graph values this slot holds that a hook must see (`keep`).
    pub kept: Vec<ValueId>,
}

/// One step of the plan with its wiring.
pub struct StepSpec {
    pub step: Box<dyn Step>,
    pub ins: Vec<Option<usize>>,
    pub outs: Vec<Option<usize>>,
    /// The node it came from, for errors and profiles.
    pub desc: String,
}

/// The lowered plan.
pub struct Lowered {
    pub slots: Vec<SlotSpec>,
    pub steps: Vec<StepSpec>,
    pub inputs: Vec<PlanInput>,
    pub outputs: Vec<usize>,
    pub notes: Vec<String>,
}

/// Why a pattern did not apply.
pub(crate) enum Skip {
    /// Not this pattern's shape at all (no note).
    No,
    /// Looks quantized but cannot be lowered: the reason goes into the notes.
    Because(String),
}

pub(crate) type Tried = Result<Result<(), Skip>, InterpError>;

pub(crate) fn because(s: impl Into<String>) -> Tried {
    Ok(Err(Skip::Because(s.into())))
}

pub(crate) const NO: Tried = Ok(Err(Skip::No));
pub(crate) const DONE: Tried = Ok(Ok(()));

pub(crate) struct Lower<'g> {
    pub g: &'g Graph,
    pub keep: HashSet<ValueId>,
    pub slots: Vec<SlotSpec>,
    pub vslot: HashMap<ValueId, usize>,
    converted: HashMap<(usize, bool), usize>,
    deq: HashMap<ValueId, usize>,
    pub steps: Vec<StepSpec>,
    pub absorbed: HashSet<NodeId>,
    pub notes: Vec<String>,
    dq_cache: HashMap<ValueId, Option<Dq>>,
    unsupported: BTreeMap<String, Vec<String>>,
}

impl<'g> Lower<'g> {
    pub fn new(g: &'g Graph, keep: &[ValueId]) -> Self {
        Lower {
            g,
            keep: keep.iter().copied().collect(),
            slots: vec![],
            vslot: HashMap::new(),
            converted: HashMap::new(),
            deq: HashMap::new(),
            steps: vec![],
            absorbed: HashSet::new(),
            notes: vec![],
            dq_cache: HashMap::new(),
            unsupported: BTreeMap::new(),
        }
    }

    pub fn desc(&self, n: NodeId) -> String {
        self.g.describe(n)
    }

    /// A new slot.
    pub fn new_slot(&mut self, name: &str, nhwc: bool) -> usize {
        self.slots.push(SlotSpec {
            name: name.to_string(),
            cst: None,
            nhwc,
            kept: vec![],
        });
        self.slots.len() - 1
    }

    /// Binds value `v` to slot `s` (recording it for hooks if kept).
    pub fn bind(&mut self, v: ValueId, s: usize) {
        self.vslot.insert(v, s);
        if self.keep.contains(&v) {
            self.slots[s].kept.push(v);
        }
    }

    /// A fresh slot for value `v`.
    pub fn out_slot(&mut self, v: ValueId, nhwc: bool) -> usize {
        let s = self.new_slot(&self.g.value(v).name.clone(), nhwc);
        self.bind(v, s);
        s
    }

    /// The slot holding `v` as stored (constants get one on first use).
    pub fn slot(&mut self, v: ValueId) -> Result<usize, InterpError> {
        if let Some(&s) = self.vslot.get(&v) {
            return Ok(s);
        }
        if let Some(t) = self.g.const_value(v) {
            let s = self.new_slot(&self.g.value(v).name.clone(), false);
            self.slots[s].cst = Some(t.clone());
            self.bind(v, s);
            return Ok(s);
        }
        Err(InterpError::Node {
            node: self.desc(v.node),
            msg: format!(
                "value '{}' is used before it is computed",
                self.g.value(v).name
            ),
        })
    }

    /// Slot `s` in the wanted layout (a conversion step is added once per slot and layout).
    pub fn in_layout(&mut self, s: usize, nhwc: bool) -> usize {
        if self.slots[s].nhwc == nhwc {
            return s;
        }
        if let Some(&c) = self.converted.get(&(s, nhwc)) {
            return c;
        }
        let name = format!(
            "{}{}",
            self.slots[s].name,
            if nhwc { "#nhwc" } else { "#nchw" }
        );
        let c = self.new_slot(&name, nhwc);
        if let Some(t) = self.slots[s].cst.clone()
            && nhwc
        {
            // Constants are converted now (a broadcast operand of lower rank gets leading 1s).
            if let Ok(ct) = pad_rank4(&t).and_then(|t| crate::int8::steps::layout::to_nhwc(&t)) {
                self.slots[c].cst = Some(Arc::new(ct));
                self.converted.insert((s, nhwc), c);
                return c;
            }
        }
        self.steps.push(StepSpec {
            step: Box::new(Convert { to_nhwc: nhwc }),
            ins: vec![Some(s)],
            outs: vec![Some(c)],
            desc: format!("layout of '{}'", self.slots[s].name),
        });
        self.converted.insert((s, nhwc), c);
        c
    }

    /// The plain-layout slot of `v`.
    pub fn plain(&mut self, v: ValueId) -> Result<usize, InterpError> {
        let s = self.slot(v)?;
        Ok(self.in_layout(s, false))
    }

    /// What DequantizeLinear output `v` is (cached).
    pub fn dq(&mut self, v: ValueId) -> Result<Option<Dq>, InterpError> {
        if let Some(d) = self.dq_cache.get(&v) {
            return Ok(d.clone());
        }
        let d = qdq::dq_of(self.g, v)?;
        self.dq_cache.insert(v, d.clone());
        Ok(d)
    }

    /// A run-time quantized input: the DQ's source and parameters.
    pub fn runtime_dq(
        &mut self,
        v: Option<ValueId>,
    ) -> Result<Option<(ValueId, QParams)>, InterpError> {
        let Some(v) = v else { return Ok(None) };
        Ok(match self.dq(v)? {
            Some(Dq::Runtime { src, p }) => Some((src, p)),
            _ => None,
        })
    }

    /// A constant dequantized input: the quantized data and parameters.
    pub fn const_dq(
        &mut self,
        v: Option<ValueId>,
    ) -> Result<Option<(Arc<Tensor>, QParams)>, InterpError> {
        let Some(v) = v else { return Ok(None) };
        Ok(match self.dq(v)? {
            Some(Dq::Const { data, p }) => Some((data, p)),
            _ => None,
        })
    }

    /// The f32 value of `v`: a DequantizeLinear output is computed here (once) from its source.
    pub fn float_of(&mut self, v: ValueId) -> Result<usize, InterpError> {
        if let Some(&s) = self.deq.get(&v) {
            return Ok(s);
        }
        match self.dq(v)? {
            Some(Dq::Runtime { src, p }) => {
                let src_slot = self.slot(src)?;
                let nhwc = self.slots[src_slot].nhwc;
                let (scale, zero_point) = p.per_tensor().expect("runtime DQ is per tensor");
                let s = self.out_slot(v, false);
                self.steps.push(StepSpec {
                    step: Box::new(Dequantize {
                        scale,
                        zero_point,
                        nhwc_in: nhwc,
                    }),
                    ins: vec![Some(src_slot)],
                    outs: vec![Some(s)],
                    desc: self.desc(v.node),
                });
                self.deq.insert(v, s);
                Ok(s)
            }
            Some(Dq::Const { .. }) => {
                // Constant folding with the fp32 op: exactly what the reference computes.
                let n = v.node;
                let ins: Vec<Option<Tensor>> = self
                    .g
                    .inputs(n)
                    .into_iter()
                    .map(|i| i.and_then(|i| self.g.const_value(i)).map(|t| (**t).clone()))
                    .collect();
                let refs: Vec<Option<&Tensor>> = ins.iter().map(Option::as_ref).collect();
                let opset = self.g.meta.onnx_opset().unwrap_or(21);
                let t = crate::eval::eval_node(&self.g.node(n).op, opset, &refs, 1)
                    .map_err(|e| match e {
                        InterpError::Node { msg, .. } => InterpError::Node {
                            node: self.desc(n),
                            msg,
                        },
                        e => e,
                    })?
                    .remove(0);
                let s = self.new_slot(&self.g.value(v).name.clone(), false);
                self.slots[s].cst = Some(Arc::new(t));
                self.bind(v, s);
                self.deq.insert(v, s);
                Ok(s)
            }
            None => self.plain(v),
        }
    }

    /// The single QuantizeLinear that consumes float value `f` and nothing else, with its
    /// constant per-tensor parameters (`f` is not an output nor kept).
    pub fn sole_q(&self, f: ValueId) -> Result<Option<(NodeId, QParams)>, InterpError> {
        if self.g.is_graph_output(f) || self.keep.contains(&f) {
            return Ok(None);
        }
        let cons = self.g.consumers(f);
        if cons.len() != 1 || cons[0].1 != 0 {
            return Ok(None);
        }
        let q = cons[0].0;
        if !matches!(self.g.node(q).op, Op::QuantizeLinear(_)) {
            return Ok(None);
        }
        Ok(qdq::q_params(self.g, q)?.map(|p| (q, p)))
    }

    /// Whether node `n` reads a DequantizeLinear output or feeds a QuantizeLinear (a fallback of
    /// such a node is worth a note).
    fn touches_quantized(&self, n: NodeId) -> bool {
        let g = self.g;
        g.inputs(n)
            .into_iter()
            .flatten()
            .any(|v| matches!(g.node(v.node).op, Op::DequantizeLinear(_)))
            || (0..g.node(n).outputs.len()).any(|s| {
                g.consumers(ValueId::new(n, s))
                    .iter()
                    .any(|(c, _)| matches!(g.node(*c).op, Op::QuantizeLinear(_)))
            })
    }

    /// Runs node `n` as the fp32 interpreter's op.
    fn float_node(&mut self, n: NodeId) -> Result<(), InterpError> {
        let g = self.g;
        let node = g.node(n);
        if !crate::ops::supported(&node.op) {
            let d = self.desc(n);
            self.unsupported
                .entry(node.op.qualified_name())
                .or_default()
                .push(d);
            return Ok(());
        }
        let mut ins = vec![];
        for v in g.inputs(n) {
            ins.push(match v {
                Some(v) => Some(self.float_of(v)?),
                None => None,
            });
        }
        let outs = (0..node.outputs.len())
            .map(|s| {
                let v = ValueId::new(n, s);
                (g.use_count(v) > 0 || g.is_graph_output(v) || self.keep.contains(&v))
                    .then(|| self.out_slot(v, false))
            })
            .collect();
        self.steps.push(StepSpec {
            step: Box::new(Float {
                op: node.op.clone(),
                num_outputs: node.outputs.len(),
            }),
            ins,
            outs,
            desc: self.desc(n),
        });
        Ok(())
    }

    /// A QuantizeLinear not absorbed into the op before it.
    fn quantize_node(&mut self, n: NodeId) -> Result<(), InterpError> {
        let g = self.g;
        let Some(p) = qdq::q_params(g, n)? else {
            return self.float_node(n);
        };
        let (scale, zp) = p.per_tensor().expect("q_params is per tensor");
        let out = p.out().expect("q_params is u8/i8");
        let x = g.input(n, 0).ok_or_else(|| InterpError::Node {
            node: self.desc(n),
            msg: "missing input 0".into(),
        })?;
        let qv = ValueId::new(n, 0);
        // Q(DQ(q)): the same tensor, or a requantization table.
        if let Some((src, sp)) = self.runtime_dq(Some(x))? {
            let src_slot = self.slot(src)?;
            let (s_in, z_in) = sp.per_tensor().expect("runtime DQ is per tensor");
            if (s_in, z_in, sp.dtype) == (scale, zp, out.dtype()) && !self.keep.contains(&qv) {
                self.bind(qv, src_slot);
                return Ok(());
            }
            let nhwc = self.slots[src_slot].nhwc;
            let table = Table::requantize(sp.dtype, s_in, z_in, out, scale, zp)
                .map_err(|e| e.at(self.desc(n)))?;
            let o = self.out_slot(qv, nhwc);
            self.steps.push(StepSpec {
                step: Box::new(LutStep::new(vec![table], "requantize")),
                ins: vec![Some(src_slot)],
                outs: vec![Some(o)],
                desc: self.desc(n),
            });
            return Ok(());
        }
        let xs = self.float_of(x)?;
        let o = self.out_slot(qv, false);
        self.steps.push(StepSpec {
            step: Box::new(Quantize {
                scale,
                zero_point: zp,
                out,
            }),
            ins: vec![Some(xs)],
            outs: vec![Some(o)],
            desc: self.desc(n),
        });
        Ok(())
    }

    fn node(&mut self, n: NodeId) -> Result<(), InterpError> {
        let g = self.g;
        let op = &g.node(n).op;
        match op {
            Op::DequantizeLinear(_) => {
                // A usable DQ is a view, computed where a float consumer needs it.
                if self.dq(ValueId::new(n, 0))?.is_some() {
                    return Ok(());
                }
                return self.float_node(n);
            }
            Op::QuantizeLinear(_) => return self.quantize_node(n),
            _ => {}
        }
        let tried = match explicit::lower(self, n)? {
            Err(Skip::No) => match self.chain_lut(n)? {
                Err(Skip::No) => rules::lower(self, n)?,
                r => r,
            },
            r => r,
        };
        match tried {
            Ok(()) => Ok(()),
            Err(skip) => {
                if let Skip::Because(why) = &skip
                    && self.touches_quantized(n)
                {
                    self.notes
                        .push(format!("{}: runs in fp32: {why}", self.desc(n)));
                } else if matches!(skip, Skip::No) && self.touches_quantized(n) {
                    self.notes.push(format!(
                        "{}: runs in fp32 between DequantizeLinear and QuantizeLinear (no integer kernel for {})",
                        self.desc(n),
                        op.op_type()
                    ));
                }
                self.float_node(n)
            }
        }
    }

    /// Shape/Size of a quantized tensor read without dequantizing it.
    pub(crate) fn shape_query(&mut self, n: NodeId) -> Tried {
        let g = self.g;
        let Some(x) = g.input(n, 0) else { return NO };
        let Some((src, _)) = self.runtime_dq(Some(x))? else {
            return NO;
        };
        let s = self.slot(src)?;
        let o = self.out_slot(ValueId::new(n, 0), false);
        let step: Box<dyn Step> = if self.slots[s].nhwc {
            Box::new(LogicalShape {
                op: g.node(n).op.clone(),
            })
        } else {
            Box::new(Float {
                op: g.node(n).op.clone(),
                num_outputs: 1,
            })
        };
        self.steps.push(StepSpec {
            step,
            ins: vec![Some(s)],
            outs: vec![Some(o)],
            desc: self.desc(n),
        });
        DONE
    }
}

/// The steps whose results are used: by a plan output, a hook (`kept`), or a used step. Patterns
/// that take over earlier nodes (an element-wise chain as one table, `chain.rs`) leave those
/// nodes' steps unused; running them would only cost time.
fn prune(steps: Vec<StepSpec>, slots: &[SlotSpec], outputs: &[usize]) -> Vec<StepSpec> {
    let mut live = vec![false; slots.len()];
    for &s in outputs {
        live[s] = true;
    }
    for (s, spec) in slots.iter().enumerate() {
        live[s] |= !spec.kept.is_empty();
    }
    let mut keep = vec![false; steps.len()];
    for (i, st) in steps.iter().enumerate().rev() {
        if st.outs.iter().flatten().any(|&s| live[s]) {
            keep[i] = true;
            for &s in st.ins.iter().flatten() {
                live[s] = true;
            }
        }
    }
    steps
        .into_iter()
        .zip(keep)
        .filter_map(|(st, k)| k.then_some(st))
        .collect()
}

/// `t` with leading size-1 axes up to rank 4 (numpy broadcasting is unchanged).
pub(crate) fn pad_rank4(t: &Tensor) -> Result<Tensor, crate::error::OpError> {
    if t.rank() > 4 {
        return Err(crate::error::OpError(format!("rank {} > 4", t.rank())));
    }
    let mut shape = vec![1usize; 4 - t.rank()];
    shape.extend_from_slice(t.shape());
    crate::ops::shape::with_shape(t, &shape)
}

/// Lowers `g` (its nodes that lead to an output) into steps.
pub fn lower(g: &Graph, keep: &[ValueId]) -> Result<Lowered, InterpError> {
    let order = g
        .topo_order()
        .map_err(|n| InterpError::Cycle(g.describe(n)))?;
    for v in g.outputs() {
        if !g.contains(v.node) || v.slot >= g.node(v.node).outputs.len() {
            return Err(InterpError::DanglingOutput(format!("{v:?}")));
        }
    }
    let mut needed: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|v| v.node).collect();
    stack.extend(keep.iter().map(|v| v.node));
    while let Some(n) = stack.pop() {
        if needed.insert(n) {
            stack.extend(g.inputs(n).into_iter().flatten().map(|v| v.node));
        }
    }
    let mut lw = Lower::new(g, keep);
    let mut inputs = vec![];
    for &n in g.input_nodes() {
        let v = ValueId::new(n, 0);
        let s = lw.out_slot(v, false);
        inputs.push(PlanInput::new(
            g.value(v).name.clone(),
            v,
            g.value(v).ty.clone(),
            s,
        ));
    }
    for n in order {
        if !needed.contains(&n) || g.node(n).op.is_source() || lw.absorbed.contains(&n) {
            continue;
        }
        lw.node(n)?;
    }
    if !lw.unsupported.is_empty() {
        return Err(InterpError::Unsupported(
            std::mem::take(&mut lw.unsupported)
                .into_iter()
                .map(|(op_type, nodes)| UnsupportedOp { op_type, nodes })
                .collect(),
        ));
    }
    // Kept DQ outputs are materialised for the hook.
    for &v in keep {
        if lw.dq(v)?.is_some() && !lw.deq.contains_key(&v) {
            lw.float_of(v)?;
        }
    }
    let mut outputs = vec![];
    for &v in g.outputs() {
        let s = lw.float_of(v)?;
        outputs.push(lw.in_layout(s, false));
    }
    let steps = prune(lw.steps, &lw.slots, &outputs);
    Ok(Lowered {
        slots: lw.slots,
        steps,
        inputs,
        outputs,
        notes: lw.notes,
    })
}
