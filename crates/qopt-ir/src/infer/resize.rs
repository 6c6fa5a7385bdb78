//! Resampling: `Resize`, `Upsample`, `DepthToSpace`, `SpaceToDepth`.
//!
//! `Resize` (`resizeShapeInferenceVersioned` in tensor/utils.cc):
//! - inputs are `X, scales` in opset 10 and `X, roi, scales, sizes` from 11 on;
//!   an empty `scales` or `sizes` tensor counts as absent, and from opset 13 on
//!   exactly one of them must be given;
//! - with scales: `out = floor(in * scale)` (in f64, from the f32 scale);
//! - with sizes: `out = sizes`, through `keep_aspect_ratio_policy` (opset 18):
//!   `not_larger`/`not_smaller` take the min/max of `sizes[i] / in[i]` over the
//!   axes and give `round(scale * in[i])`;
//! - the `axes` attribute (opset 18) restricts scales/sizes to those axes.
//!
//! A scale of 1 keeps a symbolic dim, and sizes from a tracked shape computation
//! may be symbols themselves.
//!
//! `DepthToSpace`: `[N, C, H, W] -> [N, C/b², H*b, W*b]`; `SpaceToDepth` the inverse.

use super::ctx::{Ctx, Out, ty};
use super::shape_value::SymInt;
use crate::attr::KeepAspectRatio;
use crate::dim::{Dim, Shape};
use crate::op;

/// Output dims from per-axis scales.
fn scaled(cx: &Ctx, x: &Shape, scales: &[f64]) -> Result<Vec<Dim>, super::InferError> {
    if scales.len() != x.rank() {
        return Err(cx.err(format!(
            "scales has {} values for an input of rank {} ({x})",
            scales.len(),
            x.rank()
        )));
    }
    let mut out = Vec::with_capacity(x.rank());
    for (d, &s) in x.0.iter().zip(scales) {
        if !(s > 0.0 && s.is_finite()) {
            return Err(cx.err(format!("scale {s} must be positive")));
        }
        out.push(match d {
            _ if s == 1.0 => d.clone(),
            Dim::Known(v) => Dim::Known((*v as f64 * s).floor() as u64),
            _ => Dim::Unknown,
        });
    }
    Ok(out)
}

pub(crate) fn resize(cx: &Ctx, o: &op::Resize) -> Out {
    let x = cx.req(0, "X")?;
    let (scales_slot, sizes_slot) = if cx.opset <= 10 {
        (1, None)
    } else {
        (2, Some(3))
    };
    // Inputs that are constant and empty count as absent; non-constant ones as present but
    // unknown.
    let scales: Option<Option<Vec<f64>>> = if cx.has(scales_slot) {
        match cx.floats(scales_slot) {
            Some(v) if v.is_empty() => None,
            v => Some(v),
        }
    } else {
        None
    };
    let sizes: Option<Option<Vec<SymInt>>> = match sizes_slot {
        Some(s) if cx.has(s) => match cx.value(s) {
            Some(v) if v.elems.is_empty() => None,
            Some(v) => Some(Some(v.elems)),
            None => match cx.shape(s).map(|s| s.0.as_slice()) {
                Some([Dim::Known(0)]) => None,
                _ => Some(None),
            },
        },
        _ => None,
    };
    if cx.opset >= 13 && scales.is_some() == sizes.is_some() {
        return Err(cx.err(if scales.is_some() {
            "has both scales and sizes; exactly one must be given"
        } else {
            "has neither scales nor sizes; exactly one must be given"
        }));
    }
    if scales.is_some() && o.keep_aspect_ratio_policy != KeepAspectRatio::Stretch {
        return Err(cx.err(format!(
            "keep_aspect_ratio_policy {} needs sizes, not scales",
            o.keep_aspect_ratio_policy.as_str()
        )));
    }
    let rank = x.shape.as_ref().map(Shape::rank);
    let axes: Option<Vec<usize>> = if o.axes.is_empty() {
        None
    } else {
        match rank {
            Some(r) => Some(cx.axes(&o.axes, r, "axes")?),
            None => return Ok(vec![ty(x.dtype, None)]),
        }
    };
    let n_given = |n: usize, what: &str| -> Result<(), super::InferError> {
        let want = axes.as_ref().map(Vec::len).or(rank);
        match want {
            Some(w) if w != n => Err(cx.err(format!(
                "{what} has {n} values for {w} {}",
                if axes.is_some() { "axes" } else { "input dims" }
            ))),
            _ => Ok(()),
        }
    };
    let shape = match (scales, sizes) {
        (Some(Some(sc)), _) => {
            n_given(sc.len(), "scales")?;
            let Some(xs) = &x.shape else {
                return Ok(vec![ty(x.dtype, Some(Shape(vec![Dim::Unknown; sc.len()])))]);
            };
            let full = match &axes {
                Some(a) => {
                    let mut f = vec![1.0; xs.rank()];
                    for (i, &ax) in a.iter().enumerate() {
                        f[ax] = sc[i];
                    }
                    f
                }
                None => sc,
            };
            Some(Shape(scaled(cx, xs, &full)?))
        }
        (_, Some(Some(sz))) => {
            n_given(sz.len(), "sizes")?;
            let mut dims: Vec<Dim> = Vec::with_capacity(sz.len());
            for e in &sz {
                dims.push(
                    e.to_dim()
                        .ok_or_else(|| cx.err(format!("sizes {sz:?} must not be negative")))?,
                );
            }
            if o.keep_aspect_ratio_policy != KeepAspectRatio::Stretch {
                dims = keep_aspect(
                    x.shape.as_ref(),
                    axes.as_deref(),
                    &dims,
                    o.keep_aspect_ratio_policy,
                );
            }
            match (&axes, &x.shape) {
                (Some(a), Some(xs)) => {
                    let mut d = xs.0.clone();
                    for (i, &ax) in a.iter().enumerate() {
                        d[ax] = dims[i].clone();
                    }
                    Some(Shape(d))
                }
                _ => Some(Shape(dims)),
            }
        }
        // Scales or sizes computed at run time: only the rank is known.
        _ => rank.map(|r| Shape(vec![Dim::Unknown; r])),
    };
    Ok(vec![ty(x.dtype, shape)])
}

/// `keep_aspect_ratio_policy` (KeepAspectRatioHelper in tensor/utils.cc).
fn keep_aspect(
    x: Option<&Shape>,
    axes: Option<&[usize]>,
    sizes: &[Dim],
    policy: KeepAspectRatio,
) -> Vec<Dim> {
    let unknown = vec![Dim::Unknown; sizes.len()];
    let Some(x) = x else { return unknown };
    let mut ins = Vec::with_capacity(sizes.len());
    let mut scale: Option<f64> = None;
    for (i, s) in sizes.iter().enumerate() {
        let d = axes.map_or(i, |a| a[i]);
        let (Some(Dim::Known(v)), Dim::Known(s)) = (x.0.get(d), s) else {
            return unknown;
        };
        let r = *s as f64 / *v as f64;
        scale = Some(match (scale, policy) {
            (None, _) => r,
            (Some(c), KeepAspectRatio::NotLarger) => c.min(r),
            (Some(c), _) => c.max(r),
        });
        ins.push(*v as f64);
    }
    let scale = scale.unwrap_or(1.0);
    ins.iter()
        .map(|v| Dim::Known((scale * v).round() as u64))
        .collect()
}

/// `Upsample(X, scales)` (deprecated since opset 10): `floor(in * scale)`.
pub(crate) fn upsample(cx: &Ctx) -> Out {
    let x = cx.req(0, "X")?;
    cx.req(1, "scales")?;
    let shape = match (&x.shape, cx.floats(1)) {
        (Some(xs), Some(sc)) => Some(Shape(scaled(cx, xs, &sc)?)),
        (Some(xs), None) => Some(Shape(vec![Dim::Unknown; xs.rank()])),
        (None, _) => None,
    };
    Ok(vec![ty(x.dtype, shape)])
}

fn nchw<'a>(
    cx: &Ctx,
    x: Option<&'a Shape>,
    b: i64,
) -> Result<Option<&'a Shape>, super::InferError> {
    if b <= 0 {
        return Err(cx.err(format!("blocksize {b} must be positive")));
    }
    if let Some(s) = x
        && s.rank() != 4
    {
        return Err(cx.err(format!(
            "input has shape {s}; it must be 4-D (N x C x H x W)"
        )));
    }
    Ok(x)
}

pub(crate) fn depth_to_space(cx: &Ctx, b: i64) -> Out {
    let x = cx.req(0, "input")?;
    let shape = match nchw(cx, x.shape.as_ref(), b)? {
        Some(s) => {
            let b = b as u64;
            let bb = b
                .checked_mul(b)
                .ok_or_else(|| cx.err(format!("blocksize {b} is too large")))?;
            let c = match &s.0[1] {
                Dim::Known(c) if c % bb != 0 => {
                    return Err(cx.err(format!(
                        "input has {c} channels, which blocksize² = {bb} does not divide"
                    )));
                }
                Dim::Known(c) => Dim::Known(c / bb),
                d if bb == 1 => d.clone(),
                _ => Dim::Unknown,
            };
            let up = |d: &Dim| d.mul(&Dim::Known(b));
            Some(Shape(vec![s.0[0].clone(), c, up(&s.0[2]), up(&s.0[3])]))
        }
        None => None,
    };
    Ok(vec![ty(x.dtype, shape)])
}

pub(crate) fn space_to_depth(cx: &Ctx, b: i64) -> Out {
    let x = cx.req(0, "input")?;
    let shape = match nchw(cx, x.shape.as_ref(), b)? {
        Some(s) => {
            let b = b as u64;
            let mut hw = Vec::with_capacity(2);
            for d in &s.0[2..] {
                hw.push(match d {
                    Dim::Known(v) if v % b != 0 => {
                        return Err(cx.err(format!(
                            "input {s} has a spatial size {v} that blocksize {b} does not divide"
                        )));
                    }
                    Dim::Known(v) => Dim::Known(v / b),
                    d if b == 1 => d.clone(),
                    _ => Dim::Unknown,
                });
            }
            let c = s.0[1].mul(&Dim::Known(b.saturating_mul(b)));
            Some(Shape(vec![s.0[0].clone(), c, hw[0].clone(), hw[1].clone()]))
        }
        None => None,
    };
    Ok(vec![ty(x.dtype, shape)])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::attr::KeepAspectRatio;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn resize_with_scales() {
        // PP-OCR det: roi empty, scales [1,1,2,2] on [N,96,H,W] -> [N,96,?,?] (floor(H*2)
        // cannot be named) and on a pinned [1,96,20,20] -> [1,96,40,40].
        // test_resize_downsample_scales_nearest: [1,1,2,4], scales [1,1,0.6,0.6] -> [1,1,1,2].
        let mut t = T::with_opset(12);
        let x = t.input("x", DType::F32, &[n(), k(96), sym("H"), sym("W")]);
        let roi = t.floats("roi", &[]);
        let sc = t.floats("sc", &[1.0, 1.0, 2.0, 2.0]);
        let y = t.multi(op::Resize::default(), &[Some(x), Some(roi), Some(sc)], 1)[0];
        let xp = t.input("xp", DType::F32, &[k(1), k(96), k(20), k(20)]);
        let yp = t.multi(op::Resize::default(), &[Some(xp), Some(roi), Some(sc)], 1)[0];
        let x2 = t.input("x2", DType::F32, &[k(1), k(1), k(2), k(4)]);
        let sc2 = t.floats("sc2", &[1.0, 1.0, 0.6, 0.6]);
        let y2 = t.multi(op::Resize::default(), &[Some(x2), Some(roi), Some(sc2)], 1)[0];
        t.run();
        assert_eq!(t.ty(y), "f32[N,96,?,?]");
        assert_eq!(t.ty(yp), "f32[1,96,40,40]");
        assert_eq!(t.ty(y2), "f32[1,1,1,2]");
    }

    #[test]
    fn resize_opset10_takes_scales_second() {
        let mut t = T::with_opset(10);
        let x = t.input("x", DType::F32, &[k(1), k(3), k(4), k(4)]);
        let sc = t.floats("sc", &[1.0, 1.0, 2.0, 3.0]);
        let y = t.node(op::Resize::default(), &[x, sc]);
        let u = t.node(op::Upsample::default(), &[x, sc]);
        t.run();
        assert_eq!(t.ty(y), "f32[1,3,8,12]");
        assert_eq!(t.ty(u), "f32[1,3,8,12]");
    }

    #[test]
    fn resize_with_sizes_axes_and_aspect() {
        // test_resize_upsample_sizes_nearest: sizes [1,1,7,8] -> [1,1,7,8].
        // test_resize_downsample_sizes_nearest_not_larger: [1,1,2,4], sizes [1,3] on axes
        // [2,3], not_larger -> scale min(1/2, 3/4) = 0.5 -> [1,1,1,2].
        // test_resize_upsample_sizes_nearest_not_smaller: [1,1,2,2], sizes [7,8] on axes
        // [2,3], not_smaller -> scale 4 -> [1,1,8,8].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(1), k(2), k(2)]);
        let sz = t.ints("sz", &[1, 1, 7, 8]);
        let y = t.multi(op::Resize::default(), &[Some(x), None, None, Some(sz)], 1)[0];
        let x2 = t.input("x2", DType::F32, &[k(1), k(1), k(2), k(4)]);
        let sz2 = t.ints("sz2", &[1, 3]);
        let o = op::Resize {
            axes: vec![2, 3],
            keep_aspect_ratio_policy: KeepAspectRatio::NotLarger,
            ..Default::default()
        };
        let y2 = t.multi(o, &[Some(x2), None, None, Some(sz2)], 1)[0];
        let sz3 = t.ints("sz3", &[7, 8]);
        let o = op::Resize {
            axes: vec![2, 3],
            keep_aspect_ratio_policy: KeepAspectRatio::NotSmaller,
            ..Default::default()
        };
        let y3 = t.multi(o, &[Some(x), None, None, Some(sz3)], 1)[0];
        t.run();
        assert_eq!(t.ty(y), "f32[1,1,7,8]");
        assert_eq!(t.ty(y2), "f32[1,1,1,2]");
        assert_eq!(t.ty(y3), "f32[1,1,8,8]");
    }

    #[test]
    fn resize_needs_exactly_one_of_scales_and_sizes() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(1), k(2), k(2)]);
        let e = t.floats("e", &[]);
        t.g.add_node(
            "rs",
            op::Resize::default(),
            &[Some(x), Some(e), Some(e)],
            vec![crate::ValueInfo::new("y", crate::TypeInfo::unknown())],
        );
        assert_eq!(
            t.run_err(),
            "Resize node 'rs': has neither scales nor sizes; exactly one must be given"
        );
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(1), k(2), k(2)]);
        let sc = t.floats("sc", &[1.0, 2.0]);
        t.multi(op::Resize::default(), &[Some(x), None, Some(sc)], 1);
        assert!(t.run_err().contains("scales has 2 values for 4 input dims"));
    }

    #[test]
    fn depth_space() {
        // DepthToSpace spec: [b, c, h, w] -> [b, c/(bs*bs), h*bs, w*bs]; SpaceToDepth inverse.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(8), k(2), k(3)]);
        let d = t.node(
            op::DepthToSpace {
                blocksize: 2,
                ..Default::default()
            },
            &[x],
        );
        let s = t.node(op::SpaceToDepth { blocksize: 2 }, &[d]);
        t.run();
        assert_eq!(t.ty(d), "f32[N,2,4,6]");
        assert_eq!(t.ty(s), "f32[N,8,2,3]");
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(6), k(2), k(3)]);
        t.named(
            "d2s",
            op::DepthToSpace {
                blocksize: 2,
                ..Default::default()
            },
            &[x],
        );
        assert!(
            t.run_err()
                .contains("6 channels, which blocksize² = 4 does not divide")
        );
    }
}
