//! Plan-time fusion: which nodes run as one step, decided from the graph without changing it.
//!
//! - `Conv` with constant weights, followed by `Mul`/`Add` of per-channel or scalar constants
//!   (biases and scales exported as separate ops) and `BatchNormalization` with constant
//!   parameters, runs with all of them folded into its weights and bias (ONNX Runtime folds
//!   BatchNormalization and Add the same way).
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
    /// Per-channel `Mul` (true) / `Add` (false) constants after a Conv head, in order, folded
    /// into its weights and bias.
    pub affine: Vec<(bool, Vec<f32>)>,
    /// A BatchNormalization folded into a Conv head (after the bias add, if any).
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

    /// A hard-swish written out as ops reading `x = v`, as PaddlePaddle exports write it:
    /// `t = Clip(Add(x, a), lo, hi)`, then `Mul(x, Div(t, s))` or `Div(Mul(x, t), s)` (either
    /// with `Mul` by a constant instead of `Div`).
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
        let (next, next_slot) = self.sole_consumer(ValueId::new(clip, 0))?;
        // The scale step: Div by a constant, or Mul by a constant.
        let scale_of = |n: NodeId, data_slot: usize| -> Option<(f32, bool)> {
            match self.g.node(n).op {
                Op::Div(_) if data_slot == 0 => Some((self.scalar_const(n, 1)?, false)),
                Op::Mul(_) => Some((self.scalar_const(n, 1 - data_slot)?, true)),
                _ => None,
            }
        };
        let is_x_mul = |n: NodeId| {
            matches!(self.g.node(n).op, Op::Mul(_))
                && self.g.inputs(n).contains(&Some(v))
                && cons.iter().any(|(c, _)| *c == n)
        };
        let (scale, scale_is_mul, scale_last, nodes, out) = if is_x_mul(next) {
            // Div(Mul(x, t), s)
            let (sn, sslot) = self.sole_consumer(ValueId::new(next, 0))?;
            let (scale, is_mul) = scale_of(sn, sslot)?;
            (
                scale,
                is_mul,
                true,
                vec![add, clip, next, sn],
                ValueId::new(sn, 0),
            )
        } else {
            // Mul(x, Div(t, s))
            let (scale, is_mul) = scale_of(next, next_slot)?;
            let (mul, _) = self.sole_consumer(ValueId::new(next, 0))?;
            if !is_x_mul(mul) {
                return None;
            }
            (
                scale,
                is_mul,
                false,
                vec![add, clip, next, mul],
                ValueId::new(mul, 0),
            )
        };
        let act = Activation::HardSwishParts {
            add: add_c,
            lo,
            hi,
            scale,
            scale_is_mul,
            scale_last,
        };
        Some((act, nodes, out))
    }

    /// An `Add` or `Mul` of a per-channel (or scalar) constant reading a Conv output `v` with
    /// `c` channels over `spatial` axes: a bias or scale written as its own op (PaddlePaddle
    /// exports do this). Returns the node, whether it multiplies, and the constant per channel.
    fn channel_affine(
        &self,
        v: ValueId,
        c: usize,
        spatial: usize,
    ) -> Option<(NodeId, bool, Vec<f32>)> {
        let (n, slot) = self.sole_consumer(v)?;
        let is_mul = match self.g.node(n).op {
            Op::Add(_) => false,
            Op::Mul(_) => true,
            _ => return None,
        };
        let t = self.const_tensor(n, 1 - slot)?;
        if t.dtype() != qopt_ir::DType::F32 || (t.len() != c && t.len() != 1) {
            return None;
        }
        // A scalar, or [.., C, 1, ..., 1] with `spatial` trailing ones and leading ones only: it
        // must not broadcast the output to a larger shape.
        let sh = t.shape();
        let ok = if t.len() == 1 {
            sh.len() <= spatial + 2
        } else {
            sh.len() > spatial
                && sh.len() <= spatial + 2
                && sh[sh.len() - spatial..].iter().all(|&d| d == 1)
                && sh[sh.len() - spatial - 1] == c
                && sh[..sh.len() - spatial - 1].iter().all(|&d| d == 1)
        };
        if !ok {
            return None;
        }
        let vals: Vec<f32> = t.as_f32()?.iter().copied().collect();
        let per_channel = if vals.len() == 1 {
            vec![vals[0]; c]
        } else {
            vals
        };
        Some((n, is_mul, per_channel))
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
        let (affine, bn, mut absorbed, mut output) = match &g.node(n).op {
            Op::Conv(_)
                if g.const_input(n, 1).is_some()
                    && g.input(n, 2).is_none_or(|_| g.const_input(n, 2).is_some()) =>
            {
                let w = g.const_input(n, 1).expect("checked");
                let (c, spatial) = (
                    w.shape().first().copied().unwrap_or(0),
                    w.rank().saturating_sub(2),
                );
                let mut absorbed = vec![];
                let mut out = out0;
                let mut affine = vec![];
                while let Some((a, is_mul, vals)) = cx.channel_affine(out, c, spatial) {
                    absorbed.push(a);
                    out = ValueId::new(a, 0);
                    affine.push((is_mul, vals));
                }
                let bn = cx.batchnorm(out);
                if let Some(b) = bn {
                    absorbed.push(b);
                    out = ValueId::new(b, 0);
                }
                (affine, bn, absorbed, out)
            }
            Op::Gemm(_) => (vec![], None, vec![], out0),
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
                            affine: vec![],
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
                affine,
                bn,
                act,
                absorbed,
                output,
            },
        );
    }
    groups
}
