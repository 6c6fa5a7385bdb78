//! `const-fold`: evaluate nodes whose inputs are all known at compile time.
//!
//! A node whose inputs are all constants is run once with the interpreter's own op
//! implementations (`qopt_interp::eval_node`, so folding can never disagree with
//! execution) and replaced by constants that keep its output names. Shape sub-graphs fold
//! too once input shapes are known (`--input-shape`, `shape-infer`): `Shape` of a value
//! with a fully known shape becomes a constant, and so does a `Gather`/`Slice` that picks
//! only known dims out of a partially known shape, so the `Shape -> Gather -> Concat ->
//! Reshape` chains of PyTorch and PaddlePaddle exports collapse.
//!
//! Not folded: quantization ops (Q/DQ are how a quantized model stores its parameters),
//! custom ops, observers, and folds that would grow the model (an output larger than both
//! `max-elements` and the inputs it replaces, e.g. a `ConstantOfShape` of an image size).

use qopt_interp::{eval_node, is_supported};
use qopt_ir::{Dim, Graph, NodeId, Op, Tensor, ValueId};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};
use std::sync::Arc;

pub const OPTIONS: &[OptionSpec] = &[OptionSpec {
    name: "max-elements",
    kind: OptKind::Int {
        min: 0,
        max: i64::MAX,
    },
    default: Some("65536"),
    help: "largest folded output that may exceed the size of the constants it replaces",
}];

/// The default of option `max-elements`.
pub const DEFAULT_MAX_ELEMENTS: usize = 65536;

pub struct ConstFold {
    max_elements: usize,
}

impl ConstFold {
    pub fn new(opts: &PassOptions) -> ConstFold {
        ConstFold {
            max_elements: opts
                .int("max-elements")
                .map_or(DEFAULT_MAX_ELEMENTS, |m| m as usize),
        }
    }
}

impl Pass for ConstFold {
    fn name(&self) -> &str {
        "const-fold"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let n = fold_constants(g, self.max_elements)?;
        cx.note("const-fold", format!("folded {n} nodes"));
        Ok(Changed::from_bool(n > 0))
    }
}

/// Ops that never fold: they carry quantization parameters or are not pure.
fn never_folds(op: &Op) -> bool {
    matches!(
        op,
        Op::Input
            | Op::Const(_)
            | Op::Observer(_)
            | Op::Custom(_)
            | Op::QuantizeLinear(_)
            | Op::DequantizeLinear(_)
            | Op::DynamicQuantizeLinear(_)
    )
}

/// The dims of `v` as i64 when they are all known.
fn known_dims(g: &Graph, v: ValueId) -> Option<Vec<Option<i64>>> {
    let shape = g.value(v).ty.shape.as_ref()?;
    Some(
        shape
            .dims()
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Some(*n as i64),
                _ => None,
            })
            .collect(),
    )
}

/// The (partially known) contents of a `Shape` node's output, honouring start/end.
fn shape_contents(g: &Graph, n: NodeId) -> Option<Vec<Option<i64>>> {
    let Op::Shape(s) = &g.node(n).op else {
        return None;
    };
    let dims = known_dims(g, g.input(n, 0)?)?;
    let r = dims.len() as i64;
    let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let (start, end) = (clamp(s.start), clamp(s.end.unwrap_or(r)));
    Some(if start < end {
        dims[start..end].to_vec()
    } else {
        vec![]
    })
}

/// Fold `n` if every input is constant, or if it reads only known dims of a `Shape`.
fn try_fold(g: &Graph, n: NodeId, opset: i64) -> Result<Option<Vec<Tensor>>, PassError> {
    let node = g.node(n);
    if never_folds(&node.op) || !is_supported(&node.op) {
        return Ok(None);
    }
    // Shape (and Size) of a value whose shape is known.
    match &node.op {
        Op::Shape(_) => {
            return Ok(shape_contents(g, n).and_then(|c| {
                let v: Option<Vec<i64>> = c.into_iter().collect();
                v.map(|v| vec![Tensor::from_vec(&[v.len()], v)])
            }));
        }
        Op::Size(_) => {
            let v = g.input(n, 0).and_then(|v| known_dims(g, v));
            return Ok(v
                .and_then(|d| d.into_iter().product::<Option<i64>>())
                .map(|s| vec![Tensor::scalar(s)]));
        }
        _ => {}
    }
    let ins = g.inputs(n);
    let mut tensors: Vec<Option<Arc<Tensor>>> = Vec::with_capacity(ins.len());
    for (slot, v) in ins.iter().enumerate() {
        let Some(v) = v else {
            tensors.push(None);
            continue;
        };
        if let Some(t) = g.const_value(*v) {
            tensors.push(Some(t.clone()));
            continue;
        }
        // Gather/Slice reading a Shape whose selected dims are known: evaluate on a stand-in
        // where unknown dims are -1, then check that no unknown dim was selected.
        let producer = v.node;
        let reads_shape = slot == 0 && matches!(node.op, Op::Gather(_) | Op::Slice(_));
        match (reads_shape, shape_contents(g, producer)) {
            (true, Some(c)) if c.iter().any(Option::is_some) => {
                let marked: Vec<i64> = c.iter().map(|d| d.unwrap_or(i64::MIN)).collect();
                tensors.push(Some(Arc::new(Tensor::from_vec(&[marked.len()], marked))));
            }
            _ => return Ok(None),
        }
    }
    let refs: Vec<Option<&Tensor>> = tensors.iter().map(|t| t.as_deref()).collect();
    let outs = eval_node(&node.op, opset, &refs, node.outputs.len())
        .map_err(|e| PassError::msg(format!("{}: {e}", g.describe(n))))?;
    if outs
        .iter()
        .any(|t| t.to_i64_vec().is_some_and(|v| v.contains(&i64::MIN)))
    {
        return Ok(None); // an unknown dim was selected
    }
    Ok(Some(outs))
}

/// Fold every foldable node; returns how many were folded.
pub fn fold_constants(g: &mut Graph, max_elements: usize) -> Result<usize, PassError> {
    let opset = g.meta.onnx_opset().unwrap_or(21);
    let order = g
        .topo_order()
        .map_err(|n| PassError::msg(format!("cycle through {}", g.describe(n))))?;
    let mut folded = 0;
    for n in order {
        let Some(outs) = try_fold(g, n, opset)? else {
            continue;
        };
        let in_elems: usize = g
            .inputs(n)
            .iter()
            .flatten()
            .filter_map(|v| g.const_value(*v).map(|t| t.len()))
            .sum();
        let out_elems: usize = outs.iter().map(Tensor::len).sum();
        if out_elems > max_elements && out_elems > in_elems {
            continue;
        }
        let preds: Vec<NodeId> = g.inputs(n).into_iter().flatten().map(|v| v.node).collect();
        for (slot, t) in outs.into_iter().enumerate() {
            let old = ValueId::new(n, slot);
            let info = g.value(old).clone();
            let c = g.add_const(info.name.clone(), t);
            // Keep what passes decided about the value; the type now comes from the tensor.
            let ty = g.value(c).ty.clone();
            *g.value_mut(c) = qopt_ir::ValueInfo { ty, ..info };
            g.replace_all_uses(old, c);
        }
        g.remove_node(n);
        folded += 1;
        // Constants (and Shape nodes) that only fed this node are dead now.
        for p in preds {
            let dead = g.contains(p)
                && matches!(g.node(p).op, Op::Const(_) | Op::Shape(_))
                && (0..g.node(p).outputs.len()).all(|s| g.use_count(ValueId::new(p, s)) == 0);
            if dead {
                g.remove_node(p);
            }
        }
    }
    Ok(folded)
}
