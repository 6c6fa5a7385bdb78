//! Shape and type inference (DESIGN.md §3).
//!
//! [`infer_shapes`] walks the graph in topological order and computes every
//! node's output [`TypeInfo`] (element type and shape, with [`Dim::Sym`] symbols
//! carried through) from its inputs' types, its attributes and its constant
//! inputs, following the inference functions of the ONNX operator specs
//! (`onnx/defs/*/defs.cc`, <https://onnx.ai/onnx/operators/>). The result is
//! merged with what the graph already records: a more precise recorded type is
//! kept, and a recorded known dimension that contradicts the inferred one is an
//! error naming the node.
//!
//! One function per operator family, in files by topic:
//!
//! | file | operators |
//! | --- | --- |
//! | `elementwise.rs` | unary activations, broadcasting binary and variadic ops, comparisons, `Where`, `Clip`, `PRelu` |
//! | `conv.rs` | `Conv`, `ConvTranspose`, `QLinearConv`, `ConvInteger` (pads, strides, dilations, `auto_pad`) |
//! | `pool.rs` | `MaxPool`, `AveragePool` (`ceil_mode`), global pools |
//! | `norm.rs` | `Softmax` family, `BatchNormalization`, instance/layer/group normalization, `LRN` |
//! | `linalg.rs`, `einsum.rs` | `MatMul`, `Gemm`, `MatMulInteger`, `QLinearMatMul`, `Einsum` |
//! | `reduce.rs` | `Reduce*`, `ArgMax`/`ArgMin`, `TopK`, `CumSum` |
//! | `resize.rs` | `Resize`, `Upsample`, `DepthToSpace`, `SpaceToDepth` |
//! | `reshape.rs` | `Reshape`, `Flatten`, `Transpose`, `Squeeze`, `Unsqueeze`, `Expand`, `Tile` |
//! | `slice.rs` | `Concat`, `Split`, `Slice`, `Pad` |
//! | `gather.rs` | `Gather*`, `Scatter*`, `NonZero`, `Trilu` |
//! | `generator.rs` | `Shape`, `Size`, `Cast`, `CastLike`, `Range`, `ConstantOfShape`, `Dropout` |
//! | `quant.rs` | `QuantizeLinear`, `DequantizeLinear`, `DynamicQuantizeLinear`, `QLinearAdd`/`QLinearMul`, `QLinearGlobalAveragePool` |
//!
//! ## Symbolic dimensions
//!
//! A symbol passes through any operator that keeps the dimension (elementwise
//! ops, broadcasting against 1, channel-wise ops, reshapes that copy it), and
//! through a convolution or pooling window that maps the size to itself (stride
//! 1 with "same" padding). Arithmetic on a symbol otherwise gives
//! [`Dim::Unknown`] rather than a derived symbol such as `H/2`: a derived name
//! would be one more thing to keep consistent with ONNX's own `unk__N` names and
//! no consumer here needs it. Products of dimensions (Flatten, the `-1` of a
//! Reshape) cancel symbols exactly where they can (`[N,16,1,W] -> [N,16,-1]`
//! gives `[N,16,W]`).
//!
//! ## Shape values
//!
//! Exporters such as paddle2onnx and PyTorch compute Reshape targets at run
//! time: `Shape -> Gather/Slice -> Concat -> Cast -> Reshape`. Inference tracks
//! the contents of small 0-D and 1-D integer values (as known integers or
//! symbols) through those chains in a side table that lives only during the
//! walk (`shape_value.rs`), so the Reshape, Expand, ConstantOfShape, Tile,
//! Range or Resize at the end gets a concrete or symbolic shape. The table is
//! never written to the graph (DESIGN.md §2 keeps decisions on the graph; these
//! are derived facts that a `const-fold` pass materialises when it wants them).

mod conv;
mod ctx;
mod dims;
mod einsum;
mod elementwise;
mod gather;
mod generator;
mod linalg;
mod norm;
mod pool;
mod quant;
mod reduce;
mod reshape;
mod resize;
mod shape_value;
mod slice;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::graph::{Graph, NodeId, TypeInfo};
use crate::op::Op;
use ctx::Ctx;
use shape_value::{EagerTable, LazyTable};
use std::fmt;

/// Why inference failed. Every variant names the node or input it is about.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    /// The node's inputs or attributes are inconsistent (`Conv node 'conv1': input has 3 channels, ...`).
    #[error("{node}: {msg}")]
    Node { node: String, msg: String },
    /// The type recorded on an output contradicts the inferred one.
    #[error("{node}: output '{value}' is recorded as {recorded} but its inputs give {inferred}")]
    Conflict {
        node: String,
        value: String,
        recorded: String,
        inferred: String,
    },
    /// A graph input cannot take the requested shape.
    #[error("graph input '{input}': {msg}")]
    Input { input: String, msg: String },
    #[error("the graph has a cycle through {0}")]
    Cycle(String),
}

/// A node whose outputs are still of unknown element type or rank after inference.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownNode {
    pub node: NodeId,
    /// `g.describe(node)`.
    pub description: String,
    /// The qualified operator name (`Custom` ops show their own type, `my.domain::Op`).
    pub op: String,
    /// The outputs whose type is incomplete.
    pub values: Vec<String>,
}

/// What [`infer_shapes`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InferReport {
    /// Nodes with an output of unknown dtype or rank, in topological order.
    pub unknown: Vec<UnknownNode>,
    /// How many output values got a different type than they had.
    pub changed: usize,
}

impl fmt::Display for InferReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} value types changed", self.changed)?;
        if !self.unknown.is_empty() {
            write!(f, "; outputs left unknown:")?;
            for u in &self.unknown {
                write!(f, "\n  {} ({})", u.description, u.values.join(", "))?;
            }
        }
        Ok(())
    }
}

/// Infer the type of every value in the graph and record it on the graph.
///
/// Types already recorded are kept where they are more precise than what the
/// inputs imply (a known dim beats a symbol, a symbol beats an unknown); a known
/// recorded dim or dtype that contradicts the inferred one is an error.
pub fn infer_shapes(g: &mut Graph) -> Result<InferReport, InferError> {
    let order = g
        .topo_order()
        .map_err(|n| InferError::Cycle(g.describe(n)))?;
    let mut table = EagerTable::default();
    let mut report = InferReport::default();
    for n in order {
        let (merged, values) = {
            let cx = Ctx::new(g, n, &table);
            let inferred = infer_in(&cx)?;
            let node = g.node(n);
            let mut merged = Vec::with_capacity(inferred.len());
            for (v, ty) in node.outputs.iter().zip(&inferred) {
                merged.push(merge(&v.ty, ty).map_err(|()| InferError::Conflict {
                    node: g.describe(n),
                    value: v.name.clone(),
                    recorded: type_string(&v.ty),
                    inferred: type_string(ty),
                })?);
            }
            let values = shape_value::eval(&cx, &merged);
            (merged, values)
        };
        let node = g.node_mut(n);
        let mut unknown = Vec::new();
        for (v, ty) in node.outputs.iter_mut().zip(merged) {
            if v.ty != ty {
                report.changed += 1;
                v.ty = ty;
            }
            if v.ty.dtype.is_none() || v.ty.shape.is_none() {
                unknown.push(v.name.clone());
            }
        }
        if !unknown.is_empty() {
            report.unknown.push(UnknownNode {
                node: n,
                description: g.describe(n),
                op: g.node(n).op.qualified_name(),
                values: unknown,
            });
        }
        for (slot, v) in values.into_iter().enumerate() {
            if let Some(v) = v {
                table.insert(crate::graph::ValueId::new(n, slot), v);
            }
        }
    }
    Ok(report)
}

/// The output types that node `n`'s inputs, attributes and constant inputs imply,
/// one per output slot, from the types currently recorded on its inputs. Nothing
/// is written to the graph and the node's own recorded types are not consulted,
/// except for `Input` and `Custom` nodes, whose recorded types are all there is.
pub fn infer_node(g: &Graph, n: NodeId) -> Result<Vec<TypeInfo>, InferError> {
    if !g.contains(n) {
        return Err(InferError::Node {
            node: format!("node {}", n.index()),
            msg: "is not in the graph".into(),
        });
    }
    let table = LazyTable::new();
    infer_in(&Ctx::new(g, n, &table))
}

/// Pin graph input shapes (`--input-shape NAME=1,3,224,224`). A known recorded
/// dim must agree with the pinned one; symbols and unknowns are replaced. A
/// pinned [`Dim::Unknown`] leaves the recorded dim as it was.
pub fn pin_input_shapes(g: &mut Graph, pins: &[(String, Vec<Dim>)]) -> Result<(), InferError> {
    for (name, dims) in pins {
        let node = g
            .input_nodes()
            .iter()
            .copied()
            .find(|&n| g.node(n).outputs.first().is_some_and(|v| v.name == *name))
            .ok_or_else(|| {
                let names: Vec<&str> = g
                    .input_nodes()
                    .iter()
                    .filter_map(|&n| g.node(n).outputs.first().map(|v| v.name.as_str()))
                    .collect();
                InferError::Input {
                    input: name.clone(),
                    msg: format!(
                        "no such graph input (the inputs are: {})",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                }
            })?;
        let err = |msg: String| InferError::Input {
            input: name.clone(),
            msg,
        };
        let ty = &mut g.node_mut(node).outputs[0].ty;
        let new = match &ty.shape {
            None => Shape(dims.clone()),
            Some(old) => {
                if old.rank() != dims.len() {
                    return Err(err(format!(
                        "has rank {} ({old}), cannot pin it to {} dims {}",
                        old.rank(),
                        dims.len(),
                        Shape(dims.clone())
                    )));
                }
                let mut out = Vec::with_capacity(dims.len());
                for (i, (o, d)) in old.0.iter().zip(dims).enumerate() {
                    out.push(match (o, d) {
                        (Dim::Known(a), Dim::Known(b)) if a != b => {
                            return Err(err(format!(
                                "dim {i} is {a} in the model ({old}), cannot pin it to {b}"
                            )));
                        }
                        (o, Dim::Unknown) => o.clone(),
                        (Dim::Known(a), Dim::Sym(_)) => Dim::Known(*a),
                        (_, d) => d.clone(),
                    });
                }
                Shape(out)
            }
        };
        ty.shape = Some(new);
    }
    Ok(())
}

/// Dispatch to the operator family's inference and check the output count.
fn infer_in(cx: &Ctx) -> Result<Vec<TypeInfo>, InferError> {
    let node = cx.g.node(cx.node);
    let n_out = node.outputs.len();
    let mut tys = infer_op(cx, &node.op)?;
    if n_out > tys.len() {
        return Err(cx.err(format!(
            "has {n_out} outputs; {} defines {}",
            node.op.op_type(),
            tys.len()
        )));
    }
    tys.truncate(n_out);
    Ok(tys)
}

fn infer_op(cx: &Ctx, op: &Op) -> Result<Vec<TypeInfo>, InferError> {
    use elementwise as ew;
    Ok(match op {
        // A graph input's type is whatever the model (or `pin_input_shapes`) says; a custom
        // op's outputs are whatever the importer recorded.
        Op::Input | Op::Custom(_) => cx.recorded_outputs(),
        Op::Const(t) => vec![TypeInfo::of_tensor(t)],
        // Observers pass their input through.
        Op::Observer(_) => ew::unary(cx)?,
        Op::Abs(_)
        | Op::Neg(_)
        | Op::Sqrt(_)
        | Op::Exp(_)
        | Op::Log(_)
        | Op::Reciprocal(_)
        | Op::Floor(_)
        | Op::Ceil(_)
        | Op::Round(_)
        | Op::Sign(_)
        | Op::Sin(_)
        | Op::Cos(_)
        | Op::Tan(_)
        | Op::Atan(_)
        | Op::Erf(_)
        | Op::Sigmoid(_)
        | Op::Tanh(_)
        | Op::Relu(_)
        | Op::Softplus(_)
        | Op::Softsign(_)
        | Op::Not(_)
        | Op::Identity(_)
        | Op::HardSwish(_)
        | Op::Mish(_)
        | Op::LeakyRelu(_)
        | Op::Elu(_)
        | Op::Celu(_)
        | Op::Selu(_)
        | Op::ThresholdedRelu(_)
        | Op::HardSigmoid(_)
        | Op::Gelu(_)
        | Op::Clip(_) => ew::unary(cx)?,
        Op::IsNaN(_) | Op::IsInf(_) => ew::unary_to(cx, DType::Bool)?,
        Op::PRelu(_) => ew::prelu(cx)?,
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Pow(_) | Op::Mod(_) => {
            ew::binary(cx, None)?
        }
        Op::Equal(_)
        | Op::Less(_)
        | Op::LessOrEqual(_)
        | Op::Greater(_)
        | Op::GreaterOrEqual(_)
        | Op::And(_)
        | Op::Or(_)
        | Op::Xor(_) => ew::binary(cx, Some(DType::Bool))?,
        Op::Where(_) => ew::where_(cx)?,
        Op::Min(_) | Op::Max(_) | Op::Sum(_) | Op::Mean(_) => ew::variadic(cx)?,

        Op::Softmax(o) => norm::softmax(cx, o.axis)?,
        Op::LogSoftmax(o) => norm::softmax(cx, o.axis)?,
        Op::Hardmax(o) => norm::softmax(cx, o.axis)?,
        Op::BatchNormalization(_) => norm::batch_norm(cx)?,
        Op::InstanceNormalization(_) => norm::instance_norm(cx)?,
        Op::LayerNormalization(o) => norm::layer_norm(cx, o)?,
        Op::GroupNormalization(o) => norm::group_norm(cx, o)?,
        Op::LRN(o) => norm::lrn(cx, o)?,

        Op::MatMul(_) => linalg::matmul(cx)?,
        Op::Gemm(o) => linalg::gemm(cx, o)?,
        Op::MatMulInteger(_) => linalg::matmul_integer(cx)?,
        Op::QLinearMatMul(_) => linalg::qlinear_matmul(cx)?,
        Op::Einsum(o) => einsum::einsum(cx, &o.equation)?,
        Op::Conv(o) => conv::conv(cx, o)?,
        Op::ConvTranspose(o) => conv::conv_transpose(cx, o)?,
        Op::QLinearConv(o) => conv::qlinear_conv(cx, o)?,
        Op::ConvInteger(o) => conv::conv_integer(cx, o)?,

        Op::MaxPool(o) => pool::max_pool(cx, o)?,
        Op::AveragePool(o) => pool::average_pool(cx, o)?,
        Op::GlobalAveragePool(_) | Op::GlobalMaxPool(_) => pool::global_pool(cx)?,
        Op::ReduceMean(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceSum(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceMax(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceMin(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceProd(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceL1(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceL2(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceSumSquare(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ReduceLogSumExp(o) => reduce::reduce(cx, &o.axes, o.keepdims, o.noop_with_empty_axes)?,
        Op::ArgMax(o) => reduce::arg_reduce(cx, o.axis, o.keepdims)?,
        Op::ArgMin(o) => reduce::arg_reduce(cx, o.axis, o.keepdims)?,
        Op::TopK(o) => reduce::top_k(cx, o.axis)?,
        Op::CumSum(_) => reduce::cum_sum(cx)?,

        Op::Resize(o) => resize::resize(cx, o)?,
        Op::Upsample(_) => resize::upsample(cx)?,
        Op::DepthToSpace(o) => resize::depth_to_space(cx, o.blocksize)?,
        Op::SpaceToDepth(o) => resize::space_to_depth(cx, o.blocksize)?,

        Op::Pad(_) => slice::pad(cx)?,
        Op::Reshape(o) => reshape::reshape(cx, o.allowzero != 0)?,
        Op::Flatten(o) => reshape::flatten(cx, o.axis)?,
        Op::Transpose(o) => reshape::transpose(cx, &o.perm)?,
        Op::Squeeze(o) => reshape::squeeze(cx, &o.axes)?,
        Op::Unsqueeze(o) => reshape::unsqueeze(cx, &o.axes)?,
        Op::Concat(o) => slice::concat(cx, o.axis)?,
        Op::Split(o) => slice::split(cx, o.axis, &o.split)?,
        Op::Slice(_) => slice::slice(cx)?,
        Op::Gather(o) => gather::gather(cx, o.axis)?,
        Op::GatherElements(o) => gather::gather_elements(cx, o.axis)?,
        Op::GatherND(o) => gather::gather_nd(cx, o.batch_dims)?,
        Op::ScatterND(_) => gather::scatter_nd(cx)?,
        Op::ScatterElements(o) => gather::scatter_elements(cx, o.axis)?,
        Op::Shape(o) => generator::shape(cx, o.start, o.end)?,
        Op::Size(_) => generator::size(cx)?,
        Op::Cast(o) => generator::cast(cx, o.to)?,
        Op::CastLike(_) => generator::cast_like(cx)?,
        Op::Range(_) => generator::range(cx)?,
        Op::Expand(_) => reshape::expand(cx)?,
        Op::Tile(_) => reshape::tile(cx)?,
        Op::NonZero(_) => gather::non_zero(cx)?,
        Op::ConstantOfShape(o) => generator::constant_of_shape(cx, o.value.as_deref())?,
        Op::Dropout(_) => generator::dropout(cx)?,
        Op::Trilu(_) => gather::trilu(cx)?,

        Op::QuantizeLinear(o) => quant::quantize_linear(cx, o)?,
        Op::DequantizeLinear(o) => quant::dequantize_linear(cx, o)?,
        Op::DynamicQuantizeLinear(_) => quant::dynamic_quantize_linear(cx)?,
        Op::QLinearAdd(_) | Op::QLinearMul(_) => quant::qlinear_binary(cx)?,
        Op::QLinearGlobalAveragePool(o) => quant::qlinear_global_average_pool(cx, o)?,
    })
}

/// Combine a recorded type with an inferred one: the more precise of each part,
/// `Err` when both are known and differ. Of two different symbols the recorded one
/// stays, as ONNX's `mergeInDimensionInfo` keeps it: both name the same size, and the
/// model's own name (a graph output's `p2o.DynamicDimension.3`) is the one users know.
fn merge(recorded: &TypeInfo, inferred: &TypeInfo) -> Result<TypeInfo, ()> {
    let dtype = match (recorded.dtype, inferred.dtype) {
        (Some(a), Some(b)) if a != b => return Err(()),
        (a, b) => b.or(a),
    };
    let shape = match (&recorded.shape, &inferred.shape) {
        (Some(r), Some(i)) => {
            if r.rank() != i.rank() {
                return Err(());
            }
            let mut dims = Vec::with_capacity(r.rank());
            for (a, b) in r.0.iter().zip(&i.0) {
                dims.push(match (a, b) {
                    (Dim::Known(x), Dim::Known(y)) if x != y => return Err(()),
                    (Dim::Known(_), _) => a.clone(),
                    (_, Dim::Known(_)) => b.clone(),
                    (Dim::Sym(_), _) => a.clone(),
                    _ => b.clone(),
                });
            }
            Some(Shape(dims))
        }
        (r, i) => i.clone().or_else(|| r.clone()),
    };
    Ok(TypeInfo { dtype, shape })
}

/// `f32[1,3,?,N]`, `?[...]` for an unknown dtype, `f32[*]` for an unknown rank.
pub fn type_string(t: &TypeInfo) -> String {
    let d = t.dtype.map_or("?", |d| d.name());
    match &t.shape {
        Some(s) => format!("{d}{s}"),
        None => format!("{d}[*]"),
    }
}
