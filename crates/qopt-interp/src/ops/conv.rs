//! Conv (ONNX): N-D convolution with groups, dilations, strides, explicit pads or `auto_pad`,
//! and an optional bias. Depthwise convolutions go to the direct kernel, everything else to
//! im2col + GEMM (`kernels/conv.rs`).
//!
//! [`PreparedConv`] is the plan's form of a Conv with constant weights: the weights and bias
//! are copied once, a following BatchNormalization can be folded into them, and a following
//! activation runs in the GEMM epilogue (see `fusion.rs`).

use super::{Ctx, OpResult, arg, contig, f32_arg, opt, tensor};
use crate::error::{OpError, bail};
use crate::kernels::activation::Activation;
use crate::kernels::conv::{ConvGeometry, conv2col};
use crate::kernels::depthwise;
use crate::kernels::gemm::{Bias, Epilogue};
use qopt_ir::Tensor;
use qopt_ir::attr::AutoPad;
use qopt_ir::op::Conv;

/// Output size and padding (begin, end) of one spatial axis.
///
/// Explicit pads: `out = floor((in + pb + pe - ((k - 1) * d + 1)) / s) + 1` (ceil with
/// `ceil_mode`, dropping a last window that would start in the end padding). `SAME_UPPER` /
/// `SAME_LOWER`: `out = ceil(in / s)` with the total padding split, the odd element at the end
/// (upper) or the beginning (lower). `VALID`: no padding.
#[allow(clippy::too_many_arguments)]
pub fn axis_geometry(
    input: usize,
    k: usize,
    s: usize,
    d: usize,
    pads: (usize, usize),
    auto: AutoPad,
    ceil_mode: bool,
) -> Result<(usize, usize, usize), OpError> {
    if k == 0 || s == 0 || d == 0 {
        bail!("kernel, stride and dilation must be positive (got {k}, {s}, {d})");
    }
    let eff = (k - 1) * d + 1;
    let (pb, pe) = match auto {
        AutoPad::NotSet => pads,
        AutoPad::Valid => (0, 0),
        AutoPad::SameUpper | AutoPad::SameLower => {
            let out = input.div_ceil(s);
            let total = ((out.max(1) - 1) * s + eff).saturating_sub(input);
            if auto == AutoPad::SameUpper {
                (total / 2, total - total / 2)
            } else {
                (total - total / 2, total / 2)
            }
        }
    };
    let span = input + pb + pe;
    if span < eff {
        bail!("kernel extent {eff} is larger than the padded input {span}");
    }
    let mut out = if ceil_mode {
        (span - eff).div_ceil(s) + 1
    } else {
        (span - eff) / s + 1
    };
    if ceil_mode && (out - 1) * s >= input + pb {
        out -= 1;
    }
    Ok((out, pb, pe))
}

/// Attribute lists with the spec's defaults (ones, or zeros for pads).
pub fn spatial_attr(
    v: &[i64],
    n: usize,
    default: usize,
    what: &str,
) -> Result<Vec<usize>, OpError> {
    if v.is_empty() {
        return Ok(vec![default; n]);
    }
    if v.len() != n || v.iter().any(|&x| x < 0) {
        bail!("{what} {v:?} does not fit {n} spatial axes");
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// Resolve a Conv's geometry for input shape `xs` and weight shape `ws`; also returns the end
/// padding of each axis.
pub fn geometry(
    o: &Conv,
    xs: &[usize],
    ws: &[usize],
) -> Result<(ConvGeometry, Vec<usize>), OpError> {
    if xs.len() < 3 || ws.len() != xs.len() {
        bail!("Conv needs X of rank >= 3 and W of the same rank, got {xs:?} and {ws:?}");
    }
    let n = xs.len() - 2;
    let group = o.group;
    if group < 1 {
        bail!("group must be positive, got {group}");
    }
    let group = group as usize;
    let (c_in, c_out) = (xs[1], ws[0]);
    if c_in != ws[1] * group || c_out % group != 0 {
        bail!("X {xs:?}, W {ws:?} and group {group} do not agree");
    }
    let kernel = ws[2..].to_vec();
    if !o.kernel_shape.is_empty() && spatial_attr(&o.kernel_shape, n, 1, "kernel_shape")? != kernel
    {
        bail!(
            "kernel_shape {:?} differs from the weight shape {ws:?}",
            o.kernel_shape
        );
    }
    let strides = spatial_attr(&o.strides, n, 1, "strides")?;
    let dilations = spatial_attr(&o.dilations, n, 1, "dilations")?;
    let pads = spatial_attr(&o.pads, 2 * n, 0, "pads")?;
    let mut out_sp = Vec::with_capacity(n);
    let mut pad_begin = Vec::with_capacity(n);
    let mut pad_end = Vec::with_capacity(n);
    for a in 0..n {
        let (out, pb, pe) = axis_geometry(
            xs[2 + a],
            kernel[a],
            strides[a],
            dilations[a],
            (pads[a], pads[a + n]),
            o.auto_pad,
            false,
        )?;
        out_sp.push(out);
        pad_begin.push(pb as isize);
        pad_end.push(pe);
    }
    let g = ConvGeometry {
        batch: xs[0],
        c_in,
        c_out,
        group,
        in_sp: xs[2..].to_vec(),
        out_sp,
        kernel,
        strides,
        dilations,
        pad_begin,
    };
    Ok((g, pad_end))
}

/// Convolution of f32 data with weights `w` of shape `ws`.
pub fn conv_f32(
    ctx: &mut Ctx,
    o: &Conv,
    x: &Tensor,
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    act: Activation,
) -> Result<Tensor, OpError> {
    let Some(xa) = x.as_f32() else {
        bail!("X must be f32, got {}", x.dtype())
    };
    let (g, pad_end) = geometry(o, xa.shape(), ws)?;
    if let Some(b) = bias
        && b.len() != g.c_out
    {
        bail!(
            "bias has {} values for {} output channels",
            b.len(),
            g.c_out
        );
    }
    let mut osh = vec![g.batch, g.c_out];
    osh.extend_from_slice(&g.out_sp);
    let n = super::numel(&osh)?;
    let mut y = ctx.alloc(n);
    let xd = contig(xa);
    if depthwise::applies(&g) {
        depthwise::depthwise(&g, &pad_end, &xd, w, bias, act, &mut y);
    } else {
        let epi = Epilogue {
            bias: bias.map_or(Bias::None, Bias::Row),
            act,
        };
        conv2col(&g, &xd, w, &mut y, &epi);
    }
    tensor(&osh, y)
}

pub fn run(o: &Conv, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let w = f32_arg(inputs, 1)?;
    let b = opt(inputs, 2)
        .map(|t| {
            t.as_f32()
                .ok_or_else(|| OpError(format!("B must be f32, got {}", t.dtype())))
        })
        .transpose()?;
    let bd = b.map(contig);
    Ok(vec![conv_f32(
        ctx,
        o,
        x,
        &contig(w),
        w.shape(),
        bd.as_deref(),
        Activation::None,
    )?])
}

/// A Conv with constant weights, ready to run: optionally with a BatchNormalization folded in
/// and an activation fused.
#[derive(Clone, Debug)]
pub struct PreparedConv {
    pub attrs: Conv,
    pub w: Vec<f32>,
    pub w_shape: Vec<usize>,
    pub bias: Option<Vec<f32>>,
    pub act: Activation,
}

impl PreparedConv {
    pub fn new(attrs: &Conv, w: &Tensor, b: Option<&Tensor>) -> Result<PreparedConv, OpError> {
        let Some(wa) = w.as_f32() else {
            bail!("W must be f32, got {}", w.dtype())
        };
        let bias = match b {
            Some(t) => match t.as_f32() {
                Some(a) if a.len() == wa.shape().first().copied().unwrap_or(0) => {
                    Some(contig(a).into_owned())
                }
                _ => bail!("B must be f32 with one value per output channel"),
            },
            None => None,
        };
        Ok(PreparedConv {
            attrs: attrs.clone(),
            w: contig(wa).into_owned(),
            w_shape: wa.shape().to_vec(),
            bias,
            act: Activation::None,
        })
    }

    /// Add a per-output-channel constant to the bias (a bias written as a separate `Add`).
    pub fn add_bias(&mut self, c: &[f32]) -> Result<(), OpError> {
        let n = self.w_shape.first().copied().unwrap_or(0);
        if c.len() != n {
            bail!("bias Add has {} values for {n} channels", c.len());
        }
        let mut bias = self.bias.take().unwrap_or_else(|| vec![0.0; n]);
        bias.iter_mut().zip(c).for_each(|(b, &v)| *b += v);
        self.bias = Some(bias);
        Ok(())
    }

    /// Multiply the output channels by constants (a scale written as a separate `Mul`).
    pub fn scale(&mut self, c: &[f32]) -> Result<(), OpError> {
        let n = self.w_shape.first().copied().unwrap_or(0);
        if c.len() != n {
            bail!("scale Mul has {} values for {n} channels", c.len());
        }
        let per = self.w.len() / n.max(1);
        for (o, &s) in c.iter().enumerate() {
            self.w[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|w| *w *= s);
        }
        if let Some(b) = &mut self.bias {
            b.iter_mut().zip(c).for_each(|(b, &s)| *b *= s);
        }
        Ok(())
    }

    /// Fold `y = (conv - mean) * scale / sqrt(var + eps) + beta` into the weights and bias,
    /// in f32 like ONNX Runtime's Conv+BatchNormalization fusion.
    pub fn fold_batchnorm(
        &mut self,
        scale: &[f32],
        beta: &[f32],
        mean: &[f32],
        var: &[f32],
        eps: f32,
    ) -> Result<(), OpError> {
        let c = self.w_shape.first().copied().unwrap_or(0);
        if [scale.len(), beta.len(), mean.len(), var.len()]
            .iter()
            .any(|&l| l != c)
        {
            bail!("BatchNormalization parameters do not have {c} channels");
        }
        let per = self.w.len() / c.max(1);
        let mut bias = self.bias.take().unwrap_or_else(|| vec![0.0; c]);
        for o in 0..c {
            let s = scale[o] / (var[o] + eps).sqrt();
            self.w[o * per..(o + 1) * per]
                .iter_mut()
                .for_each(|w| *w *= s);
            bias[o] = (bias[o] - mean[o]) * s + beta[o];
        }
        self.bias = Some(bias);
        Ok(())
    }

    pub fn run(&self, ctx: &mut Ctx, x: &Tensor) -> Result<Tensor, OpError> {
        conv_f32(
            ctx,
            &self.attrs,
            x,
            &self.w,
            &self.w_shape,
            self.bias.as_deref(),
            self.act,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_pad_and_ceil_mode() {
        // SAME_UPPER, in 5, k 2, s 2: out 3, total pad 1 at the end.
        assert_eq!(
            axis_geometry(5, 2, 2, 1, (0, 0), AutoPad::SameUpper, false).unwrap(),
            (3, 0, 1)
        );
        assert_eq!(
            axis_geometry(5, 2, 2, 1, (0, 0), AutoPad::SameLower, false).unwrap(),
            (3, 1, 0)
        );
        assert_eq!(
            axis_geometry(5, 3, 1, 1, (1, 1), AutoPad::NotSet, false).unwrap(),
            (5, 1, 1)
        );
        assert_eq!(
            axis_geometry(5, 3, 2, 2, (0, 0), AutoPad::Valid, false).unwrap(),
            (1, 0, 0)
        );
        // ceil_mode: in 6, k 3, s 2: floor gives 2, ceil 3 (the last window starts at 4 < 6).
        assert_eq!(
            axis_geometry(6, 3, 2, 1, (0, 0), AutoPad::NotSet, true)
                .unwrap()
                .0,
            3
        );
        assert!(axis_geometry(2, 5, 1, 1, (0, 0), AutoPad::NotSet, false).is_err());
    }
}
