//! Plan-time fusion: which nodes run as one step, decided from the graph without changing it.
//!
//! - `Conv` with constant weights, followed by `BatchNormalization` with constant parameters,
//!   runs with the normalisation folded into its weights and bias (ONNX Runtime does the same).
//! - `Conv` or `Gemm` followed by an activation (Relu, LeakyRelu, Clip with constant bounds,
//!   HardSigmoid, HardSwish, Sigmoid, or a hard-swish written out as Add/Clip/Div/Mul) applies
//!   it in the GEMM epilogue while the output tile is in cache.
//! - A written-out hard-swish after any other op runs as one element-wise step.
//!
//! A node is absorbed only when the value between it and its producer has no other reader, is
//! not a graph output and is not in the caller's `keep` list: nobody can observe the value that
//! fusion removes.

use crate::kernels::activation::Activation;
use crate::ops::clip::f32_bounds;
use qopt_ir::{Graph, NodeId, Op, Tensor, ValueId};
use std::collections::{BTreeMap, HashSet};

/// One fused group, named by its head node.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub head: NodeId,
    /// A BatchNormalization folded into a Conv head.
    pub bn: Option<NodeId>,
    pub act: Option<Activation>,
    /// Nodes the group absorbs (BN and activation nodes).
    pub absorbed: Vec<NodeId>,
    /// The value the group produces (the last absorbed node's output).
    pub output: ValueId,
}

struct Ctx<'a> {
    g: &'a Graph,
    keep: &'a HashSet<ValueId>,
}

impl Ctx<'_> {
    /// The single consumer `(node, slot)` of `v`, when `v` is otherwise invisible.
    fn sole_consumer(&self, v: ValueId) -> Option<(NodeId, usize)> {
        if self.keep.contains(&v) || self.g.is_graph_output(v) {
            return None;
        }
        match self.g.consumers(v).as_slice() {
            [c] => Some(*c),
            _ => None,
        }
    }

    fn scalar_const(&self, n: NodeId, slot: usize) -> Option<f32> {
        let t = self.g.const_input(n, slot)?;
        (t.len() == 1 && t.dtype() == qopt_ir::DType::F32)
            .then(|| t.scalar_f64().unwrap_or(0.0) as f32)
    }

    fn const_tensor(&self, n: NodeId, slot: usize) -> Option<&Tensor> {
        self.g.const_input(n, slot).map(|t| &**t)
    }

    /// An activation node reading `v` at slot 0 as its only reader: (activation, node).
    fn single_node_activation(&self, v: ValueId) -> Option<(Activation, Vec<NodeId>, ValueId)> {
        let (n, slot) = self.sole_consumer(v)?;
        if slot != 0 {
            return None;
        }
        let act = match &self.g.node(n).op {
            Op::Relu(_) => Activation::Relu,
            Op::LeakyRelu(o) => Activation::LeakyRelu(o.alpha),
            Op::HardSigmoid(o) => Activation::HardSigmoid(o.alpha, o.beta),
            Op::HardSwish(_) => Activation::HardSwish,
            Op::Sigmoid(_) => Activation::Sigmoid,
            Op::Clip(_) => {
                let inputs = self.g.inputs(n);
                // Bounds must be constants (or absent).
                let lo = match inputs.get(1).copied().flatten() {
                    Some(_) => Some(self.const_tensor(n, 1)?),
                    None => None,
                };
                let hi = match inputs.get(2).copied().flatten() {
                    Some(_) => Some(self.const_tensor(n, 2)?),
                    None => None,
                };
                let (lo, hi) = f32_bounds(lo, hi).ok()?;
                Activation::Clip(lo, hi)
            }
            _ => return None,
        };
        Some((act, vec![n], ValueId::new(n, 0)))
    }

    /// `Mul(x, Div(Clip(Add(x, a), lo, hi), s))` (or `Mul(.., s)`), the hard-swish that
    /// PaddlePaddle exports write out, reading `x = v`.
    fn hardswish_parts(&self, v: ValueId) -> Option<(Activation, Vec<NodeId>, ValueId)> {
        if self.keep.contains(&v) || self.g.is_graph_output(v) {
            return None;
        }
        let cons = self.g.consumers(v);
        if cons.len() != 2 {
            return None;
        }
        let (add, add_slot) = *cons
            .iter()
            .find(|(n, _)| matches!(self.g.node(*n).op, Op::Add(_)))?;
        let add_c = self.scalar_const(add, 1 - add_slot)?;
        let (clip, 0) = self.sole_consumer(ValueId::new(add, 0))? else {
            return None;
        };
        if !matches!(self.g.node(clip).op, Op::Clip(_)) {
            return None;
        }
        let (lo, hi) = (self.scalar_const(clip, 1)?, self.scalar_const(clip, 2)?);
        let (scale_node, 0) = self.sole_consumer(ValueId::new(clip, 0))? else {
            return None;
        };
        let (scale, scale_is_mul) = match self.g.node(scale_node).op {
            Op::Div(_) => (self.scalar_const(scale_node, 1)?, false),
            Op::Mul(_) => (self.scalar_const(scale_node, 1)?, true),
            _ => return None,
        };
        let (mul, _) = self.sole_consumer(ValueId::new(scale_node, 0))?;
        if !matches!(self.g.node(mul).op, Op::Mul(_)) {
            return None;
        }
        // The Mul's other operand is x itself.
        let mins = self.g.inputs(mul);
        if !mins.contains(&Some(v)) || !cons.iter().any(|(n, _)| *n == mul) {
            return None;
        }
        let act = Activation::HardSwishParts {
            add: add_c,
            lo,
            hi,
            scale,
            scale_is_mul,
        };
        Some((act, vec![add, clip, scale_node, mul], ValueId::new(mul, 0)))
    }

    fn activation(&self, v: ValueId) -> Option<(Activation, Vec<NodeId>, ValueId)> {
        self.single_node_activation(v)
            .or_else(|| self.hardswish_parts(v))
    }

    /// A BatchNormalization with constant parameters reading `v` (a Conv output).
    fn batchnorm(&self, v: ValueId) -> Option<NodeId> {
        let (n, 0) = self.sole_consumer(v)? else {
            return None;
        };
        let Op::BatchNormalization(o) = &self.g.node(n).op else {
            return None;
        };
        if o.training_mode != 0
            || (1..5).any(|s| {
                self.const_tensor(n, s)
                    .is_none_or(|t| t.dtype() != qopt_ir::DType::F32)
            })
        {
            return None;
        }
        // Only the first output may be used.
        let outs = self.g.node(n).outputs.len();
        if (1..outs).any(|s| self.g.use_count(ValueId::new(n, s)) > 0) {
            return None;
        }
        Some(n)
    }
}

/// Find the fused groups among `order` (the nodes the plan will run, in order).
pub fn find_groups(
    g: &Graph,
    order: &[NodeId],
    keep: &HashSet<ValueId>,
) -> BTreeMap<NodeId, Group> {
    let cx = Ctx { g, keep };
    let mut groups = BTreeMap::new();
    let mut taken: HashSet<NodeId> = HashSet::new();
    for &n in order {
        if taken.contains(&n) {
            continue;
        }
        let out0 = ValueId::new(n, 0);
        let (bn, mut absorbed, mut output) = match &g.node(n).op {
            Op::Conv(_)
                if g.const_input(n, 1).is_some()
                    && g.input(n, 2).is_none_or(|_| g.const_input(n, 2).is_some()) =>
            {
                match cx.batchnorm(out0) {
                    Some(bn) => (Some(bn), vec![bn], ValueId::new(bn, 0)),
                    None => (None, vec![], out0),
                }
            }
            Op::Gemm(_) => (None, vec![], out0),
            // Any other op: only the multi-node hard-swish is worth a step of its own.
            op if !op.is_source() && g.node(n).outputs.len() == 1 => {
                if let Some((act, nodes, out)) = cx.hardswish_parts(out0)
                    && nodes.iter().all(|m| !taken.contains(m))
                {
                    taken.extend(nodes.iter().copied());
                    groups.insert(
                        n,
                        Group {
                            head: n,
                            bn: None,
                            act: Some(act),
                            absorbed: nodes,
                            output: out,
                        },
                    );
                }
                continue;
            }
            _ => continue,
        };
        let act = match cx.activation(output) {
            Some((act, nodes, out)) if nodes.iter().all(|m| !taken.contains(m)) => {
                absorbed.extend(nodes);
                output = out;
                Some(act)
            }
            _ => None,
        };
        if bn.is_none() && act.is_none() && !matches!(g.node(n).op, Op::Conv(_)) {
            continue;
        }
        taken.extend(absorbed.iter().copied());
        groups.insert(
            n,
            Group {
                head: n,
                bn,
                act,
                absorbed,
                output,
            },
        );
    }
    groups
}
