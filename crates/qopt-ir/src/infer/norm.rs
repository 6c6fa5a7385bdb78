//! Normalisation and softmax-like operators.
//!
//! - `Softmax`, `LogSoftmax`, `Hardmax`: output = input; `axis` must be in
//!   `[-r, r-1]`. Before opset 13 the input is coerced to 2-D at `axis` for the
//!   computation, but the output shape still equals the input shape (math/old.cc).
//! - `BatchNormalization`: Y = X; scale, B, mean and var are `[C]`; the optional
//!   outputs (running mean/var in training mode, or the opset < 14 saved
//!   statistics) are `[C]` with mean's element type (nn/defs.cc).
//! - `InstanceNormalization`: Y = X, scale and B `[C]`.
//! - `LayerNormalization`: Y = X; Mean and InvStdDev keep X's rank with the
//!   normalised axes (`axis..r`) set to 1, in `stash_type`'s element type.
//! - `GroupNormalization`, `LRN`: Y = X.

use super::InferError;
use super::ctx::{Ctx, Out, ty};
use super::dims::compatible;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::op;

pub(crate) fn softmax(cx: &Ctx, axis: i64) -> Out {
    let x = cx.req(0, "input")?;
    if let Some(s) = &x.shape {
        cx.axis(axis, s.rank(), "axis")?;
    }
    Ok(vec![x.clone()])
}

/// The channel dim of an `[N, C, ...]` input (`Unknown` when the shape is).
fn channels(x: Option<&Shape>) -> Dim {
    x.and_then(|s| s.0.get(1).cloned()).unwrap_or(Dim::Unknown)
}

/// Inputs `slots` must be 1-D of size `c`.
fn check_per_channel(cx: &Ctx, slots: &[(usize, &str)], c: &Dim) -> Result<(), InferError> {
    for &(slot, name) in slots {
        let Some(s) = cx.shape(slot) else { continue };
        if s.rank() != 1 {
            return Err(cx.err(format!("{name} has shape {s}; it must be 1-D")));
        }
        if !compatible(&s.0[0], c) {
            return Err(cx.err(format!(
                "{name} has {} elements but the input has {c} channels",
                s.0[0]
            )));
        }
    }
    Ok(())
}

pub(crate) fn batch_norm(cx: &Ctx) -> Out {
    let x = cx.req(0, "X")?;
    for (slot, name) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
        cx.req(slot, name)?;
    }
    if let Some(s) = &x.shape
        && s.rank() < 2
    {
        return Err(cx.err(format!(
            "input has shape {s}; it needs at least 2 dims (N x C ...)"
        )));
    }
    let c = channels(x.shape.as_ref());
    check_per_channel(
        cx,
        &[(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")],
        &c,
    )?;
    let stat = ty(cx.dtype(3).or(x.dtype), Some(Shape(vec![c])));
    // Y, then up to four per-channel statistics (opset < 14 had four optional outputs).
    Ok(vec![
        x.clone(),
        stat.clone(),
        stat.clone(),
        stat.clone(),
        stat,
    ])
}

pub(crate) fn instance_norm(cx: &Ctx) -> Out {
    let x = cx.req(0, "input")?;
    cx.req(1, "scale")?;
    cx.req(2, "B")?;
    if let Some(s) = &x.shape
        && s.rank() < 3
    {
        return Err(cx.err(format!(
            "input has shape {s}; it needs at least 3 dims (N x C x D1 ...)"
        )));
    }
    check_per_channel(cx, &[(1, "scale"), (2, "B")], &channels(x.shape.as_ref()))?;
    Ok(vec![x.clone()])
}

pub(crate) fn layer_norm(cx: &Ctx, o: &op::LayerNormalization) -> Out {
    let x = cx.req(0, "X")?;
    cx.req(1, "Scale")?;
    let stash = DType::from_onnx_code(o.stash_type as i32);
    let stat_shape = match &x.shape {
        Some(s) => {
            let a = cx.axis(o.axis, s.rank(), "axis")?;
            let mut d = s.0.clone();
            for x in &mut d[a..] {
                *x = Dim::Known(1);
            }
            Some(Shape(d))
        }
        None => None,
    };
    let stat = ty(stash, stat_shape);
    Ok(vec![x.clone(), stat.clone(), stat])
}

pub(crate) fn group_norm(cx: &Ctx, o: &op::GroupNormalization) -> Out {
    let x = cx.req(0, "X")?;
    cx.req(1, "scale")?;
    cx.req(2, "bias")?;
    if o.num_groups <= 0 {
        return Err(cx.err(format!("num_groups {} must be positive", o.num_groups)));
    }
    if let Dim::Known(c) = channels(x.shape.as_ref())
        && c % o.num_groups as u64 != 0
    {
        return Err(cx.err(format!(
            "input has {c} channels, which num_groups {} does not divide",
            o.num_groups
        )));
    }
    Ok(vec![x.clone()])
}

pub(crate) fn lrn(cx: &Ctx, o: &op::LRN) -> Out {
    if o.size <= 0 {
        return Err(cx.err(format!("size {} must be positive", o.size)));
    }
    Ok(vec![cx.req(0, "X")?.clone()])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn softmax_keeps_shape_and_checks_axis() {
        // Softmax-1 (opset < 13) coerces to 2-D internally, but the output has the input's
        // shape in every version.
        let mut t = T::with_opset(11);
        let x = t.input("x", DType::F32, &[n(), k(25), k(6625)]);
        let y = t.node(op::Softmax { axis: 2 }, &[x]);
        t.run();
        assert_eq!(t.ty(y), "f32[N,25,6625]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        t.named("sm", op::LogSoftmax { axis: -3 }, &[x]);
        assert_eq!(
            t.run_err(),
            "LogSoftmax node 'sm': axis -3 is out of range for an input of rank 2"
        );
    }

    #[test]
    fn batch_norm_outputs_and_channel_check() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(4), sym("H"), sym("W")]);
        let s = t.konst_f32("s", &[4]);
        let bn = t.multi(
            op::BatchNormalization::default(),
            &[Some(x), Some(s), Some(s), Some(s), Some(s)],
            3,
        );
        t.run();
        assert_eq!(t.ty(bn[0]), "f32[N,4,H,W]");
        assert_eq!(t.ty(bn[1]), "f32[4]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), k(8), k(8)]);
        let s = t.konst_f32("s", &[4]);
        t.named("bn", op::BatchNormalization::default(), &[x, s, s, s, s]);
        assert_eq!(
            t.run_err(),
            "BatchNormalization node 'bn': scale has 4 elements but the input has 3 channels"
        );
    }

    #[test]
    fn layer_norm_statistics() {
        // LayerNormalization-17: Mean/InvStdDev shape is X's with axes axis..r set to 1,
        // element type stash_type (1 = float).
        let mut t = T::new();
        let x = t.input("x", DType::F16, &[n(), k(40), k(120)]);
        let s = t.konst_f32("s", &[120]);
        let ys = t.multi(
            op::LayerNormalization {
                axis: -1,
                ..Default::default()
            },
            &[Some(x), Some(s)],
            3,
        );
        t.run();
        assert_eq!(t.ty(ys[0]), "f16[N,40,120]");
        assert_eq!(t.ty(ys[1]), "f32[N,40,1]");
        assert_eq!(t.ty(ys[2]), "f32[N,40,1]");
    }

    #[test]
    fn instance_and_group_norm() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(6), k(5), k(5)]);
        let s = t.konst_f32("s", &[6]);
        let i = t.node(op::InstanceNormalization::default(), &[x, s, s]);
        let g = t.node(
            op::GroupNormalization {
                num_groups: 3,
                ..Default::default()
            },
            &[x, s, s],
        );
        let l = t.node(
            op::LRN {
                size: 3,
                ..Default::default()
            },
            &[x],
        );
        t.run();
        assert_eq!(t.ty(i), "f32[N,6,5,5]");
        assert_eq!(t.ty(g), "f32[N,6,5,5]");
        assert_eq!(t.ty(l), "f32[N,6,5,5]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(6), k(5), k(5)]);
        let s = t.konst_f32("s", &[6]);
        t.named(
            "gn",
            op::GroupNormalization {
                num_groups: 4,
                ..Default::default()
            },
            &[x, s, s],
        );
        assert!(t.run_err().contains("num_groups 4 does not divide"));
    }
}
