//! QuantizeLinear, DequantizeLinear (per tensor, constant parameters) and DynamicQuantizeLinear
//! (ONNX operator specs), on the kernels of `kernels/int8/quantize.rs`:
//! `q = saturate(round_half_even(x / s) + zp)`, `x = (q - zp) · s`, bit-exact with the spec's f32
//! formulas. Per-axis and run-time parameters run the fp32 interpreter's ops instead (`float.rs`).
//!
//! DynamicQuantizeLinear (u8 output): `x_min = min(0, min x)`, `x_max = max(0, max x)`,
//! `s = (x_max - x_min) / 255` (1/255 when they are equal, as the ONNX reference implementation
//! and ONNX Runtime do), `zp = round_half_even(clamp(-x_min / s, 0, 255))`, then QuantizeLinear.

use super::layout::to_nchw;
use super::{QOut, Step, StepCx, kerr, out_tensor, qdata};
use crate::error::{OpError, bail};
use crate::kernels::int8::{dequantize, quantize};
use crate::ops::{arg, contig};
use qopt_ir::Tensor;

/// QuantizeLinear of an f32 tensor with a constant scale and zero point.
pub struct Quantize {
    pub scale: f32,
    pub zero_point: i32,
    pub out: QOut,
}

pub fn quantize_tensor(
    cx: &StepCx,
    x: &Tensor,
    scale: f32,
    zp: i32,
    out: QOut,
) -> Result<Tensor, OpError> {
    let Some(a) = x.as_f32() else {
        bail!("QuantizeLinear input must be f32, got {}", x.dtype())
    };
    let xs = contig(a);
    Ok(match out {
        QOut::U8 => {
            let mut q = vec![0u8; xs.len()];
            quantize(cx.kind, &xs, scale, zp, &mut q).map_err(kerr)?;
            out_tensor(a.shape(), q)?
        }
        QOut::I8 => {
            let mut q = vec![0i8; xs.len()];
            quantize(cx.kind, &xs, scale, zp, &mut q).map_err(kerr)?;
            out_tensor(a.shape(), q)?
        }
    })
}

impl Step for Quantize {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        Ok(vec![quantize_tensor(
            cx,
            arg(ins, 0)?,
            self.scale,
            self.zero_point,
            self.out,
        )?])
    }
    fn name(&self) -> String {
        "QuantizeLinear".into()
    }
}

/// DequantizeLinear of a u8/i8 tensor with a constant scale and zero point; a channels-last
/// input comes out in the ONNX layout.
pub struct Dequantize {
    pub scale: f32,
    pub zero_point: i32,
    pub nhwc_in: bool,
}

pub fn dequantize_tensor(
    cx: &mut StepCx,
    q: &Tensor,
    scale: f32,
    zp: i32,
) -> Result<Tensor, OpError> {
    let mut y = cx.pool.take(q.len());
    match q {
        Tensor::U8(_) => dequantize(cx.kind, &qdata::<u8>(q)?, scale, zp, &mut y),
        Tensor::I8(_) => dequantize(cx.kind, &qdata::<i8>(q)?, scale, zp, &mut y),
        t => bail!(
            "DequantizeLinear input must be u8 or i8 here, got {}",
            t.dtype()
        ),
    }
    .map_err(kerr)?;
    out_tensor(q.shape(), y)
}

impl Step for Dequantize {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = arg(ins, 0)?;
        let y = if self.nhwc_in {
            dequantize_tensor(cx, &to_nchw(x)?, self.scale, self.zero_point)?
        } else {
            dequantize_tensor(cx, x, self.scale, self.zero_point)?
        };
        Ok(vec![y])
    }
    fn name(&self) -> String {
        "DequantizeLinear".into()
    }
}

/// DynamicQuantizeLinear: outputs y (u8), y_scale (f32 scalar), y_zero_point (u8 scalar).
pub struct DynamicQuantize;

/// The scale and zero point DynamicQuantizeLinear picks for `x` (see the module comment).
pub fn dynamic_params(x: &[f32]) -> (f32, i32) {
    let (mut lo, mut hi) = (0f32, 0f32);
    for &v in x {
        // NaN is skipped like numpy's minimum/maximum would not: the spec leaves it undefined.
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let scale = if hi == lo { 1.0 } else { hi - lo } / 255.0;
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0).round_ties_even() as i32;
    (scale, zp)
}

impl Step for DynamicQuantize {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = arg(ins, 0)?;
        let Some(a) = x.as_f32() else {
            bail!("DynamicQuantizeLinear input must be f32, got {}", x.dtype())
        };
        let (scale, zp) = dynamic_params(&contig(a));
        Ok(vec![
            quantize_tensor(cx, x, scale, zp, QOut::U8)?,
            Tensor::scalar(scale),
            Tensor::scalar(zp as u8),
        ])
    }
    fn name(&self) -> String {
        "DynamicQuantizeLinear".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_params_follow_the_onnx_reference() {
        // Reference values: onnx/reference/ops/op_dynamic_quantize_linear.py on these inputs
        // (test_dynamicquantizelinear: x = [0, 2, -3, -2.5, 1.34, 0.5] -> scale 0.019607844,
        // zp 153; all zeros -> scale 1/255, zp 0).
        let (s, z) = dynamic_params(&[0.0, 2.0, -3.0, -2.5, 1.34, 0.5]);
        assert_eq!((s, z), (0.019_607_844, 153));
        assert_eq!(dynamic_params(&[0.0; 4]), (1.0 / 255.0, 0));
    }
}
