//! 256-entry lookup tables for unary maps u8/i8 -> u8/i8. Requantization to a new scale and zero
//! point (`Q_out(DQ_in(q))`, the QDQ reference composed exactly in f32) is the main use: the table
//! is computed with the reference formula, so the result is bit-exact by construction. The plan
//! can use the same table for any unary op between DQ and Q (Sigmoid, HardSwish, ...): evaluate
//! `Q(op(DQ(q)))` for all 256 inputs once at plan time.
//!
//! The AVX2 lookup (`apply_kind`) splits the 256 entries into 16 rows of 16 bytes and looks 32
//! inputs up at once: `vpshufb` selects by the low nibble within a row, and a row's results are
//! kept where the high nibble equals the row's (compare, and, or). 64 vector operations per 32
//! inputs, against a load, an indexed load and a store per input for the scalar loop: about
//! twice as fast on this project's Zen 3, and the same bytes by construction (a table lookup).

use super::dispatch::KernelKind;
use super::epilogue::quantize_value;
use super::error::{Int8Error, check_len};
use super::qtype::QInt;

/// A table mapping every `I` to an `O`.
#[derive(Debug, Clone)]
pub struct Lut8<I: QInt, O: QInt> {
    table: [O; 256],
    _in: std::marker::PhantomData<I>,
}

impl<I: QInt, O: QInt> Lut8<I, O> {
    /// The table of `f`.
    pub fn from_fn(f: impl Fn(I) -> O) -> Self {
        let mut table = [O::default(); 256];
        for v in I::MIN..=I::MAX {
            table[(v - I::MIN) as usize] = f(I::checked(v).expect("v in I's range"));
        }
        Lut8 {
            table,
            _in: std::marker::PhantomData,
        }
    }

    /// Requantization: `quantize(dequantize(q, s_in, z_in), s_out, z_out)` with both steps as ONNX
    /// defines them (f32).
    pub fn requantize(s_in: f32, z_in: i32, s_out: f32, z_out: i32) -> Result<Self, Int8Error> {
        if !(s_in.is_finite() && s_out.is_finite() && s_out > 0.0) {
            return Err(Int8Error::Param {
                what: "requantize scales",
                detail: format!("{s_in} -> {s_out} must be finite, the output positive"),
            });
        }
        if I::checked(z_in).is_none() || O::checked(z_out).is_none() {
            return Err(Int8Error::Param {
                what: "requantize zero points",
                detail: format!("{z_in} ({}) -> {z_out} ({})", I::NAME, O::NAME),
            });
        }
        Ok(Self::from_fn(|q| {
            quantize_value::<O>((q.to_i32() - z_in) as f32 * s_in, s_out, z_out)
        }))
    }

    /// `out[i] = table[input[i]]`.
    pub fn apply(&self, input: &[I], out: &mut [O]) -> Result<(), Int8Error> {
        check_len("lookup output", out.len(), input.len())?;
        for (o, &v) in out.iter_mut().zip(input) {
            *o = self.table[(v.to_i32() - I::MIN) as usize];
        }
        Ok(())
    }

    /// `out[i] = table[input[i]]` with the kernel family's vector code (`Scalar`: the loop above).
    pub fn apply_kind(
        &self,
        kind: KernelKind,
        input: &[I],
        out: &mut [O],
    ) -> Result<(), Int8Error> {
        check_len("lookup output", out.len(), input.len())?;
        #[cfg(target_arch = "x86_64")]
        if kind != KernelKind::Scalar && kind.check_supported().is_ok() {
            // I and O are u8 or i8 (QInt is sealed): one byte each, any bit pattern valid.
            let table: [u8; 256] = std::array::from_fn(|i| self.table[i].to_i32() as u8);
            // SAFETY: the lengths match (checked); I and O are single-byte integer types.
            unsafe {
                let src = std::slice::from_raw_parts(input.as_ptr().cast::<u8>(), input.len());
                let dst = std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), out.len());
                // Table index = the input's bits, with the sign bit flipped for i8 (-128 -> 0).
                avx2::lookup(&table, if I::SIGNED { 0x80 } else { 0 }, src, dst);
            }
            return Ok(());
        }
        let _ = kind;
        self.apply(input, out)
    }

    /// The output for one input.
    pub fn get(&self, v: I) -> O {
        self.table[(v.to_i32() - I::MIN) as usize]
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `dst[i] = table[src[i] ^ flip]`.
    ///
    /// # Safety
    /// AVX2 available; `dst.len() == src.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn lookup(table: &[u8; 256], flip: u8, src: &[u8], dst: &mut [u8]) {
        // SAFETY: each row read is 16 bytes inside the 256-byte table.
        let rows: [__m256i; 16] = std::array::from_fn(|h| unsafe {
            _mm256_broadcastsi128_si256(_mm_loadu_si128(table.as_ptr().add(16 * h).cast()))
        });
        let nibble = _mm256_set1_epi8(0x0f);
        let flipv = _mm256_set1_epi8(flip as i8);
        let n = src.len();
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: 32 bytes from i exist in src and dst.
            unsafe {
                let x = _mm256_xor_si256(_mm256_loadu_si256(src.as_ptr().add(i).cast()), flipv);
                let lo = _mm256_and_si256(x, nibble);
                let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);
                let mut r = _mm256_setzero_si256();
                for (h, row) in rows.iter().enumerate() {
                    let here = _mm256_cmpeq_epi8(hi, _mm256_set1_epi8(h as i8));
                    r = _mm256_or_si256(r, _mm256_and_si256(here, _mm256_shuffle_epi8(*row, lo)));
                }
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), r);
            }
            i += 32;
        }
        for (d, &s) in dst[i..].iter_mut().zip(&src[i..]) {
            *d = table[(s ^ flip) as usize];
        }
    }
}
