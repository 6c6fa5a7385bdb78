//! Compute kernels. `scalar` code is the oracle that every SIMD path is tested against.
//!
//! fp32 kernels of the reference interpreter:
//! - [`gemm`]: tiled f32 GEMM on the `gemm` crate with a fused bias/activation epilogue;
//! - [`conv`]: convolution by im2col + GEMM (1x1 convolutions without im2col), and
//!   ConvTranspose by GEMM + col2im;
//! - [`depthwise`]: direct depthwise convolution;
//! - [`pool`]: max and average pooling;
//! - [`activation`]: the element-wise activations a Conv/Gemm epilogue can apply;
//! - [`simd`]: run-time dispatch to AVX2+FMA for auto-vectorised loops.

pub mod activation;
pub mod conv;
pub mod depthwise;
pub mod gemm;
pub mod int8;
pub mod pool;
pub mod simd;

/// A raw output pointer shared by parallel tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub *mut f32);
// SAFETY: every user writes through it only to parts of the buffer no other task touches.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    // A method, so closures capture the whole (Sync) wrapper, not the raw pointer field.
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Per-thread scratch (im2col tiles, padded planes), kept across calls so hot loops do not
    /// allocate.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's scratch buffer grown to at least `len` elements (contents
/// unspecified).
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        // A re-entrant call (a kernel inside a kernel) gets a fresh buffer instead of panicking.
        match s.try_borrow_mut() {
            Ok(mut v) => {
                if v.len() < len {
                    v.resize(len, 0.0);
                }
                f(&mut v[..len])
            }
            Err(_) => f(&mut vec![0.0; len]),
        }
    })
}
