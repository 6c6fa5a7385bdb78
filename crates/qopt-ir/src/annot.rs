//! Value annotations: what passes decide about a value, kept on the graph.
//!
//! Calibration writes a [`Range`]; `qdq` reads it and writes [`QParams`]. Both
//! print in the text format (`@range=[0, 6.31]`, `@q=u8(s=0.0235, zp=0)`), so a
//! dump after any pass shows every decision (DESIGN.md §2).

use crate::attr::Attr;
use crate::dtype::DType;
use std::collections::BTreeMap;

/// A calibrated real-valued range (min/max, or -t..t for a symmetric threshold).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

impl Range {
    pub fn new(min: f32, max: f32) -> Range {
        Range { min, max }
    }

    /// Widen so the range contains 0 (DESIGN.md §5): a quantized zero must be exact.
    pub fn including_zero(self) -> Range {
        Range {
            min: self.min.min(0.0),
            max: self.max.max(0.0),
        }
    }

    /// The largest magnitude in the range.
    pub fn amax(self) -> f32 {
        self.min.abs().max(self.max.abs())
    }
}

/// Quantization parameters of a value: `x = (q - zero_point) * scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct QParams {
    pub dtype: DType,
    /// One scale per tensor, or one per channel along `axis`.
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    /// The channel axis for per-channel parameters.
    pub axis: Option<usize>,
}

impl QParams {
    pub fn per_tensor(dtype: DType, scale: f32, zero_point: i32) -> QParams {
        QParams {
            dtype,
            scale: vec![scale],
            zero_point: vec![zero_point],
            axis: None,
        }
    }

    pub fn is_per_channel(&self) -> bool {
        self.axis.is_some()
    }

    /// Check the invariants `verify()` relies on; returns a description of the first violation.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.dtype, DType::I8 | DType::U8 | DType::I32) {
            return Err(format!(
                "quantized type {} is not i8, u8 or i32",
                self.dtype
            ));
        }
        if self.scale.is_empty() || self.scale.len() != self.zero_point.len() {
            return Err(format!(
                "{} scales and {} zero points",
                self.scale.len(),
                self.zero_point.len()
            ));
        }
        if self.axis.is_none() && self.scale.len() != 1 {
            return Err(format!(
                "{} scales without a channel axis",
                self.scale.len()
            ));
        }
        if let Some(s) = self.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("scale {s} is not positive and finite"));
        }
        let (lo, hi) = self.dtype.int_range().expect("integer type");
        if let Some(z) = self
            .zero_point
            .iter()
            .find(|&&z| (z as i64) < lo || (z as i64) > hi)
        {
            return Err(format!("zero point {z} is outside {}", self.dtype));
        }
        Ok(())
    }
}

/// Everything passes attach to a value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub range: Option<Range>,
    pub qparams: Option<QParams>,
    /// Further named facts (per-layer cosine from `eq`, fused-activation marks, ...),
    /// printed as `@name=value`.
    pub notes: BTreeMap<String, Attr>,
}

impl Annotations {
    pub fn is_empty(&self) -> bool {
        self.range.is_none() && self.qparams.is_none() && self.notes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_widen_to_zero() {
        assert_eq!(Range::new(0.5, 2.0).including_zero(), Range::new(0.0, 2.0));
        assert_eq!(
            Range::new(-3.0, -1.0).including_zero(),
            Range::new(-3.0, 0.0)
        );
        assert_eq!(Range::new(-3.0, 1.0).amax(), 3.0);
    }

    #[test]
    fn qparams_invariants() {
        assert!(QParams::per_tensor(DType::U8, 0.1, 128).check().is_ok());
        assert!(QParams::per_tensor(DType::I8, 0.1, 128).check().is_err());
        assert!(QParams::per_tensor(DType::I8, 0.0, 0).check().is_err());
        assert!(QParams::per_tensor(DType::F32, 1.0, 0).check().is_err());
        let pc = QParams {
            dtype: DType::I8,
            scale: vec![0.1, 0.2],
            zero_point: vec![0, 0],
            axis: None,
        };
        assert!(pc.check().is_err());
    }
}
