//! Structural checks run after every pass in debug builds and tests.
//!
//! `verify` catches the mistakes a pass can make on a graph: cycles, dangling
//! or doubly-fed input slots, duplicate value names, constants whose recorded
//! type disagrees with their tensor, and annotations that contradict dtypes.

use crate::graph::{Graph, NodeId};
use crate::op::Op;
use petgraph::Direction;
use petgraph::visit::EdgeRef;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid graph: {0}")]
pub struct VerifyError(pub String);

pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    let err = |m: String| Err(VerifyError(m));
    let pg = g.petgraph();

    if let Err(n) = g.topo_order() {
        return err(format!("cycle through {}", g.describe(n)));
    }

    let mut names: HashMap<&str, NodeId> = HashMap::new();
    for n in pg.node_indices() {
        let node = &pg[n];
        if node.outputs.is_empty() {
            return err(format!("{} has no outputs", g.describe(n)));
        }
        for v in &node.outputs {
            if v.name.is_empty() {
                return err(format!("{} has an output without a name", g.describe(n)));
            }
            if let Some(prev) = names.insert(&v.name, n) {
                return err(format!(
                    "value name '{}' is defined by both {} and {}",
                    v.name,
                    g.describe(prev),
                    g.describe(n)
                ));
            }
            if let Some(r) = v.ann.range
                && (r.min > r.max || !r.min.is_finite() || !r.max.is_finite())
            {
                return err(format!(
                    "value '{}' has range [{}, {}]",
                    v.name, r.min, r.max
                ));
            }
            if let Some(q) = &v.ann.qparams {
                if let Err(m) = q.check() {
                    return err(format!("value '{}': {m}", v.name));
                }
                if let (Some(axis), Some(shape)) = (q.axis, &v.ty.shape) {
                    if axis >= shape.rank() {
                        return err(format!(
                            "value '{}': quantization axis {axis} is outside rank {}",
                            v.name,
                            shape.rank()
                        ));
                    }
                    if let Some(c) = shape.0[axis].known()
                        && c as usize != q.scale.len()
                    {
                        return err(format!(
                            "value '{}': {} scales for {c} channels",
                            v.name,
                            q.scale.len()
                        ));
                    }
                }
            }
        }

        // Input slots: each fed at most once, from an existing output slot.
        let mut seen = HashMap::new();
        for e in pg.edges_directed(n, Direction::Incoming) {
            let w = e.weight();
            if let Some(prev) = seen.insert(w.to_slot, e.source()) {
                return err(format!(
                    "input {} of {} is fed twice (from {} and {})",
                    w.to_slot,
                    g.describe(n),
                    g.describe(prev),
                    g.describe(e.source())
                ));
            }
            if w.from_slot >= pg[e.source()].outputs.len() {
                return err(format!(
                    "{} reads output {} of {}, which has {} outputs",
                    g.describe(n),
                    w.from_slot,
                    g.describe(e.source()),
                    pg[e.source()].outputs.len()
                ));
            }
        }

        match &node.op {
            Op::Input | Op::Const(_) if !seen.is_empty() => {
                return err(format!("{} has inputs", g.describe(n)));
            }
            Op::Const(t) => {
                let ty = &node.outputs[0].ty;
                if ty.dtype != Some(t.dtype())
                    || ty.shape.as_ref().and_then(|s| s.as_known()).as_deref() != Some(t.shape())
                {
                    return err(format!(
                        "constant '{}' is recorded as {:?} {:?} but holds {} {:?}",
                        node.outputs[0].name,
                        ty.dtype,
                        ty.shape,
                        t.dtype(),
                        t.shape()
                    ));
                }
            }
            Op::Input if !g.input_nodes().contains(&n) => {
                return err(format!(
                    "input '{}' is not in the graph's input list",
                    node.name
                ));
            }
            _ => {}
        }
        if node.outputs.len() != 1 && matches!(node.op, Op::Input | Op::Const(_) | Op::Observer(_))
        {
            return err(format!("{} must have exactly one output", g.describe(n)));
        }
    }

    for &i in g.input_nodes() {
        if !g.contains(i) || !matches!(g.node(i).op, Op::Input) {
            return err(format!(
                "graph input list names a node that is not an input ({i:?})"
            ));
        }
    }
    for o in g.outputs() {
        if !g.contains(o.node) || o.slot >= g.node(o.node).outputs.len() {
            return err(format!("graph output refers to a missing value ({o:?})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annot::{QParams, Range};
    use crate::dim::Shape;
    use crate::dtype::DType;
    use crate::graph::{TypeInfo, ValueId};
    use crate::op::Relu;
    use crate::tensor::Tensor;

    fn graph() -> (Graph, ValueId) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[2, 3])));
        let r = g.add_simple("relu", Relu {}, &[x], "r");
        g.set_outputs(vec![r]);
        (g, r)
    }

    #[test]
    fn good_graph_verifies() {
        verify(&graph().0).unwrap();
    }

    #[test]
    fn duplicate_names_fail() {
        let (mut g, r) = graph();
        g.add_simple("relu2", Relu {}, &[r], "r");
        assert!(verify(&g).unwrap_err().0.contains("'r'"));
    }

    #[test]
    fn bad_annotations_fail() {
        let (mut g, r) = graph();
        g.value_mut(r).ann.range = Some(Range::new(1.0, 0.0));
        assert!(verify(&g).is_err());
        g.value_mut(r).ann.range = None;
        g.value_mut(r).ty = TypeInfo::new(DType::F32, Shape::known(&[2, 3]));
        g.value_mut(r).ann.qparams = Some(QParams {
            dtype: DType::I8,
            scale: vec![0.1, 0.1],
            zero_point: vec![0, 0],
            axis: Some(1),
        });
        assert!(
            verify(&g)
                .unwrap_err()
                .0
                .contains("2 scales for 3 channels")
        );
    }

    #[test]
    fn const_type_mismatch_fails() {
        let (mut g, _) = graph();
        let c = g.add_const("c", Tensor::from_vec(&[2], vec![1f32, 2.0]));
        g.value_mut(c).ty.dtype = Some(DType::I64);
        assert!(verify(&g).unwrap_err().0.contains("constant 'c'"));
    }
}
