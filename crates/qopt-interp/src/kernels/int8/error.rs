//! Errors of the int8 kernel layer.
//!
//! Every size or parameter the caller passes is checked before any kernel touches memory, so a
//! mismatched buffer is an `Err`, never a panic or an out-of-bounds access. The plan that calls
//! these kernels names the node in its own error; here we name the operand.

/// An error from the int8 kernels: a caller bug or bad model data, reported before any work is done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Int8Error {
    /// A buffer is shorter (or, where exact sizes are required, of another length) than the shape needs.
    #[error("int8 kernel: {what} has {actual} elements, expected {expected}")]
    BufferSize {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// Inconsistent or unsupported dimensions.
    #[error("int8 kernel: bad shape for {what}: {detail}")]
    Shape { what: &'static str, detail: String },
    /// A quantization parameter out of its domain (non-finite multiplier, zero point out of range...).
    #[error("int8 kernel: bad parameter {what}: {detail}")]
    Param { what: &'static str, detail: String },
    /// `QOPT_KERNELS` (or the caller) named a kernel family this CPU cannot run.
    #[error("int8 kernel `{requested}` is not supported on this CPU (it lacks {missing})")]
    Unsupported {
        requested: &'static str,
        missing: &'static str,
    },
    /// `QOPT_KERNELS` holds an unknown name.
    #[error("QOPT_KERNELS={0:?} is not a kernel family; use scalar, avx2 or avx512")]
    UnknownKernel(String),
}

/// Checks that `len` covers a `rows x cols` matrix stored with row stride `stride` (the last row
/// only needs `cols` elements, so a sub-matrix view of a wider tensor passes).
pub(crate) fn check_matrix(
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
    stride: usize,
) -> Result<(), Int8Error> {
    if rows > 0 && cols > stride {
        return Err(Int8Error::Shape {
            what,
            detail: format!("row stride {stride} is smaller than the row length {cols}"),
        });
    }
    let needed = if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1)
            .checked_mul(stride)
            .and_then(|x| x.checked_add(cols))
            .ok_or_else(|| Int8Error::Shape {
                what,
                detail: format!("{rows} x {cols} with stride {stride} overflows usize"),
            })?
    };
    if len < needed {
        return Err(Int8Error::BufferSize {
            what,
            expected: needed,
            actual: len,
        });
    }
    Ok(())
}

/// Checks an exact length.
pub(crate) fn check_len(what: &'static str, len: usize, expected: usize) -> Result<(), Int8Error> {
    if len != expected {
        return Err(Int8Error::BufferSize {
            what,
            expected,
            actual: len,
        });
    }
    Ok(())
}
