//! Resize (ONNX opset 10-19) and Upsample (opset 7-9): nearest, linear and cubic interpolation
//! with every coordinate transformation mode, nearest rounding mode, `exclude_outside`,
//! `antialias`, `keep_aspect_ratio_policy`, `axes` and tf_crop_and_resize extrapolation.
//!
//! Interpolation is separable: each axis whose size changes is resized in turn, last axis
//! first, as the ONNX reference implementation (`onnx/reference/ops/op_resize.py`) recurses.
//! Per output coordinate an axis has a short list of taps (input index, weight) computed once:
//! the `n` input points nearest to the original coordinate (edge-clamped), with the reference's
//! coefficients (`ratio` in (0, 1], so an integral coordinate takes the left neighbour
//! scheme). Opset 10 Resize and Upsample use the asymmetric transform with floor rounding.

use super::{Ctx, OpResult, arg, contig, ints, numel, opt, tensor};
use crate::error::{OpError, bail};
use crate::num::Float;
use qopt_ir::Tensor;
use qopt_ir::attr::{CoordTransform, KeepAspectRatio, NearestMode, ResizeMode};
use qopt_ir::op::{Resize, Upsample};
use rayon::prelude::*;

/// Taps of one output coordinate; `None` when tf_crop_and_resize extrapolates.
type Taps = Option<Vec<(usize, f64)>>;

struct AxisPlan {
    input: usize,
    output: usize,
    taps: Vec<Taps>,
}

impl AxisPlan {
    fn is_identity(&self) -> bool {
        self.input == self.output
            && self.taps.iter().enumerate().all(|(o, t)| {
                t.as_ref().is_some_and(|t| {
                    t.iter().all(|&(i, w)| (i == o && w == 1.0) || w == 0.0)
                        && t.iter().any(|&(i, w)| i == o && w == 1.0)
                })
            })
    }
}

fn cubic_kernel(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

#[allow(clippy::too_many_arguments)]
fn axis_plan(
    o: &Resize,
    mode: ResizeMode,
    nearest: NearestMode,
    ctm: CoordTransform,
    input: usize,
    output: usize,
    scale: f64,
    roi: (f64, f64),
) -> AxisPlan {
    // The reference uses the unrounded output length `scale * input` in the transforms
    // (`output_width` in `onnx/reference/ops/op_resize.py`); with sizes, scale = out / in.
    let inf = input as f64;
    let outf = scale * inf;
    let taps = (0..output)
        .map(|oi| {
            let x = oi as f64;
            let xo = match ctm {
                CoordTransform::HalfPixel => (x + 0.5) / scale - 0.5,
                CoordTransform::HalfPixelSymmetric => {
                    let adj = output as f64 / outf;
                    let center = inf / 2.0;
                    center * (1.0 - adj) + (x + 0.5) / scale - 0.5
                }
                CoordTransform::PytorchHalfPixel => {
                    if outf == 1.0 {
                        -0.5
                    } else {
                        (x + 0.5) / scale - 0.5
                    }
                }
                CoordTransform::AlignCorners => {
                    if outf == 1.0 {
                        0.0
                    } else {
                        x * (inf - 1.0) / (outf - 1.0)
                    }
                }
                CoordTransform::Asymmetric => x / scale,
                CoordTransform::TfHalfPixelForNn => (x + 0.5) / scale,
                CoordTransform::TfCropAndResize => {
                    if outf == 1.0 {
                        (roi.1 - roi.0) * (inf - 1.0) / 2.0 + roi.0 * (inf - 1.0)
                    } else {
                        x * (roi.1 - roi.0) * (inf - 1.0) / (outf - 1.0) + roi.0 * (inf - 1.0)
                    }
                }
            };
            if ctm == CoordTransform::TfCropAndResize && (xo < 0.0 || xo > inf - 1.0) {
                return None;
            }
            let clampi = |i: i64| i.clamp(0, input as i64 - 1) as usize;
            if mode == ResizeMode::Nearest {
                let f = xo.floor();
                let i = match nearest {
                    NearestMode::RoundPreferFloor => {
                        if xo - f == 0.5 {
                            f
                        } else {
                            xo.round()
                        }
                    }
                    NearestMode::RoundPreferCeil => {
                        if xo - f == 0.5 {
                            f + 1.0
                        } else {
                            xo.round()
                        }
                    }
                    NearestMode::Floor => f,
                    NearestMode::Ceil => xo.ceil(),
                };
                return Some(vec![(clampi(i as i64), 1.0)]);
            }
            // Left neighbour i0 and ratio in (0, 1].
            let i0 = xo.ceil() - 1.0;
            let r = xo - i0;
            let aa = o.antialias != 0 && scale < 1.0;
            let s = if aa { scale } else { 1.0 };
            let (start, coeffs): (i64, Vec<f64>) = match mode {
                ResizeMode::Cubic => {
                    let a = o.cubic_coeff_a as f64;
                    let start = if aa {
                        (-2.0 / s).floor() as i64 + 1
                    } else {
                        -1
                    };
                    let end = 2 - start;
                    (
                        start,
                        (start..end)
                            .map(|i| cubic_kernel(s * (i as f64 - r), a))
                            .collect(),
                    )
                }
                _ => {
                    let start = if aa { (-1.0 / s).floor() as i64 + 1 } else { 0 };
                    let n = 2 - 2 * start;
                    (
                        start,
                        (start..start + n)
                            .map(|i| (1.0 - (s * (i as f64 - r)).abs()).clamp(0.0, 1.0))
                            .collect(),
                    )
                }
            };
            let total: f64 = coeffs.iter().sum();
            let mut taps: Vec<(i64, f64)> = coeffs
                .iter()
                .enumerate()
                .map(|(j, &c)| (i0 as i64 + start + j as i64, if aa { c / total } else { c }))
                .collect();
            if o.exclude_outside != 0 {
                taps.iter_mut().for_each(|t| {
                    if t.0 < 0 || t.0 >= input as i64 {
                        t.1 = 0.0
                    }
                });
                let sum: f64 = taps.iter().map(|t| t.1).sum();
                if sum != 0.0 {
                    taps.iter_mut().for_each(|t| t.1 /= sum);
                }
            }
            Some(
                taps.into_iter()
                    .filter(|t| t.1 != 0.0)
                    .map(|(i, w)| (clampi(i), w))
                    .collect(),
            )
        })
        .collect();
    AxisPlan {
        input,
        output,
        taps,
    }
}

/// Resize axis `a` of `data` (shape `sh`) according to `p`.
fn resize_axis<F: Float>(
    data: &[F],
    sh: &[usize],
    a: usize,
    p: &AxisPlan,
    extrapolation: F,
) -> Vec<F> {
    let outer: usize = sh[..a].iter().product();
    let inner: usize = sh[a + 1..].iter().product();
    let mut out = vec![F::zero(); outer * p.output * inner];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(p.output * inner)
        .enumerate()
        .for_each(|(oi, ob)| {
            let ib = &data[oi * p.input * inner..(oi + 1) * p.input * inner];
            for (o, t) in p.taps.iter().enumerate() {
                let dst = &mut ob[o * inner..(o + 1) * inner];
                match t {
                    None => dst.fill(extrapolation),
                    Some(t) if t.len() == 1 && t[0].1 == 1.0 => {
                        dst.copy_from_slice(&ib[t[0].0 * inner..(t[0].0 + 1) * inner])
                    }
                    Some(t) => {
                        dst.fill(F::zero());
                        for &(i, w) in t {
                            let w = F::from_f64(w);
                            for (d, &s) in dst.iter_mut().zip(&ib[i * inner..(i + 1) * inner]) {
                                *d = d.add(w.mul(s));
                            }
                        }
                    }
                }
            }
        });
    out
}

fn run_plans<F: Float>(
    data: Vec<F>,
    sh: &[usize],
    plans: &[Option<AxisPlan>],
    extrapolation: F,
) -> (Vec<F>, Vec<usize>) {
    let mut cur = data;
    let mut shape = sh.to_vec();
    let mut oob = false;
    for a in (0..sh.len()).rev() {
        if let Some(p) = &plans[a] {
            oob |= p.taps.iter().any(Option::is_none);
            if p.is_identity() {
                continue;
            }
            cur = resize_axis(&cur, &shape, a, p, extrapolation);
            shape[a] = p.output;
        }
    }
    if oob {
        // An output point is extrapolated when any axis maps it outside the input.
        let mut pos = vec![0usize; shape.len()];
        for v in cur.iter_mut() {
            if pos
                .iter()
                .enumerate()
                .any(|(a, &i)| plans[a].as_ref().is_some_and(|p| p.taps[i].is_none()))
            {
                *v = extrapolation;
            }
            for a in (0..shape.len()).rev() {
                pos[a] += 1;
                if pos[a] < shape[a] {
                    break;
                }
                pos[a] = 0;
            }
        }
    }
    (cur, shape)
}

/// Fast path: nearest-neighbour resizing of the last two axes only (every other axis kept),
/// gathered straight into the output buffer in one pass.
fn nearest_2d(
    ctx: &mut Ctx,
    a: &ndarray::ArrayD<f32>,
    plans: &[Option<AxisPlan>],
) -> Result<Option<Tensor>, OpError> {
    let r = plans.len();
    if r < 2
        || plans[..r - 2]
            .iter()
            .any(|p| p.as_ref().is_some_and(|p| !p.is_identity()))
    {
        return Ok(None);
    }
    let single = |p: &Option<AxisPlan>, n: usize| -> Option<Vec<usize>> {
        match p {
            None => Some((0..n).collect()),
            Some(p) => p
                .taps
                .iter()
                .map(|t| {
                    t.as_ref()
                        .filter(|t| t.len() == 1 && t[0].1 == 1.0)
                        .map(|t| t[0].0)
                })
                .collect(),
        }
    };
    let sh = a.shape();
    let (h, w) = (sh[r - 2], sh[r - 1]);
    let (Some(ys), Some(xs)) = (single(&plans[r - 2], h), single(&plans[r - 1], w)) else {
        return Ok(None);
    };
    let (oh, ow) = (ys.len(), xs.len());
    let planes: usize = sh[..r - 2].iter().product();
    let mut osh = sh.to_vec();
    osh[r - 2] = oh;
    osh[r - 1] = ow;
    let mut y = ctx.alloc(numel(&osh)?);
    let xd = contig(a);
    if oh * ow > 0 {
        y.par_chunks_mut(oh * ow).enumerate().for_each(|(p, out)| {
            let src = &xd[p * h * w..(p + 1) * h * w];
            for (oy, &iy) in ys.iter().enumerate() {
                let row = &src[iy * w..(iy + 1) * w];
                for (o, &ix) in out[oy * ow..(oy + 1) * ow].iter_mut().zip(&xs) {
                    *o = row[ix];
                }
            }
        });
    }
    let _ = planes;
    Ok(Some(tensor(&osh, y)?))
}

fn floats(t: &Tensor, what: &str) -> Result<Vec<f64>, OpError> {
    if !t.dtype().is_float() {
        bail!("{what} must be a float tensor, got {}", t.dtype());
    }
    Ok(t.to_f64_vec())
}

#[allow(clippy::too_many_arguments)]
fn resize_impl(
    o: &Resize,
    mode: ResizeMode,
    nearest: NearestMode,
    ctm: CoordTransform,
    ctx: &mut Ctx,
    x: &Tensor,
    roi: Option<&Tensor>,
    scales: Option<&Tensor>,
    sizes: Option<&Tensor>,
) -> OpResult {
    let sh = x.shape().to_vec();
    let rank = sh.len();
    // `axes` keeps the attribute's order: scales and sizes follow it.
    super::axes(&o.axes, rank)?;
    let axes: Vec<usize> = if o.axes.is_empty() {
        (0..rank).collect()
    } else {
        o.axes
            .iter()
            .map(|&a| super::axis(a, rank))
            .collect::<Result<_, _>>()?
    };
    let sizes = sizes.filter(|t| !t.is_empty());
    let scales = scales.filter(|t| !t.is_empty());
    let mut out = sh.clone();
    let mut sc = vec![1f64; rank];
    match (scales, sizes) {
        (_, Some(sz)) => {
            let v = ints(sz, "sizes")?;
            if v.len() != axes.len() || v.iter().any(|&d| d < 0) {
                bail!("sizes {v:?} do not fit axes {axes:?}");
            }
            if o.keep_aspect_ratio_policy == KeepAspectRatio::Stretch {
                for (k, &a) in axes.iter().enumerate() {
                    out[a] = v[k] as usize;
                    sc[a] = if sh[a] == 0 {
                        1.0
                    } else {
                        v[k] as f64 / sh[a] as f64
                    };
                }
            } else {
                let ratios = axes
                    .iter()
                    .enumerate()
                    .map(|(k, &a)| v[k] as f64 / sh[a].max(1) as f64);
                let s = if o.keep_aspect_ratio_policy == KeepAspectRatio::NotLarger {
                    ratios.fold(f64::INFINITY, f64::min)
                } else {
                    ratios.fold(0.0, f64::max)
                };
                for &a in &axes {
                    // Round half up, as the reference's `np.round(scale * dim)` after adding
                    // a tiny epsilon does for these sizes.
                    out[a] = (s * sh[a] as f64 + 0.5).floor() as usize;
                    sc[a] = s;
                }
            }
        }
        (Some(s), None) => {
            let v = floats(s, "scales")?;
            if v.len() != axes.len() || v.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
                bail!("scales {v:?} do not fit axes {axes:?} or are not positive");
            }
            for (k, &a) in axes.iter().enumerate() {
                sc[a] = v[k];
                let n = sh[a] as f64 * v[k];
                out[a] = if n.is_finite() && n >= 0.0 {
                    n.floor() as usize
                } else {
                    bail!("bad scale {}", v[k])
                };
            }
        }
        (None, None) => bail!("Resize needs scales or sizes"),
    }
    numel(&out)?;
    let roi_v: Vec<f64> = match roi {
        Some(r) if !r.is_empty() && ctm == CoordTransform::TfCropAndResize => floats(r, "roi")?,
        _ => vec![],
    };
    let plans: Vec<Option<AxisPlan>> = (0..rank)
        .map(|a| {
            let k = axes.iter().position(|&x| x == a)?;
            let r = if roi_v.len() == 2 * axes.len() {
                (roi_v[k], roi_v[k + axes.len()])
            } else if roi_v.len() == 2 * rank {
                (roi_v[a], roi_v[a + rank])
            } else {
                (0.0, 1.0)
            };
            if sh[a] == 0 || out[a] == 0 {
                return None;
            }
            Some(axis_plan(o, mode, nearest, ctm, sh[a], out[a], sc[a], r))
        })
        .collect();
    if sh.iter().chain(&out).any(|&d| d == 0) {
        return Ok(vec![Tensor::zeros(x.dtype(), &out)]);
    }
    if let Tensor::F32(a) = x
        && let Some(t) = nearest_2d(ctx, a, &plans)?
    {
        return Ok(vec![t]);
    }
    let t = match x {
        Tensor::F32(a) => {
            let (v, s) = run_plans(contig(a).into_owned(), &sh, &plans, o.extrapolation_value);
            let mut y = ctx.alloc(v.len());
            y.copy_from_slice(&v);
            tensor(&s, y)?
        }
        other => {
            let d = other.cast(qopt_ir::DType::F64);
            let a = d.view::<f64>().expect("f64");
            let (v, s) = run_plans(
                contig(a).into_owned(),
                &sh,
                &plans,
                o.extrapolation_value as f64,
            );
            tensor(&s, v)?.cast(other.dtype())
        }
    };
    Ok(vec![t])
}

pub fn resize(o: &Resize, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    if ctx.opset <= 10 {
        // Opset 10: inputs X, scales; asymmetric coordinates.
        let mode = if o.mode == ResizeMode::Nearest {
            ResizeMode::Nearest
        } else {
            ResizeMode::Linear
        };
        return resize_impl(
            o,
            mode,
            NearestMode::Floor,
            CoordTransform::Asymmetric,
            ctx,
            x,
            None,
            opt(inputs, 1),
            None,
        );
    }
    let mode = if o.mode == ResizeMode::Bilinear {
        ResizeMode::Linear
    } else {
        o.mode
    };
    resize_impl(
        o,
        mode,
        o.nearest_mode,
        o.coordinate_transformation_mode,
        ctx,
        x,
        opt(inputs, 1),
        opt(inputs, 2),
        opt(inputs, 3),
    )
}

pub fn upsample(o: &Upsample, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let Some(scales) = opt(inputs, 1) else {
        bail!("Upsample needs a scales input")
    };
    let mode = if o.mode == ResizeMode::Nearest {
        ResizeMode::Nearest
    } else {
        ResizeMode::Linear
    };
    resize_impl(
        &Resize::default(),
        mode,
        NearestMode::Floor,
        CoordTransform::Asymmetric,
        ctx,
        x,
        None,
        Some(scales),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::BufferPool;

    fn rs(o: Resize, x: Tensor, scales: &[f32]) -> Vec<f32> {
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset: 19,
            pool: &mut pool,
        };
        let s = Tensor::from_vec(&[scales.len()], scales.to_vec());
        resize(&o, &mut ctx, &[Some(&x), None, Some(&s)]).unwrap()[0]
            .as_f32()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn nearest_and_linear_by_hand() {
        // [1, 2] upsampled x2 along the last axis.
        let x = Tensor::from_vec(&[1, 2], vec![1f32, 2.0]);
        let near = Resize {
            coordinate_transformation_mode: CoordTransform::Asymmetric,
            nearest_mode: NearestMode::Floor,
            ..Default::default()
        };
        assert_eq!(rs(near, x.clone(), &[1.0, 2.0]), vec![1.0, 1.0, 2.0, 2.0]);
        // half_pixel linear: x_orig = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (edges clamp).
        let lin = Resize {
            mode: ResizeMode::Linear,
            ..Default::default()
        };
        assert_eq!(
            rs(lin.clone(), x.clone(), &[1.0, 2.0]),
            vec![1.0, 1.25, 1.75, 2.0]
        );
        let ac = Resize {
            mode: ResizeMode::Linear,
            coordinate_transformation_mode: CoordTransform::AlignCorners,
            ..Default::default()
        };
        let v = rs(ac, x, &[1.0, 2.0]);
        assert!((v[1] - 4.0 / 3.0).abs() < 1e-6 && v[3] == 2.0);
    }
}
