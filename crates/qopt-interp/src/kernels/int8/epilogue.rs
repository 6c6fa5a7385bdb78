//! Epilogues: what happens to a finished i32 accumulator (one output channel `n` of a GEMM, conv
//! or depthwise conv) before it is stored.
//!
//! # The requantization formula (the reference every kernel matches bit for bit)
//!
//! ```text
//! acc = Σ_k (a[m,k] − za)·(b[k,n] − zb[n]) + bias[n]          i32, wrapping
//! y   = f32(acc) ·f32 mult[n]                                   IEEE f32, round to nearest even
//! q   = clamp(round_half_even(y) + zo, lo, hi)                  lo/hi: activation ∩ output type
//! mult[n] = f32(s_a·s_w[n] / s_o)                               computed in f64, see `requant_multiplier`
//! ```
//!
//! This is float requantization as ONNX Runtime's MLAS does it on x86 (`MlasRequantizeOutput`:
//! `cvtepi32_ps`, `mulps`, `cvtps_epi32` under the default round-to-nearest-even MXCSR). It was
//! chosen over gemmlowp/TFLite fixed-point multipliers because the ONNX QDQ reference rounds half
//! to even (QuantizeLinear), which fixed-point "rounding doubling high mul" does not (it rounds half
//! away from zero), and because AVX2 has no packed 32x32->64 high multiply on all lanes.
//!
//! Against the ONNX QDQ reference (DequantizeLinear, float Conv/Gemm, QuantizeLinear, all f32)
//! the only differences are float rounding: `f32(acc)` is exact below 2^24 and within 2^-24
//! relative above, and the reference's own f32 sums and `y / s_o` division round too. So results
//! differ by at most 1 LSB, and only where the exact value is within ~1e-6 LSB of a rounding tie.
//! The tests check both: bit-exactness against an independent implementation of the formula
//! above, and |diff| <= 1 against exact f64 math.
//!
//! The SIMD code clamps in float *before* rounding (`rne(clamp(y, lo-zo, hi-zo)) + zo`), which
//! equals `clamp(rne(y) + zo, lo, hi)` because `lo-zo` and `hi-zo` are integers and rounding is
//! monotone; clamping first also keeps `cvtps_epi32` away from its out-of-range value 0x80000000.
//! The kernels assume the default MXCSR rounding mode (nothing in qopt changes it).
//!
//! Activations fused as a clamp in the quantized domain are exact: `Q` is monotone, so
//! `Q(relu(y)) = max(Q(y), Q(0)) = max(Q(y), zo)` and `Q(clip(y, a, b)) = clamp(Q(y), Q(a), Q(b))`.

use super::error::{Int8Error, check_len};
use super::qtype::QInt;

/// Channels of padding after every per-channel vector, so SIMD code may load 16 lanes at any
/// channel index below the real count without a bounds branch.
pub(crate) const CHANNEL_PAD: usize = 16;

/// `s_a * s_w / s_o` in f64, rounded once to f32: the requantization multiplier of one channel.
pub fn requant_multiplier(s_a: f32, s_w: f32, s_o: f32) -> f32 {
    ((s_a as f64 * s_w as f64) / s_o as f64) as f32
}

/// The ONNX QuantizeLinear formula `saturate(round_half_even(x / scale) + zero_point)` for one
/// value, in f32 as the spec computes it. NaN maps to the type's minimum (like MLAS, whose
/// `maxps` clamp sends NaN to the lower bound).
#[inline]
pub fn quantize_value<O: QInt>(x: f32, scale: f32, zero_point: i32) -> O {
    let lo = (O::MIN - zero_point) as f32;
    let hi = (O::MAX - zero_point) as f32;
    let y = (x / scale).max(lo).min(hi);
    O::saturate(y.round_ties_even() as i32 + zero_point)
}

/// A clamp in the quantized output domain: a fused Relu or Clip, or just the type's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QClamp {
    /// Smallest output value.
    pub lo: i32,
    /// Largest output value.
    pub hi: i32,
}

impl QClamp {
    /// No activation: the output type's full range.
    pub fn none<O: QInt>() -> QClamp {
        QClamp {
            lo: O::MIN,
            hi: O::MAX,
        }
    }

    /// Relu: `Q(0) = zo` is the lower bound.
    pub fn relu<O: QInt>(zero_point: i32) -> QClamp {
        QClamp {
            lo: zero_point.clamp(O::MIN, O::MAX),
            hi: O::MAX,
        }
    }

    /// Clip(min, max) (e.g. Relu6 = Clip(0, 6)): the bounds quantized with the output's
    /// QuantizeLinear formula; `None` is an absent bound.
    pub fn clip<O: QInt>(
        min: Option<f32>,
        max: Option<f32>,
        scale: f32,
        zero_point: i32,
    ) -> QClamp {
        QClamp {
            lo: min.map_or(O::MIN, |v| {
                quantize_value::<O>(v, scale, zero_point).to_i32()
            }),
            hi: max.map_or(O::MAX, |v| {
                quantize_value::<O>(v, scale, zero_point).to_i32()
            }),
        }
    }

    fn validate<O: QInt>(self) -> Result<(), Int8Error> {
        if self.lo < O::MIN || self.hi > O::MAX || self.lo > self.hi {
            return Err(Int8Error::Param {
                what: "activation clamp",
                detail: format!(
                    "[{}, {}] is empty or outside the {} range [{}, {}]",
                    self.lo,
                    self.hi,
                    O::NAME,
                    O::MIN,
                    O::MAX
                ),
            });
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// How finished accumulators become outputs. Implemented by [`Requantize`] (u8/i8 out),
/// [`Int32Out`] (ConvInteger/MatMulInteger) and [`DequantizeOut`] (f32 out).
pub trait Epilogue: sealed::Sealed + Sync {
    /// Output element type.
    type Out: Copy + Default + Send + Sync;
    /// Number of output channels (GEMM columns) it was built for.
    fn channels(&self) -> usize;
    /// Per-channel i32 bias added to the accumulator (padded with zeros past `channels()`).
    fn bias_padded(&self) -> &[i32];
    /// The reference conversion of one accumulator (bias already added) of channel `n`.
    fn convert(&self, acc: i32, n: usize) -> Self::Out;
    /// AVX2 conversion of the accumulators of channels `n..n+8` (bias already added); writes the
    /// first `count` (1..=8) outputs to `dst`.
    ///
    /// # Safety
    /// AVX2 must be available, `n < channels()`, and `dst` valid for `count` writes.
    #[cfg(target_arch = "x86_64")]
    unsafe fn convert8_avx2(
        &self,
        acc: std::arch::x86_64::__m256i,
        n: usize,
        dst: *mut Self::Out,
        count: usize,
    );
    /// AVX2 conversion of channels `n..n+16` (`acc0`: the first 8); writes the first `count`
    /// (1..=16) outputs. Requantization overrides it to narrow both halves at once.
    ///
    /// # Safety
    /// As for `convert8_avx2`, with `count` writes.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert16_avx2(
        &self,
        acc0: std::arch::x86_64::__m256i,
        acc1: std::arch::x86_64::__m256i,
        n: usize,
        dst: *mut Self::Out,
        count: usize,
    ) {
        // SAFETY: forwarded; the second half only when it has outputs to write (n + 8 < channels).
        unsafe {
            self.convert8_avx2(acc0, n, dst, count.min(8));
            if count > 8 {
                self.convert8_avx2(acc1, n + 8, dst.add(8), count - 8);
            }
        }
    }
    /// Two rows of `convert16_avx2`: `acc[0..2]` (channels `n..n+16`) to `dst0`, `acc[2..4]` to
    /// `dst1`, `count` (1..=16) outputs each.
    ///
    /// # Safety
    /// As for `convert16_avx2`, for both destinations.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert16x2_avx2(
        &self,
        acc: [std::arch::x86_64::__m256i; 4],
        n: usize,
        dst0: *mut Self::Out,
        dst1: *mut Self::Out,
        count: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            self.convert16_avx2(acc[0], acc[1], n, dst0, count);
            self.convert16_avx2(acc[2], acc[3], n, dst1, count);
        }
    }
    /// Four rows of `convert8_avx2` for the same channels `n..n+8`: group `i` writes `count`
    /// (1..=8) outputs at `dst + i·stride`.
    ///
    /// # Safety
    /// As for `convert8_avx2`, for the four destinations.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8x4_avx2(
        &self,
        acc: [std::arch::x86_64::__m256i; 4],
        n: usize,
        dst: *mut Self::Out,
        stride: usize,
        count: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            for (i, a) in acc.iter().enumerate() {
                self.convert8_avx2(*a, n, dst.add(i * stride), count);
            }
        }
    }
    /// Converts four groups of 8 channels (e.g. four pixels or four channel blocks of a
    /// depthwise conv), each given as f32 lanes holding exact integers of magnitude <= 2^24 (the
    /// accumulator, bias included): group `i` holds channels `n[i]..n[i]+8` and writes its first
    /// `count` (1..=8) outputs at `dst[i]`.
    ///
    /// # Safety
    /// As for `convert8_avx2`, for each group.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8x4_exact_f32_avx2(
        &self,
        acc: [std::arch::x86_64::__m256; 4],
        n: [usize; 4],
        dst: [*mut Self::Out; 4],
        count: usize,
    ) {
        // SAFETY: forwarded.
        unsafe { avx2::exact_f32_groups(self, acc, n, dst, count) }
    }
}

/// The largest multiplier for which `f32(acc)·mult` of an accumulator with |acc| <= 2^24 stays
/// below 2^31, so `cvtps_epi32` cannot overflow and the clamp may follow the rounding in the
/// integer domain (see `avx2::requantize32`).
pub(crate) const EXACT_F32_MAX_MULT: f32 = 64.0;

/// For any i32 accumulator, `f32(acc)·mult` with `mult < 1` is below 2^31 (|f32(acc)| <= 2^31),
/// so the integer clamp applies to every accumulator when all multipliers are below this.
pub(crate) const ANY_I32_MAX_MULT: f32 = 1.0;

fn padded_per_channel<T: Copy>(
    what: &'static str,
    values: &[T],
    channels: usize,
    pad: T,
) -> Result<Vec<T>, Int8Error> {
    let mut out = Vec::with_capacity(channels + CHANNEL_PAD);
    match values.len() {
        1 => out.resize(channels, values[0]),
        len if len == channels => out.extend_from_slice(values),
        len => {
            return Err(Int8Error::Param {
                what,
                detail: format!("{len} values for {channels} channels (expected 1 or {channels})"),
            });
        }
    }
    out.resize(channels + CHANNEL_PAD, pad);
    Ok(out)
}

fn padded_bias(bias: Option<&[i32]>, channels: usize) -> Result<Vec<i32>, Int8Error> {
    if let Some(b) = bias {
        check_len("bias", b.len(), channels)?;
    }
    let mut out = bias.map_or_else(|| vec![0; channels], <[i32]>::to_vec);
    out.resize(channels + CHANNEL_PAD, 0);
    Ok(out)
}

/// Requantization to u8/i8 with per-channel (or per-tensor) multipliers, bias and a clamp.
#[derive(Debug, Clone)]
pub struct Requantize<O: QInt> {
    channels: usize,
    mult: Vec<f32>,
    bias: Vec<i32>,
    zero_point: i32,
    clamp: QClamp,
    /// Every multiplier <= EXACT_F32_MAX_MULT.
    small_mult: bool,
    /// Every multiplier < ANY_I32_MAX_MULT.
    below_one: bool,
    _out: std::marker::PhantomData<O>,
}

impl<O: QInt> Requantize<O> {
    /// `multipliers`: 1 (per tensor) or `channels` values, each `s_a*s_w[n]/s_o`
    /// ([`requant_multiplier`]); finite and positive. `bias`: `channels` i32 values (scale
    /// `s_a*s_w[n]`, zero point 0) or none. `zero_point`: the output's, within `O`'s range.
    pub fn new(
        channels: usize,
        multipliers: &[f32],
        bias: Option<&[i32]>,
        zero_point: i32,
        clamp: QClamp,
    ) -> Result<Self, Int8Error> {
        if let Some(bad) = multipliers.iter().find(|m| !(m.is_finite() && **m > 0.0)) {
            return Err(Int8Error::Param {
                what: "requantization multiplier",
                detail: format!("{bad} is not finite and positive"),
            });
        }
        if O::checked(zero_point).is_none() {
            return Err(Int8Error::Param {
                what: "output zero point",
                detail: format!("{zero_point} is outside the {} range", O::NAME),
            });
        }
        clamp.validate::<O>()?;
        Ok(Requantize {
            channels,
            mult: padded_per_channel("requantization multipliers", multipliers, channels, 1.0)?,
            bias: padded_bias(bias, channels)?,
            zero_point,
            clamp,
            small_mult: multipliers.iter().all(|&m| m <= EXACT_F32_MAX_MULT),
            below_one: multipliers.iter().all(|&m| m < ANY_I32_MAX_MULT),
            _out: std::marker::PhantomData,
        })
    }

    /// The output zero point.
    pub fn zero_point(&self) -> i32 {
        self.zero_point
    }

    /// The clamp.
    pub fn clamp(&self) -> QClamp {
        self.clamp
    }

    /// The multiplier of channel `n`.
    pub fn multiplier(&self, n: usize) -> f32 {
        self.mult[n]
    }
}

impl<O: QInt> sealed::Sealed for Requantize<O> {}

impl<O: QInt> Epilogue for Requantize<O> {
    type Out = O;
    fn channels(&self) -> usize {
        self.channels
    }
    fn bias_padded(&self) -> &[i32] {
        &self.bias
    }
    #[inline]
    fn convert(&self, acc: i32, n: usize) -> O {
        let zo = self.zero_point;
        let y = (acc as f32) * self.mult[n];
        let y = y
            .max((self.clamp.lo - zo) as f32)
            .min((self.clamp.hi - zo) as f32);
        O::saturate(y.round_ties_even() as i32 + zo)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8_avx2(
        &self,
        acc: std::arch::x86_64::__m256i,
        n: usize,
        dst: *mut O,
        count: usize,
    ) {
        // SAFETY: caller guarantees AVX2, n < channels (the vectors are padded by CHANNEL_PAD)
        // and dst valid for `count` bytes.
        unsafe { avx2::requantize8::<O>(self, acc, n, dst, count) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert16_avx2(
        &self,
        acc0: std::arch::x86_64::__m256i,
        acc1: std::arch::x86_64::__m256i,
        n: usize,
        dst: *mut O,
        count: usize,
    ) {
        // SAFETY: as above; the multipliers are padded by CHANNEL_PAD = 16.
        unsafe { avx2::requantize16::<O>(self, acc0, acc1, n, dst, count) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert16x2_avx2(
        &self,
        acc: [std::arch::x86_64::__m256i; 4],
        n: usize,
        dst0: *mut O,
        dst1: *mut O,
        count: usize,
    ) {
        // SAFETY: as above, two destinations (caller).
        unsafe { avx2::requantize16x2::<O>(self, acc, n, dst0, dst1, count) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8x4_avx2(
        &self,
        acc: [std::arch::x86_64::__m256i; 4],
        n: usize,
        dst: *mut O,
        stride: usize,
        count: usize,
    ) {
        // SAFETY: as above, four destinations (caller).
        unsafe { avx2::requantize8x4::<O>(self, acc, n, dst, stride, count) }
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8x4_exact_f32_avx2(
        &self,
        acc: [std::arch::x86_64::__m256; 4],
        n: [usize; 4],
        dst: [*mut O; 4],
        count: usize,
    ) {
        // SAFETY: as above, four groups (caller).
        unsafe { avx2::requantize8x4_exact_f32::<O>(self, acc, n, dst, count) }
    }
}

/// Raw i32 output (`acc + bias`), for ConvInteger and MatMulInteger (which have no bias: pass none).
#[derive(Debug, Clone)]
pub struct Int32Out {
    channels: usize,
    bias: Vec<i32>,
}

impl Int32Out {
    /// `bias`: `channels` values or none.
    pub fn new(channels: usize, bias: Option<&[i32]>) -> Result<Self, Int8Error> {
        Ok(Int32Out {
            channels,
            bias: padded_bias(bias, channels)?,
        })
    }
}

impl sealed::Sealed for Int32Out {}

impl Epilogue for Int32Out {
    type Out = i32;
    fn channels(&self) -> usize {
        self.channels
    }
    fn bias_padded(&self) -> &[i32] {
        &self.bias
    }
    #[inline]
    fn convert(&self, acc: i32, _n: usize) -> i32 {
        acc
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8_avx2(
        &self,
        acc: std::arch::x86_64::__m256i,
        _n: usize,
        dst: *mut i32,
        count: usize,
    ) {
        // SAFETY: caller guarantees AVX2 and dst valid for `count` i32.
        unsafe { avx2::store_i32x8(acc, dst, count) }
    }
}

/// Dequantized f32 output `f32(acc + bias) * scale[n]` (scale = `s_a*s_w[n]`), for a quantized
/// Conv/Gemm whose output is not quantized again (e.g. the logits).
#[derive(Debug, Clone)]
pub struct DequantizeOut {
    channels: usize,
    scale: Vec<f32>,
    bias: Vec<i32>,
}

impl DequantizeOut {
    /// `scales`: 1 or `channels` finite values; `bias`: `channels` values or none.
    pub fn new(channels: usize, scales: &[f32], bias: Option<&[i32]>) -> Result<Self, Int8Error> {
        if let Some(bad) = scales.iter().find(|s| !s.is_finite()) {
            return Err(Int8Error::Param {
                what: "dequantization scale",
                detail: format!("{bad} is not finite"),
            });
        }
        Ok(DequantizeOut {
            channels,
            scale: padded_per_channel("dequantization scales", scales, channels, 0.0)?,
            bias: padded_bias(bias, channels)?,
        })
    }
}

impl sealed::Sealed for DequantizeOut {}

impl Epilogue for DequantizeOut {
    type Out = f32;
    fn channels(&self) -> usize {
        self.channels
    }
    fn bias_padded(&self) -> &[i32] {
        &self.bias
    }
    #[inline]
    fn convert(&self, acc: i32, n: usize) -> f32 {
        (acc as f32) * self.scale[n]
    }
    #[cfg(target_arch = "x86_64")]
    #[inline]
    unsafe fn convert8_avx2(
        &self,
        acc: std::arch::x86_64::__m256i,
        n: usize,
        dst: *mut f32,
        count: usize,
    ) {
        // SAFETY: caller guarantees AVX2, n < channels and dst valid for `count` f32.
        unsafe { avx2::dequantize8(&self.scale, acc, n, dst, count) }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    //! AVX2 forms of the conversions above; each lane computes exactly the scalar formula.
    use super::{Epilogue, QInt, Requantize};
    use std::arch::x86_64::*;

    /// Stores the first `count` (1..=8) bytes of `v` (low 8 bytes of an xmm) to `dst`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn store_bytes8(v: __m128i, dst: *mut u8, count: usize) {
        // SAFETY: dst valid for `count` bytes (caller).
        unsafe {
            if count >= 8 {
                _mm_storel_epi64(dst as *mut __m128i, v);
            } else {
                let mut tmp = [0u8; 16];
                _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, v);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, count);
            }
        }
    }

    /// Requantizes 8 lanes to i32 values already clamped to the output range.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requantize8_i32<O: QInt>(
        epi: &Requantize<O>,
        acc: __m256i,
        n: usize,
    ) -> __m256i {
        let zo = epi.zero_point;
        // SAFETY: n < channels and mult has CHANNEL_PAD extra entries.
        let mult = unsafe { _mm256_loadu_ps(epi.mult.as_ptr().add(n)) };
        let lo = _mm256_set1_ps((epi.clamp.lo - zo) as f32);
        let hi = _mm256_set1_ps((epi.clamp.hi - zo) as f32);
        let y = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), mult);
        // Same operand order as f32::max/min in the scalar formula (no NaN can occur here).
        let y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);
        _mm256_add_epi32(_mm256_cvtps_epi32(y), _mm256_set1_epi32(zo))
    }

    /// Narrows 8 i32 lanes known to be in `O`'s range to 8 bytes (low half of the result).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn narrow8<O: QInt>(q: __m256i) -> __m128i {
        let p16 = _mm256_packs_epi32(q, q);
        let p8 = if O::SIGNED {
            _mm256_packs_epi16(p16, p16)
        } else {
            _mm256_packus_epi16(p16, p16)
        };
        _mm_unpacklo_epi32(
            _mm256_castsi256_si128(p8),
            _mm256_extracti128_si256::<1>(p8),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requantize8<O: QInt>(
        epi: &Requantize<O>,
        acc: __m256i,
        n: usize,
        dst: *mut O,
        count: usize,
    ) {
        // SAFETY: forwarded caller guarantees.
        unsafe {
            let q = requantize8_i32(epi, acc, n);
            store_bytes8(narrow8::<O>(q), dst as *mut u8, count);
        }
    }

    /// Requantizes 16 lanes and stores the first `count` (1..=16) as bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requantize16<O: QInt>(
        epi: &Requantize<O>,
        acc0: __m256i,
        acc1: __m256i,
        n: usize,
        dst: *mut O,
        count: usize,
    ) {
        // SAFETY: n < channels; the multipliers are padded by 16; dst valid for `count` bytes.
        unsafe {
            let q0 = requantize8_i32(epi, acc0, n);
            let q1 = requantize8_i32(epi, acc1, n + 8);
            // packs works per 128-bit lane: [q0 0-3, q1 0-3 | q0 4-7, q1 4-7]; reorder the
            // 64-bit quarters to [q0 0-3, q0 4-7 | q1 0-3, q1 4-7] before the final narrowing.
            let p16 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q0, q1));
            let (lo, hi) = (
                _mm256_castsi256_si128(p16),
                _mm256_extracti128_si256::<1>(p16),
            );
            let bytes = if O::SIGNED {
                _mm_packs_epi16(lo, hi)
            } else {
                _mm_packus_epi16(lo, hi)
            };
            if count >= 16 {
                _mm_storeu_si128(dst.cast(), bytes);
            } else {
                let mut tmp = [0u8; 16];
                _mm_storeu_si128(tmp.as_mut_ptr().cast(), bytes);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst.cast::<u8>(), count);
            }
        }
    }

    /// The requantization of 32 lanes from their products `y = f32(acc)·mult`, for products known
    /// to be below 2^31 (then `cvtps_epi32` is exact rounding, never the out-of-range value): the
    /// clamp follows the rounding, in saturating integer steps on all 32 lanes at once:
    /// `clamp(rne(y) + zo, lo, hi)` = i16-saturate rne(y), saturating-add zo, saturate to the
    /// output type, clamp to [lo, hi]. Each saturation bound lies beyond the final clamp's bound on
    /// the same side as the value it replaces, so the result is the same as the float clamp's.
    /// Returns the bytes of `y[0], y[1]` (16) and of `y[2], y[3]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn requantize32<O: QInt>(epi: &Requantize<O>, y: [__m256; 4]) -> (__m128i, __m128i) {
        let q = y.map(|v| _mm256_cvtps_epi32(v));
        let zo = _mm256_set1_epi16(epi.zero_point as i16);
        // i16 lanes: [q0 0-3, q1 0-3 | q0 4-7, q1 4-7] and the same for q2, q3.
        let ab = _mm256_adds_epi16(_mm256_packs_epi32(q[0], q[1]), zo);
        let cd = _mm256_adds_epi16(_mm256_packs_epi32(q[2], q[3]), zo);
        // bytes: [q0 0-3, q1 0-3, q2 0-3, q3 0-3 | the same for lanes 4-7].
        let (lo, hi) = (
            _mm256_set1_epi8(epi.clamp.lo as i8),
            _mm256_set1_epi8(epi.clamp.hi as i8),
        );
        let bytes = if O::SIGNED {
            _mm256_min_epi8(_mm256_max_epi8(_mm256_packs_epi16(ab, cd), lo), hi)
        } else {
            _mm256_min_epu8(_mm256_max_epu8(_mm256_packus_epi16(ab, cd), lo), hi)
        };
        let (l, h) = (
            _mm256_castsi256_si128(bytes),
            _mm256_extracti128_si256::<1>(bytes),
        );
        (_mm_unpacklo_epi32(l, h), _mm_unpackhi_epi32(l, h))
    }

    /// Two rows of `requantize16` (`acc[0..2]` to `dst0`, `acc[2..4]` to `dst1`).
    ///
    /// # Safety
    /// As for `requantize16`, for both rows.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requantize16x2<O: QInt>(
        epi: &Requantize<O>,
        acc: [__m256i; 4],
        n: usize,
        dst0: *mut O,
        dst1: *mut O,
        count: usize,
    ) {
        // SAFETY: n < channels, mult padded by 16; dst0/dst1 valid for `count` bytes (caller).
        unsafe {
            if epi.below_one && count == 16 {
                let m0 = _mm256_loadu_ps(epi.mult.as_ptr().add(n));
                let m1 = _mm256_loadu_ps(epi.mult.as_ptr().add(n + 8));
                let y = [
                    _mm256_mul_ps(_mm256_cvtepi32_ps(acc[0]), m0),
                    _mm256_mul_ps(_mm256_cvtepi32_ps(acc[1]), m1),
                    _mm256_mul_ps(_mm256_cvtepi32_ps(acc[2]), m0),
                    _mm256_mul_ps(_mm256_cvtepi32_ps(acc[3]), m1),
                ];
                let (r0, r1) = requantize32::<O>(epi, y);
                _mm_storeu_si128(dst0.cast(), r0);
                _mm_storeu_si128(dst1.cast(), r1);
            } else {
                requantize16::<O>(epi, acc[0], acc[1], n, dst0, count);
                requantize16::<O>(epi, acc[2], acc[3], n, dst1, count);
            }
        }
    }

    /// Four rows of `requantize8` for channels `n..n+8`, row i at `dst + i·stride`.
    ///
    /// # Safety
    /// As for `requantize8`, for the four rows.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requantize8x4<O: QInt>(
        epi: &Requantize<O>,
        acc: [__m256i; 4],
        n: usize,
        dst: *mut O,
        stride: usize,
        count: usize,
    ) {
        // SAFETY: n < channels, mult padded; the rows valid for `count` bytes (caller).
        unsafe {
            if epi.below_one && count == 8 {
                let mult = _mm256_loadu_ps(epi.mult.as_ptr().add(n));
                let y = acc.map(|a| _mm256_mul_ps(_mm256_cvtepi32_ps(a), mult));
                let d: [*mut O; 4] = std::array::from_fn(|i| dst.add(i * stride));
                store8x4(requantize32::<O>(epi, y), d);
            } else {
                for (i, a) in acc.iter().enumerate() {
                    requantize8::<O>(epi, *a, n, dst.add(i * stride), count);
                }
            }
        }
    }

    /// Four groups of 8 lanes given as exact f32 integers (|acc| <= 2^24), group i for channels
    /// `n[i]..` to `dst[i]`. With every multiplier <= EXACT_F32_MAX_MULT the products stay below
    /// 2^31 and `requantize32` applies; `f32(acc)` of the scalar formula is `acc` itself.
    ///
    /// # Safety
    /// As for `requantize8`, for each group.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requantize8x4_exact_f32<O: QInt>(
        epi: &Requantize<O>,
        acc: [__m256; 4],
        n: [usize; 4],
        dst: [*mut O; 4],
        count: usize,
    ) {
        // SAFETY: n[i] < channels, mult padded; dst[i] valid for `count` bytes (caller).
        unsafe {
            if epi.small_mult && count == 8 {
                let y: [__m256; 4] = std::array::from_fn(|i| {
                    _mm256_mul_ps(acc[i], _mm256_loadu_ps(epi.mult.as_ptr().add(n[i])))
                });
                store8x4(requantize32::<O>(epi, y), dst);
            } else {
                for i in 0..4 {
                    requantize8::<O>(epi, _mm256_cvtps_epi32(acc[i]), n[i], dst[i], count);
                }
            }
        }
    }

    /// The generic form of `convert8x4_exact_f32_avx2`: each group to i32 (`cvtps_epi32` of an
    /// exact integer below 2^24 is that integer), then `convert8_avx2`.
    ///
    /// # Safety
    /// As for `Epilogue::convert8x4_exact_f32_avx2`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn exact_f32_groups<E: Epilogue + ?Sized>(
        epi: &E,
        acc: [__m256; 4],
        n: [usize; 4],
        dst: [*mut E::Out; 4],
        count: usize,
    ) {
        for i in 0..4 {
            // SAFETY: forwarded (caller).
            unsafe { epi.convert8_avx2(_mm256_cvtps_epi32(acc[i]), n[i], dst[i], count) };
        }
    }

    /// Stores the four 8-byte groups of `requantize32`'s result to `dst[i]`.
    ///
    /// # Safety
    /// Each `dst[i]` valid for 8 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store8x4<O>((p01, p23): (__m128i, __m128i), dst: [*mut O; 4]) {
        let d = dst.map(|p| p.cast::<u8>());
        // SAFETY: caller.
        unsafe {
            _mm_storel_epi64(d[0].cast(), p01);
            _mm_storeh_pd(d[1].cast(), _mm_castsi128_pd(p01));
            _mm_storel_epi64(d[2].cast(), p23);
            _mm_storeh_pd(d[3].cast(), _mm_castsi128_pd(p23));
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn store_i32x8(v: __m256i, dst: *mut i32, count: usize) {
        // SAFETY: dst valid for `count` i32 (caller).
        unsafe {
            if count >= 8 {
                _mm256_storeu_si256(dst as *mut __m256i, v);
            } else {
                let mut tmp = [0i32; 8];
                _mm256_storeu_si256(tmp.as_mut_ptr() as *mut __m256i, v);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, count);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn dequantize8(
        scale: &[f32],
        acc: __m256i,
        n: usize,
        dst: *mut f32,
        count: usize,
    ) {
        // SAFETY: n < channels, scale padded; dst valid for `count` f32 (caller).
        unsafe {
            let y = _mm256_mul_ps(
                _mm256_cvtepi32_ps(acc),
                _mm256_loadu_ps(scale.as_ptr().add(n)),
            );
            if count >= 8 {
                _mm256_storeu_ps(dst, y);
            } else {
                let mut tmp = [0f32; 8];
                _mm256_storeu_ps(tmp.as_mut_ptr(), y);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: the ONNX QuantizeLinear spec's formula evaluated in f64 with explicit
    /// round-half-to-even, independent of the f32 code above.
    fn quantize_ref_f64(x: f64, lo: i64, hi: i64) -> i64 {
        let r = x.round_ties_even();
        (r as i64).clamp(lo, hi)
    }

    #[test]
    fn requantize_rounds_half_to_even_and_clamps() {
        // multiplier 0.5 puts odd accumulators exactly on ties: 1*0.5=0.5 -> 0, 3*0.5=1.5 -> 2.
        let e = Requantize::<i8>::new(1, &[0.5], None, 0, QClamp::none::<i8>()).unwrap();
        let got: Vec<i32> = [-5, -3, -1, 1, 3, 5, 1000, -1000]
            .iter()
            .map(|&a| e.convert(a, 0) as i32)
            .collect();
        let want: Vec<i64> = [-5, -3, -1, 1, 3, 5, 1000, -1000]
            .iter()
            .map(|&a| quantize_ref_f64(a as f64 * 0.5, -128, 127))
            .collect();
        assert_eq!(got.iter().map(|&v| v as i64).collect::<Vec<_>>(), want);
        assert_eq!(got, vec![-2, -2, 0, 0, 2, 2, 127, -128]);
    }

    #[test]
    fn relu_and_relu6_clamps_match_quantizing_the_clipped_value() {
        // Reference: Q(relu6(y)) with Q = the f64 QuantizeLinear formula, s=0.05, zp=-100.
        let (s, zp) = (0.05f32, -100);
        let relu6 = QClamp::clip::<i8>(Some(0.0), Some(6.0), s, zp);
        assert_eq!(relu6, QClamp { lo: -100, hi: 20 });
        let relu = QClamp::relu::<i8>(zp);
        assert_eq!(relu, QClamp { lo: -100, hi: 127 });
        // Accumulators in units of s_acc = 0.01, so the multiplier is s_acc / s = 0.2.
        let e = Requantize::<i8>::new(1, &[0.2], None, zp, relu6).unwrap();
        for acc in (-1000..1000).step_by(7) {
            let y = (acc as f64 * 0.01).clamp(0.0, 6.0);
            let want = quantize_ref_f64(y / s as f64 + zp as f64, -128, 127);
            assert_eq!(e.convert(acc, 0) as i64, want, "acc {acc}");
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Requantize::<u8>::new(2, &[f32::NAN], None, 0, QClamp::none::<u8>()).is_err());
        assert!(Requantize::<u8>::new(2, &[1.0, 2.0, 3.0], None, 0, QClamp::none::<u8>()).is_err());
        assert!(Requantize::<u8>::new(2, &[1.0], None, 300, QClamp::none::<u8>()).is_err());
        assert!(Requantize::<u8>::new(2, &[1.0], Some(&[1]), 0, QClamp::none::<u8>()).is_err());
        assert!(Requantize::<i8>::new(2, &[1.0], None, 0, QClamp { lo: 5, hi: 4 }).is_err());
        assert!(DequantizeOut::new(3, &[1.0, f32::INFINITY, 1.0], None).is_err());
    }

    #[test]
    fn quantize_value_follows_the_spec_on_ties_saturation_and_nan() {
        // Reference values from numpy: np.clip(np.rint(x / s) + zp, 0, 255).
        assert_eq!(quantize_value::<u8>(2.5, 1.0, 0), 2);
        assert_eq!(quantize_value::<u8>(3.5, 1.0, 0), 4);
        assert_eq!(quantize_value::<u8>(-1.0, 1.0, 0), 0);
        assert_eq!(quantize_value::<u8>(1e30, 1.0, 10), 255);
        assert_eq!(quantize_value::<i8>(-2.5, 1.0, 0), -2);
        assert_eq!(quantize_value::<i8>(f32::NAN, 1.0, 3), -128);
    }

    /// The 32-lane conversions (integer clamp after rounding when the multipliers allow it, the
    /// per-group fallback otherwise) against the scalar formula: i32 accumulators at the extremes
    /// for multipliers just below 1 and above it, exact-f32 accumulators up to ±2^24 for
    /// multipliers up to EXACT_F32_MAX_MULT and above, u8 and i8, Relu and two-sided clamps
    /// (saturating on both sides), full and partial counts.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_32_lane_conversions_equal_the_scalar_formula() {
        use std::arch::x86_64::*;
        if !is_x86_feature_detected!("avx2") {
            eprintln!("SKIP: no AVX2");
            return;
        }
        fn check<O: QInt>(mults: &[f32], clamp: QClamp, zo: i32) {
            let ch = 16;
            let e = Requantize::<O>::new(ch, mults, None, zo, clamp).unwrap();
            let big = [
                i32::MIN,
                i32::MAX,
                i32::MIN + 1,
                i32::MAX - 64,
                0,
                1,
                -1,
                2,
                -3,
                127,
                -128,
                255,
                1 << 24,
                -(1 << 24),
                (1 << 24) + 1,
                123_456_789,
                -987_654_321,
            ];
            let exact = [
                0,
                1,
                -1,
                3,
                -5,
                127,
                -128,
                255,
                -255,
                65025,
                -65025,
                1 << 23,
                (1 << 24) - 1,
                1 << 24,
                -(1 << 24),
                -((1 << 24) - 3),
                4_000_000,
            ];
            // 32 lanes per step: lane l of step s takes values[(s + 7·l) % len], so each
            // value lands in every lane position over the steps.
            let lanes = |vals: &[i32], s: usize| -> [i32; 32] {
                std::array::from_fn(|l| vals[(s + 7 * l) % vals.len()])
            };
            for s in 0..big.len().max(exact.len()) {
                for count in [16usize, 9, 8, 1] {
                    let v = lanes(&big, s);
                    // SAFETY: AVX2 checked; 32 lanes loaded from a 32-element array.
                    let acc: [__m256i; 4] = std::array::from_fn(|g| unsafe {
                        _mm256_loadu_si256(v[8 * g..].as_ptr().cast())
                    });
                    let mut out16 = [[O::default(); 16]; 2];
                    let mut out8 = [[O::default(); 8]; 4];
                    let c8 = count.min(8);
                    // SAFETY: AVX2 checked; channel 0 < 16 channels; the buffers hold the
                    // written counts (16 per row, 8 per group at stride 8).
                    unsafe {
                        let (d0, d1) = out16.split_at_mut(1);
                        e.convert16x2_avx2(acc, 0, d0[0].as_mut_ptr(), d1[0].as_mut_ptr(), count);
                        e.convert8x4_avx2(acc, 8, out8.as_mut_ptr().cast(), 8, c8);
                    }
                    for row in 0..2 {
                        for i in 0..count {
                            let want = e.convert(v[16 * row + i], i);
                            assert_eq!(out16[row][i], want, "16x2 row {row} lane {i} step {s}");
                        }
                    }
                    for g in 0..4 {
                        for i in 0..c8 {
                            let want = e.convert(v[8 * g + i], 8 + i);
                            assert_eq!(out8[g][i], want, "8x4 group {g} lane {i} step {s}");
                        }
                    }
                    let x = lanes(&exact, s);
                    let xf = x.map(|a| a as f32);
                    // SAFETY: as above.
                    let accf: [__m256; 4] =
                        std::array::from_fn(|g| unsafe { _mm256_loadu_ps(xf[8 * g..].as_ptr()) });
                    let mut outx = [[O::default(); 8]; 4];
                    // Groups at channels 3, 0, 8, 5 written in reverse order.
                    let ns = [3, 0, 8, 5];
                    // SAFETY: as above.
                    unsafe {
                        let dsts: [*mut O; 4] = std::array::from_fn(|g| outx[3 - g].as_mut_ptr());
                        e.convert8x4_exact_f32_avx2(accf, ns, dsts, c8);
                    }
                    for g in 0..4 {
                        for i in 0..c8 {
                            let want = e.convert(x[8 * g + i], ns[g] + i);
                            assert_eq!(outx[3 - g][i], want, "exact group {g} lane {i} step {s}");
                        }
                    }
                }
            }
        }
        let spread = |lo: f32, hi: f32| -> Vec<f32> {
            (0..16).map(|i| lo + (hi - lo) * i as f32 / 15.0).collect()
        };
        let mult_sets = [
            spread(1e-6, 1e-3),
            spread(0.5, 0.999_999_94), // the largest f32 below 1
            vec![0.999_999_94],
            vec![1.0],
            spread(1.0, 63.0),
            vec![EXACT_F32_MAX_MULT],
            spread(64.5, 1e4),
        ];
        for mults in &mult_sets {
            for zo in [0, 7, 200, 255] {
                check::<u8>(mults, QClamp::none::<u8>(), zo);
                check::<u8>(mults, QClamp::relu::<u8>(zo), zo);
                check::<u8>(mults, QClamp { lo: 3, hi: 40 }, zo);
            }
            for zo in [-128, -5, 0, 127] {
                check::<i8>(mults, QClamp::none::<i8>(), zo);
                check::<i8>(mults, QClamp::relu::<i8>(zo), zo);
                check::<i8>(mults, QClamp { lo: -100, hi: 20 }, zo);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_conversions_equal_the_scalar_formula() {
        if !is_x86_feature_detected!("avx2") {
            eprintln!("SKIP: no AVX2");
            return;
        }
        let mults: Vec<f32> = (0..11).map(|i| 0.001 + 0.37 * i as f32).collect();
        let bias: Vec<i32> = (0..11).map(|i| i * 3 - 7).collect();
        let accs: Vec<i32> = vec![
            i32::MIN,
            i32::MAX,
            0,
            1,
            -1,
            2,
            3,
            -3,
            1 << 24,
            (1 << 24) + 1,
            12345,
            -99999,
        ];
        let clamps = [
            QClamp::none::<u8>(),
            QClamp::relu::<u8>(9),
            QClamp { lo: 3, hi: 40 },
        ];
        for clamp in clamps {
            let e = Requantize::<u8>::new(11, &mults, Some(&bias), 9, clamp).unwrap();
            let d = DequantizeOut::new(11, &mults, None).unwrap();
            for n0 in 0..11 {
                for &a in &accs {
                    let lanes = [
                        a,
                        a / 2,
                        a / 3,
                        a.wrapping_neg(),
                        a ^ 5,
                        7,
                        a / 7,
                        a.wrapping_neg() / 5,
                    ];
                    let count = (11 - n0).min(8);
                    let mut got = [0u8; 8];
                    let mut gotf = [0f32; 8];
                    // SAFETY: AVX2 checked above; n0 < channels; buffers hold 8.
                    unsafe {
                        let v = std::arch::x86_64::_mm256_loadu_si256(lanes.as_ptr().cast());
                        e.convert8_avx2(v, n0, got.as_mut_ptr(), count);
                        d.convert8_avx2(v, n0, gotf.as_mut_ptr(), count);
                    }
                    for i in 0..count {
                        assert_eq!(got[i], e.convert(lanes[i], n0 + i), "{a} lane {i}");
                        assert_eq!(gotf[i].to_bits(), d.convert(lanes[i], n0 + i).to_bits());
                    }
                    // 16 lanes: the second half reversed so lanes differ.
                    let mut lanes16 = [0i32; 16];
                    lanes16[..8].copy_from_slice(&lanes);
                    lanes16[8..].copy_from_slice(&lanes);
                    lanes16[8..].reverse();
                    let count16 = (11 - n0).min(16);
                    let mut got16 = [0u8; 16];
                    // SAFETY: AVX2 checked above; n0 < channels; the buffer holds 16.
                    unsafe {
                        let v0 = std::arch::x86_64::_mm256_loadu_si256(lanes16.as_ptr().cast());
                        let v1 =
                            std::arch::x86_64::_mm256_loadu_si256(lanes16[8..].as_ptr().cast());
                        e.convert16_avx2(v0, v1, n0, got16.as_mut_ptr(), count16);
                    }
                    for i in 0..16 {
                        let want = if i < count16 {
                            e.convert(lanes16[i], n0 + i)
                        } else {
                            0
                        };
                        assert_eq!(got16[i], want, "{a} 16-lane {i}");
                    }
                }
            }
        }
    }
}
