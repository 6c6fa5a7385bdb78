//! BatchNormalization (ONNX), inference mode: per channel (axis 1),
//! `y = (x - mean) / sqrt(var + eps) * scale + B`, computed as `x * a + b` with
//! `a = scale / sqrt(var + eps)`, `b = B - mean * a` (ONNX Runtime's formulation).
//! Training mode (running statistics as outputs) is rejected.

use super::{Ctx, OpResult, arg, contig, f32_arg, tensor};
use crate::error::{OpError, bail};
use crate::kernels::simd::multiversion;
use qopt_ir::Tensor;
use qopt_ir::op::BatchNormalization;
use rayon::prelude::*;

/// Per-channel (a, b) of `y = x * a + b`.
pub fn affine(
    o: &BatchNormalization,
    inputs: &[Option<&Tensor>],
    c: usize,
) -> Result<(Vec<f32>, Vec<f32>), OpError> {
    if o.training_mode != 0 {
        bail!("training_mode BatchNormalization is not supported (inference only)");
    }
    let p = |i: usize, what: &str| -> Result<Vec<f32>, OpError> {
        let t = f32_arg(inputs, i)?;
        if t.len() != c {
            bail!("{what} has {} values for {c} channels", t.len());
        }
        Ok(contig(t).into_owned())
    };
    let (scale, beta, mean, var) = (p(1, "scale")?, p(2, "B")?, p(3, "mean")?, p(4, "var")?);
    let a: Vec<f32> = (0..c)
        .map(|i| scale[i] / (var[i] + o.epsilon).sqrt())
        .collect();
    let b: Vec<f32> = (0..c).map(|i| beta[i] - mean[i] * a[i]).collect();
    Ok((a, b))
}

multiversion! {
    /// `data = data * a[c] + b[c]` over `[N, C, inner]` data.
    pub fn apply_inplace(data: &mut [f32], c: usize, inner: usize, a: &[f32], b: &[f32]) {
        if inner == 0 || c == 0 {
            return;
        }
        data.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(i, plane)| {
                let (a, b) = (a[i % c], b[i % c]);
                plane.iter_mut().for_each(|v| *v = v.mul_add(a, b));
            });
    }
}

pub fn run(o: &BatchNormalization, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let Some(xa) = x.as_f32() else {
        bail!("X must be f32, got {}", x.dtype())
    };
    let sh = xa.shape();
    if sh.len() < 2 {
        bail!("X must have rank >= 2, got {sh:?}");
    }
    let c = sh[1];
    let (a, b) = affine(o, inputs, c)?;
    let mut y = ctx.alloc(xa.len());
    y.copy_from_slice(&contig(xa));
    apply_inplace(&mut y, c, sh[2..].iter().product(), &a, &b);
    Ok(vec![tensor(sh, y)?])
}
