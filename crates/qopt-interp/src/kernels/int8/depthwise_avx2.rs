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
//! at 2 per cycle) sweep the row. The `rem` outputs past the last multiple of 8 in a row (all of
//! them in the 7- and 14-wide layers of mobile nets) go as one tile of rem pixels times NB channel
//! blocks (rem·NB >= 7 independent chains), so each weight load serves rem FMAs; the earlier
//! one-pixel-times-8-blocks loop needed a weight load per FMA and was load-bound.
//!
//! Epilogue: when `|bias| + taps·255² <= 2^24` for every channel (always, in real nets), the sums
//! start from the bias, so they stay exact integers and leave as f32 accumulators: four groups
//! of 8 channels go through `Epilogue::convert8x4_exact_f32_avx2` together (one multiply per
//! group, then one integer clamp and narrowing for 32 lanes; see `epilogue.rs`). Otherwise the
//! sum leaves as i32 (`cvtps` of an exact integer), gets the bias added in i32 (wrapping like the
//! oracle) and goes through the 8-lane epilogue.

use super::depthwise::Depthwise;
use super::epilogue::{CHANNEL_PAD, Epilogue};
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
    init: __m256,
    x0: usize,
) -> [__m256; PIXELS] {
    let mut acc = [init; PIXELS];
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
unsafe fn sweep_any(
    s: &Sweep<'_>,
    kh: usize,
    c0: usize,
    init: __m256,
    x0: usize,
) -> [__m256; PIXELS] {
    let mut acc = [init; PIXELS];
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
    // The bias can start the f32 sums when every partial sum stays an exact integer:
    // |bias| + taps·255·255 <= 2^24. Then the sums leave as exact f32 accumulators and take the
    // epilogue's four-pixel path (no i32 round trip for the bias).
    let taps = (kh * kw) as i64;
    let fold = bias[..c]
        .iter()
        .all(|&b| (b as i64).abs() + taps * 255 * 255 <= 1 << 24);
    let bias_f: Vec<f32> = (0..cp + CHANNEL_PAD)
        .map(|ch| if fold && ch < c { bias[ch] as f32 } else { 0.0 })
        .collect();

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
                // SAFETY: bias_f holds cp floats.
                let init = unsafe { _mm256_loadu_ps(bias_f.as_ptr().add(c0)) };
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
                            (3, 3) => sweep_fixed::<3, 3>(&sweep, &w3, init, x0),
                            (5, 5) => sweep_fixed::<5, 5>(&sweep, &w5, init, x0),
                            _ => sweep_any(&sweep, kh, c0, init, x0),
                        }
                    };
                    if fold {
                        // SAFETY: the eight output pixels exist, each with `count` channels from
                        // c0; |sums| <= 2^24 (fold).
                        unsafe {
                            let o = output.as_mut_ptr().add(out_base + ox * c + c0);
                            let d: [*mut E::Out; 8] = std::array::from_fn(|p| o.add(p * c));
                            let (n, [a0, a1, a2, a3, a4, a5, a6, a7]) = ([c0; 4], acc);
                            epi.convert8x4_exact_f32_avx2(
                                [a0, a1, a2, a3],
                                n,
                                [d[0], d[1], d[2], d[3]],
                                count,
                            );
                            epi.convert8x4_exact_f32_avx2(
                                [a4, a5, a6, a7],
                                n,
                                [d[4], d[5], d[6], d[7]],
                                count,
                            );
                        }
                        continue;
                    }
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
            // 14x14 layers): a tile of those `rem` pixels times NB channel blocks, so that
            // rem·NB >= 8 independent FMA chains hide the FMA latency and each weight load
            // serves rem FMAs (one pixel at a time needed a weight load per FMA).
            let rem = g.out_w - full;
            if rem > 0 {
                let t = Tail {
                    sweep: &sweep,
                    kh,
                    c,
                    init: &bias_f,
                    bias,
                    fold,
                    out: output[out_base + full * c..].as_mut_ptr().cast::<u8>(),
                    x0: full * s_px,
                };
                // SAFETY: as above for pixels full..out_w; the output row holds them.
                unsafe {
                    match rem {
                        1 => t.run::<1, 8, E>(epi),
                        2 => t.run::<2, 4, E>(epi),
                        3 => t.run::<3, 4, E>(epi),
                        4 => t.run::<4, 2, E>(epi),
                        5 => t.run::<5, 2, E>(epi),
                        6 => t.run::<6, 2, E>(epi),
                        7 => t.run::<7, 1, E>(epi),
                        _ => unreachable!("rem < PIXELS"),
                    }
                }
            }
        }
    }
}

/// The tail pixels of one output row (see `run`).
struct Tail<'a> {
    sweep: &'a Sweep<'a>,
    kh: usize,
    c: usize,
    /// Start value of the sums per channel (the bias when folded, else 0), padded.
    init: &'a [f32],
    bias: &'a [i32],
    fold: bool,
    /// Output of the first tail pixel, channel 0.
    out: *mut u8,
    /// Padded-row offset (floats) of the first tail pixel.
    x0: usize,
}

impl Tail<'_> {
    /// All channel blocks of the `P` tail pixels, `NB` blocks at a time (then single blocks).
    ///
    /// # Safety
    /// AVX2 and FMA; the pixels' taps lie in the padded rows; `out` is the output of `E::Out`
    /// for P pixels of `c` channels.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const P: usize, const NB: usize, E: Epilogue>(&self, epi: &E) {
        let cp = self.sweep.cp;
        let mut c0 = 0;
        while c0 + 8 * NB <= cp {
            // SAFETY: blocks c0..c0 + 8·NB <= cp (caller for the rest).
            unsafe {
                let acc = tile::<P, NB>(self.sweep, self.kh, c0, self.x0 + c0, self.init);
                self.store::<P, NB, E>(epi, &acc, c0);
            }
            c0 += 8 * NB;
        }
        while c0 < cp {
            // SAFETY: as above, one block.
            unsafe {
                let acc = tile::<P, 1>(self.sweep, self.kh, c0, self.x0 + c0, self.init);
                self.store::<P, 1, E>(epi, &acc, c0);
            }
            c0 += 8;
        }
    }

    /// Stores a tile: `acc[p][j]` is pixel p, channels `c0 + 8j..`. Full blocks go through the
    /// epilogue's four-group path: for P >= 4 pixels 0-3 and P-4..P of each block (the overlap
    /// is written twice with the same values), for P < 4 blocks j..j+4 of each pixel.
    ///
    /// # Safety
    /// AVX2; the tile's channels start below `c`; `out` as for `run`.
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop)] // j picks one column of the P x NB tile
    unsafe fn store<const P: usize, const NB: usize, E: Epilogue>(
        &self,
        epi: &E,
        acc: &[[__m256; NB]; P],
        c0: usize,
    ) {
        let out = self.out.cast::<E::Out>();
        let c = self.c;
        if self.fold && c0 + 8 * NB <= c {
            // SAFETY: every block of the tile is full and its outputs exist (caller).
            unsafe {
                if P >= 4 {
                    for j in 0..NB {
                        let cj = c0 + 8 * j;
                        let firsts = [0, P.saturating_sub(4)];
                        for &first in &firsts[..1 + usize::from(P > 4)] {
                            epi.convert8x4_exact_f32_avx2(
                                std::array::from_fn(|i| acc[first + i][j]),
                                [cj; 4],
                                std::array::from_fn(|i| out.add((first + i) * c + cj)),
                                8,
                            );
                        }
                    }
                    return;
                }
                if NB.is_multiple_of(4) {
                    for (p, row) in acc.iter().enumerate() {
                        for j in (0..NB).step_by(4) {
                            let cj = c0 + 8 * j;
                            epi.convert8x4_exact_f32_avx2(
                                std::array::from_fn(|i| row[j + i]),
                                std::array::from_fn(|i| cj + 8 * i),
                                std::array::from_fn(|i| out.add(p * c + cj + 8 * i)),
                                8,
                            );
                        }
                    }
                    return;
                }
            }
        }
        for (p, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                let cj = c0 + 8 * j;
                if cj >= c {
                    break;
                }
                // SAFETY: bias padded by CHANNEL_PAD; the output block has (c - cj).min(8)
                // channels (caller).
                unsafe {
                    let dst = out.add(p * c + cj);
                    let count = (c - cj).min(8);
                    if self.fold {
                        epi.convert8_avx2(_mm256_cvtps_epi32(*a), cj, dst, count);
                    } else {
                        store8(epi, self.bias, *a, cj, dst, count);
                    }
                }
            }
        }
    }
}

/// Sums of `P` pixels (from padded-row offset `x0`, channel offset included) times `NB` channel
/// blocks from `c0`, starting from `init`: one weight load per tap and block serves P FMAs.
///
/// # Safety
/// AVX2 and FMA; the pixels' taps lie in the padded rows; `c0 + 8·NB <= cp`; `init` holds cp
/// floats.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const P: usize, const NB: usize>(
    s: &Sweep<'_>,
    kh: usize,
    c0: usize,
    x0: usize,
    init: &[f32],
) -> [[__m256; NB]; P] {
    // SAFETY: init holds cp floats and c0 + 8·NB <= cp (caller).
    let start: [__m256; NB] =
        std::array::from_fn(|j| unsafe { _mm256_loadu_ps(init.as_ptr().add(c0 + 8 * j)) });
    let mut acc = [start; P];
    for ky in 0..kh {
        let row = s.rows[ky];
        for kx in 0..s.kw {
            // SAFETY: weights hold taps x cp floats; the taps lie in the padded row (caller).
            unsafe {
                let w = s.weights.as_ptr().add((ky * s.kw + kx) * s.cp + c0);
                let x = row.add(x0 + kx * s.tap_step);
                for j in 0..NB {
                    let wv = _mm256_loadu_ps(w.add(8 * j));
                    for (p, a) in acc.iter_mut().enumerate() {
                        let xv = _mm256_loadu_ps(x.add(p * s.px_step + 8 * j));
                        a[j] = _mm256_fmadd_ps(xv, wv, a[j]);
                    }
                }
            }
        }
    }
    acc
}

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
