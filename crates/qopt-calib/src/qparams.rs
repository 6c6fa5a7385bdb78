//! Quantization parameters and numerics (DESIGN.md §5), shared by `qdq`, `eq` and the INT8
//! interpreter.
//!
//! - Scale and zero point from a range follow ONNX Runtime's `compute_scale_zp`
//!   (`onnxruntime/python/tools/quantization/quant_utils.py`): the range is widened to hold
//!   0, the scale is computed in f64 and stored as f32, the zero point is
//!   `round_half_even(qmin - min / scale)`, and a scale below the smallest normal f32 becomes 1
//!   with zero point 0. Symmetric signed ranges use `s = amax / qmax` (127 for 8 bits), for
//!   weights (narrow range [-127, 127]) and TensorRT activations ([-128, 127]) alike;
//!   symmetric unsigned ranges use ORT's `s = 2 amax / 255`, zero point 128.
//! - Quantize and dequantize are ONNX QuantizeLinear/DequantizeLinear
//!   (`onnx/reference/ops/op_quantize_linear.py`): `q = clamp(rint(x / s) + zp, qmin, qmax)`
//!   with `x / s` in f32 and round-half-to-even (numpy's `rint`), and `x = (q - zp) * s` in f32.

use ndarray::{ArrayD, ArrayViewD, Axis};
use qopt_ir::{DType, QParams, Range, Tensor};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QParamsError {
    #[error("quantized type must be i8 or u8, got {0}")]
    DType(DType),
    #[error("bit width must be 2..=8, got {0}")]
    Bits(u32),
    #[error("range [{0}, {1}] is not finite")]
    Range(f32, f32),
    #[error("channel axis {axis} is out of range for a tensor of rank {rank}")]
    Axis { axis: usize, rank: usize },
    #[error("{scales} scales for {channels} channels along axis {axis}")]
    Channels {
        scales: usize,
        channels: usize,
        axis: usize,
    },
    #[error("expected an f32 tensor, got {0}")]
    NotF32(DType),
    #[error("expected an i8 or u8 tensor matching the parameters' type {0}, got {1}")]
    NotQuantized(DType, DType),
}

/// How a value is quantized: storage type, symmetry, narrow range, bit width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QScheme {
    /// `I8` or `U8`.
    pub dtype: DType,
    pub symmetric: bool,
    /// Signed types only: use [-(2^(b-1) - 1), 2^(b-1) - 1] (no -128), as for weights.
    pub narrow: bool,
    /// Bits of the integer grid (8; fewer, such as 7, for EasyQuant-style headroom).
    pub bits: u32,
}

impl QScheme {
    /// Weights: int8 symmetric, narrow range [-127, 127].
    pub const WEIGHTS: QScheme = QScheme {
        dtype: DType::I8,
        symmetric: true,
        narrow: true,
        bits: 8,
    };
    /// Activations for ONNX Runtime and TFLite: int8 asymmetric.
    pub const ACTIVATIONS_ASYMMETRIC: QScheme = QScheme {
        dtype: DType::I8,
        symmetric: false,
        narrow: false,
        bits: 8,
    };
    /// Activations for TensorRT: int8 symmetric [-128, 127], zero point 0.
    pub const ACTIVATIONS_SYMMETRIC: QScheme = QScheme {
        dtype: DType::I8,
        symmetric: true,
        narrow: false,
        bits: 8,
    };
    /// uint8 asymmetric (MindSpore, older ORT models).
    pub const U8_ASYMMETRIC: QScheme = QScheme {
        dtype: DType::U8,
        symmetric: false,
        narrow: false,
        bits: 8,
    };

    fn check(&self) -> Result<(), QParamsError> {
        if !matches!(self.dtype, DType::I8 | DType::U8) {
            return Err(QParamsError::DType(self.dtype));
        }
        if !(2..=8).contains(&self.bits) {
            return Err(QParamsError::Bits(self.bits));
        }
        Ok(())
    }

    /// The integer grid `[qmin, qmax]`.
    pub fn qrange(&self) -> (i32, i32) {
        let b = self.bits.clamp(2, 8);
        match self.dtype {
            DType::U8 => (0, (1 << b) - 1),
            _ => {
                let hi = (1 << (b - 1)) - 1;
                (if self.narrow { -hi } else { -hi - 1 }, hi)
            }
        }
    }

    /// Scale and zero point for a real range (widened to hold 0).
    pub fn scale_zero_point(&self, range: Range) -> Result<(f32, i32), QParamsError> {
        self.check()?;
        if !(range.min.is_finite() && range.max.is_finite()) {
            return Err(QParamsError::Range(range.min, range.max));
        }
        let r = range.including_zero();
        let (qmin, qmax) = self.qrange();
        let (rmin, rmax) = (r.min as f64, r.max as f64);
        let scale = if self.symmetric {
            let amax = rmin.abs().max(rmax);
            match self.dtype {
                // s = amax / qmax (DESIGN.md §5), the same for narrow and full signed ranges.
                DType::I8 => amax / qmax as f64,
                _ => 2.0 * amax / (qmax - qmin) as f64,
            }
        } else {
            (rmax - rmin) / (qmax - qmin) as f64
        };
        if scale < f32::MIN_POSITIVE as f64 {
            return Ok((1.0, 0));
        }
        let zp = if self.symmetric {
            ((qmin + qmax) as f64 / 2.0).round_ties_even() as i32
        } else {
            ((qmin as f64 - rmin / scale).round_ties_even() as i32).clamp(qmin, qmax)
        };
        Ok((scale as f32, zp))
    }

    /// Per-tensor quantization parameters for a range.
    pub fn qparams(&self, range: Range) -> Result<QParams, QParamsError> {
        let (s, zp) = self.scale_zero_point(range)?;
        Ok(QParams::per_tensor(self.dtype, s, zp))
    }

    /// Per-channel parameters for a weight tensor along `axis`, each channel's range its own
    /// min/max (symmetric schemes use each channel's largest magnitude).
    pub fn per_channel(&self, w: &ArrayViewD<f32>, axis: usize) -> Result<QParams, QParamsError> {
        if axis >= w.ndim() {
            return Err(QParamsError::Axis {
                axis,
                rank: w.ndim(),
            });
        }
        let mut scale = Vec::with_capacity(w.len_of(Axis(axis)));
        let mut zero_point = Vec::with_capacity(scale.capacity());
        for ch in w.axis_iter(Axis(axis)) {
            let (lo, hi) = ch
                .iter()
                .filter(|x| x.is_finite())
                .fold((0.0f32, 0.0f32), |(a, b), &x| (a.min(x), b.max(x)));
            let (s, zp) = self.scale_zero_point(Range::new(lo, hi))?;
            scale.push(s);
            zero_point.push(zp);
        }
        Ok(QParams {
            dtype: self.dtype,
            scale,
            zero_point,
            axis: Some(axis),
        })
    }
}

/// ONNX QuantizeLinear of one value: `clamp(rint(x / s) + zp, qmin, qmax)`, `x / s` in f32.
/// NaN maps to the zero point (Rust's saturating float-to-int cast sends NaN to 0).
#[inline]
pub fn quantize_value(x: f32, scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> i32 {
    ((x / scale).round_ties_even() as i32)
        .saturating_add(zero_point)
        .clamp(qmin, qmax)
}

/// ONNX DequantizeLinear of one value: `(q - zp) * s` in f32.
#[inline]
pub fn dequantize_value(q: i32, scale: f32, zero_point: i32) -> f32 {
    (q as f32 - zero_point as f32) * scale
}

/// Quantize a slice with one scale and zero point onto `[qmin, qmax]`.
pub fn quantize_slice(xs: &[f32], scale: f32, zero_point: i32, qmin: i32, qmax: i32) -> Vec<i32> {
    xs.iter()
        .map(|&x| quantize_value(x, scale, zero_point, qmin, qmax))
        .collect()
}

/// Quantize then dequantize (fake quantization), as the error measures of `mse` and `auto` use.
pub fn fake_quantize_slice(
    xs: &[f32],
    scale: f32,
    zero_point: i32,
    qmin: i32,
    qmax: i32,
) -> Vec<f32> {
    xs.iter()
        .map(|&x| {
            dequantize_value(
                quantize_value(x, scale, zero_point, qmin, qmax),
                scale,
                zero_point,
            )
        })
        .collect()
}

/// Per-element (scale, zero point) lookup for per-tensor or per-channel parameters.
fn channel_params(p: &QParams, shape: &[usize]) -> Result<Vec<usize>, QParamsError> {
    match p.axis {
        None => Ok(vec![]),
        Some(axis) => {
            if axis >= shape.len() {
                return Err(QParamsError::Axis {
                    axis,
                    rank: shape.len(),
                });
            }
            if p.scale.len() != shape[axis] || p.zero_point.len() != shape[axis] {
                return Err(QParamsError::Channels {
                    scales: p.scale.len(),
                    channels: shape[axis],
                    axis,
                });
            }
            Ok(vec![axis])
        }
    }
}

/// ONNX QuantizeLinear of an f32 tensor to `p.dtype` (per tensor, or per channel along
/// `p.axis`). `narrow` restricts signed results to [-127, 127] (weights).
pub fn quantize_tensor(x: &Tensor, p: &QParams, narrow: bool) -> Result<Tensor, QParamsError> {
    let a = x.as_f32().ok_or(QParamsError::NotF32(x.dtype()))?;
    let (qmin, qmax) = match p.dtype {
        DType::I8 => (if narrow { -127 } else { -128 }, 127),
        DType::U8 => (0, 255),
        other => return Err(QParamsError::DType(other)),
    };
    let axes = channel_params(p, a.shape())?;
    let q: ArrayD<i32> = if let Some(&axis) = axes.first() {
        let mut out = ArrayD::<i32>::zeros(a.shape());
        for (c, (src, mut dst)) in a
            .axis_iter(Axis(axis))
            .zip(out.axis_iter_mut(Axis(axis)))
            .enumerate()
        {
            let (s, zp) = (p.scale[c], p.zero_point[c]);
            dst.zip_mut_with(&src, |d, &v| *d = quantize_value(v, s, zp, qmin, qmax));
        }
        out
    } else {
        let (s, zp) = (p.scale[0], p.zero_point[0]);
        a.mapv(|v| quantize_value(v, s, zp, qmin, qmax))
    };
    Ok(match p.dtype {
        DType::I8 => Tensor::I8(q.mapv(|v| v as i8)),
        _ => Tensor::U8(q.mapv(|v| v as u8)),
    })
}

/// ONNX DequantizeLinear of an i8/u8 tensor to f32.
pub fn dequantize_tensor(q: &Tensor, p: &QParams) -> Result<Tensor, QParamsError> {
    let a: ArrayD<i32> = match (q, p.dtype) {
        (Tensor::I8(a), DType::I8) => a.mapv(|v| v as i32),
        (Tensor::U8(a), DType::U8) => a.mapv(|v| v as i32),
        _ => return Err(QParamsError::NotQuantized(p.dtype, q.dtype())),
    };
    let axes = channel_params(p, a.shape())?;
    let out: ArrayD<f32> = if let Some(&axis) = axes.first() {
        let mut out = ArrayD::<f32>::zeros(a.shape());
        for (c, (src, mut dst)) in a
            .axis_iter(Axis(axis))
            .zip(out.axis_iter_mut(Axis(axis)))
            .enumerate()
        {
            let (s, zp) = (p.scale[c], p.zero_point[c]);
            dst.zip_mut_with(&src, |d, &v| *d = dequantize_value(v, s, zp));
        }
        out
    } else {
        let (s, zp) = (p.scale[0], p.zero_point[0]);
        a.mapv(|v| dequantize_value(v, s, zp))
    };
    Ok(Tensor::F32(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_formulas() {
        // DESIGN.md §5, worked by hand.
        let w = QScheme::WEIGHTS;
        assert_eq!(w.qrange(), (-127, 127));
        assert_eq!(
            w.scale_zero_point(Range::new(-2.54, 1.0)).unwrap(),
            ((2.54f64 / 127.0) as f32, 0)
        );
        let trt = QScheme::ACTIVATIONS_SYMMETRIC;
        assert_eq!(trt.qrange(), (-128, 127));
        assert_eq!(trt.scale_zero_point(Range::new(0.0, 12.7)).unwrap().1, 0);
        // Asymmetric [-1, 2.0]: s = 3/255, zp = round(-128 + 85) = -43.
        let a = QScheme::ACTIVATIONS_ASYMMETRIC;
        assert_eq!(
            a.scale_zero_point(Range::new(-1.0, 2.0)).unwrap(),
            ((3.0f64 / 255.0) as f32, -43)
        );
        // One-sided ranges widen to 0: [0.5, 2.55] is [0, 2.55], zp = -128.
        assert_eq!(a.scale_zero_point(Range::new(0.5, 2.55)).unwrap().1, -128);
        // max < 0 -> [min, 0], zp = 127.
        assert_eq!(a.scale_zero_point(Range::new(-2.55, -1.0)).unwrap().1, 127);
        // uint8 asymmetric [0, 1]: zp 0; symmetric uint8: zp 128.
        assert_eq!(
            QScheme::U8_ASYMMETRIC
                .scale_zero_point(Range::new(0.0, 1.0))
                .unwrap()
                .1,
            0
        );
        let u8s = QScheme {
            symmetric: true,
            ..QScheme::U8_ASYMMETRIC
        };
        assert_eq!(
            u8s.scale_zero_point(Range::new(-1.0, 1.0)).unwrap(),
            ((2.0f64 / 255.0) as f32, 128)
        );
        // A zero range gives scale 1, zp 0 (as ORT), never a zero scale.
        assert_eq!(a.scale_zero_point(Range::new(0.0, 0.0)).unwrap(), (1.0, 0));
        // 7 bits: [-63, 63].
        assert_eq!(QScheme { bits: 7, ..w }.qrange(), (-63, 63));
        assert!(a.scale_zero_point(Range::new(f32::NAN, 1.0)).is_err());
        assert!(
            QScheme {
                dtype: DType::I32,
                ..a
            }
            .scale_zero_point(Range::new(0.0, 1.0))
            .is_err()
        );
    }

    #[test]
    fn rounding_is_half_to_even() {
        // numpy.rint: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2.
        let q: Vec<i32> = [0.5f32, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0, f32::NAN]
            .iter()
            .map(|&x| quantize_value(x, 1.0, 0, -128, 127))
            .collect();
        assert_eq!(q, vec![0, 2, 2, 0, -2, 127, -128, 0]);
        assert_eq!(dequantize_value(-43, 0.5, -40), -1.5);
    }

    #[test]
    fn per_channel_round_trip() {
        let w =
            ndarray::Array::from_shape_vec(vec![2, 3], vec![0.3f32, -1.0, 0.25, 4.0, 1.0, -3.0])
                .unwrap();
        let p = QScheme::WEIGHTS.per_channel(&w.view(), 0).unwrap();
        assert_eq!(
            p.scale,
            vec![(1.0f64 / 127.0) as f32, (4.0f64 / 127.0) as f32]
        );
        let q = quantize_tensor(&Tensor::F32(w.clone()), &p, true).unwrap();
        let Tensor::I8(qa) = &q else { panic!("i8") };
        assert_eq!(
            qa.iter().copied().collect::<Vec<_>>(),
            vec![38, -127, 32, 127, 32, -95]
        );
        let d = dequantize_tensor(&q, &p).unwrap();
        let back = d.as_f32().unwrap();
        for (a, b) in back.iter().zip(w.iter()) {
            assert!((a - b).abs() <= 4.0 / 127.0 / 2.0 + 1e-6);
        }
        assert!(QScheme::WEIGHTS.per_channel(&w.view(), 2).is_err());
        let bad = QParams { axis: Some(1), ..p };
        assert!(quantize_tensor(&Tensor::F32(w), &bad, true).is_err());
    }
}
