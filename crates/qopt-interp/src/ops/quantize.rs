//! QuantizeLinear and DequantizeLinear (ONNX), per tensor or per axis (DESIGN.md §5):
//! `q = saturate(round_half_to_even(x / s) + zp)`, `x = (q - zp) * s`. In the fp32 interpreter
//! they let a QDQ graph run as simulated quantization. Blocked quantization is not supported.

use super::{OpResult, arg, axis, opt, tensor};
use crate::error::{OpError, bail};
use qopt_ir::op::{DequantizeLinear, QuantizeLinear};
use qopt_ir::{DType, Tensor};

/// Per-element (scale, zero point) lookup: per tensor, or per index along `axis`.
fn params(
    x: &Tensor,
    scale: &Tensor,
    zp: Option<&Tensor>,
    ax: i64,
    block: i64,
) -> Result<(Vec<f64>, Vec<f64>, usize, usize), OpError> {
    if block != 0 {
        bail!("blocked quantization (block_size {block}) is not supported");
    }
    let s = scale.to_f64_vec();
    let z = zp
        .map(|t| t.to_f64_vec())
        .unwrap_or_else(|| vec![0.0; s.len()]);
    if z.len() != s.len() {
        bail!("scale has {} values, zero point {}", s.len(), z.len());
    }
    if s.len() == 1 && scale.rank() <= 1 {
        return Ok((s, z, 1, 1));
    }
    let a = axis(ax, x.rank())?;
    if scale.rank() != 1 || s.len() != x.shape()[a] {
        bail!(
            "per-axis scale of shape {:?} does not match axis {a} of {:?}",
            scale.shape(),
            x.shape()
        );
    }
    let inner: usize = x.shape()[a + 1..].iter().product();
    Ok((s, z, x.shape()[a], inner))
}

pub fn quantize(o: &QuantizeLinear, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let scale = arg(inputs, 1)?;
    let zp = opt(inputs, 2);
    let to = zp
        .map(|t| t.dtype())
        .or(o.output_dtype)
        .unwrap_or(DType::U8);
    let Some((lo, hi)) = to.int_range().filter(|_| to != DType::Bool) else {
        bail!("cannot quantize to {to}")
    };
    let (s, z, n, inner) = params(x, scale, zp, o.axis, o.block_size)?;
    let xv = x.to_f64_vec();
    let q: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = (i / inner.max(1)) % n;
            // f32 division as the spec computes it, then round half to even.
            let r = ((v as f32) / (s[k] as f32)).round_ties_even() as f64 + z[k];
            r.clamp(lo as f64, hi as f64)
        })
        .collect();
    Ok(vec![tensor(x.shape(), q)?.cast(to)])
}

pub fn dequantize(o: &DequantizeLinear, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let scale = arg(inputs, 1)?;
    let (s, z, n, inner) = params(x, scale, opt(inputs, 2), o.axis, o.block_size)?;
    let y: Vec<f32> = x
        .to_f64_vec()
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let k = (i / inner.max(1)) % n;
            ((q - z[k]) as f32) * s[k] as f32
        })
        .collect();
    let out = tensor(x.shape(), y)?;
    Ok(vec![if scale.dtype() == DType::F32 {
        out
    } else {
        out.cast(scale.dtype())
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_and_saturate() {
        // Hand-derived: x / 0.5 = [1, 2.5 -> 2, 3.5 -> 4, 400 -> 255, -4 -> 0] + zp 0, u8.
        let x = Tensor::from_vec(&[5], vec![0.5f32, 1.25, 1.75, 200.0, -2.0]);
        let q = quantize(
            &QuantizeLinear::default(),
            &[Some(&x), Some(&Tensor::scalar(0.5f32))],
        )
        .unwrap()
        .remove(0);
        assert_eq!(q.dtype(), DType::U8);
        assert_eq!(q.to_i64_vec().unwrap(), vec![1, 2, 4, 255, 0]);
        let d = dequantize(
            &DequantizeLinear::default(),
            &[
                Some(&q),
                Some(&Tensor::scalar(0.5f32)),
                Some(&Tensor::scalar(2u8)),
            ],
        )
        .unwrap()
        .remove(0);
        assert_eq!(d.to_f64_vec(), vec![-0.5, 0.0, 1.0, 126.5, -1.0]);
    }
}
