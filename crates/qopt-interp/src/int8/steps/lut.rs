//! Element-wise maps of one quantized tensor as 256-entry lookup tables (`kernels/int8/lut.rs`):
//! requantization `Q_out(DQ_in(q))`, and any element-wise op between a DQ and a Q whose other
//! inputs are constant scalars (`DQ -> Sigmoid -> Q`, `DQ -> Div(6) -> Q`, `DQ -> HardSigmoid -> Q`,
//! a standalone Relu or Clip). The table is computed at plan time by running the fp32
//! interpreter's own op on the 256 dequantized values and quantizing the results, so every entry
//! is exactly what the QDQ reference computes for that input, and the step costs one load per
//! element instead of a dequantize, an fp32 op and a quantize.

use super::{QOut, Step, StepCx, kerr, out_tensor, qdata};
use crate::error::{OpError, bail};
use crate::kernels::int8::{KernelKind, Lut8, QInt, quantize_value};
use qopt_ir::{DType, Element, Tensor};

/// A table for one pair of input and output types.
pub enum Table {
    U8U8(Lut8<u8, u8>),
    U8I8(Lut8<u8, i8>),
    I8U8(Lut8<i8, u8>),
    I8I8(Lut8<i8, i8>),
}

/// The 256 dequantized values `(q - zp)·s` of the input type, in the type's order.
pub fn dequantized_domain(input: DType, scale: f32, zp: i32) -> Result<Vec<f32>, OpError> {
    let lo = match input {
        DType::U8 => 0,
        DType::I8 => -128,
        d => bail!("a lookup table needs a u8 or i8 input, got {d}"),
    };
    Ok((lo..lo + 256).map(|q| (q - zp) as f32 * scale).collect())
}

impl Table {
    /// The table of `values` (256 real results, one per input in the type's order) quantized to
    /// (`scale`, `zp`) of `out`.
    pub fn from_values(
        input: DType,
        values: &[f32],
        out: QOut,
        scale: f32,
        zp: i32,
    ) -> Result<Table, OpError> {
        if values.len() != 256 {
            bail!("a lookup table needs 256 values, got {}", values.len());
        }
        fn build<I: QInt, O: QInt>(v: &[f32], s: f32, z: i32) -> Lut8<I, O> {
            Lut8::from_fn(|q: I| quantize_value::<O>(v[(q.to_i32() - I::MIN) as usize], s, z))
        }
        Ok(match (input, out) {
            (DType::U8, QOut::U8) => Table::U8U8(build(values, scale, zp)),
            (DType::U8, QOut::I8) => Table::U8I8(build(values, scale, zp)),
            (DType::I8, QOut::U8) => Table::I8U8(build(values, scale, zp)),
            (DType::I8, QOut::I8) => Table::I8I8(build(values, scale, zp)),
            (d, _) => bail!("a lookup table needs a u8 or i8 input, got {d}"),
        })
    }

    /// Requantization from (`s_in`, `z_in`) of `input` to (`s_out`, `z_out`) of `out`.
    pub fn requantize(
        input: DType,
        s_in: f32,
        z_in: i32,
        out: QOut,
        s_out: f32,
        z_out: i32,
    ) -> Result<Table, OpError> {
        Ok(match (input, out) {
            (DType::U8, QOut::U8) => {
                Table::U8U8(Lut8::requantize(s_in, z_in, s_out, z_out).map_err(kerr)?)
            }
            (DType::U8, QOut::I8) => {
                Table::U8I8(Lut8::requantize(s_in, z_in, s_out, z_out).map_err(kerr)?)
            }
            (DType::I8, QOut::U8) => {
                Table::I8U8(Lut8::requantize(s_in, z_in, s_out, z_out).map_err(kerr)?)
            }
            (DType::I8, QOut::I8) => {
                Table::I8I8(Lut8::requantize(s_in, z_in, s_out, z_out).map_err(kerr)?)
            }
            (d, _) => bail!("requantization needs a u8 or i8 input, got {d}"),
        })
    }

    pub fn input(&self) -> DType {
        match self {
            Table::U8U8(_) | Table::U8I8(_) => DType::U8,
            Table::I8U8(_) | Table::I8I8(_) => DType::I8,
        }
    }

    /// Applies the table to `x` (its type must be the table's input type).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor, OpError> {
        self.apply_kind(KernelKind::Scalar, x)
    }

    /// [`Table::apply`] with the vector lookup of kernel family `kind`.
    pub fn apply_kind(&self, kind: KernelKind, x: &Tensor) -> Result<Tensor, OpError> {
        fn go<I: QInt + Element, O: QInt + Element>(
            l: &Lut8<I, O>,
            x: &Tensor,
            kind: KernelKind,
        ) -> Result<Tensor, OpError> {
            let xd = qdata::<I>(x)?;
            let mut y = vec![O::default(); xd.len()];
            l.apply_kind(kind, &xd, &mut y).map_err(kerr)?;
            out_tensor(x.shape(), y)
        }
        if x.dtype() != self.input() {
            bail!("lookup table for {} applied to {}", self.input(), x.dtype());
        }
        match self {
            Table::U8U8(l) => go(l, x, kind),
            Table::U8I8(l) => go(l, x, kind),
            Table::I8U8(l) => go(l, x, kind),
            Table::I8I8(l) => go(l, x, kind),
        }
    }
}

/// A lookup-table step: one table per input type the plan may see (a QDQ graph does not
/// always record whether a quantized tensor is u8 or i8; the tables are built for both).
pub struct LutStep {
    tables: Vec<Table>,
    /// What the table computes (`Sigmoid`, `requantize`), for profiles.
    label: String,
}

impl LutStep {
    pub fn new(tables: Vec<Table>, label: impl Into<String>) -> LutStep {
        LutStep {
            tables,
            label: label.into(),
        }
    }
}

impl Step for LutStep {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = crate::ops::arg(ins, 0)?;
        match self.tables.iter().find(|t| t.input() == x.dtype()) {
            Some(t) => Ok(vec![t.apply_kind(cx.kind, x)?]),
            None => bail!("no lookup table for a {} input", x.dtype()),
        }
    }
    fn name(&self) -> String {
        format!("LUT({})", self.label)
    }
}
