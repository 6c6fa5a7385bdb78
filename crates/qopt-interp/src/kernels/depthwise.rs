//! Direct depthwise convolution (`group == C_in`, one input channel per group), 2-D NCHW.
//!
//! im2col would copy every input pixel k*k times for a tiny GEMM per channel; a direct kernel
//! reads each input plane once. Per channel the input plane is copied, with its zero padding,
//! into `stride_w` phase planes (phase `p` holds padded columns `p, p + s, p + 2s, ...`), so
//! every kernel tap reads a contiguous run: output row `oy` adds `w[ky, kx] * phase[(kx * d) % s]
//! [oy * s_h + ky * d_h][ox + (kx * d) / s]` for all `ox` at once, a loop LLVM vectorises. The
//! bias starts the sum, the activation ends it. Channels are spread over threads in chunks
//! whose size depends only on the shape.

use super::activation::{Activation, bias_act_row};
use super::conv::ConvGeometry;
use super::simd::simd;
use super::{SendPtr, with_scratch};
use rayon::prelude::*;

/// True when `g` is a 2-D (or 1-D) depthwise convolution this kernel handles.
pub fn applies(g: &ConvGeometry) -> bool {
    g.group > 1
        && g.group == g.c_in
        && g.c_out % g.group == 0
        && g.in_sp.len() <= 2
        && g.pad_begin.iter().all(|&p| p >= 0)
}

/// `y [N, C_out, OH, OW]` from `x [N, C_in, H, W]`, `w [C_out, 1, KH, KW]`, bias per output
/// channel, then the activation. `pad_end` is the padding after each axis.
pub fn depthwise(
    g: &ConvGeometry,
    pad_end: &[usize],
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    // View 1-D as 2-D with one row.
    let two = |v: &[usize], one: usize| {
        if v.len() == 1 {
            [one, v[0]]
        } else {
            [v[0], v[1]]
        }
    };
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
    let phase_w = pw.div_ceil(sw).max(ow + ((kw - 1) * dw) / sw);
    let plane = ph * phase_w;
    assert!(x.len() >= g.batch * g.c_in * h * wd && w.len() >= g.c_out * kh * kw);
    assert!(y.len() >= g.batch * g.c_out * oh * ow);
    assert!((oh - 1) * sh + (kh - 1) * dh < ph.max(1));

    let channels = g.batch * g.c_in;
    // Input channels per task: enough work per task to pay for scheduling.
    let per = (16384 / (oh * ow * mult * kh * kw).max(1)).clamp(1, 64);
    let yp = SendPtr(y.as_mut_ptr());
    let task = |chunk: usize| {
        let c0 = chunk * per;
        let c1 = (c0 + per).min(channels);
        with_scratch(sw * plane, |phases| {
            simd(|| {
                for nc in c0..c1 {
                    let ci = nc % g.c_in;
                    let xc = &x[nc * h * wd..(nc + 1) * h * wd];
                    // Zero the padding and scatter the input columns over the phases.
                    phases.fill(0.0);
                    for iy in 0..h {
                        let src = &xc[iy * wd..(iy + 1) * wd];
                        for (ix, &v) in src.iter().enumerate() {
                            let px = ix + pl;
                            phases[(px % sw) * plane + (iy + pt) * phase_w + px / sw] = v;
                        }
                    }
                    for m in 0..mult {
                        let co = ci * mult + m;
                        let n = nc / g.c_in;
                        let wc = &w[co * kh * kw..(co + 1) * kh * kw];
                        let b = bias.map_or(0.0, |b| b[co]);
                        // SAFETY: output plane (n, co) belongs to this task alone and lies
                        // inside `y` (asserted above).
                        let yc = unsafe {
                            std::slice::from_raw_parts_mut(
                                yp.get().add((n * g.c_out + co) * oh * ow),
                                oh * ow,
                            )
                        };
                        for oy in 0..oh {
                            let out = &mut yc[oy * ow..(oy + 1) * ow];
                            out.fill(b);
                            for ky in 0..kh {
                                let py = oy * sh + ky * dh;
                                for kx in 0..kw {
                                    let off = kx * dw;
                                    let src = &phases
                                        [(off % sw) * plane + py * phase_w + off / sw..][..ow];
                                    let wv = wc[ky * kw + kx];
                                    for (o, &v) in out.iter_mut().zip(src) {
                                        *o = wv.mul_add(v, *o);
                                    }
                                }
                            }
                            bias_act_row(out, 0.0, act);
                        }
                    }
                }
            })
        });
    };
    let chunks = channels.div_ceil(per);
    if chunks == 1 {
        task(0);
    } else {
        (0..chunks).into_par_iter().for_each(task);
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
