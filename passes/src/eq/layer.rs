//! The layers `eq` optimises, seen as one matrix product per group: output channel `c` of
//! group `g` at position `p` is `X_g[p, :] . w_c + b_c`, where `X_g` is the im2col matrix of
//! the layer input (Conv) or the input rows themselves (Gemm, MatMul). Scales are searched on
//! this form because it makes a channel's output depend on that channel's weights alone.

use qopt_ir::attr::AutoPad;
use qopt_ir::{Graph, NodeId, Op};

/// The geometry of a layer `eq` can search.
#[derive(Clone, Debug)]
pub(crate) enum Geom {
    /// 2-D convolution, NCHW input, weight `[Cout, Cin/group, kh, kw]`.
    Conv {
        group: usize,
        cin_g: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        /// Padding at the start of H and W (the end needs no bookkeeping: out of range reads 0).
        pad: [usize; 2],
    },
    /// `Y[p, :] = X[p, :] W` with `K` inputs per row (Gemm without transA, MatMul with a 2-D
    /// weight).
    Dense { k: usize },
}

/// A searchable layer: its geometry and its weight as rows `[Cout][K]`.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub geom: Geom,
    pub cout: usize,
    /// Weight rows, `w_rows[c]` of length `k()`.
    pub w_rows: Vec<Vec<f32>>,
    /// Bias per output channel (zeros without one).
    pub bias: Vec<f32>,
    /// The axis of the weight tensor that indexes output channels.
    pub axis: usize,
}

fn ints(v: &[i64], n: usize, default: usize) -> Option<Vec<usize>> {
    if v.is_empty() {
        return Some(vec![default; n]);
    }
    (v.len() == n && v.iter().all(|&x| x >= 0)).then(|| v.iter().map(|&x| x as usize).collect())
}

impl Layer {
    /// The layer at node `n`, when `eq` can search it: Conv 2-D, Gemm (no transA, alpha =
    /// beta = 1, vector bias) and MatMul with a 2-D constant weight. `in_shape` is the shape of
    /// input 0 on a sample, `out_shape` that of the output.
    pub fn of(g: &Graph, n: NodeId, in_shape: &[usize], out_shape: &[usize]) -> Option<Layer> {
        let w = g.const_input(n, 1)?;
        let wa = w.as_f32()?;
        let ws = wa.shape().to_vec();
        let wv: Vec<f32> = wa.iter().copied().collect();
        let bias_of = |cout: usize| -> Option<Vec<f32>> {
            match g.const_input(n, 2) {
                None if g.input(n, 2).is_none() => Some(vec![0.0; cout]),
                None => None,
                Some(b) => {
                    let b: Vec<f32> = b.as_f32()?.iter().copied().collect();
                    (b.len() == cout).then_some(b)
                }
            }
        };
        match &g.node(n).op {
            Op::Conv(c) => {
                if ws.len() != 4 || in_shape.len() != 4 || out_shape.len() != 4 {
                    return None;
                }
                let group = usize::try_from(c.group).ok()?.max(1);
                let (cout, cin_g, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
                if in_shape[1] != cin_g * group || cout % group != 0 || out_shape[1] != cout {
                    return None;
                }
                let stride = ints(&c.strides, 2, 1)?;
                let dilation = ints(&c.dilations, 2, 1)?;
                let pads = ints(&c.pads, 4, 0)?;
                let mut pad = [pads[0], pads[1]];
                match c.auto_pad {
                    AutoPad::NotSet => {}
                    AutoPad::Valid => pad = [0, 0],
                    AutoPad::SameUpper | AutoPad::SameLower => {
                        for d in 0..2 {
                            let k = [kh, kw][d];
                            let need =
                                (out_shape[2 + d] - 1) * stride[d] + dilation[d] * (k - 1) + 1;
                            let total = need.saturating_sub(in_shape[2 + d]);
                            pad[d] = if c.auto_pad == AutoPad::SameUpper {
                                total / 2
                            } else {
                                total - total / 2
                            };
                        }
                    }
                }
                let k = cin_g * kh * kw;
                Some(Layer {
                    geom: Geom::Conv {
                        group,
                        cin_g,
                        kernel: [kh, kw],
                        stride: [stride[0], stride[1]],
                        dilation: [dilation[0], dilation[1]],
                        pad,
                    },
                    cout,
                    w_rows: wv.chunks(k).map(<[f32]>::to_vec).collect(),
                    bias: bias_of(cout)?,
                    axis: 0,
                })
            }
            Op::Gemm(gm) => {
                if gm.trans_a != 0 || gm.alpha != 1.0 || gm.beta != 1.0 || ws.len() != 2 {
                    return None;
                }
                let (k, cout, axis) = if gm.trans_b != 0 {
                    (ws[1], ws[0], 0)
                } else {
                    (ws[0], ws[1], 1)
                };
                Some(Layer {
                    geom: Geom::Dense { k },
                    cout,
                    w_rows: dense_rows(&wv, k, cout, gm.trans_b != 0),
                    bias: bias_of(cout)?,
                    axis,
                })
            }
            Op::MatMul(_) => {
                if ws.len() != 2 || g.input(n, 2).is_some() {
                    return None;
                }
                let (k, cout) = (ws[0], ws[1]);
                if in_shape.last() != Some(&k) {
                    return None;
                }
                Some(Layer {
                    geom: Geom::Dense { k },
                    cout,
                    w_rows: dense_rows(&wv, k, cout, false),
                    bias: vec![0.0; cout],
                    axis: 1,
                })
            }
            _ => None,
        }
    }

    pub fn groups(&self) -> usize {
        match self.geom {
            Geom::Conv { group, .. } => group,
            Geom::Dense { .. } => 1,
        }
    }

    /// Inputs per output channel.
    pub fn k(&self) -> usize {
        match self.geom {
            Geom::Conv { cin_g, kernel, .. } => cin_g * kernel[0] * kernel[1],
            Geom::Dense { k } => k,
        }
    }

    pub fn cout_g(&self) -> usize {
        self.cout / self.groups()
    }

    /// Output positions of one sample (`N*OH*OW` for Conv, the rows for Dense).
    pub fn positions(&self, out_shape: &[usize]) -> usize {
        match self.geom {
            Geom::Conv { .. } => out_shape[0] * out_shape[2] * out_shape[3],
            Geom::Dense { .. } => out_shape.iter().product::<usize>() / self.cout.max(1),
        }
    }

    /// Row `p` of `X_g` (length `k()`) from one sample's input `x`, into `row`.
    pub fn input_row(
        &self,
        x: &[f32],
        in_shape: &[usize],
        out_shape: &[usize],
        grp: usize,
        p: usize,
        row: &mut [f32],
    ) {
        match &self.geom {
            Geom::Dense { k } => row.copy_from_slice(&x[p * k..(p + 1) * k]),
            Geom::Conv {
                cin_g,
                kernel,
                stride,
                dilation,
                pad,
                ..
            } => {
                let (c_in, h, w) = (in_shape[1], in_shape[2], in_shape[3]);
                let (oh, ow) = (out_shape[2], out_shape[3]);
                let n = p / (oh * ow);
                let (y, xo) = ((p / ow) % oh, p % ow);
                let mut i = 0;
                for ci in 0..*cin_g {
                    let plane = &x[(n * c_in + grp * cin_g + ci) * h * w..][..h * w];
                    for ky in 0..kernel[0] {
                        let iy = (y * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                        for kx in 0..kernel[1] {
                            let ix = (xo * stride[1] + kx * dilation[1]) as isize - pad[1] as isize;
                            row[i] = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                            {
                                plane[iy as usize * w + ix as usize]
                            } else {
                                0.0
                            };
                            i += 1;
                        }
                    }
                }
            }
        }
    }

    /// Output channel `c` at position `p` of one sample's output `y`.
    pub fn output_at(&self, y: &[f32], out_shape: &[usize], p: usize, c: usize) -> f32 {
        match self.geom {
            Geom::Conv { .. } => {
                let hw = out_shape[2] * out_shape[3];
                let n = p / hw;
                y[(n * self.cout + c) * hw + p % hw]
            }
            Geom::Dense { .. } => y[p * self.cout + c],
        }
    }
}

/// Rows `[cout][k]` of a 2-D weight stored `[cout, k]` (transposed) or `[k, cout]`.
fn dense_rows(w: &[f32], k: usize, cout: usize, transposed: bool) -> Vec<Vec<f32>> {
    (0..cout)
        .map(|c| {
            (0..k)
                .map(|j| {
                    if transposed {
                        w[c * k + j]
                    } else {
                        w[j * cout + c]
                    }
                })
                .collect()
        })
        .collect()
}
