//! Direct depthwise convolution (`group == C_in`, one input channel per group), 2-D NCHW.
//!
//! im2col would copy every input pixel k*k times for a tiny GEMM per channel; a direct kernel
//! reads each input plane once. Per channel the input plane is copied, with its zero padding,
//! into `stride_w` phase planes (phase `p` holds padded columns `p, p + s, p + 2s, ...`), so
//! every kernel tap reads a contiguous run: output row `oy` adds `w[ky, kx] * phase[(kx * d) % s]
//! [oy * s_h + ky * d_h][ox + (kx * d) / s]` for all `ox` at once, a loop LLVM vectorises. The
//! bias starts the sum, the activation ends it. Channels are spread over threads in chunks
//! whose size depends only on the shape.

use super::activation::Activation;
use super::conv::ConvGeometry;
use super::simd::multiversion;
use super::{SendPtr, with_scratch};
use rayon::prelude::*;

/// True when `g` is a 2-D (or 1-D) depthwise convolution this kernel handles.
pub fn applies(g: &ConvGeometry) -> bool {
    g.group > 1
        && g.group == g.c_in
        && g.c_out.is_multiple_of(g.group)
        && g.in_sp.len() <= 2
        && g.pad_begin.iter().all(|&p| p >= 0)
}

/// Per-call constants of the kernel.
struct Geo {
    h: usize,
    wd: usize,
    oh: usize,
    ow: usize,
    sh: usize,
    sw: usize,
    pt: usize,
    pl: usize,
    phase_w: usize,
    plane: usize,
}

/// Zero everything [`scatter`] does not write.
#[inline(always)]
fn zero_padding(geo: &Geo, phases: &mut [f32]) {
    let ph = geo.plane / geo.phase_w;
    for p in 0..geo.sw {
        let (j_lo, j_hi) = phase_cols(geo, p);
        let ph_plane = &mut phases[p * geo.plane..(p + 1) * geo.plane];
        for y in 0..ph {
            let row = &mut ph_plane[y * geo.phase_w..(y + 1) * geo.phase_w];
            if y < geo.pt || y >= geo.pt + geo.h || j_hi <= j_lo {
                row.fill(0.0);
            } else {
                row[..j_lo].fill(0.0);
                row[j_hi..].fill(0.0);
            }
        }
    }
}

/// Phase columns `[j_lo, j_hi)` of phase `p` that hold input columns.
#[inline(always)]
fn phase_cols(geo: &Geo, p: usize) -> (usize, usize) {
    // Phase column j holds padded column px = j * sw + p, input column ix = px - pl.
    let j_lo = geo.pl.saturating_sub(p).div_ceil(geo.sw);
    let j_hi = if geo.wd + geo.pl > p {
        (geo.wd - 1 + geo.pl - p) / geo.sw + 1
    } else {
        0
    };
    (j_lo, j_hi.min(geo.phase_w))
}

/// Scatter one input channel (`h x wd`) into the phase planes; padding stays as it is (zero).
#[inline(always)]
fn scatter(geo: &Geo, xc: &[f32], phases: &mut [f32]) {
    for p in 0..geo.sw {
        let (j_lo, j_hi) = phase_cols(geo, p);
        if j_hi <= j_lo {
            continue;
        }
        let ix0 = j_lo * geo.sw + p - geo.pl;
        for iy in 0..geo.h {
            let dst = &mut phases[p * geo.plane + (iy + geo.pt) * geo.phase_w..][j_lo..j_hi];
            let src = &xc[iy * geo.wd + ix0..(iy + 1) * geo.wd];
            let n = dst.len();
            match geo.sw {
                1 => dst.copy_from_slice(&src[..n]),
                2 => {
                    // Pairs without bounds checks, so the loop vectorises; the last element may
                    // lack its pair.
                    for (d, pair) in dst[..n - 1].iter_mut().zip(src.chunks_exact(2)) {
                        *d = pair[0];
                    }
                    dst[n - 1] = src[2 * (n - 1)];
                }
                sw => {
                    for (d, s) in dst.iter_mut().zip(src.iter().step_by(sw)) {
                        *d = *s;
                    }
                }
            }
        }
    }
}

/// Outputs per vector block. Rows are computed in blocks of `LANES` columns; the phase planes
/// are wide enough that the last block of a row may read past the row's end (those lanes are
/// computed and dropped).
const LANES: usize = 8;

/// `R` output rows x `LANES` columns from output row `oy`, column `x0`: all taps accumulated in
/// registers, `R` independent accumulators so the FMA chains overlap.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const R: usize>(
    geo: &Geo,
    phases: &[f32],
    offs: &[usize],
    wc: &[f32],
    b: f32,
    act: Activation,
    yc: &mut [f32],
    oy: usize,
    x0: usize,
) {
    let mut acc = [[b; LANES]; R];
    let row_step = geo.sh * geo.phase_w;
    let base = oy * row_step + x0;
    for (&off, &wv) in offs.iter().zip(wc) {
        for (r, a) in acc.iter_mut().enumerate() {
            let s = &phases[base + r * row_step + off..][..LANES];
            for i in 0..LANES {
                a[i] = wv.mul_add(s[i], a[i]);
            }
        }
    }
    let n = LANES.min(geo.ow - x0);
    for (r, a) in acc.iter().enumerate() {
        let v: [f32; LANES] = std::array::from_fn(|i| act.apply(a[i]));
        let o = &mut yc[(oy + r) * geo.ow + x0..][..n];
        if n == LANES {
            o.copy_from_slice(&v);
        } else {
            // Plain copies: a masked vector store is microcoded (slow) on some CPUs.
            o.copy_from_slice(&v[..n]);
        }
    }
}

/// The AVX2+FMA form of [`channel`]: the same sums in the same order, written with
/// intrinsics so the accumulators stay in registers.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `phases` must hold every element the taps read
/// (`depthwise` asserts that once).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn channel_avx2(
    geo: &Geo,
    phases: &[f32],
    offs: &[usize],
    wc: &[f32],
    b: f32,
    act: Activation,
    yc: &mut [f32],
) {
    use std::arch::x86_64::*;
    let row_step = geo.sh * geo.phase_w;
    let p = phases.as_ptr();
    let zero = _mm256_setzero_ps();
    let store = |yc: &mut [f32], oy: usize, x0: usize, v: __m256| {
        // Activations in vector form. `max(c, x)` / `min(c, x)` return x when x is NaN (the
        // second operand), as the scalar definitions do.
        let v = match act {
            Activation::None => v,
            Activation::Relu => _mm256_max_ps(zero, v),
            Activation::Clip(lo, hi) => {
                _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), v))
            }
            _ => {
                let mut tmp = [0f32; LANES];
                // SAFETY: `tmp` holds LANES floats.
                unsafe { _mm256_storeu_ps(tmp.as_mut_ptr(), v) };
                for t in tmp.iter_mut() {
                    *t = act.apply(*t);
                }
                // SAFETY: as above.
                unsafe { _mm256_loadu_ps(tmp.as_ptr()) }
            }
        };
        let n = LANES.min(geo.ow - x0);
        let o = &mut yc[oy * geo.ow + x0..][..n];
        if n == LANES {
            // SAFETY: `o` holds LANES floats.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
        } else {
            let mut tmp = [0f32; LANES];
            // SAFETY: `tmp` holds LANES floats.
            unsafe { _mm256_storeu_ps(tmp.as_mut_ptr(), v) };
            o.copy_from_slice(&tmp[..n]);
        }
    };
    let mut oy = 0;
    while oy < geo.oh {
        let rows = (geo.oh - oy).min(4);
        let mut x0 = 0;
        while x0 < geo.ow {
            let base = oy * row_step + x0;
            // SAFETY (loads): every address is inside `phases` by the caller's contract.
            unsafe {
                if rows == 4 {
                    let (mut a0, mut a1, mut a2, mut a3) = (
                        _mm256_set1_ps(b),
                        _mm256_set1_ps(b),
                        _mm256_set1_ps(b),
                        _mm256_set1_ps(b),
                    );
                    for (&off, &wv) in offs.iter().zip(wc) {
                        let w = _mm256_set1_ps(wv);
                        let q = p.add(base + off);
                        a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(q), a0);
                        a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(q.add(row_step)), a1);
                        a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(q.add(2 * row_step)), a2);
                        a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(q.add(3 * row_step)), a3);
                    }
                    store(yc, oy, x0, a0);
                    store(yc, oy + 1, x0, a1);
                    store(yc, oy + 2, x0, a2);
                    store(yc, oy + 3, x0, a3);
                } else if rows >= 2 {
                    let (mut a0, mut a1) = (_mm256_set1_ps(b), _mm256_set1_ps(b));
                    for (&off, &wv) in offs.iter().zip(wc) {
                        let w = _mm256_set1_ps(wv);
                        let q = p.add(base + off);
                        a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(q), a0);
                        a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(q.add(row_step)), a1);
                    }
                    store(yc, oy, x0, a0);
                    store(yc, oy + 1, x0, a1);
                } else {
                    let mut a0 = _mm256_set1_ps(b);
                    for (&off, &wv) in offs.iter().zip(wc) {
                        a0 = _mm256_fmadd_ps(
                            _mm256_set1_ps(wv),
                            _mm256_loadu_ps(p.add(base + off)),
                            a0,
                        );
                    }
                    store(yc, oy, x0, a0);
                }
            }
            x0 += LANES;
        }
        oy += match rows {
            4 => 4,
            2 | 3 => 2,
            _ => 1,
        };
    }
}

/// One output channel from the phase planes of its input channel (portable form).
#[inline(always)]
fn channel(
    geo: &Geo,
    phases: &[f32],
    offs: &[usize],
    wc: &[f32],
    b: f32,
    act: Activation,
    yc: &mut [f32],
) {
    let mut oy = 0;
    while oy < geo.oh {
        let rows = (geo.oh - oy).min(4);
        let mut x0 = 0;
        while x0 < geo.ow {
            match rows {
                4 => block::<4>(geo, phases, offs, wc, b, act, yc, oy, x0),
                2 | 3 => block::<2>(geo, phases, offs, wc, b, act, yc, oy, x0),
                _ => block::<1>(geo, phases, offs, wc, b, act, yc, oy, x0),
            }
            x0 += LANES;
        }
        oy += match rows {
            4 => 4,
            2 | 3 => 2,
            _ => 1,
        };
    }
}

multiversion! {
    /// `y [N, C_out, OH, OW]` from `x [N, C_in, H, W]`, `w [C_out, 1, KH, KW]`, bias per output
    /// channel, then the activation. `pad_end` is the padding after each axis.
    pub fn depthwise(g: &ConvGeometry, pad_end: &[usize], x: &[f32], w: &[f32], bias: Option<&[f32]>, act: Activation, y: &mut [f32]) {
        // View 1-D as 2-D with one row.
        let two = |v: &[usize], one: usize| if v.len() == 1 { [one, v[0]] } else { [v[0], v[1]] };
        let [h, wd] = two(&g.in_sp, 1);
        let [oh, ow] = two(&g.out_sp, 1);
        let [kh, kw] = two(&g.kernel, 1);
        let [sh, sw] = two(&g.strides, 1);
        let [dh, dw] = two(&g.dilations, 1);
        let pb: Vec<usize> = g.pad_begin.iter().map(|&p| p as usize).collect();
        let [pt, pl] = two(&pb, 0);
        let [pbm, pr] = two(pad_end, 0);
        let mult = g.c_out / g.c_in;
        let (ph, pw) = (h + pt + pbm, wd + pl + pr);
        // Each phase plane is wide enough for the right-most tap of the last output.
        let phase_w = pw.div_ceil(sw).max(ow.div_ceil(LANES) * LANES + ((kw - 1) * dw) / sw);
        let plane = ph * phase_w;
        let geo = Geo { h, wd, oh, ow, sh, sw, pt, pl, phase_w, plane };
        assert!(x.len() >= g.batch * g.c_in * h * wd && w.len() >= g.c_out * kh * kw);
        assert!(y.len() >= g.batch * g.c_out * oh * ow);
        assert!((oh - 1) * sh + (kh - 1) * dh < ph.max(1));
        // Offset of each tap (ky, kx) from the start of an output row's first input row.
        let offs: Vec<usize> = (0..kh * kw)
            .map(|t| {
                let (ky, kx) = (t / kw, t % kw);
                let off = kx * dw;
                (off % sw) * plane + ky * dh * phase_w + off / sw
            })
            .collect();

        // Every tap read stays inside the phase planes: the last block of the last row reads
        // up to LANES floats from the largest tap offset.
        let max_read = (oh - 1) * sh * phase_w + ow.div_ceil(LANES) * LANES - LANES + offs.iter().max().copied().unwrap_or(0) + LANES;
        assert!(max_read <= sw * plane, "depthwise phase planes too small");
        let avx2 = super::simd::has_avx2_fma();
        let _ = avx2;
        let channels = g.batch * g.c_in;
        // Input channels per task: enough work per task to pay for scheduling.
        let per = (16384 / (oh * ow * mult * kh * kw).max(1)).clamp(1, 64);
        let yp = SendPtr(y.as_mut_ptr());
        let task = |chunk: usize| {
            let c0 = chunk * per;
            let c1 = (c0 + per).min(channels);
            with_scratch(sw * plane, |phases| {
                // Padding is zero for every channel; the interior is overwritten per channel.
                zero_padding(&geo, phases);
                for nc in c0..c1 {
                    let ci = nc % g.c_in;
                    let n = nc / g.c_in;
                    scatter(&geo, &x[nc * h * wd..(nc + 1) * h * wd], phases);
                    for m in 0..mult {
                        let co = ci * mult + m;
                        let wc = &w[co * kh * kw..(co + 1) * kh * kw];
                        let b = bias.map_or(0.0, |b| b[co]);
                        // SAFETY: output plane (n, co) belongs to this task alone and lies
                        // inside `y` (asserted above).
                        let yc = unsafe { std::slice::from_raw_parts_mut(yp.get().add((n * g.c_out + co) * oh * ow), oh * ow) };
                        #[cfg(target_arch = "x86_64")]
                        if avx2 {
                            // SAFETY: AVX2+FMA checked; the reads are in bounds (asserted above).
                            unsafe { channel_avx2(&geo, phases, &offs, wc, b, act, yc) };
                            continue;
                        }
                        channel(&geo, phases, &offs, wc, b, act, yc);
                    }
                }
            });
        };
        let chunks = channels.div_ceil(per);
        if chunks == 1 {
            task(0);
        } else {
            (0..chunks).into_par_iter().for_each(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2col;
    use crate::kernels::gemm::{Bias, Epilogue};

    #[test]
    fn matches_im2col_path() {
        // The im2col kernel (itself checked against the direct ONNX definition) is the
        // reference: the same convolution run as a grouped conv.
        for &(k, s, d, p, mult) in &[
            (3, 1, 1, 1, 1),
            (3, 2, 1, 1, 1),
            (5, 2, 1, 2, 1),
            (5, 1, 1, 2, 2),
            (3, 1, 2, 2, 1),
            (3, 3, 1, 0, 1),
        ] {
            let (c, h, wd) = (5, 13, 17);
            let out = |i: usize| (i + 2 * p - ((k - 1) * d + 1)) / s + 1;
            let g = ConvGeometry {
                batch: 2,
                c_in: c,
                c_out: c * mult,
                group: c,
                in_sp: vec![h, wd],
                out_sp: vec![out(h), out(wd)],
                kernel: vec![k, k],
                strides: vec![s, s],
                dilations: vec![d, d],
                pad_begin: vec![p as isize, p as isize],
            };
            let x: Vec<f32> = (0..2 * c * h * wd)
                .map(|i| ((i * 13) % 17) as f32 - 8.0)
                .collect();
            let w: Vec<f32> = (0..c * mult * k * k)
                .map(|i| ((i * 5) % 7) as f32 * 0.25 - 0.5)
                .collect();
            let b: Vec<f32> = (0..c * mult).map(|i| i as f32 * 0.1 - 0.2).collect();
            let mut y = vec![f32::NAN; 2 * c * mult * g.out_len()];
            let mut r = y.clone();
            depthwise(&g, &[p, p], &x, &w, Some(&b), Activation::Relu, &mut y);
            conv2col(
                &g,
                &x,
                &w,
                &mut r,
                &Epilogue {
                    bias: Bias::Row(&b),
                    act: Activation::Relu,
                },
            );
            for (i, (a, e)) in y.iter().zip(&r).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                    "k{k} s{s} d{d} p{p} m{mult} at {i}: {a} vs {e}"
                );
            }
        }
    }
}
