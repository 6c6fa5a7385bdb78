//! MaxPool (with the optional Indices output), AveragePool, GlobalAveragePool and
//! GlobalMaxPool (ONNX operator specs), over 1 to 3 spatial axes.

use super::conv::{axis_geometry, spatial_attr};
use super::{Ctx, OpResult, contig, numel, tensor};
use crate::error::{OpError, bail};
use crate::kernels::pool::{PoolGeometry, avg_pool as avg_kernel, max_pool as max_kernel};
use crate::kernels::simd::multiversion;
use qopt_ir::Tensor;
use qopt_ir::attr::AutoPad;
use qopt_ir::op::{AveragePool, MaxPool};
use rayon::prelude::*;

struct Attrs<'a> {
    auto_pad: AutoPad,
    ceil_mode: bool,
    dilations: &'a [i64],
    kernel: &'a [i64],
    pads: &'a [i64],
    strides: &'a [i64],
}

fn geometry(a: &Attrs, xs: &[usize]) -> Result<(PoolGeometry, Vec<usize>), OpError> {
    if xs.len() < 3 || xs.len() > 5 {
        bail!("pooling needs an input of rank 3 to 5, got {xs:?}");
    }
    let n = xs.len() - 2;
    let kernel = spatial_attr(a.kernel, n, 1, "kernel_shape")?;
    if a.kernel.len() != n {
        bail!("kernel_shape {:?} does not fit {n} spatial axes", a.kernel);
    }
    let strides = spatial_attr(a.strides, n, 1, "strides")?;
    let dilations = spatial_attr(a.dilations, n, 1, "dilations")?;
    let pads = spatial_attr(a.pads, 2 * n, 0, "pads")?;
    let mut g = PoolGeometry {
        planes: xs[0] * xs[1],
        in_sp: [1; 3],
        out_sp: [1; 3],
        kernel: [1; 3],
        strides: [1; 3],
        dilations: [1; 3],
        pad_begin: [0; 3],
        pad_end: [0; 3],
    };
    let off = 3 - n;
    let mut osh = xs[..2].to_vec();
    for i in 0..n {
        let (o, pb, pe) = axis_geometry(
            xs[2 + i],
            kernel[i],
            strides[i],
            dilations[i],
            (pads[i], pads[i + n]),
            a.auto_pad,
            a.ceil_mode,
        )?;
        g.in_sp[off + i] = xs[2 + i];
        g.out_sp[off + i] = o;
        g.kernel[off + i] = kernel[i];
        g.strides[off + i] = strides[i];
        g.dilations[off + i] = dilations[i];
        g.pad_begin[off + i] = pb;
        g.pad_end[off + i] = pe;
        osh.push(o);
    }
    Ok((g, osh))
}

fn f32_input(x: &Tensor) -> Result<&ndarray::ArrayD<f32>, OpError> {
    match x.as_f32() {
        Some(a) => Ok(a),
        None => bail!("pooling input must be f32, got {}", x.dtype()),
    }
}

pub fn max_pool(o: &MaxPool, ctx: &mut Ctx, x: &Tensor, num_outputs: usize) -> OpResult {
    if matches!(x.dtype(), qopt_ir::DType::U8 | qopt_ir::DType::I8) {
        // 8-bit values are exact in f32, and so is their maximum.
        let mut y = max_pool(o, ctx, &x.cast(qopt_ir::DType::F32), num_outputs)?;
        y[0] = y[0].cast(x.dtype());
        return Ok(y);
    }
    let xa = f32_input(x)?;
    let attrs = Attrs {
        auto_pad: o.auto_pad,
        ceil_mode: o.ceil_mode != 0,
        dilations: &o.dilations,
        kernel: &o.kernel_shape,
        pads: &o.pads,
        strides: &o.strides,
    };
    let (g, osh) = geometry(&attrs, xa.shape())?;
    let n = numel(&osh)?;
    let mut y = ctx.alloc(n);
    let xd = contig(xa);
    if num_outputs > 1 {
        let mut idx = vec![0i64; n];
        max_kernel(&g, &xd, &mut y, Some(&mut idx), o.storage_order);
        Ok(vec![tensor(&osh, y)?, tensor(&osh, idx)?])
    } else {
        max_kernel(&g, &xd, &mut y, None, o.storage_order);
        Ok(vec![tensor(&osh, y)?])
    }
}

pub fn avg_pool(o: &AveragePool, ctx: &mut Ctx, x: &Tensor) -> OpResult {
    let xa = f32_input(x)?;
    let attrs = Attrs {
        auto_pad: o.auto_pad,
        ceil_mode: o.ceil_mode != 0,
        dilations: &o.dilations,
        kernel: &o.kernel_shape,
        pads: &o.pads,
        strides: &o.strides,
    };
    let (g, osh) = geometry(&attrs, xa.shape())?;
    let mut y = ctx.alloc(numel(&osh)?);
    avg_kernel(&g, &contig(xa), &mut y, o.count_include_pad != 0);
    Ok(vec![tensor(&osh, y)?])
}

#[derive(Clone, Copy, PartialEq)]
pub enum Global {
    Average,
    Max,
}

/// Mean or max over all spatial axes, keeping them as size 1. Sums run in f64 per plane.
pub fn global(kind: Global, ctx: &mut Ctx, x: &Tensor) -> OpResult {
    let xa = f32_input(x)?;
    let sh = xa.shape();
    if sh.len() < 2 {
        bail!("input must have rank >= 2, got {sh:?}");
    }
    let planes = sh[0] * sh[1];
    let inner: usize = sh[2..].iter().product();
    let xd = contig(xa);
    let mut y = ctx.alloc(planes);
    let plane = |p: usize| -> f32 {
        let v = &xd[p * inner..(p + 1) * inner];
        match kind {
            Global::Average => (plane_sum(v) / inner as f64) as f32,
            Global::Max => v.iter().fold(f32::NEG_INFINITY, |m, &x| {
                if x > m || x.is_nan() || m.is_nan() {
                    if m.is_nan() { m } else { x }
                } else {
                    m
                }
            }),
        }
    };
    y.par_iter_mut()
        .enumerate()
        .for_each(|(p, o)| *o = plane(p));
    let mut osh = sh[..2].to_vec();
    osh.extend(std::iter::repeat_n(1, sh.len() - 2));
    Ok(vec![tensor(&osh, y)?])
}

multiversion! {
    /// Sum in eight f64 lanes added in a fixed order: vectorises, and the result does not
    /// depend on threads.
    fn plane_sum(v: &[f32]) -> f64 {
        let mut acc = [0f64; 8];
        let chunks = v.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                acc[i] += c[i] as f64;
            }
        }
        let mut s: f64 = acc.iter().sum();
        for &x in rest {
            s += x as f64;
        }
        s
    }
}
