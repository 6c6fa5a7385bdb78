//! AVX2 depthwise kernel: 16 channels per step, taps taken in pairs. For a pair of taps, the two
//! 16-byte channel vectors are interleaved bytewise (`punpck{l,h}bw`) and widened to i16, giving
//! `(x_t[c], x_{t+1}[c])` pairs that one `vpmaddwd` against the packed `(w'_t[c], w'_{t+1}[c])`
//! turns into 8 channels' i32 partial sums, in channel order. Products are exact: |x| <= 255,
//! |w − zb| <= 255.
//!
//! Taps read the raw input; padding taps point at a row filled with the zero point, and the term
//! `−za·Σ_t w'_t[c]` (precomputed, `Depthwise::w_sum`) makes the sum equal the oracle's
//! `Σ (x − za)·w'` for every pixel, border or not. Channel tails (C % 16) are copied to a padded
//! buffer first so no load crosses the end of the input.

use super::depthwise::Depthwise;
use super::epilogue::Epilogue;
use super::qtype::QInt;
use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2")]
fn widen<A: QInt>(v: __m128i) -> __m256i {
    if A::SIGNED {
        _mm256_cvtepi8_epi16(v)
    } else {
        _mm256_cvtepu8_epi16(v)
    }
}

/// # Safety
/// AVX2 available; buffer sizes validated by `Depthwise::run`.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn run<A: QInt, E: Epilogue>(
    dw: &Depthwise,
    input: &[A],
    za: A,
    epi: &E,
    output: &mut [E::Out],
) {
    let g = &dw.geom;
    let c = g.in_c;
    let [kh, kw] = g.params.kernel;
    let taps = kh * kw;
    let pairs = taps.div_ceil(2);
    let blocks = c.div_ceil(16);
    let zai = za.to_i32();
    // Per-channel constant: bias − za·Σ w' (wrapping, like every other sum).
    let bias = epi.bias_padded();
    let offset: Vec<i32> = (0..blocks * 16 + 16)
        .map(|ch| {
            let b = if ch < c { bias[ch] } else { 0 };
            b.wrapping_sub(zai.wrapping_mul(dw.w_sum[ch]))
        })
        .collect();
    let pad_row = vec![za; blocks * 16 + 16];
    let mut tail = vec![za; 2 * pairs * 16];
    let tail_base = tail.as_mut_ptr();
    // SAFETY: each stays inside `tail` (2 * pairs rows of 16).
    let tail_ptrs: Vec<*const A> = (0..2 * pairs)
        .map(|t| unsafe { tail_base.add(t * 16) as *const A })
        .collect();
    let mut ptrs: Vec<*const A> = vec![pad_row.as_ptr(); 2 * pairs];
    let mut out_idx = 0;
    for image in 0..g.batch {
        let image_base = image * g.in_h * g.in_w * c;
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for ky in 0..kh {
                    let iy = g.input_pos(0, oy, ky);
                    for kx in 0..kw {
                        ptrs[ky * kw + kx] = match (iy, g.input_pos(1, ox, kx)) {
                            // SAFETY: the pixel lies inside the validated input.
                            (Some(iy), Some(ix)) => unsafe {
                                input.as_ptr().add(image_base + (iy * g.in_w + ix) * c)
                            },
                            _ => pad_row.as_ptr(),
                        };
                    }
                }
                for b in 0..blocks {
                    let c0 = b * 16;
                    let count = (c - c0).min(16);
                    let weights = &dw.packed[b * pairs * 32..(b + 1) * pairs * 32];
                    // SAFETY: full blocks read 16 channels inside each tap's pixel (or the padded
                    // pad row); the tail block reads the padded `tail` copy.
                    let (acc0, acc1) = unsafe {
                        if count == 16 {
                            block(&ptrs, c0, weights)
                        } else {
                            for (t, &p) in ptrs.iter().enumerate() {
                                std::ptr::copy_nonoverlapping(
                                    p.add(c0),
                                    tail_base.add(t * 16),
                                    count,
                                );
                            }
                            block(&tail_ptrs, 0, weights)
                        }
                    };
                    let dst = output.as_mut_ptr();
                    // SAFETY: offset is padded past c; outputs out_idx + c0 .. + count exist.
                    unsafe {
                        let o0 = _mm256_loadu_si256(offset.as_ptr().add(c0).cast());
                        let o1 = _mm256_loadu_si256(offset.as_ptr().add(c0 + 8).cast());
                        epi.convert8_avx2(
                            _mm256_add_epi32(acc0, o0),
                            c0,
                            dst.add(out_idx + c0),
                            count.min(8),
                        );
                        if count > 8 {
                            epi.convert8_avx2(
                                _mm256_add_epi32(acc1, o1),
                                c0 + 8,
                                dst.add(out_idx + c0 + 8),
                                count - 8,
                            );
                        }
                    }
                }
                out_idx += c;
            }
        }
    }
}

/// Σ over tap pairs for channels `c0..c0+16`: returns (channels 0-7, channels 8-15) as i32.
///
/// # Safety
/// Every `ptrs[t].add(c0)` readable for 16 elements; `weights` holds `ptrs.len() / 2` pairs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block<A: QInt>(ptrs: &[*const A], c0: usize, weights: &[i16]) -> (__m256i, __m256i) {
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    for (p, w) in ptrs.chunks_exact(2).zip(weights.chunks_exact(32)) {
        // SAFETY: caller guarantees the reads.
        unsafe {
            let x0 = _mm_loadu_si128(p[0].add(c0).cast());
            let x1 = _mm_loadu_si128(p[1].add(c0).cast());
            let lo = widen::<A>(_mm_unpacklo_epi8(x0, x1));
            let hi = widen::<A>(_mm_unpackhi_epi8(x0, x1));
            let w0 = _mm256_loadu_si256(w.as_ptr().cast());
            let w1 = _mm256_loadu_si256(w.as_ptr().add(16).cast());
            acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(lo, w0));
            acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(hi, w1));
        }
    }
    (acc0, acc1)
}
