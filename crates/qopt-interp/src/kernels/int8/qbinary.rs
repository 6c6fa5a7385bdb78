//! Quantized Add and Mul with rescaling (com.microsoft QLinearAdd / QLinearMul semantics, and the
//! QDQ pattern `DQ(a), DQ(b) -> Add|Mul -> Q`), computed exactly as the QDQ reference does in f32:
//! `fa = (a − za)·sa`, `fb = (b − zb)·sb`, `y = fa + fb` (or `fa·fb`),
//! `q = saturate(round_half_even(y / sc) + zc)`. Bit-exact with the QDQ reference; ONNX Runtime's
//! fused QLinearAdd folds the scales into two ratios and may differ from it by 1 LSB on ties.
//!
//! Broadcasting: `b` has the length of `a`, or 1 (a scalar), or divides it (repeated, i.e. b
//! broadcast over leading dimensions, e.g. a per-channel tensor against NHWC). Anything else the
//! plan expands first.

use super::dispatch::KernelKind;
use super::epilogue::quantize_value;
use super::error::Int8Error;
use super::qtype::QInt;

/// Which binary op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `fa + fb`.
    Add,
    /// `fa · fb`.
    Mul,
}

/// A quantized binary op with its three (scale, zero point) pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QBinary {
    op: BinaryOp,
    a: (f32, i32),
    b: (f32, i32),
    out: (f32, i32),
}

impl QBinary {
    /// `a`, `b`, `out`: (scale, zero point). Scales finite, the output's positive.
    pub fn new(
        op: BinaryOp,
        a: (f32, i32),
        b: (f32, i32),
        out: (f32, i32),
    ) -> Result<Self, Int8Error> {
        if !(a.0.is_finite() && b.0.is_finite() && out.0.is_finite() && out.0 > 0.0) {
            return Err(Int8Error::Param {
                what: "quantized binary op scales",
                detail: format!("{} {} -> {}", a.0, b.0, out.0),
            });
        }
        Ok(QBinary { op, a, b, out })
    }

    #[inline]
    fn reference<I: QInt, O: QInt>(&self, a: I, b: I) -> O {
        let fa = (a.to_i32() - self.a.1) as f32 * self.a.0;
        let fb = (b.to_i32() - self.b.1) as f32 * self.b.0;
        let y = match self.op {
            BinaryOp::Add => fa + fb,
            BinaryOp::Mul => fa * fb,
        };
        quantize_value::<O>(y, self.out.0, self.out.1)
    }

    /// `out[i] = op(a[i], b[i mod b.len()])`.
    pub fn run<I: QInt, O: QInt>(
        &self,
        kind: KernelKind,
        a: &[I],
        b: &[I],
        out: &mut [O],
    ) -> Result<(), Int8Error> {
        if out.len() != a.len()
            || (b.is_empty() && !a.is_empty())
            || (!b.is_empty() && !a.len().is_multiple_of(b.len()))
        {
            return Err(Int8Error::Shape {
                what: "quantized binary op",
                detail: format!(
                    "a has {}, b {}, out {} elements (b must have 1, or a divisor of a's, and out a's)",
                    a.len(),
                    b.len(),
                    out.len()
                ),
            });
        }
        for (name, zp, ok) in [
            ("a", self.a.1, I::checked(self.a.1).is_some()),
            ("b", self.b.1, I::checked(self.b.1).is_some()),
            ("out", self.out.1, O::checked(self.out.1).is_some()),
        ] {
            if !ok {
                return Err(Int8Error::Param {
                    what: "quantized binary op zero point",
                    detail: format!("{name} zero point {zp} is outside its type's range"),
                });
            }
        }
        if a.is_empty() {
            return Ok(());
        }
        #[cfg(target_arch = "x86_64")]
        if kind != KernelKind::Scalar {
            KernelKind::Avx2.check_supported()?;
            // SAFETY: AVX2 checked; lengths validated above.
            unsafe { avx2::run(self, a, b, out) };
            return Ok(());
        }
        kind.check_supported()?;
        for (i, (o, &x)) in out.iter_mut().zip(a).enumerate() {
            *o = self.reference(x, b[i % b.len()]);
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::epilogue::avx2::{narrow8, store_bytes8};
    use super::super::quantize::avx2::{load8_centered, round_clamp8};
    use super::{BinaryOp, QBinary, QInt};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn eight<I: QInt, O: QInt>(q: &QBinary, a: *const I, fb: __m256, dst: *mut O) {
        // SAFETY: 8 elements at a and dst (caller).
        unsafe {
            let fa = _mm256_mul_ps(load8_centered(a, q.a.1), _mm256_set1_ps(q.a.0));
            let y = match q.op {
                BinaryOp::Add => _mm256_add_ps(fa, fb),
                BinaryOp::Mul => _mm256_mul_ps(fa, fb),
            };
            let y = _mm256_div_ps(y, _mm256_set1_ps(q.out.0));
            store_bytes8(narrow8::<O>(round_clamp8::<O>(y, q.out.1)), dst.cast(), 8);
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run<I: QInt, O: QInt>(q: &QBinary, a: &[I], b: &[I], out: &mut [O]) {
        if b.len() == 1 {
            let fb = _mm256_set1_ps((b[0].to_i32() - q.b.1) as f32 * q.b.0);
            let mut i = 0;
            while i + 8 <= a.len() {
                // SAFETY: 8 elements from i in a and out.
                unsafe { eight(q, a.as_ptr().add(i), fb, out.as_mut_ptr().add(i)) };
                i += 8;
            }
            for j in i..a.len() {
                out[j] = q.reference(a[j], b[0]);
            }
            return;
        }
        for (a, out) in a.chunks_exact(b.len()).zip(out.chunks_exact_mut(b.len())) {
            let mut i = 0;
            while i + 8 <= b.len() {
                // SAFETY: 8 elements from i in a, b and out (all of b's length).
                unsafe {
                    let fb = _mm256_mul_ps(
                        load8_centered(b.as_ptr().add(i), q.b.1),
                        _mm256_set1_ps(q.b.0),
                    );
                    eight(q, a.as_ptr().add(i), fb, out.as_mut_ptr().add(i));
                }
                i += 8;
            }
            for j in i..b.len() {
                out[j] = q.reference(a[j], b[j]);
            }
        }
    }
}
