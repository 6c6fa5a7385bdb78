//! Ops that only move or select elements (Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Slice,
//! Gather, Split, Expand, Tile, DepthToSpace, SpaceToDepth, Identity) applied to a quantized
//! tensor directly: for such an op `f`, `Q_y(f(DQ_x(q))) = f(Q_y(DQ_x(q)))`, which is `f(q)` when
//! x and y share parameters and `f(T(q))` with the requantization table `T` otherwise. The fp32
//! interpreter's implementations are generic over the element type, so they run here unchanged.

use super::lut::Table;
use super::{Step, StepCx};
use crate::error::OpError;
use crate::ops::{self, Ctx};
use qopt_ir::{Op, Tensor};

pub struct Movement {
    pub op: Op,
    pub num_outputs: usize,
    /// Requantization applied to the output(s) when x and y differ in parameters.
    pub requant: Option<Table>,
}

impl Step for Movement {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let mut ctx = Ctx {
            opset: cx.opset,
            pool: cx.pool,
        };
        let outs = ops::execute(&self.op, &mut ctx, ins, self.num_outputs)?;
        match &self.requant {
            None => Ok(outs),
            Some(t) => outs.iter().map(|o| t.apply(o)).collect(),
        }
    }
    fn name(&self) -> String {
        format!("Q{}", self.op.op_type())
    }
}
