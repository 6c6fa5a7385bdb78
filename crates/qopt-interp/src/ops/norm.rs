//! LayerNormalization, InstanceNormalization and GroupNormalization (ONNX): normalise each
//! row (the trailing axes from `axis`; each (image, channel) plane; each (image, group)) to
//! zero mean and unit variance, `y = (x - mean) / sqrt(var + eps) * scale + B`. Mean and
//! variance accumulate in f64 (the spec's `stash_type` asks for at least f32).

use super::broadcast::{binary_map, shape_of};
use super::{Ctx, OpResult, arg, axis, contig, f32_arg, opt, tensor};
use crate::error::{OpError, bail};
use qopt_ir::Tensor;
use qopt_ir::op::{GroupNormalization, InstanceNormalization, LayerNormalization};
use rayon::prelude::*;

/// (mean, 1 / sqrt(var + eps)) of one row.
fn moments(v: &[f32], eps: f32) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (x as f64 - mean) * (x as f64 - mean))
        .sum::<f64>()
        / n;
    (mean, 1.0 / (var + eps as f64).sqrt())
}

/// `t` broadcast to `shape`, as a flat vector.
fn expand_to(t: &Tensor, shape: &[usize], what: &str) -> Result<Vec<f32>, OpError> {
    let Some(a) = t.as_f32() else {
        bail!("{what} must be f32, got {}", t.dtype())
    };
    let s = shape_of(&[a.shape(), shape])?;
    if s != shape {
        bail!(
            "{what} of shape {:?} does not broadcast to {shape:?}",
            a.shape()
        );
    }
    let n: usize = shape.iter().product();
    let mut out = vec![0f32; n];
    binary_map(
        &contig(a),
        a.shape(),
        &[0f32],
        &[],
        &mut out,
        shape,
        |x, _| x,
    );
    Ok(out)
}

pub fn layer_norm(
    o: &LayerNormalization,
    ctx: &mut Ctx,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> OpResult {
    let x = f32_arg(inputs, 0)?;
    let sh = x.shape();
    let a = axis(o.axis, sh.len())?;
    let (outer, inner) = (
        sh[..a].iter().product::<usize>(),
        sh[a..].iter().product::<usize>(),
    );
    let scale = expand_to(arg(inputs, 1)?, &sh[a..], "scale")?;
    let bias = opt(inputs, 2)
        .map(|b| expand_to(b, &sh[a..], "B"))
        .transpose()?;
    let mut y = ctx.alloc(x.len());
    y.copy_from_slice(&contig(x));
    let mut stats = vec![(0f64, 0f64); outer];
    if inner > 0 {
        y.par_chunks_mut(inner)
            .zip(stats.par_iter_mut())
            .for_each(|(row, st)| {
                let (mean, inv) = moments(row, o.epsilon);
                *st = (mean, inv);
                for (i, v) in row.iter_mut().enumerate() {
                    let n = ((*v as f64 - mean) * inv) as f32;
                    *v = n * scale[i] + bias.as_ref().map_or(0.0, |b| b[i]);
                }
            });
    }
    let mut out = vec![tensor(sh, y)?];
    let mut ssh = sh[..a].to_vec();
    ssh.extend(std::iter::repeat_n(1, sh.len() - a));
    if num_outputs > 1 {
        out.push(tensor(&ssh, stats.iter().map(|s| s.0 as f32).collect())?);
    }
    if num_outputs > 2 {
        out.push(tensor(&ssh, stats.iter().map(|s| s.1 as f32).collect())?);
    }
    Ok(out)
}

/// Normalise `[N, groups, per]` rows with per-channel (`channel_affine`) or per-group scale/B.
#[allow(clippy::too_many_arguments)]
fn grouped(
    ctx: &mut Ctx,
    x: &ndarray::ArrayD<f32>,
    groups: usize,
    scale: &[f32],
    bias: &[f32],
    eps: f32,
    channel_affine: bool,
) -> Result<Tensor, OpError> {
    let sh = x.shape();
    let c = sh[1];
    let spatial: usize = sh[2..].iter().product();
    let per = c / groups * spatial;
    let mut y = ctx.alloc(x.len());
    y.copy_from_slice(&contig(x));
    if per > 0 {
        y.par_chunks_mut(per).enumerate().for_each(|(r, row)| {
            let g = r % groups;
            let (mean, inv) = moments(row, eps);
            for (i, v) in row.iter_mut().enumerate() {
                let k = if channel_affine {
                    g * (c / groups) + i / spatial.max(1)
                } else {
                    g
                };
                *v = ((*v as f64 - mean) * inv) as f32 * scale[k] + bias[k];
            }
        });
    }
    tensor(sh, y)
}

pub fn instance_norm(
    o: &InstanceNormalization,
    ctx: &mut Ctx,
    inputs: &[Option<&Tensor>],
) -> OpResult {
    let x = f32_arg(inputs, 0)?;
    if x.ndim() < 3 {
        bail!("input must have rank >= 3, got {:?}", x.shape());
    }
    let c = x.shape()[1];
    let (s, b) = (contig(f32_arg(inputs, 1)?), contig(f32_arg(inputs, 2)?));
    if s.len() != c || b.len() != c {
        bail!("scale and B must have {c} values");
    }
    Ok(vec![grouped(ctx, x, c, &s, &b, o.epsilon, true)?])
}

pub fn group_norm(o: &GroupNormalization, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = f32_arg(inputs, 0)?;
    if x.ndim() < 3 {
        bail!("input must have rank >= 3, got {:?}", x.shape());
    }
    let c = x.shape()[1];
    let g = o.num_groups;
    if g < 1 || c % g as usize != 0 {
        bail!("num_groups {g} does not divide {c} channels");
    }
    let g = g as usize;
    let (s, b) = (contig(f32_arg(inputs, 1)?), contig(f32_arg(inputs, 2)?));
    // Opset 18 has one scale per group, opset 21 one per channel.
    let channel = s.len() == c && b.len() == c;
    if !channel && (s.len() != g || b.len() != g) {
        bail!("scale and B must have {g} or {c} values");
    }
    Ok(vec![grouped(ctx, x, g, &s, &b, o.epsilon, channel)?])
}
