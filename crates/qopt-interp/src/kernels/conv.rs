//! Convolution by im2col + GEMM, and transposed convolution by GEMM + col2im, for any number
//! of spatial axes, NCHW layout.
//!
//! Convolution (ONNX `Conv`): for each image and group, the output `[C_out/g, OH*OW]` is
//! `W_g [C_out/g, C_in/g * prod(kernel)] x col [C_in/g * prod(kernel), OH*OW]`. The `col`
//! matrix is built tile by tile (a few hundred output positions at a time, sized to stay in
//! L2) and each tile goes straight into the GEMM with the bias/activation epilogue, so the
//! full im2col matrix never exists. A 1x1 convolution with unit strides and no padding
//! multiplies the input directly (its im2col matrix is the input itself).
//!
//! Transposed convolution (ONNX `ConvTranspose`): `col [C_out/g * prod(kernel), H*W] =
//! W_g^T x X_g`, then col2im scatters and adds each column into the output, which starts as
//! the bias. Tile sizes depend only on shapes, so results do not depend on the thread count.

use super::gemm::{Epilogue, MatRef, block_raw, sgemm};
use super::{SendPtr, with_scratch};
use rayon::prelude::*;

/// Resolved geometry of one convolution: every size is known and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub group: usize,
    pub in_sp: Vec<usize>,
    pub out_sp: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding before each spatial axis (Conv: >= 0; ConvTranspose may be negative).
    pub pad_begin: Vec<isize>,
}

impl ConvGeometry {
    pub fn in_len(&self) -> usize {
        self.in_sp.iter().product()
    }
    pub fn out_len(&self) -> usize {
        self.out_sp.iter().product()
    }
    pub fn k_len(&self) -> usize {
        self.kernel.iter().product()
    }
    pub fn c_in_g(&self) -> usize {
        self.c_in / self.group
    }
    pub fn c_out_g(&self) -> usize {
        self.c_out / self.group
    }
    /// True when the im2col matrix is the input itself.
    pub fn is_pointwise(&self) -> bool {
        self.kernel.iter().all(|&k| k == 1)
            && self.strides.iter().all(|&s| s == 1)
            && self.pad_begin.iter().all(|&p| p == 0)
            && self.in_sp == self.out_sp
    }
}

/// Output positions per im2col tile: about 64K floats of `col`, a function of K only.
fn im2col_tile_cols(k: usize, out_len: usize) -> usize {
    const COL_ELEMS: usize = 1 << 16;
    let nt = (COL_ELEMS / k.max(1)).clamp(64, 4096) / 16 * 16;
    nt.min(out_len.max(1))
}

/// A run of output positions along the last spatial axis: outer coordinates, `x0..x1` on
/// the last axis, and the column in the tile where it starts.
struct Segment {
    outer: Vec<usize>,
    x0: usize,
    x1: usize,
    col: usize,
}

fn segments(out_sp: &[usize], p0: usize, p1: usize) -> Vec<Segment> {
    let d = out_sp.len();
    let last = out_sp[d - 1].max(1);
    let mut segs = Vec::new();
    let mut p = p0;
    while p < p1 {
        let mut rest = p / last;
        let x0 = p % last;
        let x1 = last.min(x0 + (p1 - p));
        let mut outer = vec![0; d - 1];
        for a in (0..d - 1).rev() {
            outer[a] = rest % out_sp[a];
            rest /= out_sp[a];
        }
        segs.push(Segment {
            outer,
            x0,
            x1,
            col: p - p0,
        });
        p += x1 - x0;
    }
    segs
}

/// The `[lo, hi)` range of output positions `o` in `[x0, x1)` whose input position
/// `o * s - pad + koff` falls in `[0, len)`.
#[inline]
fn valid_range(
    x0: usize,
    x1: usize,
    s: usize,
    pad: isize,
    koff: isize,
    len: usize,
) -> (usize, usize) {
    let s = s as isize;
    // o * s >= pad - koff
    let need = pad - koff;
    let lo = if need <= 0 { 0 } else { (need + s - 1) / s };
    // o * s <= len - 1 + pad - koff
    let top = len as isize - 1 + pad - koff;
    let hi = if top < 0 { 0 } else { top / s + 1 };
    let lo = (lo as usize).clamp(x0, x1);
    let hi = (hi as usize).clamp(lo, x1);
    (lo, hi)
}

/// Kernel offsets (multi-index) of flat kernel position `kk`.
fn kernel_index(kernel: &[usize], mut kk: usize, out: &mut [usize]) {
    for a in (0..kernel.len()).rev() {
        out[a] = kk % kernel[a];
        kk /= kernel[a];
    }
}

/// Fill `col` (`C_in/g * prod(kernel)` rows of `nt` columns) for output positions `p0..p1` of
/// one image-group `x_g` (`C_in/g` input planes).
fn im2col_tile(g: &ConvGeometry, x_g: &[f32], p0: usize, p1: usize, col: &mut [f32]) {
    let nt = p1 - p0;
    let d = g.in_sp.len();
    let segs = segments(&g.out_sp, p0, p1);
    let plane = g.in_len();
    let mut in_strides = vec![1usize; d];
    for a in (0..d - 1).rev() {
        in_strides[a] = in_strides[a + 1] * g.in_sp[a + 1];
    }
    let mut kidx = vec![0usize; d];
    let (sl, dl, pl, wl) = (
        g.strides[d - 1],
        g.dilations[d - 1],
        g.pad_begin[d - 1],
        g.in_sp[d - 1],
    );
    for c in 0..g.c_in_g() {
        let xc = &x_g[c * plane..(c + 1) * plane];
        for kk in 0..g.k_len() {
            kernel_index(&g.kernel, kk, &mut kidx);
            let row = &mut col[(c * g.k_len() + kk) * nt..(c * g.k_len() + kk + 1) * nt];
            let koff = (kidx[d - 1] * dl) as isize;
            for s in &segs {
                let dst = &mut row[s.col..s.col + (s.x1 - s.x0)];
                // Outer axes: one input row for the whole segment, or none (padding).
                let mut base = 0isize;
                let mut inside = true;
                for a in 0..d - 1 {
                    let i = (s.outer[a] * g.strides[a]) as isize - g.pad_begin[a]
                        + (kidx[a] * g.dilations[a]) as isize;
                    if i < 0 || i >= g.in_sp[a] as isize {
                        inside = false;
                        break;
                    }
                    base += i * in_strides[a] as isize;
                }
                if !inside {
                    dst.fill(0.0);
                    continue;
                }
                let (lo, hi) = valid_range(s.x0, s.x1, sl, pl, koff, wl);
                dst[..lo - s.x0].fill(0.0);
                dst[hi - s.x0..].fill(0.0);
                if hi > lo {
                    let start = base + (lo * sl) as isize - pl + koff;
                    let src = &xc[start as usize..];
                    let out = &mut dst[lo - s.x0..hi - s.x0];
                    if sl == 1 {
                        out.copy_from_slice(&src[..hi - lo]);
                    } else {
                        for (o, v) in out.iter_mut().zip(src.iter().step_by(sl)) {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

/// Convolution: `y [N, C_out, out...] = conv(x [N, C_in, in...], w [C_out, C_in/g, k...])`
/// with the bias and activation of `epi` (its bias indexed by output channel).
pub fn conv2col(g: &ConvGeometry, x: &[f32], w: &[f32], y: &mut [f32], epi: &Epilogue) {
    let (cig, cog) = (g.c_in_g(), g.c_out_g());
    let (inl, outl) = (g.in_len(), g.out_len());
    let kdim = cig * g.k_len();
    assert!(x.len() >= g.batch * g.c_in * inl && w.len() >= g.c_out * kdim);
    assert!(y.len() >= g.batch * g.c_out * outl);
    if g.is_pointwise() {
        for n in 0..g.batch {
            for gi in 0..g.group {
                let xg = &x[(n * g.c_in + gi * cig) * inl..(n * g.c_in + (gi + 1) * cig) * inl];
                let wg = &w[gi * cog * kdim..(gi + 1) * cog * kdim];
                let yg =
                    &mut y[(n * g.c_out + gi * cog) * outl..(n * g.c_out + (gi + 1) * cog) * outl];
                let e = shift_bias(epi, gi * cog);
                sgemm(
                    cog,
                    outl,
                    kdim,
                    1.0,
                    MatRef::row_major(wg, kdim),
                    MatRef::row_major(xg, inl),
                    false,
                    yg,
                    outl,
                    &e,
                );
            }
        }
        return;
    }
    let nt = im2col_tile_cols(kdim, outl);
    let tiles = outl.div_ceil(nt);
    let yp = SendPtr(y.as_mut_ptr());
    let task = |t: usize| {
        let (n, rest) = (t / (g.group * tiles), t % (g.group * tiles));
        let (gi, ti) = (rest / tiles, rest % tiles);
        let (p0, p1) = (ti * nt, ((ti + 1) * nt).min(outl));
        let xg = &x[(n * g.c_in + gi * cig) * inl..(n * g.c_in + (gi + 1) * cig) * inl];
        let wg = &w[gi * cog * kdim..(gi + 1) * cog * kdim];
        let e = shift_bias(epi, gi * cog);
        with_scratch(kdim * (p1 - p0), |col| {
            im2col_tile(g, xg, p0, p1, col);
            // SAFETY: this task writes rows gi*cog..(gi+1)*cog, columns p0..p1 of image n:
            // disjoint from every other task's block, and inside `y` (asserted above).
            unsafe {
                block_raw(
                    cog,
                    p1 - p0,
                    kdim,
                    1.0,
                    MatRef::row_major(wg, kdim),
                    MatRef::row_major(col, p1 - p0),
                    false,
                    yp.get().add((n * g.c_out + gi * cog) * outl + p0),
                    outl,
                    &e,
                    (0, p0),
                )
            }
        });
    };
    let count = g.batch * g.group * tiles;
    if count == 1 {
        task(0);
    } else {
        (0..count).into_par_iter().for_each(task);
    }
}

/// The epilogue for one group: its row bias starts at output channel `c0`.
fn shift_bias<'a>(epi: &Epilogue<'a>, c0: usize) -> Epilogue<'a> {
    use super::gemm::Bias;
    match epi.bias {
        Bias::Row(b) => Epilogue {
            bias: Bias::Row(&b[c0..]),
            act: epi.act,
        },
        _ => *epi,
    }
}

/// Transposed convolution: `y [N, C_out, out...]` from `x [N, C_in, in...]` and
/// `w [C_in, C_out/g, k...]`; `bias` per output channel. `y` is fully overwritten.
pub fn conv_transpose(
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) {
    let (cig, cog) = (g.c_in_g(), g.c_out_g());
    let (inl, outl, kl) = (g.in_len(), g.out_len(), g.k_len());
    let rows = cog * kl;
    assert!(x.len() >= g.batch * g.c_in * inl && w.len() >= g.c_in * rows);
    assert!(y.len() >= g.batch * g.c_out * outl);
    assert!(col.len() >= rows * inl);
    for n in 0..g.batch {
        for gi in 0..g.group {
            let xg = &x[(n * g.c_in + gi * cig) * inl..(n * g.c_in + (gi + 1) * cig) * inl];
            let wg = &w[gi * cig * rows..(gi + 1) * cig * rows];
            // col = W_g^T (rows x cig) * X_g (cig x inl)
            sgemm(
                rows,
                inl,
                cig,
                1.0,
                MatRef::transposed(wg, rows),
                MatRef::row_major(xg, inl),
                false,
                &mut col[..],
                inl,
                &Epilogue::default(),
            );
            let yg = &mut y[(n * g.c_out + gi * cog) * outl..(n * g.c_out + (gi + 1) * cog) * outl];
            let col = &col[..];
            yg.par_chunks_mut(outl).enumerate().for_each(|(co, yc)| {
                let b = bias.map_or(0.0, |b| b[gi * cog + co]);
                yc.fill(b);
                col2im_channel(g, &col[co * kl * inl..(co + 1) * kl * inl], yc);
            });
        }
    }
}

/// Scatter-add the `prod(kernel)` rows of one output channel's `col` into its output plane.
fn col2im_channel(g: &ConvGeometry, col: &[f32], yc: &mut [f32]) {
    let d = g.in_sp.len();
    let inl = g.in_len();
    let mut out_strides = vec![1usize; d];
    for a in (0..d - 1).rev() {
        out_strides[a] = out_strides[a + 1] * g.out_sp[a + 1];
    }
    // Runs of input positions along the last axis: the roles of input and output swap.
    let segs = segments(&g.in_sp, 0, inl);
    let mut kidx = vec![0usize; d];
    let (sl, dl, pl, wl) = (
        g.strides[d - 1],
        g.dilations[d - 1],
        g.pad_begin[d - 1],
        g.out_sp[d - 1],
    );
    for kk in 0..g.k_len() {
        kernel_index(&g.kernel, kk, &mut kidx);
        let row = &col[kk * inl..(kk + 1) * inl];
        let koff = (kidx[d - 1] * dl) as isize;
        for s in &segs {
            let mut base = 0isize;
            let mut inside = true;
            for a in 0..d - 1 {
                let o = (s.outer[a] * g.strides[a]) as isize - g.pad_begin[a]
                    + (kidx[a] * g.dilations[a]) as isize;
                if o < 0 || o >= g.out_sp[a] as isize {
                    inside = false;
                    break;
                }
                base += o * out_strides[a] as isize;
            }
            if !inside {
                continue;
            }
            let (lo, hi) = valid_range(s.x0, s.x1, sl, pl, koff, wl);
            if hi <= lo {
                continue;
            }
            let src = &row[s.col + (lo - s.x0)..s.col + (hi - s.x0)];
            let start = (base + (lo * sl) as isize - pl + koff) as usize;
            for (v, o) in src.iter().zip(yc[start..].iter_mut().step_by(sl)) {
                *o += *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::Activation;
    use crate::kernels::gemm::Bias;

    /// Direct convolution straight from the ONNX definition (2-D): the reference.
    fn direct(g: &ConvGeometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let (h, wd) = (g.in_sp[0], g.in_sp[1]);
        let (oh, ow) = (g.out_sp[0], g.out_sp[1]);
        let (cig, cog) = (g.c_in_g(), g.c_out_g());
        let mut y = vec![0.0; g.batch * g.c_out * oh * ow];
        for n in 0..g.batch {
            for co in 0..g.c_out {
                let gi = co / cog;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = b[co] as f64;
                        for ci in 0..cig {
                            for ky in 0..g.kernel[0] {
                                for kx in 0..g.kernel[1] {
                                    let iy = (oy * g.strides[0] + ky * g.dilations[0]) as isize
                                        - g.pad_begin[0];
                                    let ix = (ox * g.strides[1] + kx * g.dilations[1]) as isize
                                        - g.pad_begin[1];
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xv = x[((n * g.c_in + gi * cig + ci) * h + iy as usize)
                                        * wd
                                        + ix as usize];
                                    let wv =
                                        w[((co * cig + ci) * g.kernel[0] + ky) * g.kernel[1] + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((n * g.c_out + co) * oh + oy) * ow + ox] = s as f32;
                    }
                }
            }
        }
        y
    }

    #[allow(clippy::too_many_arguments)]
    fn geom(
        c_in: usize,
        c_out: usize,
        group: usize,
        hw: (usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        d: (usize, usize),
        p: (usize, usize),
    ) -> ConvGeometry {
        let out = |i: usize, k: usize, s: usize, d: usize, p: usize| {
            (i + 2 * p - ((k - 1) * d + 1)) / s + 1
        };
        ConvGeometry {
            batch: 2,
            c_in,
            c_out,
            group,
            in_sp: vec![hw.0, hw.1],
            out_sp: vec![out(hw.0, k.0, s.0, d.0, p.0), out(hw.1, k.1, s.1, d.1, p.1)],
            kernel: vec![k.0, k.1],
            strides: vec![s.0, s.1],
            dilations: vec![d.0, d.1],
            pad_begin: vec![p.0 as isize, p.1 as isize],
        }
    }

    #[test]
    fn im2col_conv_matches_direct() {
        let cases = [
            geom(3, 4, 1, (9, 11), (3, 3), (1, 1), (1, 1), (1, 1)),
            geom(4, 6, 2, (10, 7), (3, 2), (2, 1), (1, 2), (1, 0)),
            geom(2, 3, 1, (5, 5), (1, 1), (1, 1), (1, 1), (0, 0)),
            geom(2, 3, 1, (6, 5), (1, 1), (2, 2), (1, 1), (0, 0)),
            geom(1, 2, 1, (40, 300), (5, 5), (1, 3), (1, 1), (2, 2)),
        ];
        for g in cases {
            let x: Vec<f32> = (0..g.batch * g.c_in * g.in_len())
                .map(|i| ((i * 13) % 17) as f32 - 8.0)
                .collect();
            let w: Vec<f32> = (0..g.c_out * g.c_in_g() * g.k_len())
                .map(|i| ((i * 5) % 7) as f32 * 0.25 - 0.5)
                .collect();
            let b: Vec<f32> = (0..g.c_out).map(|i| i as f32 * 0.1).collect();
            let mut y = vec![f32::NAN; g.batch * g.c_out * g.out_len()];
            conv2col(
                &g,
                &x,
                &w,
                &mut y,
                &Epilogue {
                    bias: Bias::Row(&b),
                    act: Activation::None,
                },
            );
            let r = direct(&g, &x, &w, &b);
            for (i, (a, e)) in y.iter().zip(&r).enumerate() {
                assert!(
                    (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                    "{g:?} at {i}: {a} vs {e}"
                );
            }
        }
    }
}
