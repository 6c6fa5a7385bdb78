//! The INT8 interpreter (DESIGN.md §7, issue 6): a quantized graph compiled into an integer
//! execution plan.
//!
//! [`QPlan::new`] lowers a QDQ graph (or one with explicit integer operators: QLinearConv,
//! QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear, ONNX Runtime's com.microsoft
//! QLinear* ops) into steps (`lower/`): each `DQ -> op -> Q` pattern with an integer kernel
//! becomes one step on the quantized tensors (u8 or i8 activations, i8 weights, i32
//! accumulation, requantization with the activation as a clamp), element-wise ops become lookup
//! tables, and everything else runs as the fp32 interpreter's op between the graph's own
//! DequantizeLinear and QuantizeLinear (the QDQ reference semantics). Quantized rank-4 tensors
//! stay channels-last between convs and pools.
//!
//! Numerics: the requantization of `kernels/int8/epilogue.rs` (float multiplier, round half to
//! even), within 1 LSB of the float QDQ reference and bit-exact on every kernel family; lookup
//! tables, Q/DQ, rescaling Add/Mul, MaxPool and Concat are bit-exact with the reference.

pub mod lower;
pub mod plan;
pub mod steps;

pub use plan::{LoweringSummary, QPlan, QPlanOptions, is_quantized};
