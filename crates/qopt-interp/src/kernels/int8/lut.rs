//! 256-entry lookup tables for unary maps u8/i8 -> u8/i8. Requantization to a new scale and zero
//! point (`Q_out(DQ_in(q))`, the QDQ reference composed exactly in f32) is the main use: the table
//! is computed with the reference formula, so the result is bit-exact by construction. The plan
//! can use the same table for any unary op between DQ and Q (Sigmoid, HardSwish, ...): evaluate
//! `Q(op(DQ(q)))` for all 256 inputs once at plan time.

use super::epilogue::quantize_value;
use super::error::{Int8Error, check_len};
use super::qtype::QInt;

/// A table mapping every `I` to an `O`.
#[derive(Debug, Clone)]
pub struct Lut8<I: QInt, O: QInt> {
    table: [O; 256],
    _in: std::marker::PhantomData<I>,
}

impl<I: QInt, O: QInt> Lut8<I, O> {
    /// The table of `f`.
    pub fn from_fn(f: impl Fn(I) -> O) -> Self {
        let mut table = [O::default(); 256];
        for v in I::MIN..=I::MAX {
            table[(v - I::MIN) as usize] = f(I::checked(v).expect("v in I's range"));
        }
        Lut8 {
            table,
            _in: std::marker::PhantomData,
        }
    }

    /// Requantization: `quantize(dequantize(q, s_in, z_in), s_out, z_out)` with both steps as ONNX
    /// defines them (f32).
    pub fn requantize(s_in: f32, z_in: i32, s_out: f32, z_out: i32) -> Result<Self, Int8Error> {
        if !(s_in.is_finite() && s_out.is_finite() && s_out > 0.0) {
            return Err(Int8Error::Param {
                what: "requantize scales",
                detail: format!("{s_in} -> {s_out} must be finite, the output positive"),
            });
        }
        if I::checked(z_in).is_none() || O::checked(z_out).is_none() {
            return Err(Int8Error::Param {
                what: "requantize zero points",
                detail: format!("{z_in} ({}) -> {z_out} ({})", I::NAME, O::NAME),
            });
        }
        Ok(Self::from_fn(|q| {
            quantize_value::<O>((q.to_i32() - z_in) as f32 * s_in, s_out, z_out)
        }))
    }

    /// `out[i] = table[input[i]]`.
    pub fn apply(&self, input: &[I], out: &mut [O]) -> Result<(), Int8Error> {
        check_len("lookup output", out.len(), input.len())?;
        for (o, &v) in out.iter_mut().zip(input) {
            *o = self.table[(v.to_i32() - I::MIN) as usize];
        }
        Ok(())
    }

    /// The output for one input.
    pub fn get(&self, v: I) -> O {
        self.table[(v.to_i32() - I::MIN) as usize]
    }
}
