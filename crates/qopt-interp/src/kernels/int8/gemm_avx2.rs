//! AVX2 GEMM microkernel: 16-bit operands and `vpmaddwd` + `vpaddd`, exact for every u8/i8 input.
//!
//! # Why not `vpmaddubsw`
//! `vpmaddubsw` multiplies u8 by i8 and adds adjacent pairs into an i16 *with saturation*:
//! 255·(−128)·2 = −65280 does not fit, so a plain `vpmaddubsw`/`vpmaddwd(1)`/`vpaddd` kernel is
//! wrong for extreme inputs (ONNX Runtime avoids it with 7-bit weights, `reduce_range`). The exact
//! variants we considered:
//! - split one operand (b = 2·b_hi + b_lo, or a = a_lo + 128·a_hi) so each `vpmaddubsw` is exact,
//!   then widen both halves: 3-4 multiply-port instructions per 32 MACs;
//! - widen both operands to i16 and use `vpmaddwd` alone (this file): 2 per 32 MACs.
//!
//! Measured on this project's Zen 3 (bench `int8_kernels`, section "AVX2 multiply schemes": one
//! register tile, operands in L1, on-CPU time): `vpmaddwd` on i16 23.4 MAC/cycle; the plain
//! saturating `vpmaddubsw` + `vpmaddwd(1)` chain 29.8 (but wrong on extreme inputs); `vpmaddubsw`
//! with split weights (exact) 15.0. So the 16-bit scheme is the fastest exact one. It falls short of
//! the 32 MAC/cycle multiply-port bound because every `vpmaddwd` needs its own `vpaddd` and the
//! activation broadcasts, and Zen 3 has four vector pipes for all three (30 uops per 192 MACs).
//! Its other costs are memory: weights are stored as i16 (twice the bytes) and each activation row
//! block is widened once per MC block (`prep_piece`, amortised over all column panels).
//! Subtracting the zero points while widening (|a − za|, |b − zb| <= 255 fit i16; a pair of
//! products fits i32) removes every correction term, and i8 activations need no +128 shift here.
//!
//! Tile: 6 rows x 16 columns (12 accumulators + 2 weight registers + 1 broadcast of 16 ymm), or
//! 12 x 8 for a narrow last panel. The accumulators start from the bias and leave through the
//! epilogue from registers (`kernel_epilogue`): 2 rows x 16 or 4 rows x 8 columns are narrowed
//! together (`Epilogue::convert16x2_avx2` / `convert8x4_avx2`). With K = 16 (efficientnet_lite0's
//! 112x112 16->96 conv) the tile store, reload and 16-lane epilogue had been ~40% of the time.

use super::epilogue::Epilogue;
use super::gemm::{Scheme, TILE_NR};
use super::qtype::QInt;
use std::arch::x86_64::*;

/// The 16-bit `vpmaddwd` scheme.
pub(crate) struct Avx2I16;

impl Scheme for Avx2I16 {
    type AElem = i16;
    type BElem = i16;
    const KGROUP: usize = 2;
    const CORRECTS_ZERO_POINTS: bool = false;

    fn mr(nv: usize) -> usize {
        if nv == 2 { 6 } else { 12 }
    }

    fn prepared_zero_point<A: QInt>(_za: A) -> i32 {
        0
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn prep_piece<A: QInt>(src: &[A], za: A, dst: &mut [i16]) -> i32 {
        let k = src.len();
        debug_assert_eq!(dst.len(), k);
        let za = za.to_i32();
        let zav = _mm256_set1_epi16(za as i16);
        let mut i = 0;
        while i + 16 <= k {
            // SAFETY: 16 elements from i exist in src and dst.
            unsafe {
                let raw = _mm_loadu_si128(src.as_ptr().add(i).cast());
                let wide = if A::SIGNED {
                    _mm256_cvtepi8_epi16(raw)
                } else {
                    _mm256_cvtepu8_epi16(raw)
                };
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), _mm256_sub_epi16(wide, zav));
            }
            i += 16;
        }
        if i + 8 <= k {
            // SAFETY: 8 elements from i exist in src and dst.
            unsafe {
                let raw = _mm_loadl_epi64(src.as_ptr().add(i).cast());
                let wide = if A::SIGNED {
                    _mm_cvtepi8_epi16(raw)
                } else {
                    _mm_cvtepu8_epi16(raw)
                };
                let centred = _mm_sub_epi16(wide, _mm256_castsi256_si128(zav));
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), centred);
            }
            i += 8;
        }
        for (d, s) in dst[i..].iter_mut().zip(&src[i..]) {
            *d = (s.to_i32() - za) as i16;
        }
        0
    }

    fn prep_fill<A: QInt>(_za: A, dst: &mut [i16]) -> i32 {
        // The zero point minus itself.
        dst.fill(0);
        0
    }

    #[inline]
    unsafe fn microkernel(
        rows: usize,
        nv: usize,
        kgroups: usize,
        a: *const i16,
        lda: usize,
        b: *const i16,
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
            dispatch!(2, 1 2 3 4 5 6)
        } else {
            dispatch!(1, 1 2 3 4 5 6 7 8 9 10 11 12)
        }
    }

    const FUSED_EPILOGUE: bool = true;

    #[inline]
    unsafe fn microkernel_epilogue<E: Epilogue>(
        rows: usize,
        nv: usize,
        kgroups: usize,
        a: *const i16,
        lda: usize,
        b: *const i16,
        init: *const i32,
        epi: &E,
        ch: usize,
        out: *mut E::Out,
        ldc: usize,
        cols: usize,
    ) {
        let io = Io {
            init,
            epi,
            ch,
            out,
            ldc,
            cols,
        };
        macro_rules! dispatch {
            ($nv:literal, $($mr:literal)*) => {
                match rows {
                    // SAFETY: forwarded caller guarantees (Scheme::microkernel_epilogue).
                    $($mr => unsafe { kernel_epilogue::<$mr, $nv, E>(kgroups, a, lda, b, &io) },)*
                    _ => unreachable!("rows {} > mr", rows),
                }
            };
        }
        if nv == 2 {
            dispatch!(2, 1 2 3 4 5 6)
        } else {
            dispatch!(1, 1 2 3 4 5 6 7 8 9 10 11 12)
        }
    }
}

/// Where a fused tile starts and ends: see `Scheme::microkernel_epilogue`.
struct Io<'a, E: Epilogue> {
    init: *const i32,
    epi: &'a E,
    ch: usize,
    out: *mut E::Out,
    ldc: usize,
    cols: usize,
}

/// `kernel` with the accumulators starting from the panel's column constants and leaving
/// through the epilogue from registers (no tile store and reload, no separate bias add; i32
/// addition wraps and is associative, so the sums are the same).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn kernel_epilogue<const MR: usize, const NV: usize, E: Epilogue>(
    kp: usize,
    a: *const i16,
    lda: usize,
    b: *const i16,
    io: &Io<'_, E>,
) {
    // SAFETY: init holds 8·NV i32 (caller).
    let init: [__m256i; NV] =
        std::array::from_fn(|v| unsafe { _mm256_loadu_si256(io.init.add(8 * v).cast()) });
    let mut acc = [init; MR];
    // SAFETY: forwarded caller guarantees.
    unsafe { accumulate(kp, a, lda, b, &mut acc) };
    // Rows leave in pairs (16 columns) or fours (8 columns): 32 lanes narrowed together.
    let group = if NV == 2 { 2 } else { 4 };
    let mut r = 0;
    while r + group <= MR {
        // SAFETY: output rows r.. hold `cols` values (caller); channels padded (caller).
        unsafe {
            let dst = io.out.add(r * io.ldc);
            if NV == 2 {
                let four = [acc[r][0], acc[r][1], acc[r + 1][0], acc[r + 1][1]];
                io.epi
                    .convert16x2_avx2(four, io.ch, dst, dst.add(io.ldc), io.cols);
            } else {
                let four = [acc[r][0], acc[r + 1][0], acc[r + 2][0], acc[r + 3][0]];
                io.epi.convert8x4_avx2(four, io.ch, dst, io.ldc, io.cols);
            }
        }
        r += group;
    }
    for row in &acc[r..] {
        // SAFETY: as above.
        unsafe {
            let dst = io.out.add(r * io.ldc);
            if NV == 2 {
                io.epi.convert16_avx2(row[0], row[1], io.ch, dst, io.cols);
            } else {
                io.epi.convert8_avx2(row[0], io.ch, dst, io.cols);
            }
        }
        r += 1;
    }
}

/// Adds `kp` pairs of k into the `MR x (8·NV)` accumulators. Per pair: NV weight loads, MR
/// broadcasts of the activation pair `(a[2p], a[2p+1])` as one i32, MR·NV `vpmaddwd` + `vpaddd`.
/// Shared by `kernel` and `kernel_epilogue`; inlined into both, so `acc` stays in registers.
///
/// # Safety
/// AVX2; rows `0..MR` of `a` hold `lda >= 2·kp` values; `b` holds `kp·NV·16` i16.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn accumulate<const MR: usize, const NV: usize>(
    kp: usize,
    a: *const i16,
    lda: usize,
    b: *const i16,
    acc: &mut [[__m256i; NV]; MR],
) {
    let mut bp = b;
    let mut ap = a;
    for _ in 0..kp {
        let mut bv = [_mm256_setzero_si256(); NV];
        for (v, reg) in bv.iter_mut().enumerate() {
            // SAFETY: the panel holds kp * NV * 16 i16.
            *reg = unsafe { _mm256_loadu_si256(bp.add(16 * v).cast()) };
        }
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: row r has lda >= 2 * kp prepared values.
            let pair = unsafe { ap.add(r * lda).cast::<i32>().read_unaligned() };
            let av = _mm256_set1_epi32(pair);
            for (v, reg) in row.iter_mut().enumerate() {
                *reg = _mm256_add_epi32(*reg, _mm256_madd_epi16(av, bv[v]));
            }
        }
        // SAFETY: stays within (or one past) the panel and the rows.
        unsafe {
            bp = bp.add(16 * NV);
            ap = ap.add(2);
        }
    }
}

/// `MR x (8·NV)` tile over `kp` pairs of k (`accumulate`), stored to `tile`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn kernel<const MR: usize, const NV: usize>(
    kp: usize,
    a: *const i16,
    lda: usize,
    b: *const i16,
    tile: *mut i32,
) {
    let mut acc = [[_mm256_setzero_si256(); NV]; MR];
    // SAFETY: forwarded caller guarantees.
    unsafe { accumulate(kp, a, lda, b, &mut acc) };
    for (r, row) in acc.iter().enumerate() {
        for (v, reg) in row.iter().enumerate() {
            // SAFETY: tile holds MR rows of TILE_NR i32.
            unsafe { _mm256_storeu_si256(tile.add(r * TILE_NR + 8 * v).cast(), *reg) };
        }
    }
}
