//! Operator implementations of the fp32 reference interpreter, one file per op or small
//! family of ops, each citing the ONNX operator spec it follows.
//!
//! Every op is a function of its input tensors (absent optional inputs are `None`) returning
//! its output tensors. [`supported`] says which IR ops run here; [`execute`] runs one. The plan
//! (`plan.rs`) calls them node by node; `eval_node` calls them for constant folding.
//! Ops never panic on bad input: shapes, ranks and attribute values are checked and reported
//! as an [`OpError`].

pub mod batchnorm;
pub mod binary;
pub mod broadcast;
pub mod cast;
pub mod clip;
pub mod concat;
pub mod constant_of_shape;
pub mod conv;
pub mod conv_transpose;
pub mod expand;
pub mod gather;
pub mod gemm;
pub mod matmul;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod quantize;
pub mod range;
pub mod reduce;
pub mod resize;
pub mod shape;
pub mod slice;
pub mod softmax;
pub mod space_depth;
pub mod split;
pub mod tile;
pub mod transpose;
pub mod unary;
pub mod where_op;

use crate::error::{OpError, bail};
use crate::pool::BufferPool;
use ndarray::{ArrayD, IxDyn};
use qopt_ir::{Element, Op, Tensor};
use std::borrow::Cow;

pub type OpResult = Result<Vec<Tensor>, OpError>;

/// What an op may use besides its inputs.
pub struct Ctx<'a> {
    /// Version of the default ONNX domain the graph was written for.
    pub opset: i64,
    pub pool: &'a mut BufferPool,
}

impl Ctx<'_> {
    /// An f32 buffer of `len` elements with unspecified contents (fully overwrite it).
    pub fn alloc(&mut self, len: usize) -> Vec<f32> {
        self.pool.take(len)
    }

    pub fn alloc_zeroed(&mut self, len: usize) -> Vec<f32> {
        self.pool.take_zeroed(len)
    }
}

/// Largest tensor an op may create: bad shapes fail with an error instead of aborting the
/// process on a failed allocation.
pub const MAX_ELEMENTS: usize = 1 << 32;

/// Number of elements of `shape`, checked against overflow and [`MAX_ELEMENTS`].
pub fn numel(shape: &[usize]) -> Result<usize, OpError> {
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS);
    match n {
        Some(n) => Ok(n),
        None => bail!("output shape {shape:?} is too large"),
    }
}

/// Required input `i`.
pub fn arg<'t>(inputs: &[Option<&'t Tensor>], i: usize) -> Result<&'t Tensor, OpError> {
    match inputs.get(i).copied().flatten() {
        Some(t) => Ok(t),
        None => bail!("missing input {i}"),
    }
}

/// Optional input `i`.
pub fn opt<'t>(inputs: &[Option<&'t Tensor>], i: usize) -> Option<&'t Tensor> {
    inputs.get(i).copied().flatten()
}

/// Input `i` as an f32 array.
pub fn f32_arg<'t>(inputs: &[Option<&'t Tensor>], i: usize) -> Result<&'t ArrayD<f32>, OpError> {
    let t = arg(inputs, i)?;
    match t.as_f32() {
        Some(a) => Ok(a),
        None => bail!("input {i} must be f32, got {}", t.dtype()),
    }
}

/// The elements of an array in row-major order, without a copy when it is contiguous.
pub fn contig<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// Integer contents of a shape/axes/indices tensor.
pub fn ints(t: &Tensor, what: &str) -> Result<Vec<i64>, OpError> {
    match t.to_i64_vec() {
        Some(v) if t.dtype() != qopt_ir::DType::Bool => Ok(v),
        _ => bail!("{what} must be an integer tensor, got {}", t.dtype()),
    }
}

/// A non-negative axis from a possibly negative one.
pub fn axis(a: i64, rank: usize) -> Result<usize, OpError> {
    match qopt_ir::normalize_axis(a, rank) {
        Some(a) => Ok(a),
        None => bail!("axis {a} is out of range for rank {rank}"),
    }
}

/// Distinct normalised axes, sorted.
pub fn axes(v: &[i64], rank: usize) -> Result<Vec<usize>, OpError> {
    let mut out = v
        .iter()
        .map(|&a| axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        bail!("repeated axis in {v:?}");
    }
    Ok(out)
}

/// A tensor from a shape and row-major data.
pub fn tensor<T: Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor, OpError> {
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map(T::wrap)
        .map_err(|e| OpError(format!("internal shape error: {e}")))
}

/// Whether the interpreter runs this op (the ops of [`execute`]).
pub fn supported(op: &Op) -> bool {
    use Op::*;
    matches!(
        op,
        Input
            | Const(_)
            | Observer(_)
            | Abs(_)
            | Neg(_)
            | Sqrt(_)
            | Exp(_)
            | Log(_)
            | Reciprocal(_)
            | Floor(_)
            | Ceil(_)
            | Round(_)
            | Sign(_)
            | Sin(_)
            | Cos(_)
            | Tan(_)
            | Atan(_)
            | Erf(_)
            | Sigmoid(_)
            | Tanh(_)
            | Relu(_)
            | Softplus(_)
            | Softsign(_)
            | Not(_)
            | IsNaN(_)
            | IsInf(_)
            | Identity(_)
            | HardSwish(_)
            | Mish(_)
            | LeakyRelu(_)
            | Elu(_)
            | Celu(_)
            | Selu(_)
            | ThresholdedRelu(_)
            | HardSigmoid(_)
            | Gelu(_)
            | PRelu(_)
            | Clip(_)
            | Add(_)
            | Sub(_)
            | Mul(_)
            | Div(_)
            | Pow(_)
            | Mod(_)
            | Equal(_)
            | Less(_)
            | LessOrEqual(_)
            | Greater(_)
            | GreaterOrEqual(_)
            | And(_)
            | Or(_)
            | Xor(_)
            | Where(_)
            | Min(_)
            | Max(_)
            | Sum(_)
            | Mean(_)
            | Softmax(_)
            | LogSoftmax(_)
            | Hardmax(_)
            | BatchNormalization(_)
            | InstanceNormalization(_)
            | LayerNormalization(_)
            | GroupNormalization(_)
            | MatMul(_)
            | Gemm(_)
            | Conv(_)
            | ConvTranspose(_)
            | MaxPool(_)
            | AveragePool(_)
            | GlobalAveragePool(_)
            | GlobalMaxPool(_)
            | ReduceMean(_)
            | ReduceSum(_)
            | ReduceMax(_)
            | ReduceMin(_)
            | ReduceProd(_)
            | ReduceL1(_)
            | ReduceL2(_)
            | ReduceSumSquare(_)
            | ReduceLogSumExp(_)
            | ArgMax(_)
            | ArgMin(_)
            | Resize(_)
            | Upsample(_)
            | DepthToSpace(_)
            | SpaceToDepth(_)
            | Pad(_)
            | Reshape(_)
            | Flatten(_)
            | Transpose(_)
            | Squeeze(_)
            | Unsqueeze(_)
            | Concat(_)
            | Split(_)
            | Slice(_)
            | Gather(_)
            | GatherElements(_)
            | Shape(_)
            | Size(_)
            | Cast(_)
            | CastLike(_)
            | Range(_)
            | Expand(_)
            | Tile(_)
            | ConstantOfShape(_)
            | Dropout(_)
            | QuantizeLinear(_)
            | DequantizeLinear(_)
    )
}

/// Run one op. `num_outputs` is the number of outputs the node declares.
pub fn execute(op: &Op, ctx: &mut Ctx, inputs: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    use Op::*;
    match op {
        Const(t) => Ok(vec![(**t).clone()]),
        Input => bail!("graph inputs are fed by the caller, not executed"),
        Observer(_) | Identity(_) => Ok(vec![arg(inputs, 0)?.clone()]),
        Dropout(_) => shape::dropout(inputs, num_outputs),
        Abs(_) | Neg(_) | Sqrt(_) | Exp(_) | Log(_) | Reciprocal(_) | Floor(_) | Ceil(_)
        | Round(_) | Sign(_) | Sin(_) | Cos(_) | Tan(_) | Atan(_) | Erf(_) | Sigmoid(_)
        | Tanh(_) | Relu(_) | Softplus(_) | Softsign(_) | HardSwish(_) | Mish(_) | LeakyRelu(_)
        | Elu(_) | Celu(_) | Selu(_) | ThresholdedRelu(_) | HardSigmoid(_) | Gelu(_) => {
            unary::run(op, ctx, arg(inputs, 0)?)
        }
        Not(_) | IsNaN(_) | IsInf(_) => unary::run_predicate(op, arg(inputs, 0)?),
        Clip(_) => clip::run(ctx, inputs),
        PRelu(_) | Add(_) | Sub(_) | Mul(_) | Div(_) | Pow(_) | Mod(_) | Equal(_) | Less(_)
        | LessOrEqual(_) | Greater(_) | GreaterOrEqual(_) | And(_) | Or(_) | Xor(_) => {
            binary::run(op, ctx, arg(inputs, 0)?, arg(inputs, 1)?)
        }
        Min(_) | Max(_) | Sum(_) | Mean(_) => binary::run_variadic(op, ctx, inputs),
        Where(_) => where_op::run(inputs),
        Softmax(o) => softmax::run(softmax::Kind::Softmax, o.axis, ctx, arg(inputs, 0)?),
        LogSoftmax(o) => softmax::run(softmax::Kind::LogSoftmax, o.axis, ctx, arg(inputs, 0)?),
        Hardmax(o) => softmax::run(softmax::Kind::Hardmax, o.axis, ctx, arg(inputs, 0)?),
        BatchNormalization(o) => batchnorm::run(o, ctx, inputs),
        InstanceNormalization(o) => norm::instance_norm(o, ctx, inputs),
        LayerNormalization(o) => norm::layer_norm(o, ctx, inputs, num_outputs),
        GroupNormalization(o) => norm::group_norm(o, ctx, inputs),
        MatMul(_) => matmul::run(ctx, arg(inputs, 0)?, arg(inputs, 1)?),
        Gemm(o) => gemm::run(o, ctx, inputs, Default::default()),
        Conv(o) => conv::run(o, ctx, inputs),
        ConvTranspose(o) => conv_transpose::run(o, ctx, inputs),
        MaxPool(o) => pool::max_pool(o, ctx, arg(inputs, 0)?, num_outputs),
        AveragePool(o) => pool::avg_pool(o, ctx, arg(inputs, 0)?),
        GlobalAveragePool(_) => pool::global(pool::Global::Average, ctx, arg(inputs, 0)?),
        GlobalMaxPool(_) => pool::global(pool::Global::Max, ctx, arg(inputs, 0)?),
        ReduceMean(_) | ReduceSum(_) | ReduceMax(_) | ReduceMin(_) | ReduceProd(_)
        | ReduceL1(_) | ReduceL2(_) | ReduceSumSquare(_) | ReduceLogSumExp(_) => {
            reduce::run(op, inputs)
        }
        ArgMax(o) => reduce::arg_extreme(
            true,
            o.axis,
            o.keepdims,
            o.select_last_index,
            arg(inputs, 0)?,
        ),
        ArgMin(o) => reduce::arg_extreme(
            false,
            o.axis,
            o.keepdims,
            o.select_last_index,
            arg(inputs, 0)?,
        ),
        Resize(o) => resize::resize(o, ctx, inputs),
        Upsample(o) => resize::upsample(o, ctx, inputs),
        DepthToSpace(o) => space_depth::depth_to_space(o, arg(inputs, 0)?),
        SpaceToDepth(o) => space_depth::space_to_depth(o, arg(inputs, 0)?),
        Pad(o) => pad::run(o, inputs),
        Reshape(o) => shape::reshape(o, inputs),
        Flatten(o) => shape::flatten(o, arg(inputs, 0)?),
        Squeeze(o) => shape::squeeze(o, inputs),
        Unsqueeze(o) => shape::unsqueeze(o, inputs),
        Shape(o) => shape::shape(o, arg(inputs, 0)?),
        Size(_) => Ok(vec![Tensor::scalar(arg(inputs, 0)?.len() as i64)]),
        Transpose(o) => transpose::run(&o.perm, arg(inputs, 0)?),
        Concat(o) => concat::run(o.axis, inputs),
        Split(o) => split::run(o, inputs, num_outputs),
        Slice(_) => slice::run(inputs),
        Gather(o) => gather::gather(o.axis, arg(inputs, 0)?, arg(inputs, 1)?),
        GatherElements(o) => gather::gather_elements(o.axis, arg(inputs, 0)?, arg(inputs, 1)?),
        Cast(o) => Ok(vec![cast::cast(arg(inputs, 0)?, o.to)]),
        CastLike(_) => Ok(vec![cast::cast(arg(inputs, 0)?, arg(inputs, 1)?.dtype())]),
        Range(_) => range::run(inputs),
        Expand(_) => expand::run(arg(inputs, 0)?, arg(inputs, 1)?),
        Tile(_) => tile::run(arg(inputs, 0)?, arg(inputs, 1)?),
        ConstantOfShape(o) => constant_of_shape::run(o, arg(inputs, 0)?),
        QuantizeLinear(o) => quantize::quantize(o, inputs),
        DequantizeLinear(o) => quantize::dequantize(o, inputs),
        other => bail!(
            "operator {} is not supported by the fp32 interpreter",
            other.qualified_name()
        ),
    }
}
