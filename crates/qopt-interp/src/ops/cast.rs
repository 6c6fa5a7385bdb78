//! Cast and CastLike (ONNX): element type conversion. Float to integer truncates toward zero
//! and saturates (NaN becomes 0), the behaviour of Rust's `as`, which ONNX leaves
//! implementation-defined for out-of-range values; to bool is `x != 0`.

use qopt_ir::{DType, Tensor};

pub fn cast(x: &Tensor, to: DType) -> Tensor {
    x.cast(to)
}
