//! Convolutions: `Conv`, `ConvTranspose`, `QLinearConv`, `ConvInteger`, and the
//! sliding-window arithmetic they share with the pools.
//!
//! Follows `convPoolShapeInference` and `convTransposeShapeInference` in
//! `onnx/defs/nn/defs.cc` and the operator docs:
//!
//! - Conv/pool output: `floor((in + pad_begin + pad_end - ((k-1)*d + 1)) / s) + 1`;
//!   `ceil` instead of `floor` with `ceil_mode`, dropping a last window that would
//!   start in the end padding (PyTorch's rule, which ONNX adopted).
//! - `auto_pad` SAME_UPPER/SAME_LOWER pad by `max(ek - (in % s == 0 ? s : in % s), 0)`,
//!   which gives `ceil(in / s)`; VALID pads nothing.
//! - ConvTranspose: `s*(in-1) + output_padding + ((k-1)*d + 1) - pad_begin - pad_end`,
//!   `in * s` with SAME_* (the spec's and ONNX Runtime's rule; ONNX's own inference
//!   adds `output_padding` there and differs when the kernel is smaller than the
//!   stride), or `output_shape` when given (the spatial dims; a full `N,C,...`
//!   list as some exporters write is accepted too).
//!
//! A symbolic spatial size survives only a window that maps every size to itself
//! (stride 1 and `pad_begin + pad_end == ek - 1`), e.g. a 3x3 "same" Conv.

use super::InferError;
use super::ctx::{Ctx, Out, spatial_attr, ty};
use super::dims::compatible;
use crate::attr::AutoPad;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::op;

/// The window attributes of a Conv or pool, already checked for length.
pub(crate) struct Window {
    pub auto_pad: AutoPad,
    /// Per spatial axis; `None` where the kernel size is not known.
    pub kernel: Vec<Option<i64>>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    /// Explicit pads (`[b1, b2, ..., e1, e2, ...]`), empty when not given.
    pub pads: Vec<i64>,
    pub ceil_mode: bool,
}

impl Window {
    /// Read and check the common attributes for `n` spatial axes.
    pub fn new(
        cx: &Ctx,
        n: usize,
        auto_pad: AutoPad,
        kernel: Vec<Option<i64>>,
        strides: &[i64],
        dilations: &[i64],
        pads: &[i64],
    ) -> Result<Window, InferError> {
        let strides = spatial_attr(cx, "strides", strides, n, 1)?;
        let dilations = spatial_attr(cx, "dilations", dilations, n, 1)?;
        if strides.iter().any(|&s| s <= 0) {
            return Err(cx.err(format!("strides {strides:?} must be positive")));
        }
        if dilations.iter().any(|&d| d <= 0) {
            return Err(cx.err(format!("dilations {dilations:?} must be positive")));
        }
        if kernel.iter().flatten().any(|&k| k <= 0) {
            let k: Vec<String> = kernel
                .iter()
                .map(|k| k.map_or("?".into(), |k| k.to_string()))
                .collect();
            return Err(cx.err(format!("kernel shape [{}] must be positive", k.join(","))));
        }
        if !pads.is_empty() {
            if pads.len() != 2 * n {
                return Err(cx.err(format!(
                    "pads {pads:?} has {} values for {n} spatial axes (needs {})",
                    pads.len(),
                    2 * n
                )));
            }
            if pads.iter().any(|&p| p < 0) {
                return Err(cx.err(format!("pads {pads:?} must not be negative")));
            }
        }
        Ok(Window {
            auto_pad,
            kernel,
            strides,
            dilations,
            pads: pads.to_vec(),
            ceil_mode: false,
        })
    }

    /// Effective kernel extent `(k-1)*d + 1` of axis `i`.
    fn extent(&self, cx: &Ctx, i: usize) -> Result<Option<i64>, InferError> {
        let Some(k) = self.kernel[i] else {
            return Ok(None);
        };
        (k - 1)
            .checked_mul(self.dilations[i])
            .and_then(|x| x.checked_add(1))
            .map(Some)
            .ok_or_else(|| cx.err("kernel extent overflows"))
    }

    /// Output sizes of the spatial axes (Conv and the pools).
    pub fn output_dims(&self, cx: &Ctx, input: &[Dim]) -> Result<Vec<Dim>, InferError> {
        let n = input.len();
        let mut out = Vec::with_capacity(n);
        for (i, dim) in input.iter().enumerate() {
            let Some(ek) = self.extent(cx, i)? else {
                out.push(Dim::Unknown);
                continue;
            };
            let s = self.strides[i];
            let (pb, pe) = if !self.pads.is_empty() {
                (self.pads[i], self.pads[i + n])
            } else {
                match self.auto_pad {
                    AutoPad::NotSet | AutoPad::Valid => (0, 0),
                    AutoPad::SameUpper | AutoPad::SameLower => {
                        let residual = match (s, dim) {
                            (1, _) => 0,
                            (_, Dim::Known(v)) => (*v as i64) % s,
                            // The padding depends on the unknown size.
                            _ => {
                                out.push(Dim::Unknown);
                                continue;
                            }
                        };
                        let total = (ek - if residual == 0 { s } else { residual }).max(0);
                        let (small, big) = (total / 2, total - total / 2);
                        if self.auto_pad == AutoPad::SameUpper {
                            (small, big)
                        } else {
                            (big, small)
                        }
                    }
                }
            };
            // i128: sizes and pads come from the model and may be absurd; never overflow.
            let (pb, pe, ek, s) = (pb as i128, pe as i128, ek as i128, s as i128);
            out.push(match dim {
                Dim::Known(v) => {
                    let v = *v as i128;
                    let mut num = v + pb + pe - ek;
                    if num < 0 {
                        return Err(cx.err(format!(
                            "spatial axis {i}: input size {v} with pads {pb}+{pe} is smaller than \
                             the kernel extent {ek}"
                        )));
                    }
                    if self.ceil_mode {
                        num += s - 1;
                    }
                    let mut o = num / s + 1;
                    if self.ceil_mode && (o - 1) * s >= v + pb {
                        o -= 1;
                    }
                    u64::try_from(o).map_or(Dim::Unknown, Dim::Known)
                }
                d if s == 1 && pb + pe == ek - 1 => d.clone(),
                _ => Dim::Unknown,
            });
        }
        Ok(out)
    }
}

/// Kernel sizes from the attribute, else from the weight's spatial dims.
fn kernel_sizes(
    cx: &Ctx,
    attr: &[i64],
    weight: Option<&Shape>,
    n: usize,
) -> Result<Vec<Option<i64>>, InferError> {
    let from_w: Vec<Option<i64>> = match weight {
        Some(w) => w.0[2..]
            .iter()
            .map(|d| d.known().map(|k| k as i64))
            .collect(),
        None => vec![None; n],
    };
    if attr.is_empty() {
        return Ok(from_w);
    }
    if attr.len() != n {
        return Err(cx.err(format!(
            "kernel_shape {attr:?} has {} values for {n} spatial axes",
            attr.len()
        )));
    }
    for (a, w) in attr.iter().zip(&from_w) {
        if let Some(w) = w
            && w != a
        {
            return Err(cx.err(format!(
                "kernel_shape {attr:?} does not match the weight's shape {}",
                weight.map_or(String::new(), |w| w.to_string())
            )));
        }
    }
    Ok(attr.iter().map(|&k| Some(k)).collect())
}

/// Shared checks on the input and weight ranks. Returns the spatial rank, or `None`
/// when the input's rank is unknown.
fn ranks(cx: &Ctx, x: Option<&Shape>, w: Option<&Shape>) -> Result<Option<usize>, InferError> {
    if let Some(w) = w
        && w.rank() < 3
    {
        return Err(cx.err(format!(
            "weight has shape {w}; it needs at least 3 dims (out, in, kernel...)"
        )));
    }
    let Some(x) = x else { return Ok(None) };
    if x.rank() < 3 {
        return Err(cx.err(format!(
            "input has shape {x}; it needs at least 3 dims (N x C x D1 ...)"
        )));
    }
    if let Some(w) = w
        && w.rank() != x.rank()
    {
        return Err(cx.err(format!(
            "weight has rank {} ({w}) but the input has rank {} ({x})",
            w.rank(),
            x.rank()
        )));
    }
    Ok(Some(x.rank() - 2))
}

/// Attributes common to Conv, QLinearConv and ConvInteger.
pub(crate) struct ConvAttrs<'a> {
    pub auto_pad: AutoPad,
    pub dilations: &'a [i64],
    pub group: i64,
    pub kernel_shape: &'a [i64],
    pub pads: &'a [i64],
    pub strides: &'a [i64],
}

/// Output shape of a Conv-like op on input `x` and weight `w` (`[M, C/group, k...]`).
fn conv_shape(
    cx: &Ctx,
    x: Option<&Shape>,
    w: Option<&Shape>,
    a: &ConvAttrs,
) -> Result<Option<Shape>, InferError> {
    if a.group <= 0 {
        return Err(cx.err(format!("group {} must be positive", a.group)));
    }
    let m = w.map_or(Dim::Unknown, |w| {
        w.0.first().cloned().unwrap_or(Dim::Unknown)
    });
    let Some(n) = ranks(cx, x, w)? else {
        // Unknown input rank: the weight (or kernel_shape) still gives the output rank.
        let r = w
            .map(Shape::rank)
            .or_else(|| (!a.kernel_shape.is_empty()).then_some(a.kernel_shape.len() + 2));
        return Ok(r.map(|r| {
            let mut d = vec![Dim::Unknown; r];
            d[1] = m;
            Shape(d)
        }));
    };
    let x = x.expect("rank known");
    if let Dim::Known(mv) = m
        && mv % a.group as u64 != 0
    {
        return Err(cx.err(format!(
            "weight has {mv} output channels, which group {} does not divide",
            a.group
        )));
    }
    if let (Some(w), Dim::Known(c)) = (w, &x.0[1])
        && let Dim::Known(wc) = w.0[1]
        && wc.checked_mul(a.group as u64) != Some(*c)
    {
        return Err(cx.err(format!(
            "input has {c} channels, weight expects {} (group {})",
            wc.saturating_mul(a.group as u64),
            a.group
        )));
    }
    let kernel = kernel_sizes(cx, a.kernel_shape, w, n)?;
    let win = Window::new(cx, n, a.auto_pad, kernel, a.strides, a.dilations, a.pads)?;
    let mut dims = vec![x.0[0].clone(), m];
    dims.extend(win.output_dims(cx, &x.0[2..])?);
    Ok(Some(Shape(dims)))
}

/// `Conv(X, W, B?)`.
pub(crate) fn conv(cx: &Ctx, o: &op::Conv) -> Out {
    let x = cx.req(0, "X")?;
    let w = cx.req(1, "W")?;
    let a = ConvAttrs {
        auto_pad: o.auto_pad,
        dilations: &o.dilations,
        group: o.group,
        kernel_shape: &o.kernel_shape,
        pads: &o.pads,
        strides: &o.strides,
    };
    check_bias(cx, 2, w.shape.as_ref(), 0)?;
    let shape = conv_shape(cx, x.shape.as_ref(), w.shape.as_ref(), &a)?;
    Ok(vec![ty(x.dtype.or(w.dtype), shape)])
}

/// `QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?)`: the output has
/// `y_zero_point`'s element type.
pub(crate) fn qlinear_conv(cx: &Ctx, o: &op::QLinearConv) -> Out {
    let x = cx.req(0, "x")?;
    let w = cx.req(3, "w")?;
    let y_zp = cx.req(7, "y_zero_point")?;
    let a = ConvAttrs {
        auto_pad: o.auto_pad,
        dilations: &o.dilations,
        group: o.group,
        kernel_shape: &o.kernel_shape,
        pads: &o.pads,
        strides: &o.strides,
    };
    let shape = conv_shape(cx, x.shape.as_ref(), w.shape.as_ref(), &a)?;
    Ok(vec![ty(y_zp.dtype, shape)])
}

/// `ConvInteger(x, w, x_zp?, w_zp?)`: int32 output.
pub(crate) fn conv_integer(cx: &Ctx, o: &op::ConvInteger) -> Out {
    let x = cx.req(0, "x")?;
    let w = cx.req(1, "w")?;
    let a = ConvAttrs {
        auto_pad: o.auto_pad,
        dilations: &o.dilations,
        group: o.group,
        kernel_shape: &o.kernel_shape,
        pads: &o.pads,
        strides: &o.strides,
    };
    let shape = conv_shape(cx, x.shape.as_ref(), w.shape.as_ref(), &a)?;
    Ok(vec![ty(Some(DType::I32), shape)])
}

/// The bias (input `slot`) must be 1-D with the weight's `axis` dim (output channels).
fn check_bias(cx: &Ctx, slot: usize, w: Option<&Shape>, axis: usize) -> Result<(), InferError> {
    let Some(b) = cx.shape(slot) else {
        return Ok(());
    };
    if b.rank() != 1 {
        return Err(cx.err(format!("bias has shape {b}; it must be 1-D")));
    }
    if let Some(w) = w
        && let Some(m) = w.0.get(axis)
        && !compatible(&b.0[0], m)
    {
        return Err(cx.err(format!(
            "bias has {} elements for {m} output channels",
            b.0[0]
        )));
    }
    Ok(())
}

/// `ConvTranspose(X, W, B?)`, W is `[C, M/group, k...]`.
pub(crate) fn conv_transpose(cx: &Ctx, o: &op::ConvTranspose) -> Out {
    let xt = cx.req(0, "X")?;
    let wt = cx.req(1, "W")?;
    let dtype = xt.dtype.or(wt.dtype);
    let (x, w) = (xt.shape.as_ref(), wt.shape.as_ref());
    if o.group <= 0 {
        return Err(cx.err(format!("group {} must be positive", o.group)));
    }
    let g = o.group as u64;
    let m = match w.and_then(|w| w.0.get(1)) {
        Some(Dim::Known(m)) => m.checked_mul(g).map_or(Dim::Unknown, Dim::Known),
        Some(d) if g == 1 => d.clone(),
        _ => Dim::Unknown,
    };
    let Some(n) = ranks(cx, x, w)? else {
        let r = w
            .map(Shape::rank)
            .or_else(|| (!o.kernel_shape.is_empty()).then_some(o.kernel_shape.len() + 2));
        return Ok(vec![ty(
            dtype,
            r.map(|r| {
                let mut d = vec![Dim::Unknown; r];
                d[1] = m;
                Shape(d)
            }),
        )]);
    };
    let x = x.expect("rank known");
    if let Dim::Known(c) = x.0[1] {
        if c % g != 0 {
            return Err(cx.err(format!(
                "input has {c} channels, which group {g} does not divide"
            )));
        }
        if let Some(Dim::Known(wc)) = w.map(|w| &w.0[0])
            && *wc != c
        {
            return Err(cx.err(format!("input has {c} channels, weight expects {wc}")));
        }
    }
    check_bias(cx, 2, Some(&Shape(vec![m.clone()])), 0)?;
    if !o.pads.is_empty() && o.auto_pad != AutoPad::NotSet {
        return Err(cx.err(format!(
            "pads {:?} cannot be combined with auto_pad {}",
            o.pads,
            o.auto_pad.as_str()
        )));
    }
    let kernel = kernel_sizes(cx, &o.kernel_shape, w, n)?;
    let win = Window::new(cx, n, o.auto_pad, kernel, &o.strides, &o.dilations, &o.pads)?;
    let output_padding = spatial_attr(cx, "output_padding", &o.output_padding, n, 0)?;
    if output_padding.iter().any(|&p| p < 0) {
        return Err(cx.err(format!(
            "output_padding {output_padding:?} must not be negative"
        )));
    }
    let mut dims = vec![x.0[0].clone(), m];
    if !o.output_shape.is_empty() {
        let os = &o.output_shape;
        let spatial = match os.len() {
            l if l == n => &os[..],
            l if l == n + 2 => &os[2..],
            l => {
                return Err(cx.err(format!(
                    "output_shape {os:?} has {l} values for {n} spatial axes"
                )));
            }
        };
        if spatial.iter().any(|&s| s < 0) {
            return Err(cx.err(format!("output_shape {os:?} must not be negative")));
        }
        dims.extend(spatial.iter().map(|&s| Dim::Known(s as u64)));
        return Ok(vec![ty(dtype, Some(Shape(dims)))]);
    }
    for (i, d) in x.0[2..].iter().enumerate() {
        let Some(ek) = win.extent(cx, i)? else {
            dims.push(Dim::Unknown);
            continue;
        };
        let s = win.strides[i];
        let same = matches!(o.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
        let (pb, pe) = if win.pads.is_empty() {
            (0, 0)
        } else {
            (win.pads[i], win.pads[i + n])
        };
        let (s, op, ek, pb, pe) = (
            s as i128,
            output_padding[i] as i128,
            ek as i128,
            pb as i128,
            pe as i128,
        );
        dims.push(match d {
            Dim::Known(v) => {
                let v = *v as i128;
                let out = if same {
                    v * s
                } else {
                    s * (v - 1) + op + ek - pb - pe
                };
                match u64::try_from(out) {
                    Ok(o) if o > 0 => Dim::Known(o),
                    _ => {
                        return Err(cx.err(format!(
                            "spatial axis {i}: input size {v} gives output size {out} \
                             (pads {pb}+{pe}, kernel extent {ek}, stride {s})"
                        )));
                    }
                }
            }
            d if s == 1 && (same || op + ek - 1 == pb + pe) => d.clone(),
            _ => Dim::Unknown,
        });
    }
    Ok(vec![ty(dtype, Some(Shape(dims)))])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::attr::AutoPad;
    use crate::dtype::DType;
    use crate::op;

    fn conv(x: &[crate::dim::Dim], w: &[usize], o: op::Conv) -> Result<String, String> {
        let mut t = T::new();
        let xv = t.input("x", DType::F32, x);
        let wv = t.konst_f32("w", w);
        let y = t.named("conv1", o, &[xv, wv]);
        match super::super::infer_shapes(&mut t.g) {
            Ok(_) => Ok(t.ty(y)),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn conv_explicit_pads_strides_dilations() {
        // ONNX Conv backend test `test_conv_with_strides_padding`: x [1,1,7,5], W [1,1,3,3],
        // strides 2, pads 1 -> [1,1,4,3]; `..._no_padding` -> [1,1,3,2].
        let o = op::Conv {
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        assert_eq!(
            conv(&[k(1), k(1), k(7), k(5)], &[1, 1, 3, 3], o).unwrap(),
            "f32[1,1,4,3]"
        );
        let o = op::Conv {
            strides: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(
            conv(&[k(1), k(1), k(7), k(5)], &[1, 1, 3, 3], o).unwrap(),
            "f32[1,1,3,2]"
        );
        // Dilation 2 on a 3x3 kernel: extent 5, 7 -> 3 (test_conv_with_dilations-like arithmetic:
        // floor((7 - 5) / 1) + 1 = 3).
        let o = op::Conv {
            dilations: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(
            conv(&[k(1), k(1), k(7), k(7)], &[1, 1, 3, 3], o).unwrap(),
            "f32[1,1,3,3]"
        );
    }

    #[test]
    fn conv_auto_pad() {
        // test_conv_with_autopad_same: x [1,1,5,5], W 3x3, strides 2, SAME_LOWER -> [1,1,3,3].
        let o = op::Conv {
            auto_pad: AutoPad::SameLower,
            strides: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(
            conv(&[k(1), k(1), k(5), k(5)], &[1, 1, 3, 3], o).unwrap(),
            "f32[1,1,3,3]"
        );
        // SAME_UPPER: ceil(in / stride) = ceil(7/2) = 4, ceil(6/2) = 3.
        let o = op::Conv {
            auto_pad: AutoPad::SameUpper,
            strides: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(
            conv(&[k(1), k(1), k(7), k(6)], &[1, 1, 3, 3], o).unwrap(),
            "f32[1,1,4,3]"
        );
        // VALID: floor((in - ek) / s) + 1 = floor((7-3)/2)+1 = 3.
        let o = op::Conv {
            auto_pad: AutoPad::Valid,
            strides: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(
            conv(&[k(1), k(1), k(7), k(7)], &[1, 1, 3, 3], o).unwrap(),
            "f32[1,1,3,3]"
        );
    }

    #[test]
    fn conv_symbolic_dims() {
        // A "same" 3x3 stride-1 conv keeps H and W; a stride-2 conv cannot name its output.
        let o = op::Conv {
            pads: vec![1, 1, 1, 1],
            ..Default::default()
        };
        let x = [n(), k(3), sym("H"), sym("W")];
        assert_eq!(conv(&x, &[16, 3, 3, 3], o).unwrap(), "f32[N,16,H,W]");
        let o = op::Conv {
            pads: vec![1, 1, 1, 1],
            strides: vec![2, 2],
            ..Default::default()
        };
        assert_eq!(conv(&x, &[16, 3, 3, 3], o).unwrap(), "f32[N,16,?,?]");
        let o = op::Conv {
            auto_pad: AutoPad::SameUpper,
            ..Default::default()
        };
        assert_eq!(conv(&x, &[16, 3, 5, 5], o).unwrap(), "f32[N,16,H,W]");
    }

    #[test]
    fn conv_channel_checks() {
        let e = conv(
            &[k(1), k(3), k(8), k(8)],
            &[16, 4, 3, 3],
            op::Conv::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Conv node 'conv1': input has 3 channels, weight expects 4 (group 1)"
        );
        // Depthwise: group = C, W [C, 1, k, k].
        let o = op::Conv {
            group: 8,
            ..Default::default()
        };
        assert_eq!(
            conv(&[n(), k(8), k(5), k(5)], &[8, 1, 3, 3], o).unwrap(),
            "f32[N,8,3,3]"
        );
        let o = op::Conv {
            group: 3,
            ..Default::default()
        };
        let e = conv(&[n(), k(6), k(5), k(5)], &[8, 2, 3, 3], o).unwrap_err();
        assert!(
            e.contains("weight has 8 output channels, which group 3 does not divide"),
            "{e}"
        );
    }

    #[test]
    fn conv_bad_inputs_are_errors_not_panics() {
        let e = conv(&[], &[16, 3, 3, 3], op::Conv::default()).unwrap_err();
        assert!(
            e.contains("input has shape []; it needs at least 3 dims"),
            "{e}"
        );
        let e = conv(&[k(1), k(3), k(8)], &[16, 3, 3, 3], op::Conv::default()).unwrap_err();
        assert!(
            e.contains("weight has rank 4 ([16,3,3,3]) but the input has rank 3"),
            "{e}"
        );
        let o = op::Conv {
            pads: vec![1, 1],
            ..Default::default()
        };
        let e = conv(&[k(1), k(3), k(8), k(8)], &[16, 3, 3, 3], o).unwrap_err();
        assert!(
            e.contains("pads [1, 1] has 2 values for 2 spatial axes (needs 4)"),
            "{e}"
        );
        let o = op::Conv {
            strides: vec![0, 1],
            ..Default::default()
        };
        assert!(conv(&[k(1), k(3), k(8), k(8)], &[16, 3, 3, 3], o).is_err());
        let e = conv(
            &[k(1), k(3), k(2), k(2)],
            &[16, 3, 3, 3],
            op::Conv::default(),
        )
        .unwrap_err();
        assert!(e.contains("smaller than the kernel extent 3"), "{e}");
        let o = op::Conv {
            kernel_shape: vec![5, 5],
            ..Default::default()
        };
        assert!(conv(&[k(1), k(3), k(8), k(8)], &[16, 3, 3, 3], o).is_err());
        let o = op::Conv {
            group: 0,
            ..Default::default()
        };
        assert!(conv(&[k(1), k(3), k(8), k(8)], &[16, 3, 3, 3], o).is_err());
    }

    #[test]
    fn conv_weight_not_constant() {
        // The weight is an input with a shape: its type is enough.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), k(8), k(8)]);
        let w = t.input("w", DType::F32, &[k(4), k(3), k(3), k(3)]);
        let y = t.node(op::Conv::default(), &[x, w]);
        // Unknown weight shape: output channels unknown, spatial dims from kernel_shape.
        let w2 = t.input_unranked("w2", DType::F32);
        let o = op::Conv {
            kernel_shape: vec![3, 3],
            ..Default::default()
        };
        let y2 = t.node(o, &[x, w2]);
        t.run();
        assert_eq!(t.ty(y), "f32[N,4,6,6]");
        assert_eq!(t.ty(y2), "f32[N,?,6,6]");
    }

    #[test]
    fn conv_transpose_shapes() {
        // ConvTranspose spec: out = s*(in-1) + output_padding + ((k-1)*d+1) - pads.
        // test_convtranspose: x [1,1,3,3], W [1,2,3,3] -> [1,2,5,5].
        // test_convtranspose_pads: strides [3,2], pads [1,2,1,2] -> 3*(3-1)+3-2 = 7, 2*2+3-4 = 3.
        // test_convtranspose_output_shape: output_shape [10,8] -> [1,2,10,8].
        // test_convtranspose_autopad_same: strides 2, SAME_UPPER -> in*s = [1,2,6,6].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(1), k(3), k(3)]);
        let w = t.konst_f32("w", &[1, 2, 3, 3]);
        let a = t.node(op::ConvTranspose::default(), &[x, w]);
        let p = op::ConvTranspose {
            strides: vec![3, 2],
            pads: vec![1, 2, 1, 2],
            ..Default::default()
        };
        let b = t.node(p, &[x, w]);
        let p = op::ConvTranspose {
            strides: vec![3, 2],
            output_shape: vec![10, 8],
            ..Default::default()
        };
        let c = t.node(p, &[x, w]);
        let p = op::ConvTranspose {
            strides: vec![2, 2],
            auto_pad: AutoPad::SameUpper,
            ..Default::default()
        };
        let d = t.node(p, &[x, w]);
        // test_convtranspose_kernel_shape-like: output_padding [1,1], strides 3 ->
        // 3*(3-1) + 1 + 3 = 10.
        let p = op::ConvTranspose {
            strides: vec![3, 3],
            output_padding: vec![1, 1],
            ..Default::default()
        };
        let e = t.node(p, &[x, w]);
        // group 2: output channels W[1] * group.
        let x2 = t.input("x2", DType::F32, &[n(), k(4), sym("H"), sym("W")]);
        let w2 = t.konst_f32("w2", &[4, 3, 2, 2]);
        let p = op::ConvTranspose {
            group: 2,
            strides: vec![2, 2],
            ..Default::default()
        };
        let f = t.node(p, &[x2, w2]);
        t.run();
        assert_eq!(t.ty(a), "f32[1,2,5,5]");
        assert_eq!(t.ty(b), "f32[1,2,7,3]");
        assert_eq!(t.ty(c), "f32[1,2,10,8]");
        assert_eq!(t.ty(d), "f32[1,2,6,6]");
        assert_eq!(t.ty(e), "f32[1,2,10,10]");
        assert_eq!(t.ty(f), "f32[N,6,?,?]");
    }

    #[test]
    fn conv_transpose_channel_mismatch() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(3), k(3), k(3)]);
        let w = t.konst_f32("w", &[4, 2, 3, 3]);
        t.named("up", op::ConvTranspose::default(), &[x, w]);
        assert_eq!(
            t.run_err(),
            "ConvTranspose node 'up': input has 3 channels, weight expects 4"
        );
    }

    #[test]
    fn quantized_convs_take_their_output_type() {
        // QLinearConv: y has y_zero_point's type; ConvInteger: int32.
        let mut t = T::new();
        let x = t.input("x", DType::U8, &[k(1), k(3), k(8), k(8)]);
        let w = t.konst("w", crate::Tensor::zeros(DType::I8, &[4, 3, 3, 3]));
        let s = t.konst("s", crate::Tensor::scalar(0.1f32));
        let zp = t.konst("zp", crate::Tensor::scalar(0i8));
        let y = t.multi(
            op::QLinearConv::default(),
            &[
                Some(x),
                Some(s),
                Some(zp),
                Some(w),
                Some(s),
                Some(zp),
                Some(s),
                Some(zp),
            ],
            1,
        );
        let ci = t.node(op::ConvInteger::default(), &[x, w]);
        t.run();
        assert_eq!(t.ty(y[0]), "i8[1,4,6,6]");
        assert_eq!(t.ty(ci), "i32[1,4,6,6]");
    }
}
