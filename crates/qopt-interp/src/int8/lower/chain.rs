//! Element-wise chains of one quantized tensor as one lookup table (DESIGN.md §7, issue 6).
//!
//! A float computation that depends on a single quantized tensor `x` through element-wise ops
//! only, with constant scalar operands, and ends in a QuantizeLinear, is a function of the 256
//! codes of `x`: `y = Q(f(DQ(x)))`. That holds even when the chain re-reads `x` (HardSwish
//! written as `x · Clip(x + 3, 0, 6) / 6`, `x · HardSigmoid(x)`) and when the quantizer put
//! QuantizeLinear/DequantizeLinear pairs between its ops (then `f` includes those rounding steps).
//! The chain is evaluated once at plan time on all 256 codes, node by node with the fp32
//! interpreter's own ops (QuantizeLinear and DequantizeLinear included), so each table entry is
//! exactly what the float QDQ reference computes for that code: one table lookup per element
//! replaces several steps (a table per op, a rescaling Mul, a table for the Div) and their
//! intermediate tensors. Composition of tables is the special case of a linear chain
//! (`g[f[i]]`).
//!
//! A chain whose result goes through a MaxPool before its QuantizeLinear (the last HardSwish of
//! PP-OCR's classifier) becomes the table then an integer MaxPool: see `max_pool_after`.
//!
//! The chain is found backwards from its last op (the one whose output the QuantizeLinear reads).
//! Every value inside it must be used only inside it (not a graph output, not kept for a hook):
//! a quantized intermediate read from outside becomes the chain's source instead, anything else
//! leaves the chain to the per-op rules. The ops lowered before the last one (their own tables or
//! steps) are then unused; `lower()` drops unused steps at the end.

use super::qdq::{Dq, QParams, rank_of};
use super::rules::{is_elementwise, window_of};
use super::{Lower, NO, StepSpec, Tried};
use crate::error::InterpError;
use crate::int8::steps::lut::{LutStep, Table};
use crate::int8::steps::pool::QMaxPool;
use qopt_ir::{DType, NodeId, Op, Tensor, ValueId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Most nodes one chain may hold (bounds the backward search on long element-wise runs).
const MAX_NODES: usize = 64;

/// A candidate chain: its nodes in evaluation order (inputs first), its quantized sources and
/// constant operands.
#[derive(Default)]
struct Cone {
    nodes: Vec<NodeId>,
    members: HashSet<NodeId>,
    sources: Vec<ValueId>,
    consts: HashMap<ValueId, Arc<Tensor>>,
    /// Insertion order of `consts` (a failed branch removes its own).
    const_order: Vec<ValueId>,
}

impl Cone {
    fn add_const(&mut self, v: ValueId, t: Arc<Tensor>) {
        if self.consts.insert(v, t).is_none() {
            self.const_order.push(v);
        }
    }
}

/// Why a candidate cannot stand as one table.
enum Escape {
    /// This quantized value is read outside the chain: make it the source and retry.
    Source(ValueId),
    /// Give up (the per-op rules lower it).
    GiveUp,
}

impl Lower<'_> {
    /// Lowers element-wise node `n` and the element-wise chain before it as one table, if the
    /// chain depends on one quantized tensor and holds more than `n` alone reading it once.
    pub(crate) fn chain_lut(&mut self, n: NodeId) -> Tried {
        let g = self.g;
        let node = g.node(n);
        if !is_elementwise(&node.op) || node.outputs.len() != 1 {
            return NO;
        }
        let (q, qp, pool) = match self.sole_q(ValueId::new(n, 0))? {
            Some((q, qp)) => (q, qp, None),
            None => match self.max_pool_after(n)? {
                Some((m, q, qp)) => (q, qp, Some(m)),
                None => return NO,
            },
        };
        let mut stop: HashSet<ValueId> = HashSet::new();
        let cone = loop {
            let mut cone = Cone::default();
            if !self.visit_value(ValueId::new(n, 0), &stop, &mut cone)? {
                return NO;
            }
            match self.escape(&cone, n) {
                None => break cone,
                Some(Escape::Source(v)) if stop.insert(v) => {}
                Some(_) => return NO,
            }
        };
        let [src] = cone.sources[..] else {
            return NO;
        };
        // One op reading its source once is the single-op rule's case (`rules.rs`).
        let ops = cone
            .nodes
            .iter()
            .filter(|&&m| is_elementwise(&g.node(m).op))
            .count();
        let reads = cone
            .nodes
            .iter()
            .filter(|&&m| matches!(g.node(m).op, Op::DequantizeLinear(_)))
            .map(|&m| {
                g.consumers(ValueId::new(m, 0))
                    .iter()
                    .filter(|(c, _)| cone.members.contains(c))
                    .count()
            })
            .sum::<usize>();
        if ops < 2 && reads < 2 && pool.is_none() {
            return NO;
        }
        // A constant of higher rank than the source would broadcast the output to its rank.
        let max_rank = rank_of(g, src).unwrap_or(1).max(1);
        if cone
            .consts
            .values()
            .any(|t| t.len() != 1 || t.rank() > max_rank)
        {
            return NO;
        }
        let (s_out, z_out) = qp.per_tensor().expect("q_params is per tensor");
        let out = qp.out().expect("q_params is u8/i8");
        let mut tables = vec![];
        for dt in [DType::U8, DType::I8] {
            if let Some(vals) = self.eval_cone(&cone, src, dt, n)? {
                tables.push(
                    Table::from_values(dt, &vals, out, s_out, z_out)
                        .map_err(|e| e.at(self.desc(n)))?,
                );
            }
        }
        if tables.is_empty() {
            return NO;
        }
        let xs = self.slot(src)?;
        let nhwc = self.slots[xs].nhwc;
        let o = match pool {
            None => self.out_slot(ValueId::new(q, 0), nhwc),
            Some(_) => {
                let name = format!("{}#table", g.value(ValueId::new(n, 0)).name);
                self.new_slot(&name, nhwc)
            }
        };
        self.absorbed.insert(q);
        let label = cone
            .nodes
            .iter()
            .map(|&m| g.node(m).op.op_type())
            .filter(|t| !matches!(*t, "QuantizeLinear" | "DequantizeLinear"))
            .collect::<Vec<_>>()
            .join("·");
        self.steps.push(StepSpec {
            step: Box::new(LutStep::new(tables, label)),
            ins: vec![Some(xs)],
            outs: vec![Some(o)],
            desc: self.desc(n),
        });
        if let Some(m) = pool {
            let window = window_of(&g.node(m).op).expect("max_pool_after checked the op");
            let xs = self.in_layout(o, true);
            let out = self.out_slot(ValueId::new(q, 0), true);
            self.absorbed.insert(m);
            self.steps.push(StepSpec {
                step: Box::new(QMaxPool {
                    window,
                    requant: None,
                }),
                ins: vec![Some(xs)],
                outs: vec![Some(out)],
                desc: self.desc(m),
            });
        }
        Ok(Ok(()))
    }

    /// The MaxPool that alone reads `n`'s output, and the QuantizeLinear that alone reads the
    /// pool's. `Q(MaxPool(f(x))) = MaxPool(Q(f(x)))` for any `f`: quantization never decreases
    /// (round half to even, then saturate), so the largest input of a window gives the largest
    /// code, and padding is ignored by both. So the table `Q∘f` runs first, then the integer pool.
    fn max_pool_after(&self, n: NodeId) -> Result<Option<(NodeId, NodeId, QParams)>, InterpError> {
        let g = self.g;
        let v = ValueId::new(n, 0);
        if g.is_graph_output(v) || self.keep.contains(&v) {
            return Ok(None);
        }
        let cons = g.consumers(v);
        if cons.len() != 1 || cons[0].1 != 0 {
            return Ok(None);
        }
        let m = cons[0].0;
        if !matches!(g.node(m).op, Op::MaxPool(_))
            || (1..g.node(m).outputs.len()).any(|s| g.use_count(ValueId::new(m, s)) > 0)
            || window_of(&g.node(m).op).is_none_or(|w| w.kernel.len() != 2)
        {
            return Ok(None);
        }
        Ok(self.sole_q(ValueId::new(m, 0))?.map(|(q, p)| (m, q, p)))
    }

    /// Adds the computation of float value `v` to the cone; false if it is not element-wise.
    fn visit_value(
        &mut self,
        v: ValueId,
        stop: &HashSet<ValueId>,
        cone: &mut Cone,
    ) -> Result<bool, InterpError> {
        let g = self.g;
        if cone.members.contains(&v.node) || cone.consts.contains_key(&v) {
            return Ok(true);
        }
        if cone.nodes.len() >= MAX_NODES {
            return Ok(false);
        }
        match self.dq(v)? {
            Some(Dq::Const { .. }) => {
                let s = self.float_of(v)?;
                return Ok(match self.slots[s].cst.clone() {
                    Some(t) => {
                        cone.add_const(v, t);
                        true
                    }
                    None => false,
                });
            }
            Some(Dq::Runtime { src, .. }) => {
                let ok = self.visit_quantized(src, stop, cone)?;
                if ok {
                    cone.members.insert(v.node);
                    cone.nodes.push(v.node);
                }
                return Ok(ok);
            }
            None => {}
        }
        if let Some(t) = g.const_value(v) {
            cone.add_const(v, t.clone());
            return Ok(true);
        }
        let node = g.node(v.node);
        if !is_elementwise(&node.op) || node.outputs.len() != 1 {
            return Ok(false);
        }
        for i in g.inputs(v.node).into_iter().flatten() {
            if !self.visit_value(i, stop, cone)? {
                return Ok(false);
            }
        }
        cone.members.insert(v.node);
        cone.nodes.push(v.node);
        Ok(true)
    }

    /// Adds quantized value `s`: through the QuantizeLinear that produced it when that part is
    /// element-wise too, else as a source.
    fn visit_quantized(
        &mut self,
        s: ValueId,
        stop: &HashSet<ValueId>,
        cone: &mut Cone,
    ) -> Result<bool, InterpError> {
        let g = self.g;
        if cone.members.contains(&s.node) || cone.sources.contains(&s) {
            return Ok(true);
        }
        if !stop.contains(&s)
            && matches!(g.node(s.node).op, Op::QuantizeLinear(_))
            && super::qdq::q_params(g, s.node)?.is_some()
            && let Some(x) = g.input(s.node, 0)
        {
            // Tentatively through the Q; on failure `s` is a source after all.
            let (n0, c0) = (cone.nodes.len(), cone.const_order.len());
            let saved_sources = cone.sources.len();
            if self.visit_value(x, stop, cone)? {
                cone.members.insert(s.node);
                cone.nodes.push(s.node);
                return Ok(true);
            }
            for m in cone.nodes.drain(n0..) {
                cone.members.remove(&m);
            }
            cone.sources.truncate(saved_sources);
            for c in cone.const_order.drain(c0..) {
                cone.consts.remove(&c);
            }
        }
        cone.sources.push(s);
        Ok(true)
    }

    /// The first value of the cone read from outside it (the last node `root` excepted).
    fn escape(&self, cone: &Cone, root: NodeId) -> Option<Escape> {
        let g = self.g;
        for &m in &cone.nodes {
            if m == root {
                continue;
            }
            let op = &g.node(m).op;
            if matches!(op, Op::DequantizeLinear(_)) {
                // A view of a source may be read anywhere; a view of an inner Q may not.
                let src = g.input(m, 0).expect("a runtime DQ has a source");
                if cone.sources.contains(&src) {
                    continue;
                }
            }
            let v = ValueId::new(m, 0);
            let inside = !g.is_graph_output(v)
                && !self.keep.contains(&v)
                && g.consumers(v).iter().all(|(c, _)| cone.members.contains(c));
            if inside {
                continue;
            }
            return Some(match op {
                Op::QuantizeLinear(_) => Escape::Source(v),
                Op::DequantizeLinear(_) => {
                    Escape::Source(g.input(m, 0).expect("a runtime DQ has a source"))
                }
                _ => Escape::GiveUp,
            });
        }
        None
    }

    /// The root's 256 float results for source codes of type `dt` (`None`: the graph's types
    /// do not allow `dt`).
    fn eval_cone(
        &self,
        cone: &Cone,
        src: ValueId,
        dt: DType,
        root: NodeId,
    ) -> Result<Option<Vec<f32>>, InterpError> {
        let g = self.g;
        let codes = match dt {
            DType::U8 => Tensor::from_vec(&[256], (0..=255u8).collect()),
            _ => Tensor::from_vec(&[256], (-128..=127i8).collect()),
        };
        let opset = g.meta.onnx_opset().unwrap_or(21);
        let mut vals: HashMap<ValueId, Tensor> = HashMap::new();
        vals.insert(src, codes);
        for &m in &cone.nodes {
            let ins: Vec<Option<&Tensor>> = g
                .inputs(m)
                .into_iter()
                .map(|i| {
                    i.and_then(|i| {
                        vals.get(&i)
                            .or_else(|| cone.consts.get(&i).map(|t| &**t))
                            .or_else(|| g.const_value(i).map(|t| &**t))
                    })
                })
                .collect();
            // A type mismatch (u8 codes against an i8 zero point) rules `dt` out.
            let Ok(mut y) = crate::eval::eval_node(&g.node(m).op, opset, &ins, 1) else {
                return Ok(None);
            };
            vals.insert(ValueId::new(m, 0), y.swap_remove(0));
        }
        let y = &vals[&ValueId::new(root, 0)];
        Ok(y.as_f32().map(|a| a.iter().copied().collect()))
    }
}
