//! The two searches of EasyQuant (Wu et al. 2020, §3.2, Eq. 5-6), on the matrix form of a
//! layer ([`super::layer`]): for candidate scales on the grid `[alpha*S, beta*S]`, the cosine
//! similarity between the fp32 layer output and the output computed from the quantized input
//! and weights; the candidate with the highest cosine wins (the current one on ties).
//!
//! Weights: channel `c`'s output is `X w_c + b_c`, so its cosine needs only the sufficient
//! statistics `G = X^T X`, `X^T y_c`, `X^T 1` (`Stats`), gathered once per round over every
//! position of every sample; each candidate then costs one `K x K` quadratic form instead of a
//! convolution. The cosine is that of channel `c`'s output over all samples taken together
//! (the paper averages per-sample cosines of the whole output; per channel and pooled is what
//! makes channels independent).
//!
//! Activation: the input scale changes every channel, so each candidate runs the layer as a
//! matrix product on a fixed, evenly spaced subset of output positions of every sample
//! (enough positions for about `ACT_VALUES` output values, at most `ACT_POSITIONS`); the
//! score is the mean over samples of the per-sample cosine, as in the paper. The grid is
//! searched coarse to fine (every `sqrt(steps)`-th point, then every point around the best
//! of those), which finds the grid's best point when the cosine is unimodal in the scale, as
//! it is in practice: about `3 sqrt(steps)` evaluations instead of `steps`.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::layer::Layer;

/// Most output positions (over all samples) the activation search evaluates a candidate on.
pub(crate) const ACT_POSITIONS: usize = 2048;
/// Output values (positions x channels) the activation search aims for.
pub(crate) const ACT_VALUES: usize = 65536;

/// Rows gathered at a time when building the statistics.
const CHUNK: usize = 1024;
/// Most output positions (over all samples) the weight statistics are gathered on.
pub(crate) const STAT_POSITIONS: usize = 16384;

/// Fake quantization `(clamp(rint(x / s) + zp, qmin, qmax) - zp) * s`, the same numbers as
/// `qopt_calib::qparams::fake_quantize_slice` (clamping first to the integer bounds, then
/// rounding, is the same thing), but written so that it vectorises: the rounding is the
/// `1.5 * 2^23` trick (round half to even in the default rounding mode, exact for the small
/// clamped values), where `f32::round_ties_even` is a libm call without SSE4.1.
pub(crate) fn fake_quantize(xs: &[f32], s: f32, zp: i32, qmin: i32, qmax: i32) -> Vec<f32> {
    const MAGIC: f32 = 12_582_912.0;
    let (lo, hi) = ((qmin - zp) as f32, (qmax - zp) as f32);
    xs.iter()
        .map(|&x| {
            let v = (x / s).clamp(lo, hi);
            ((v + MAGIC) - MAGIC) * s
        })
        .collect()
}

/// `dot / sqrt(nq * yy)`, 0 when either side is all zero.
pub(crate) fn cosine(dot: f64, nq: f64, yy: f64) -> f64 {
    if nq > 0.0 && yy > 0.0 {
        dot / (nq * yy).sqrt()
    } else {
        0.0
    }
}

/// One sample of the layer as the searches read it: the input (already fake-quantized for the
/// weight search, before its own quantization for the activation search) and the fp32 output.
pub(crate) struct SampleView<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
}

/// Sufficient statistics of one round, per group `g`.
pub(crate) struct Stats {
    gram: Vec<Array2<f64>>,
    xty: Vec<Array2<f64>>,
    colsum: Vec<Vec<f64>>,
    /// Per output channel: sum of the fp32 output and of its square.
    sy: Vec<f64>,
    yy: Vec<f64>,
    positions: f64,
}

impl Stats {
    fn zero(l: &Layer) -> Stats {
        let (k, cg, groups) = (l.k(), l.cout_g(), l.groups());
        Stats {
            gram: vec![Array2::zeros((k, k)); groups],
            xty: vec![Array2::zeros((k, cg)); groups],
            colsum: vec![vec![0.0; k]; groups],
            sy: vec![0.0; l.cout],
            yy: vec![0.0; l.cout],
            positions: 0.0,
        }
    }

    fn add(&mut self, o: &Stats) {
        for (a, b) in self.gram.iter_mut().zip(&o.gram) {
            *a += b;
        }
        for (a, b) in self.xty.iter_mut().zip(&o.xty) {
            *a += b;
        }
        for (a, b) in self.colsum.iter_mut().zip(&o.colsum) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.sy.iter_mut().zip(&o.sy).for_each(|(x, y)| *x += y);
        self.yy.iter_mut().zip(&o.yy).for_each(|(x, y)| *x += y);
        self.positions += o.positions;
    }

    /// The statistics of `samples` on evenly spaced output positions of each sample (at
    /// most `STAT_POSITIONS` in all: the `K x K` statistics need far fewer rows than an early
    /// layer's 50 x 112 x 112), gathered in chunks of rows across samples and summed in
    /// chunk order (deterministic).
    pub fn gather(
        l: &Layer,
        samples: &[SampleView],
        in_shape: &[usize],
        out_shape: &[usize],
    ) -> Stats {
        let np = l.positions(out_shape);
        let per = STAT_POSITIONS.div_ceil(samples.len().max(1)).min(np).max(1);
        let rows: Vec<(usize, usize)> = (0..samples.len())
            .flat_map(|i| (0..per).map(move |j| (i, j * np / per)))
            .collect();
        let parts: Vec<Stats> = rows
            .par_chunks(CHUNK)
            .map(|chunk| {
                let mut s = Stats::zero(l);
                s.add_rows(l, samples, chunk, in_shape, out_shape);
                s
            })
            .collect();
        let mut total = Stats::zero(l);
        for p in &parts {
            total.add(p);
        }
        total
    }

    fn add_rows(
        &mut self,
        l: &Layer,
        samples: &[SampleView],
        rows: &[(usize, usize)],
        in_shape: &[usize],
        out_shape: &[usize],
    ) {
        let (k, cg) = (l.k(), l.cout_g());
        self.positions += rows.len() as f64;
        for &(i, p) in rows {
            for c in 0..l.cout {
                let y = l.output_at(samples[i].y, out_shape, p, c) as f64;
                self.sy[c] += y;
                self.yy[c] += y * y;
            }
        }
        for grp in 0..l.groups() {
            let mut x = Array2::<f32>::zeros((rows.len(), k));
            let mut y = Array2::<f32>::zeros((rows.len(), cg));
            for (r, &(i, p)) in rows.iter().enumerate() {
                let row = x.row_mut(r).into_slice().expect("standard layout");
                l.input_row(samples[i].x, in_shape, out_shape, grp, p, row);
                for j in 0..cg {
                    y[(r, j)] = l.output_at(samples[i].y, out_shape, p, grp * cg + j);
                }
            }
            let xt = x.t();
            self.gram[grp] += &xt.dot(&x).mapv(f64::from);
            self.xty[grp] += &xt.dot(&y).mapv(f64::from);
            for (a, col) in self.colsum[grp].iter_mut().zip(x.axis_iter(Axis(1))) {
                *a += col.iter().map(|&v| v as f64).sum::<f64>();
            }
        }
    }
}

/// Symmetric fake quantization of a weight row with scale `s` on `[-qmax, qmax]`.
pub(crate) fn fq_weight_row(row: &[f32], s: f32, qmax: i32) -> Vec<f32> {
    fake_quantize(row, s, 0, -qmax, qmax)
}

/// Weight search: for each unit (a set of channels sharing one scale: one channel when per
/// channel, all channels when per tensor), the factor among `current` and `grid` whose scale
/// `factor * base[unit]` gives the highest cosine. Returns one factor per unit.
pub(crate) fn search_weights(
    l: &Layer,
    st: &Stats,
    units: &[Vec<usize>],
    base: &[f32],
    current: &[f32],
    grid: &[f32],
    qmax: i32,
) -> Vec<f32> {
    units
        .par_iter()
        .enumerate()
        .map(|(u, chans)| {
            coarse_to_fine(current[u], grid, |c| {
                weight_cosines(l, st, chans, base[u], c, qmax)
            })
        })
        .collect()
}

/// The cosine of the output of channels `chans` (pooled over positions and channels) for
/// each weight scale `f * base` of `cands`, from the statistics alone.
pub(crate) fn weight_cosines(
    l: &Layer,
    st: &Stats,
    chans: &[usize],
    base: f32,
    cands: &[f32],
    qmax: i32,
) -> Vec<f64> {
    let (k, cg) = (l.k(), l.cout_g());
    let n = cands.len();
    let (mut dot, mut nq, mut yy) = (vec![0f64; n], vec![0f64; n], 0f64);
    for &c in chans {
        let (grp, local) = (c / cg, c % cg);
        let mut wq = Array2::<f64>::zeros((k, n));
        for (i, f) in cands.iter().enumerate() {
            let q = fq_weight_row(&l.w_rows[c], f * base, qmax);
            for (j, v) in q.into_iter().enumerate() {
                wq[(j, i)] = v as f64;
            }
        }
        let gw = st.gram[grp].dot(&wq);
        let b = l.bias[c] as f64;
        let xty = st.xty[grp].column(local);
        for i in 0..n {
            let col = wq.column(i);
            let quad = col.dot(&gw.column(i));
            let lin: f64 = col.iter().zip(&st.colsum[grp]).map(|(a, m)| a * m).sum();
            nq[i] += quad + 2.0 * b * lin + b * b * st.positions;
            dot[i] += col.dot(&xty) + b * st.sy[c];
        }
        yy += st.yy[c];
    }
    (0..n).map(|i| cosine(dot[i], nq[i], yy)).collect()
}

/// The best of `current` and the points of `grid` by `score` (which scores a list of factors),
/// searched coarse to fine: `current` and every `ceil(sqrt(n))`-th grid point, then every grid
/// point between the neighbours of the best of those. Ties keep the earlier candidate, so the
/// current factor stays unless another is strictly better.
fn coarse_to_fine(current: f32, grid: &[f32], score: impl Fn(&[f32]) -> Vec<f64>) -> f32 {
    let stride = (grid.len() as f64).sqrt().ceil().max(1.0) as usize;
    let mut idx: Vec<usize> = (0..grid.len()).step_by(stride).collect();
    if idx.last() != Some(&(grid.len() - 1)) {
        idx.push(grid.len() - 1);
    }
    let mut cands = vec![current];
    cands.extend(idx.iter().map(|&i| grid[i]));
    let scores = score(&cands);
    let mut bi = 0;
    for i in 1..cands.len() {
        if scores[i] > scores[bi] {
            bi = i;
        }
    }
    if bi == 0 {
        return current;
    }
    let centre = idx[bi - 1];
    let (lo, hi) = (
        centre.saturating_sub(stride - 1),
        (centre + stride - 1).min(grid.len() - 1),
    );
    let fine: Vec<f32> = (lo..=hi)
        .filter(|i| !idx.contains(i))
        .map(|i| grid[i])
        .collect();
    let fine_scores = score(&fine);
    let (mut bf, mut bs) = (grid[centre], scores[bi]);
    for (f, s) in fine.iter().zip(fine_scores) {
        if s > bs {
            (bf, bs) = (*f, s);
        }
    }
    bf
}

/// The subset of one sample's output positions the activation search uses, for a layer with
/// `cout` output channels.
pub(crate) fn act_positions(np: usize, samples: usize, cout: usize) -> Vec<usize> {
    let total = ACT_VALUES.div_ceil(cout.max(1)).clamp(256, ACT_POSITIONS);
    let per = total.div_ceil(samples.max(1)).min(np).max(1);
    (0..per).map(|j| j * np / per).collect()
}

/// Activation search: the factor among `current` and `grid` for the input scale `s0 * f`
/// (zero point `zp`, grid `[qmin, qmax]`) with the highest mean per-sample cosine, the weights
/// fixed at `wq_rows`. `x_pre[g]` holds the rows of group `g` at the chosen positions,
/// sample-major with `per` rows per sample; `y` the fp32 outputs there (rows x cout).
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_activation(
    l: &Layer,
    x_pre: &[Array2<f32>],
    y: ArrayView2<f32>,
    per: usize,
    wq_rows: &[Vec<f32>],
    (s0, zp, qmin, qmax): (f32, i32, i32, i32),
    current: f32,
    grid: &[f32],
) -> f32 {
    let (k, cg) = (l.k(), l.cout_g());
    let wq: Vec<Array2<f32>> = (0..l.groups())
        .map(|grp| Array2::from_shape_fn((k, cg), |(j, c)| wq_rows[grp * cg + c][j]))
        .collect();
    let samples = y.nrows() / per.max(1);
    let score = |f: f32| -> f64 {
        let s = s0 * f;
        let (mut dot, mut nq, mut yy) = (
            vec![0f64; samples],
            vec![0f64; samples],
            vec![0f64; samples],
        );
        for grp in 0..l.groups() {
            let xs = x_pre[grp].as_slice().expect("standard layout");
            let xq = fake_quantize(xs, s, zp, qmin, qmax);
            let xq = ArrayView2::from_shape(x_pre[grp].raw_dim(), &xq).expect("same shape");
            let out = xq.dot(&wq[grp]);
            for (r, row) in out.axis_iter(Axis(0)).enumerate() {
                let smp = r / per;
                for (j, &v) in row.iter().enumerate() {
                    let c = grp * cg + j;
                    let q = (v + l.bias[c]) as f64;
                    let t = y[(r, c)] as f64;
                    dot[smp] += q * t;
                    nq[smp] += q * q;
                    yy[smp] += t * t;
                }
            }
        }
        (0..samples)
            .map(|i| cosine(dot[i], nq[i], yy[i]))
            .sum::<f64>()
            / samples.max(1) as f64
    };
    coarse_to_fine(current, grid, |c| c.par_iter().map(|&f| score(f)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_calib::qparams::fake_quantize_slice;

    /// The fast fake quantization equals the reference one (ONNX QuantizeLinear then
    /// DequantizeLinear, `qopt_calib::qparams`), ties and saturation included.
    #[test]
    fn fake_quantize_matches_reference() {
        let xs: Vec<f32> = (-2000..2000)
            .map(|i| i as f32 * 0.0137)
            .chain([0.5, 1.5, 2.5, -0.5, -1.5, 1e9, -1e9, 0.0])
            .collect();
        for (s, zp, lo, hi) in [
            (0.1, 0, -127, 127),
            (0.05, -20, -128, 127),
            (1.0, 0, -64, 63),
        ] {
            assert_eq!(
                fake_quantize(&xs, s, zp, lo, hi),
                fake_quantize_slice(&xs, s, zp, lo, hi)
            );
        }
    }
}
