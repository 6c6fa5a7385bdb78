//! AVX2 depthwise kernel: exact integer arithmetic carried in f32 FMAs.
//!
//! Each product `(x − za)·(w − zb)` is an integer of magnitude <= 255·255, and a sum of up to
//! `MAX_EXACT_TAPS` = 258 of them stays below 2^24, so f32 holds every partial sum exactly: an f32
//! FMA chain computes the same integer as the scalar oracle's i32 sum, bit for bit (the oracle never
//! wraps either at that size). This beats 16-bit `vpmaddwd` here because depthwise has no reduction
//! across channels to pair up: the i16 route spends two shuffles per tap and channel block on
//! interleaving, while f32 converts each input element once and then needs one FMA (with its load
//! folded in) per tap and 8 channels.
//!
//! Input rows are converted on demand to f32 `(x − za)` into a ring of `span = (KH−1)·DH + 1` row
//! buffers with the left/right padding materialised as 0.0 (the real value of padding) and the
//! channels rounded up to 8; a missing row (top/bottom padding) is a zero row. Then for each output
//! row and group of 8 channels the tap weights stay in registers (3x3 and 5x5; other sizes load
//! them) while 8 output pixels at a time (8 independent FMA chains, enough to cover FMA latency 4
//! at 2 per cycle) sweep the row. The outputs past the last multiple of 8 in a row (all of them
//! in the 7- and 14-wide layers of mobile nets) go one pixel at a time over up to 8 channel blocks
//! at once, again 8 independent chains: one chain per pixel and block was latency-bound (a
//! dependent FMA per tap) and reloaded the weights for every pixel. The sum leaves as i32 (`cvtps` of an exact integer), gets the
//! bias added in i32 like everywhere else, and goes through the shared epilogue.

use super::depthwise::Depthwise;
use super::epilogue::Epilogue;
use super::qtype::QInt;
use std::arch::x86_64::*;

/// Largest tap count for which f32 sums are exact: 258 · 255 · 255 < 2^24.
pub(crate) const MAX_EXACT_TAPS: usize = 258;

/// Output pixels per sweep step (independent FMA chains).
const PIXELS: usize = 8;

struct Sweep<'a> {
    /// Per kernel row, the converted input row (padded; pixel 0 = first left pad).
    rows: &'a [*const f32],
    /// Weights `[tap][cp]`.
    weights: &'a [f32],
    cp: usize,
    kw: usize,
    /// Floats between horizontally adjacent output pixels / taps.
    px_step: usize,
    tap_step: usize,
}

/// Converts input row `iy` of `image` to `(x − za)` f32 into `dst` (already zero-padded).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn convert_row<A: QInt>(src: &[A], za: i32, c: usize, cp: usize, dst: &mut [f32]) {
    if c == cp {
        // No channel padding (C a multiple of 8, as in every real net): one flat loop over the
        // row, 32 values per step. The per-pixel loop below kept its pointers on the stack and
        // was a third of the stride-2 layers' time.
        // SAFETY: AVX2 (caller); dst holds the row's in_w·C values from here.
        unsafe { convert_flat(src, za, &mut dst[..src.len()]) };
        return;
    }
    let zav = _mm256_set1_epi32(za);
    for (px, d) in src.chunks_exact(c).zip(dst.chunks_exact_mut(cp)) {
        let mut i = 0;
        while i + 8 <= c {
            // SAFETY: 8 elements from i in px and d.
            unsafe {
                let raw = _mm_loadl_epi64(px.as_ptr().add(i).cast());
                let wide = if A::SIGNED {
                    _mm256_cvtepi8_epi32(raw)
                } else {
                    _mm256_cvtepu8_epi32(raw)
                };
                let f = _mm256_cvtepi32_ps(_mm256_sub_epi32(wide, zav));
                _mm256_storeu_ps(d.as_mut_ptr().add(i), f);
            }
            i += 8;
        }
        for j in i..c {
            d[j] = (px[j].to_i32() - za) as f32;
        }
    }
}

/// `dst[i] = src[i] − za` as f32, same lengths.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn convert_flat<A: QInt>(src: &[A], za: i32, dst: &mut [f32]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    let zav = _mm256_set1_epi32(za);
    let (s, d) = (src.as_ptr().cast::<u8>(), dst.as_mut_ptr());
    // SAFETY: every 8-byte read and 8-float write lies below n.
    let eight = |i: usize| unsafe {
        let raw = _mm_loadl_epi64(s.add(i).cast());
        let wide = if A::SIGNED {
            _mm256_cvtepi8_epi32(raw)
        } else {
            _mm256_cvtepu8_epi32(raw)
        };
        _mm256_storeu_ps(d.add(i), _mm256_cvtepi32_ps(_mm256_sub_epi32(wide, zav)));
    };
    let mut i = 0;
    while i + 32 <= n {
        eight(i);
        eight(i + 8);
        eight(i + 16);
        eight(i + 24);
        i += 32;
    }
    while i + 8 <= n {
        eight(i);
        i += 8;
    }
    for j in i..n {
        dst[j] = (src[j].to_i32() - za) as f32;
    }
}

/// Sums for `PIXELS` output pixels starting at padded column `x0` (in floats, channel offset
/// included), taps known at compile time: weights live in registers.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_fixed<const KH: usize, const KW: usize>(
    s: &Sweep<'_>,
    w: &[[__m256; KW]; KH],
    x0: usize,
) -> [__m256; PIXELS] {
    let mut acc = [_mm256_setzero_ps(); PIXELS];
    for (ky, wrow) in w.iter().enumerate() {
        let row = s.rows[ky];
        for (kx, wv) in wrow.iter().enumerate() {
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: the sweep only visits columns inside the padded row (caller).
                let x = unsafe { _mm256_loadu_ps(row.add(x0 + p * s.px_step + kx * s.tap_step)) };
                *a = _mm256_fmadd_ps(x, *wv, *a);
            }
        }
    }
    acc
}

/// As `sweep_fixed` for any kernel size, weights loaded from memory.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_any(s: &Sweep<'_>, kh: usize, c0: usize, x0: usize) -> [__m256; PIXELS] {
    let mut acc = [_mm256_setzero_ps(); PIXELS];
    for ky in 0..kh {
        let row = s.rows[ky];
        for kx in 0..s.kw {
            // SAFETY: weights hold taps x cp; columns inside the padded row (caller).
            unsafe {
                let wv = _mm256_loadu_ps(s.weights.as_ptr().add((ky * s.kw + kx) * s.cp + c0));
                for (p, a) in acc.iter_mut().enumerate() {
                    let x = _mm256_loadu_ps(row.add(x0 + p * s.px_step + kx * s.tap_step));
                    *a = _mm256_fmadd_ps(x, wv, *a);
                }
            }
        }
    }
    acc
}

/// # Safety
/// AVX2 and FMA available; buffer sizes validated by `Depthwise::run`; taps <= MAX_EXACT_TAPS.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn run<A: QInt, E: Epilogue>(
    dw: &Depthwise,
    input: &[A],
    za: A,
    epi: &E,
    output: &mut [E::Out],
) {
    let g = &dw.geom;
    let c = g.in_c;
    let cp = dw.cp;
    let [kh, kw] = g.params.kernel;
    let [sw, dwx] = [g.params.stride[1], g.params.dilation[1]];
    let [_, pl, _, pr] = g.params.pads;
    let row_px = pl + g.in_w + pr;
    let row_len = row_px * cp;
    let span = (kh - 1) * g.params.dilation[0] + 1;
    let mut ring = vec![0f32; span * row_len];
    let mut ring_row: Vec<Option<usize>> = vec![None; span];
    let zero_row = vec![0f32; row_len];
    let mut rows: Vec<*const f32> = vec![zero_row.as_ptr(); kh];
    let za = za.to_i32();
    let bias = epi.bias_padded();
    let s_px = sw * cp;
    let s_tap = dwx * cp;
    let image_len = g.in_h * g.in_w * c;
    let out_row = g.out_w * c;

    for image in 0..g.batch {
        ring_row.fill(None);
        let src_image = &input[image * image_len..(image + 1) * image_len];
        for oy in 0..g.out_h {
            for (ky, row) in rows.iter_mut().enumerate() {
                *row = match g.input_pos(0, oy, ky) {
                    Some(iy) => {
                        let slot = iy % span;
                        let buf = &mut ring[slot * row_len..(slot + 1) * row_len];
                        if ring_row[slot] != Some(iy) {
                            let src = &src_image[iy * g.in_w * c..(iy + 1) * g.in_w * c];
                            // SAFETY: AVX2 available; the data region starts after pl pixels.
                            unsafe { convert_row(src, za, c, cp, &mut buf[pl * cp..]) };
                            ring_row[slot] = Some(iy);
                        }
                        buf.as_ptr()
                    }
                    None => zero_row.as_ptr(),
                };
            }
            let sweep = Sweep {
                rows: &rows,
                weights: &dw.wf,
                cp,
                kw,
                px_step: s_px,
                tap_step: s_tap,
            };
            let out_base = (image * g.out_h + oy) * out_row;
            // Full steps of PIXELS outputs per channel block, weights in registers.
            let full = g.out_w / PIXELS * PIXELS;
            for c0 in (0..cp).step_by(8) {
                if full == 0 {
                    break;
                }
                let count = (c - c0).min(8);
                // SAFETY: weights hold taps x cp floats.
                let load_w = |t: usize| unsafe { _mm256_loadu_ps(dw.wf.as_ptr().add(t * cp + c0)) };
                let w3: [[__m256; 3]; 3] = if (kh, kw) == (3, 3) {
                    std::array::from_fn(|ky| std::array::from_fn(|kx| load_w(ky * 3 + kx)))
                } else {
                    [[_mm256_setzero_ps(); 3]; 3]
                };
                let w5: [[__m256; 5]; 5] = if (kh, kw) == (5, 5) {
                    std::array::from_fn(|ky| std::array::from_fn(|kx| load_w(ky * 5 + kx)))
                } else {
                    [[_mm256_setzero_ps(); 5]; 5]
                };
                for ox in (0..full).step_by(PIXELS) {
                    let x0 = ox * s_px + c0;
                    // SAFETY: every tap of an output pixel < out_w lies in the padded row (the
                    // output-size formula), and each read covers channels c0..c0+8 <= cp.
                    let acc = unsafe {
                        match (kh, kw) {
                            (3, 3) => sweep_fixed::<3, 3>(&sweep, &w3, x0),
                            (5, 5) => sweep_fixed::<5, 5>(&sweep, &w5, x0),
                            _ => sweep_any(&sweep, kh, c0, x0),
                        }
                    };
                    for (p, a) in acc.iter().enumerate() {
                        // SAFETY: bias is padded by CHANNEL_PAD past c; the output pixel exists.
                        unsafe {
                            let dst = output.as_mut_ptr().add(out_base + (ox + p) * c + c0);
                            store8(epi, bias, *a, c0, dst, count);
                        }
                    }
                }
            }
            // The last out_w % PIXELS outputs (all of a row narrower than PIXELS: the 7x7 and
            // 14x14 layers): one pixel at a time, but BLOCKS channel blocks at once, so that
            // BLOCKS independent FMA chains hide the FMA latency (one chain per pixel would wait
            // on it at every tap).
            for ox in full..g.out_w {
                let mut c0 = 0;
                while c0 < cp {
                    let nb = ((cp - c0) / 8).min(BLOCKS);
                    let x0 = ox * s_px + c0;
                    // SAFETY: as above; blocks c0..c0 + 8·nb <= cp.
                    let acc = unsafe { pixel_blocks(&sweep, kh, c0, x0, nb) };
                    for (j, a) in acc.iter().enumerate().take(nb) {
                        let cj = c0 + 8 * j;
                        // SAFETY: as above.
                        unsafe {
                            let dst = output.as_mut_ptr().add(out_base + ox * c + cj);
                            store8(epi, bias, *a, cj, dst, (c - cj).min(8));
                        }
                    }
                    c0 += 8 * nb;
                }
            }
        }
    }
}

/// Channel blocks of 8 summed at once for one output pixel.
const BLOCKS: usize = 8;

/// The exact f32 sum of channels `c0..c0+8` to i32, plus the bias, through the epilogue.
///
/// # Safety
/// AVX2; `bias` padded past `c0 + 8`; `dst` valid for `count` outputs.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store8<E: Epilogue>(
    epi: &E,
    bias: &[i32],
    acc: __m256,
    c0: usize,
    dst: *mut E::Out,
    count: usize,
) {
    // SAFETY: forwarded (caller).
    unsafe {
        let sum = _mm256_add_epi32(
            _mm256_cvtps_epi32(acc),
            _mm256_loadu_si256(bias.as_ptr().add(c0).cast()),
        );
        epi.convert8_avx2(sum, c0, dst, count);
    }
}

/// One output pixel, `nb` (<= BLOCKS) channel blocks from `c0`: acc[j] holds block j.
///
/// # Safety
/// AVX2 and FMA; the pixel's taps lie in the padded rows; weights hold taps x cp with
/// `c0 + 8·nb <= cp`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixel_blocks(
    s: &Sweep<'_>,
    kh: usize,
    c0: usize,
    x0: usize,
    nb: usize,
) -> [__m256; BLOCKS] {
    macro_rules! go {
        ($($n:literal)*) => {
            match nb {
                // SAFETY: forwarded.
                $($n => unsafe { pixel_blocks_n::<$n>(s, kh, c0, x0) },)*
                _ => unreachable!("1 <= nb <= BLOCKS"),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8)
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn pixel_blocks_n<const NB: usize>(
    s: &Sweep<'_>,
    kh: usize,
    c0: usize,
    x0: usize,
) -> [__m256; BLOCKS] {
    let mut acc = [_mm256_setzero_ps(); BLOCKS];
    for ky in 0..kh {
        let row = s.rows[ky];
        for kx in 0..s.kw {
            // SAFETY: caller (pixel_blocks).
            unsafe {
                let w = s.weights.as_ptr().add((ky * s.kw + kx) * s.cp + c0);
                let x = row.add(x0 + kx * s.tap_step);
                for (j, a) in acc.iter_mut().enumerate().take(NB) {
                    let wv = _mm256_loadu_ps(w.add(8 * j));
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(x.add(8 * j)), wv, *a);
                }
            }
        }
    }
    acc
}
