//! The steps of an integer plan: one file per kind of step.
//!
//! A step is a function of its input tensors, like an fp32 op, plus whatever it prepared at plan
//! time (packed weights, requantization multipliers, lookup tables). Integer steps take their
//! quantization parameters as [`Operand`]s: a constant the lowering read from the graph, or an
//! input read at run time. So one step serves both the QDQ pattern (`DQ -> Conv -> Q`, whose
//! scales are constants) and the explicit ONNX operator (`QLinearConv`, whose scales may be graph
//! inputs): the lowering only maps operands.
//!
//! Layout: a step states which of its inputs it reads as NHWC (the plan inserts conversions,
//! `layout.rs`); everything else is in the ONNX layout.

pub mod binary;
pub mod concat;
pub mod conv;
pub mod float;
pub mod gemm;
pub mod island;
pub mod layout;
pub mod lut;
pub mod movement;
pub mod pool;
pub mod quantize;

use crate::error::{OpError, bail};
use crate::kernels::int8::{Int8Error, KernelKind, QClamp, QInt};
use crate::pool::BufferPool;
use qopt_ir::{DType, Tensor};
use std::sync::Arc;

/// What a step may use besides its inputs.
pub struct StepCx<'a> {
    /// The kernel family the plan was built for.
    pub kind: KernelKind,
    /// Version of the default ONNX domain (fp32 ops consult it).
    pub opset: i64,
    /// f32 buffers for fp32 ops.
    pub pool: &'a mut BufferPool,
}

/// One step of an integer plan.
pub trait Step: Send {
    /// Runs the step on its inputs (`None`: an absent optional input).
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError>;
    /// A short name for profiles and summaries (`QConv(depthwise)`, `fp32 Softmax`).
    fn name(&self) -> String;
    /// Whether the step computes in integer arithmetic (fp32 fallbacks and conversions: no).
    fn is_integer(&self) -> bool {
        true
    }
    /// Prepares constant operands for kernel family `kind` (packs weights) at plan time.
    fn prepare(&mut self, _kind: KernelKind) -> Result<(), OpError> {
        Ok(())
    }
}

/// A step's operand: a constant read from the graph at plan time, or step input `i`.
#[derive(Clone, Debug)]
pub enum Operand {
    Absent,
    Const(Arc<Tensor>),
    Input(usize),
}

impl Operand {
    /// The tensor, if present.
    pub fn get<'a>(&'a self, ins: &[Option<&'a Tensor>]) -> Option<&'a Tensor> {
        match self {
            Operand::Absent => None,
            Operand::Const(t) => Some(t),
            Operand::Input(i) => ins.get(*i).copied().flatten(),
        }
    }

    /// The tensor, or an error naming it.
    pub fn req<'a>(
        &'a self,
        ins: &[Option<&'a Tensor>],
        what: &str,
    ) -> Result<&'a Tensor, OpError> {
        match self.get(ins) {
            Some(t) => Ok(t),
            None => bail!("missing {what}"),
        }
    }

    /// Known at plan time (a constant or absent).
    pub fn is_static(&self) -> bool {
        !matches!(self, Operand::Input(_))
    }
}

/// The elements of a scale tensor as f32 (f16/f64 scales are converted).
pub fn scales(t: &Tensor, what: &str) -> Result<Vec<f32>, OpError> {
    match t.dtype() {
        DType::F32 | DType::F16 | DType::F64 => {
            Ok(t.to_f64_vec().iter().map(|&v| v as f32).collect())
        }
        d => bail!("{what} must be a float tensor, got {d}"),
    }
}

/// The one element of a per-tensor scale.
pub fn scale1(t: &Tensor, what: &str) -> Result<f32, OpError> {
    let s = scales(t, what)?;
    if s.len() != 1 {
        bail!("{what} must have one element, got shape {:?}", t.shape());
    }
    Ok(s[0])
}

/// The elements of a zero-point tensor (u8, i8 or i32) as i32.
pub fn zero_points(t: &Tensor, what: &str) -> Result<Vec<i32>, OpError> {
    match t {
        Tensor::U8(a) => Ok(a.iter().map(|&v| v as i32).collect()),
        Tensor::I8(a) => Ok(a.iter().map(|&v| v as i32).collect()),
        Tensor::I32(a) => Ok(a.iter().copied().collect()),
        t => bail!("{what} must be u8, i8 or i32, got {}", t.dtype()),
    }
}

/// The one element of a per-tensor zero point (absent: 0).
pub fn zero_point1(t: Option<&Tensor>, what: &str) -> Result<i32, OpError> {
    let Some(t) = t else { return Ok(0) };
    let z = zero_points(t, what)?;
    if z.len() != 1 {
        bail!("{what} must have one element, got shape {:?}", t.shape());
    }
    Ok(z[0])
}

/// Per-channel values: 1 (broadcast) or `n`.
pub fn per_channel<T: Copy>(v: &[T], n: usize, what: &str) -> Result<Vec<T>, OpError> {
    match v.len() {
        1 => Ok(vec![v[0]; n]),
        l if l == n => Ok(v.to_vec()),
        l => bail!("{what} has {l} values for {n} channels"),
    }
}

/// Kernel errors become op errors (the plan adds the node).
pub fn kerr(e: Int8Error) -> OpError {
    OpError(e.to_string())
}

/// The quantized output type of a step, from its output zero point's dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QOut {
    U8,
    I8,
}

impl QOut {
    pub fn of(dtype: DType) -> Option<QOut> {
        match dtype {
            DType::U8 => Some(QOut::U8),
            DType::I8 => Some(QOut::I8),
            _ => None,
        }
    }
    pub fn dtype(self) -> DType {
        match self {
            QOut::U8 => DType::U8,
            QOut::I8 => DType::I8,
        }
    }
}

/// An activation fused into a quantized kernel as a clamp of its output (exact: see
/// `kernels/int8/epilogue.rs`). Bounds are in real (dequantized) units.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Act {
    #[default]
    None,
    Relu,
    /// Clip(lo, hi); infinite bounds are absent.
    Clip(f32, f32),
}

impl Act {
    /// The clamp in the output's quantized domain.
    pub fn clamp<O: QInt>(self, scale: f32, zp: i32) -> QClamp {
        match self {
            Act::None => QClamp::none::<O>(),
            Act::Relu => QClamp::relu::<O>(zp),
            Act::Clip(lo, hi) => QClamp::clip::<O>(
                lo.is_finite().then_some(lo),
                hi.is_finite().then_some(hi),
                scale,
                zp,
            ),
        }
    }

    /// Name suffix for profiles.
    pub fn suffix(self) -> &'static str {
        match self {
            Act::None => "",
            Act::Relu => "+relu",
            Act::Clip(..) => "+clip",
        }
    }
}

/// A quantized tensor's data as a slice of its element type.
pub fn qdata<T: QInt + qopt_ir::Element>(t: &Tensor) -> Result<std::borrow::Cow<'_, [T]>, OpError> {
    match t.view::<T>() {
        Some(a) => Ok(crate::ops::contig(a)),
        None => bail!("expected a {} tensor, got {}", T::NAME, t.dtype()),
    }
}

/// A tensor from a shape and data, as an op output.
pub fn out_tensor<T: qopt_ir::Element>(shape: &[usize], data: Vec<T>) -> Result<Tensor, OpError> {
    crate::ops::tensor(shape, data)
}
