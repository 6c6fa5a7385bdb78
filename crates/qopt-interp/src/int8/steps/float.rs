//! Ops with no integer kernel run in fp32, exactly as the fp32 interpreter runs them (and as ONNX
//! defines them), between the dequantized inputs and the quantized output the lowering wires
//! around them (DESIGN.md §7). `Shape` and `Size` of a quantized channels-last tensor read its
//! logical shape without converting or dequantizing it.

use super::layout::nchw_shape;
use super::{Step, StepCx};
use crate::error::OpError;
use crate::ops::{self, Ctx};
use qopt_ir::{Op, Tensor};

/// One fp32-interpreter op.
pub struct Float {
    pub op: Op,
    pub num_outputs: usize,
}

impl Step for Float {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let mut ctx = Ctx {
            opset: cx.opset,
            pool: cx.pool,
        };
        ops::execute(&self.op, &mut ctx, ins, self.num_outputs)
    }
    fn name(&self) -> String {
        format!("fp32 {}", self.op.op_type())
    }
    fn is_integer(&self) -> bool {
        false
    }
}

/// Shape or Size of a channels-last tensor, from its logical (ONNX) shape.
pub struct LogicalShape {
    pub op: Op,
}

impl Step for LogicalShape {
    fn run(&mut self, _cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = ops::arg(ins, 0)?;
        let dims = nchw_shape(x.shape());
        match &self.op {
            Op::Size(_) => Ok(vec![Tensor::scalar(x.len() as i64)]),
            Op::Shape(o) => {
                let r = 4i64;
                let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (start, end) = (clampi(o.start), clampi(o.end.unwrap_or(r)));
                let v: Vec<i64> = dims[start..end.max(start)]
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                Ok(vec![Tensor::from_vec(&[v.len()], v)])
            }
            op => Err(OpError(format!("{} is not a shape query", op.op_type()))),
        }
    }
    fn name(&self) -> String {
        self.op.op_type().to_string()
    }
    fn is_integer(&self) -> bool {
        false
    }
}
