//! An fp32 op between a dequantize and a quantize, as one step: com.microsoft's QLinearSoftmax,
//! QLinearSigmoid and QLinearLeakyRelu, whose ONNX Runtime kernels approximate
//! `Q_y(op(DQ_x(x)))`; here it is computed exactly that way (the QDQ reference). The input may be
//! channels-last only for ops that act element by element.

use super::quantize::{dequantize_tensor, quantize_tensor};
use super::{Operand, QOut, Step, StepCx, scale1, zero_point1};
use crate::error::{OpError, bail};
use crate::ops::{self, Ctx};
use qopt_ir::{Op, Tensor};

pub struct Island {
    pub op: Op,
    pub x_scale: Operand,
    pub x_zp: Operand,
    pub y_scale: Operand,
    pub y_zp: Operand,
}

impl Step for Island {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = ops::arg(ins, 0)?;
        let sx = scale1(self.x_scale.req(ins, "x_scale")?, "x_scale")?;
        let zx = zero_point1(self.x_zp.get(ins), "x_zero_point")?;
        let sy = scale1(self.y_scale.req(ins, "y_scale")?, "y_scale")?;
        let yz = self.y_zp.get(ins);
        let zy = zero_point1(yz, "y_zero_point")?;
        let out = match yz.map(|t| t.dtype()) {
            None => QOut::of(x.dtype()).unwrap_or(QOut::U8),
            Some(d) => match QOut::of(d) {
                Some(o) => o,
                None => bail!("y_zero_point must be u8 or i8, got {d}"),
            },
        };
        let f = dequantize_tensor(cx, x, sx, zx)?;
        let mut ctx = Ctx {
            opset: cx.opset,
            pool: cx.pool,
        };
        let y = ops::execute(&self.op, &mut ctx, &[Some(&f)], 1)?.remove(0);
        if let Tensor::F32(a) = f {
            cx.pool.give(a.into_raw_vec_and_offset().0);
        }
        Ok(vec![quantize_tensor(cx, &y, sy, zy, out)?])
    }
    fn name(&self) -> String {
        format!("Q{} (fp32 inside)", self.op.op_type())
    }
    fn is_integer(&self) -> bool {
        false
    }
}
