//! INT8 kernels for the integer execution plan (DESIGN.md §5, §7; issue 6).
//!
//! Three families, chosen at run time ([`KernelKind::detect`], overridable with
//! `QOPT_KERNELS=scalar|avx2|avx512`; asking for one the CPU lacks is an error): `scalar` (the
//! oracle), `avx2` (AVX2+FMA: 16-bit `vpmaddwd` GEMM, exact for all inputs, see `gemm_avx2.rs` for
//! why not `vpmaddubsw`) and `avx512` (AVX-512 F/BW/VNNI `vpdpbusd` GEMM; everything else it
//! shares with `avx2`). Every SIMD kernel computes exactly what the scalar one does, bit for bit;
//! the scalar one implements the formula documented in `epilogue.rs` (float requantization, round
//! half to even), which is within 1 LSB of the ONNX QDQ float reference.
//!
//! Layout: activations are NHWC (channels last) in the conv helpers; a GEMM's activation operand is
//! `M x K` row-major (M = output pixels, K = kernel taps x input channels, in (ky, kx, c) order) and
//! its output `M x N` (N = output channels), so a conv's output is again NHWC. The plan transposes
//! NCHW graph inputs once and keeps int8 tensors NHWC between integer kernels.
//!
//! What the plan does with these:
//! - once per layer, at plan time: [`PackedB`] (weights packed for the family; zero points per
//!   column), an [`Epilogue`] ([`Requantize`] with per-channel [`requant_multiplier`]s, i32 bias
//!   and a [`QClamp`] for a fused Relu/Clip; [`Int32Out`] for ConvInteger/MatMulInteger;
//!   [`DequantizeOut`] for a float output), [`Conv2d`] / [`Depthwise`] with a [`Conv2dGeometry`];
//!   [`Lut8`] tables for requantization and any unary op between DQ and Q;
//! - per inference: [`gemm()`] / [`gemm_channels`], [`Conv2d::run`], [`Depthwise::run`],
//!   [`quantize()`], [`dequantize`], [`Lut8::apply`], [`QBinary::run`] (QLinearAdd/Mul), [`im2col()`].
//!
//! All kernels are single-threaded; the plan parallelises by splitting rows (GEMM M, conv images)
//! if it wants to. Kernels allocate only small per-call buffers (plus one reused thread-local block
//! for prepared activations).
//!
//! Errors: every size and parameter a caller passes is validated and reported as [`Int8Error`]
//! before any work. The remaining assertions are internal invariants that validated arguments
//! guarantee: the microkernels' row count (`unreachable!` in `gemm_avx2.rs`/`gemm_avx512.rs`, the
//! driver never asks for more rows than the tile), `run_simd` only seeing SIMD-packed weights, and
//! the row pieces of a row source summing to K (`debug_assert!` in `gemm.rs`).

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
