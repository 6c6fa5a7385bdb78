//! ONNX QuantizeLinear and DequantizeLinear, per tensor, f32 <-> u8/i8:
//! `q = saturate(round_half_even(x / scale) + zp)` (a true division, as the spec and MLAS do, so
//! results are bit-exact with the reference; multiplying by 1/scale would differ on ties) and
//! `x = (q − zp) · scale`. NaN quantizes to the type's minimum (MLAS clamps with `maxps`, which
//! returns the bound for NaN). The AVX2 forms compute the same f32 operations lane by lane.

use super::dispatch::KernelKind;
use super::epilogue::quantize_value;
use super::error::{Int8Error, check_len};
use super::qtype::QInt;

fn check_scale(what: &'static str, scale: f32) -> Result<(), Int8Error> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Int8Error::Param {
            what,
            detail: format!("scale {scale} is not finite and positive"),
        });
    }
    Ok(())
}

fn check_zero_point<T: QInt>(zero_point: i32) -> Result<(), Int8Error> {
    if T::checked(zero_point).is_none() {
        return Err(Int8Error::Param {
            what: "zero point",
            detail: format!("{zero_point} is outside the {} range", T::NAME),
        });
    }
    Ok(())
}

/// QuantizeLinear: `out[i] = saturate(round_half_even(x[i] / scale) + zero_point)`.
pub fn quantize<O: QInt>(
    kind: KernelKind,
    x: &[f32],
    scale: f32,
    zero_point: i32,
    out: &mut [O],
) -> Result<(), Int8Error> {
    check_len("quantize output", out.len(), x.len())?;
    check_scale("quantize", scale)?;
    check_zero_point::<O>(zero_point)?;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if kind != KernelKind::Scalar {
        KernelKind::Avx2.check_supported()?;
        // SAFETY: AVX2 checked; lengths equal.
        done = unsafe { avx2::quantize(x, scale, zero_point, out) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    kind.check_supported()?;
    for (o, &v) in out[done..].iter_mut().zip(&x[done..]) {
        *o = quantize_value::<O>(v, scale, zero_point);
    }
    Ok(())
}

/// DequantizeLinear: `out[i] = (q[i] − zero_point) · scale`.
pub fn dequantize<A: QInt>(
    kind: KernelKind,
    q: &[A],
    scale: f32,
    zero_point: i32,
    out: &mut [f32],
) -> Result<(), Int8Error> {
    check_len("dequantize output", out.len(), q.len())?;
    if !scale.is_finite() {
        return Err(Int8Error::Param {
            what: "dequantize",
            detail: format!("scale {scale} is not finite"),
        });
    }
    check_zero_point::<A>(zero_point)?;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if kind != KernelKind::Scalar {
        KernelKind::Avx2.check_supported()?;
        // SAFETY: AVX2 checked; lengths equal.
        done = unsafe { avx2::dequantize(q, scale, zero_point, out) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    kind.check_supported()?;
    for (o, &v) in out[done..].iter_mut().zip(&q[done..]) {
        *o = (v.to_i32() - zero_point) as f32 * scale;
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::super::epilogue::avx2::{narrow8, store_bytes8};
    use super::QInt;
    use std::arch::x86_64::*;

    /// `round_half_even(clamp(y, lo, hi)) + zp` for 8 lanes, lo/hi = type range − zp.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn round_clamp8<O: QInt>(y: __m256, zero_point: i32) -> __m256i {
        let lo = _mm256_set1_ps((O::MIN - zero_point) as f32);
        let hi = _mm256_set1_ps((O::MAX - zero_point) as f32);
        // max(y, lo) returns lo for NaN, like f32::max in the scalar formula.
        let y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);
        _mm256_add_epi32(_mm256_cvtps_epi32(y), _mm256_set1_epi32(zero_point))
    }

    /// Widens 8 quantized values to f32 `(q − zp)`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn load8_centered<A: QInt>(src: *const A, zero_point: i32) -> __m256 {
        // SAFETY: 8 readable elements (caller).
        let raw = unsafe { _mm_loadl_epi64(src.cast()) };
        let wide = if A::SIGNED {
            _mm256_cvtepi8_epi32(raw)
        } else {
            _mm256_cvtepu8_epi32(raw)
        };
        _mm256_cvtepi32_ps(_mm256_sub_epi32(wide, _mm256_set1_epi32(zero_point)))
    }

    /// Returns how many leading elements were done (a multiple of 8).
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn quantize<O: QInt>(x: &[f32], scale: f32, zp: i32, out: &mut [O]) -> usize {
        let s = _mm256_set1_ps(scale);
        let mut i = 0;
        while i + 8 <= x.len() {
            // SAFETY: 8 elements from i in both slices.
            unsafe {
                let y = _mm256_div_ps(_mm256_loadu_ps(x.as_ptr().add(i)), s);
                let q = round_clamp8::<O>(y, zp);
                store_bytes8(narrow8::<O>(q), out.as_mut_ptr().add(i).cast(), 8);
            }
            i += 8;
        }
        i
    }

    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn dequantize<A: QInt>(
        q: &[A],
        scale: f32,
        zp: i32,
        out: &mut [f32],
    ) -> usize {
        let s = _mm256_set1_ps(scale);
        let mut i = 0;
        while i + 8 <= q.len() {
            // SAFETY: 8 elements from i in both slices.
            unsafe {
                let y = _mm256_mul_ps(load8_centered(q.as_ptr().add(i), zp), s);
                _mm256_storeu_ps(out.as_mut_ptr().add(i), y);
            }
            i += 8;
        }
        i
    }
}
