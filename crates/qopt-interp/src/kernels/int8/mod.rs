//! INT8 kernels for the integer execution plan (DESIGN.md §5, §7; issue 6).
//!
//! Three families, chosen at run time ([`KernelKind::detect`], overridable with
//! `QOPT_KERNELS=scalar|avx2|avx512`): `scalar` (the oracle), `avx2` (16-bit `vpmaddwd` GEMM, exact
//! for all inputs) and `avx512` (VNNI `vpdpbusd`). Every SIMD kernel computes exactly what the scalar
//! one does, bit for bit; the scalar one implements the formula documented in `epilogue.rs`, which is
//! within 1 LSB of the ONNX QDQ float reference.
//!
//! Layout: activations are NHWC (channels last) in the conv helpers; a GEMM's activation operand is
//! `M x K` row-major (M = output pixels, K = kernel taps x input channels) and its output `M x N`
//! (N = output channels), so a conv's output is again NHWC.
//!
//! What the plan does with these:
//! - at plan time: [`PackedB`] (weights, once per layer and kernel family), an [`Epilogue`]
//!   ([`Requantize`] with [`requant_multiplier`] and a [`QClamp`] for a fused Relu/Clip,
//!   [`Int32Out`], [`DequantizeOut`]), [`Conv2d`] / [`Depthwise`] for convolutions;
//! - at run time: [`gemm`], [`Conv2d::run`], [`Depthwise::run`], and the elementwise kernels
//!   ([`quantize`], [`dequantize`], [`Lut8`] for requantization, [`QBinary`] for Add/Mul).
//!
//! Errors: every size and parameter a caller passes is validated and reported as [`Int8Error`].
//! Internal invariants (tile sizes, panel extents) are `debug_assert`/`unreachable!` only where
//! the validated arguments guarantee them.

pub mod conv;
pub mod depthwise;
pub mod dispatch;
pub mod epilogue;
pub mod error;
pub mod gemm;
mod gemm_scalar;
pub mod geometry;
pub mod im2col;
pub mod lut;
pub mod pack;
pub mod qbinary;
pub mod qtype;
pub mod quantize;
mod rows;

#[cfg(target_arch = "x86_64")]
mod depthwise_avx2;
#[cfg(target_arch = "x86_64")]
mod gemm_avx2;
#[cfg(target_arch = "x86_64")]
mod gemm_avx512;

#[cfg(test)]
mod tests;

pub use conv::Conv2d;
pub use depthwise::Depthwise;
pub use dispatch::{KERNELS_ENV, KernelKind};
pub use epilogue::{
    DequantizeOut, Epilogue, Int32Out, QClamp, Requantize, quantize_value, requant_multiplier,
};
pub use error::Int8Error;
pub use gemm::{ActMatrix, OutMatrix, gemm, gemm_channels};
pub use geometry::{Conv2dGeometry, ConvParams};
pub use im2col::im2col;
pub use lut::Lut8;
pub use pack::{BLayout, PackedB};
pub use qbinary::{BinaryOp, QBinary};
pub use qtype::QInt;
pub use quantize::{dequantize, quantize};
