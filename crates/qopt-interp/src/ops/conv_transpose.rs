//! ConvTranspose (ONNX): the gradient of Conv with respect to its input, N-D, with groups,
//! dilations, strides, pads, output_padding, output_shape and auto_pad. Weights are
//! `[C_in, C_out / group, k...]`. Output size per axis:
//! `stride * (in - 1) + output_padding + ((k - 1) * dilation + 1) - pad_begin - pad_end`;
//! with `output_shape` (or SAME auto_pad, whose output is `in * stride`) the total padding is
//! derived and split as the spec says (the odd element at the beginning except for SAME_UPPER).

use super::conv::spatial_attr;
use super::{Ctx, OpResult, contig, f32_arg, opt, tensor};
use crate::error::{OpError, bail};
use crate::kernels::conv::{ConvGeometry, conv_transpose};
use qopt_ir::Tensor;
use qopt_ir::attr::AutoPad;
use qopt_ir::op::ConvTranspose;

pub fn geometry(o: &ConvTranspose, xs: &[usize], ws: &[usize]) -> Result<ConvGeometry, OpError> {
    if xs.len() < 3 || ws.len() != xs.len() {
        bail!("ConvTranspose needs X of rank >= 3 and W of the same rank, got {xs:?} and {ws:?}");
    }
    let n = xs.len() - 2;
    if o.group < 1 {
        bail!("group must be positive, got {}", o.group);
    }
    let group = o.group as usize;
    if xs[1] != ws[0] || !xs[1].is_multiple_of(group) {
        bail!("X {xs:?}, W {ws:?} and group {group} do not agree");
    }
    let kernel = ws[2..].to_vec();
    let strides = spatial_attr(&o.strides, n, 1, "strides")?;
    let dilations = spatial_attr(&o.dilations, n, 1, "dilations")?;
    let out_pad = spatial_attr(&o.output_padding, n, 0, "output_padding")?;
    let pads = spatial_attr(&o.pads, 2 * n, 0, "pads")?;
    if strides.contains(&0) || dilations.contains(&0) {
        bail!("strides and dilations must be positive");
    }
    let out_shape: Option<Vec<usize>> = if !o.output_shape.is_empty() {
        // output_shape may include N and C; only the spatial tail counts.
        let os = &o.output_shape[o.output_shape.len().saturating_sub(n)..];
        if os.len() != n || os.iter().any(|&v| v < 0) {
            bail!(
                "output_shape {:?} does not fit {n} spatial axes",
                o.output_shape
            );
        }
        Some(os.iter().map(|&v| v as usize).collect())
    } else if matches!(o.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
        Some((0..n).map(|a| xs[2 + a] * strides[a]).collect())
    } else {
        None
    };
    let mut out_sp = Vec::with_capacity(n);
    let mut pad_begin = Vec::with_capacity(n);
    for a in 0..n {
        let full = (strides[a] * (xs[2 + a].max(1) - 1)
            + out_pad[a]
            + (kernel[a].max(1) - 1) * dilations[a]
            + 1) as isize;
        match &out_shape {
            Some(os) => {
                // Floor division, as the spec's reference (Python `//`) does for a negative
                // total padding (an output larger than the full transposed convolution).
                let total = full - os[a] as isize;
                let half = total.div_euclid(2);
                let pb = if o.auto_pad == AutoPad::SameUpper {
                    half
                } else {
                    total - half
                };
                out_sp.push(os[a]);
                pad_begin.push(pb);
            }
            None => {
                let (pb, pe) = if o.auto_pad == AutoPad::Valid {
                    (0, 0)
                } else {
                    (pads[a], pads[a + n])
                };
                let out = full - (pb + pe) as isize;
                if out <= 0 {
                    bail!("output size {out} on axis {a} is not positive");
                }
                out_sp.push(out as usize);
                pad_begin.push(pb as isize);
            }
        }
    }
    Ok(ConvGeometry {
        batch: xs[0],
        c_in: xs[1],
        c_out: ws[1] * group,
        group,
        in_sp: xs[2..].to_vec(),
        out_sp,
        kernel,
        strides,
        dilations,
        pad_begin,
    })
}

pub fn run(o: &ConvTranspose, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = f32_arg(inputs, 0)?;
    let w = f32_arg(inputs, 1)?;
    let g = geometry(o, x.shape(), w.shape())?;
    let b = match opt(inputs, 2) {
        Some(t) => match t.as_f32() {
            Some(a) if a.len() == g.c_out => Some(contig(a)),
            _ => bail!("B must be f32 with {} values", g.c_out),
        },
        None => None,
    };
    let mut osh = vec![g.batch, g.c_out];
    osh.extend_from_slice(&g.out_sp);
    let n = super::numel(&osh)?;
    let cols = super::numel(&[g.c_out_g() * g.k_len(), g.in_len()])?;
    let mut y = ctx.alloc(n);
    let mut col = ctx.alloc(cols);
    conv_transpose(&g, &contig(x), &contig(w), b.as_deref(), &mut y, &mut col);
    ctx.pool.give(col);
    Ok(vec![tensor(&osh, y)?])
}
