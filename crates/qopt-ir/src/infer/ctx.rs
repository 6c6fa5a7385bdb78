//! What an operator's inference function sees: the node, its inputs' types,
//! constant and tracked input values, and error constructors that name the node.

use super::InferError;
use super::shape_value::{ShapeValue, SymInt, ValueTable};
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::graph::{Graph, NodeId, TypeInfo, ValueId};
use crate::tensor::Tensor;

/// The default-domain opset assumed for graphs that import none (built in Rust or
/// parsed from text): the newest one qopt knows.
pub(crate) const LATEST_OPSET: i64 = 21;

/// Larger ranks than this are treated as garbage rather than allocated.
pub(crate) const MAX_RANK: u64 = 1024;

pub(crate) type Out = Result<Vec<TypeInfo>, InferError>;

pub(crate) struct Ctx<'a> {
    pub g: &'a Graph,
    pub node: NodeId,
    pub inputs: Vec<Option<ValueId>>,
    /// Version of the default ONNX domain.
    pub opset: i64,
    values: &'a dyn ValueTable,
}

impl<'a> Ctx<'a> {
    pub fn new(g: &'a Graph, node: NodeId, values: &'a dyn ValueTable) -> Ctx<'a> {
        Ctx {
            g,
            node,
            inputs: g.inputs(node),
            opset: g.meta.onnx_opset().unwrap_or(LATEST_OPSET),
            values,
        }
    }

    /// An error about this node.
    pub fn err(&self, msg: impl Into<String>) -> InferError {
        InferError::Node {
            node: self.g.describe(self.node),
            msg: msg.into(),
        }
    }

    pub fn n_outputs(&self) -> usize {
        self.g.node(self.node).outputs.len()
    }

    /// The types recorded on the node's own outputs.
    pub fn recorded_outputs(&self) -> Vec<TypeInfo> {
        self.g
            .node(self.node)
            .outputs
            .iter()
            .map(|v| v.ty.clone())
            .collect()
    }

    /// The value feeding input `slot`, if connected.
    pub fn input(&self, slot: usize) -> Option<ValueId> {
        self.inputs.get(slot).copied().flatten()
    }

    pub fn has(&self, slot: usize) -> bool {
        self.input(slot).is_some()
    }

    /// Number of input slots up to the last connected one.
    pub fn n_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// The type of input `slot`; `None` when the slot is not connected.
    pub fn ty(&self, slot: usize) -> Option<&'a TypeInfo> {
        self.input(slot).map(|v| &self.g.value(v).ty)
    }

    /// The type of a required input; an error naming the input when it is absent.
    pub fn req(&self, slot: usize, what: &str) -> Result<&'a TypeInfo, InferError> {
        self.ty(slot)
            .ok_or_else(|| self.err(format!("required input {slot} ({what}) is missing")))
    }

    pub fn dtype(&self, slot: usize) -> Option<DType> {
        self.ty(slot).and_then(|t| t.dtype)
    }

    pub fn shape(&self, slot: usize) -> Option<&'a Shape> {
        self.ty(slot).and_then(|t| t.shape.as_ref())
    }

    /// The tensor of input `slot` when a constant feeds it.
    pub fn tensor(&self, slot: usize) -> Option<&'a Tensor> {
        self.input(slot)
            .and_then(|v| self.g.const_value(v))
            .map(|t| &**t)
    }

    /// The tracked contents of a small integer input (a constant or a shape computation).
    pub fn value(&self, slot: usize) -> Option<ShapeValue> {
        self.input(slot).and_then(|v| self.values.get(self.g, v))
    }

    /// The contents of an integer input when every element is a known integer.
    pub fn ints(&self, slot: usize) -> Option<Vec<i64>> {
        self.value(slot).and_then(|v| v.ints())
    }

    /// The contents of a constant input as f64, whatever its element type.
    pub fn floats(&self, slot: usize) -> Option<Vec<f64>> {
        self.tensor(slot).map(Tensor::to_f64_vec)
    }

    /// Normalise an axis attribute against a rank, or fail naming it.
    pub fn axis(&self, axis: i64, rank: usize, what: &str) -> Result<usize, InferError> {
        crate::dim::normalize_axis(axis, rank).ok_or_else(|| {
            self.err(format!(
                "{what} {axis} is out of range for an input of rank {rank}"
            ))
        })
    }

    /// Normalise a list of axes against a rank, rejecting duplicates.
    pub fn axes(&self, axes: &[i64], rank: usize, what: &str) -> Result<Vec<usize>, InferError> {
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let n = self.axis(a, rank, what)?;
            if out.contains(&n) {
                return Err(self.err(format!("{what} {axes:?} name axis {n} twice")));
            }
            out.push(n);
        }
        Ok(out)
    }

    /// The dims of a shape-valued input (`Reshape`'s shape, `Expand`'s shape, ...): the
    /// tracked contents where known, else as many unknowns as the input's length, else `None`.
    pub fn shape_operand(&self, slot: usize) -> Option<Vec<SymInt>> {
        if let Some(v) = self.value(slot) {
            return Some(v.elems);
        }
        let s = self.shape(slot)?;
        match s.0.as_slice() {
            // A shape longer than any tensor's rank is not a shape; leave it unknown.
            [Dim::Known(n)] if *n <= MAX_RANK => Some(vec![SymInt::Unknown; *n as usize]),
            [] => Some(vec![SymInt::Unknown]),
            _ => None,
        }
    }
}

/// Shorthand constructor.
pub(crate) fn ty(dtype: Option<DType>, shape: Option<Shape>) -> TypeInfo {
    TypeInfo { dtype, shape }
}

/// Check a list attribute's length against the number of spatial axes; an empty list
/// means "use the default".
pub(crate) fn spatial_attr(
    cx: &Ctx,
    name: &str,
    v: &[i64],
    n: usize,
    default: i64,
) -> Result<Vec<i64>, InferError> {
    if v.is_empty() {
        return Ok(vec![default; n]);
    }
    if v.len() != n {
        return Err(cx.err(format!(
            "{name} {v:?} has {} values for {n} spatial axes",
            v.len()
        )));
    }
    Ok(v.to_vec())
}
