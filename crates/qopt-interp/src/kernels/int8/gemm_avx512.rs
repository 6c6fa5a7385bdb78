//! AVX-512 VNNI GEMM microkernel: `vpdpbusd` (u8 x i8, four products summed into each i32 lane
//! with no intermediate saturation), 64 MACs per instruction.
//!
//! # Signed activations at VNNI speed
//! `vpdpbusd` needs the activations unsigned. i8 activations are shifted while preparing a row
//! (`x ^ 0x80` = `x + 128` as u8) and their zero point with them (za' = za + 128), which leaves every
//! difference `a − za` unchanged. Weights stay raw i8, so their zero points cannot be folded into
//! the packed bytes (b − zb may not fit i8); the driver expands
//!
//! ```text
//! Σ_k (a' − za')(b − zb) = Σ_k a'·b − za'·Σ_k b − zb·Σ_k a' + K·za'·zb
//! ```
//!
//! with the column sums `Σ_k b` precomputed at pack time and the row sums `Σ_k a'` computed while
//! preparing rows (only when some zb != 0). All terms are wrapping i32, equal to the scalar
//! oracle's sum modulo 2^32.
//!
//! Only the microkernel below needs AVX-512; preparing rows uses AVX2 and the epilogues are the
//! AVX2 ones, so everything but `kernel` is exercised on AVX2 machines by the emulated scheme in the
//! tests (`VnniEmulated`, the same driver and packing with a plain-Rust `vpdpbusd`).
//!
//! Tile: 12 rows x 32 columns (24 accumulators of 32 zmm), or 12 x 16 for a narrow last panel.

use super::gemm::{Scheme, TILE_NR};
use super::qtype::QInt;
use std::arch::x86_64::*;

/// The `vpdpbusd` scheme.
pub(crate) struct Vnni;

/// Prepares a piece of an activation row for `vpdpbusd`: shift to u8 and return the sum of the
/// shifted values.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn prep_piece_u8<A: QInt>(src: &[A], dst: &mut [u8]) -> i32 {
    let k = src.len();
    debug_assert_eq!(dst.len(), k);
    let flip = _mm256_set1_epi8(if A::SIGNED { 0x80u8 as i8 } else { 0 });
    let mut sums = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= k {
        // SAFETY: 32 elements from i exist in src, and dst.len() >= k.
        unsafe {
            let x = _mm256_xor_si256(_mm256_loadu_si256(src.as_ptr().add(i).cast()), flip);
            _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), x);
            sums = _mm256_add_epi64(sums, _mm256_sad_epu8(x, _mm256_setzero_si256()));
        }
        i += 32;
    }
    let mut lanes = [0i64; 4];
    // SAFETY: lanes holds 4 i64.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sums) };
    let mut sum = lanes.iter().sum::<i64>() as i32;
    for (d, s) in dst[i..k].iter_mut().zip(&src[i..]) {
        *d = (s.to_i32() + A::BIAS_TO_U8) as u8;
        sum = sum.wrapping_add(*d as i32);
    }
    sum
}

impl Scheme for Vnni {
    type AElem = u8;
    type BElem = i8;
    const KGROUP: usize = 4;
    const CORRECTS_ZERO_POINTS: bool = true;

    fn mr(_nv: usize) -> usize {
        12
    }

    fn prepared_zero_point<A: QInt>(za: A) -> i32 {
        za.to_i32() + A::BIAS_TO_U8
    }

    #[inline]
    unsafe fn prep_piece<A: QInt>(src: &[A], _za: A, dst: &mut [u8]) -> i32 {
        // SAFETY: AVX2 is part of the Avx512 family's requirements (dispatch.rs).
        unsafe { prep_piece_u8(src, dst) }
    }

    fn prep_fill<A: QInt>(za: A, dst: &mut [u8]) -> i32 {
        let zap = Self::prepared_zero_point(za);
        dst.fill(zap as u8);
        zap.wrapping_mul(dst.len() as i32)
    }

    #[inline]
    unsafe fn microkernel(
        rows: usize,
        nv: usize,
        kgroups: usize,
        a: *const u8,
        lda: usize,
        b: *const i8,
        tile: *mut i32,
    ) {
        macro_rules! dispatch {
            ($nv:literal, $($mr:literal)*) => {
                match rows {
                    // SAFETY: forwarded caller guarantees (Scheme::microkernel).
                    $($mr => unsafe { kernel::<$mr, $nv>(kgroups, a, lda, b, tile) },)*
                    _ => unreachable!("rows {} > mr", rows),
                }
            };
        }
        if nv == 2 {
            dispatch!(2, 1 2 3 4 5 6 7 8 9 10 11 12)
        } else {
            dispatch!(1, 1 2 3 4 5 6 7 8 9 10 11 12)
        }
    }
}

/// `MR x (16·NV)` tile over `kq` groups of 4 k. Per group: NV weight loads, MR broadcasts of
/// the four activation bytes as one i32, MR·NV `vpdpbusd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const MR: usize, const NV: usize>(
    kq: usize,
    a: *const u8,
    lda: usize,
    b: *const i8,
    tile: *mut i32,
) {
    let mut acc = [[_mm512_setzero_si512(); NV]; MR];
    let mut bp = b;
    let mut ap = a;
    for _ in 0..kq {
        let mut bv = [_mm512_setzero_si512(); NV];
        for (v, reg) in bv.iter_mut().enumerate() {
            // SAFETY: the panel holds kq * NV * 64 bytes.
            *reg = unsafe { _mm512_loadu_si512(bp.add(64 * v).cast()) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: row r has lda >= 4 * kq prepared bytes.
            let quad = unsafe { ap.add(r * lda).cast::<i32>().read_unaligned() };
            let av = _mm512_set1_epi32(quad);
            for (v, reg) in row.iter_mut().enumerate() {
                *reg = _mm512_dpbusd_epi32(*reg, av, bv[v]);
            }
        }
        // SAFETY: stays within (or one past) the panel and the rows.
        unsafe {
            bp = bp.add(64 * NV);
            ap = ap.add(4);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, reg) in row.iter().enumerate() {
            // SAFETY: tile holds MR rows of TILE_NR i32.
            unsafe { _mm512_storeu_si512(tile.add(r * TILE_NR + 16 * v).cast(), *reg) };
        }
    }
}

/// The VNNI scheme with `vpdpbusd` emulated in plain Rust: the same packing, row preparation,
/// correction terms and driver as [`Vnni`], runnable on AVX2-only machines (tests only).
#[cfg(test)]
pub(crate) struct VnniEmulated;

#[cfg(test)]
impl Scheme for VnniEmulated {
    type AElem = u8;
    type BElem = i8;
    const KGROUP: usize = Vnni::KGROUP;
    const CORRECTS_ZERO_POINTS: bool = true;

    fn mr(nv: usize) -> usize {
        Vnni::mr(nv)
    }

    fn prepared_zero_point<A: QInt>(za: A) -> i32 {
        Vnni::prepared_zero_point(za)
    }

    unsafe fn prep_piece<A: QInt>(src: &[A], za: A, dst: &mut [u8]) -> i32 {
        // SAFETY: forwarded (AVX2 available in the tests that use this).
        unsafe { Vnni::prep_piece(src, za, dst) }
    }

    fn prep_fill<A: QInt>(za: A, dst: &mut [u8]) -> i32 {
        Vnni::prep_fill(za, dst)
    }

    unsafe fn microkernel(
        rows: usize,
        nv: usize,
        kgroups: usize,
        a: *const u8,
        lda: usize,
        b: *const i8,
        tile: *mut i32,
    ) {
        let cols = nv * 16;
        for r in 0..rows {
            for c in 0..cols {
                let mut acc = 0i32;
                for q in 0..kgroups {
                    for g in 0..4 {
                        // SAFETY: same extents as the SIMD kernel reads.
                        let (x, w) = unsafe {
                            (
                                *a.add(r * lda + 4 * q + g) as i32,
                                *b.add((q * cols + c) * 4 + g) as i32,
                            )
                        };
                        acc = acc.wrapping_add(x * w);
                    }
                }
                // SAFETY: tile holds rows x TILE_NR.
                unsafe { *tile.add(r * TILE_NR + c) = acc };
            }
        }
    }
}
