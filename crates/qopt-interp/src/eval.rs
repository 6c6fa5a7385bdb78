//! Single-node evaluation on constant inputs, for constant folding: the same op
//! implementations the plan runs.

use crate::error::{InterpError, UnsupportedOp};
use crate::ops::{self, Ctx};
use crate::pool::BufferPool;
use qopt_ir::{Op, Tensor};

/// Whether the interpreter can run `op` (graph inputs excepted).
pub fn is_supported(op: &Op) -> bool {
    ops::supported(op) && !matches!(op, Op::Input)
}

/// Evaluate `op` on `inputs` (`None` for absent optional inputs) under the given opset of the
/// default ONNX domain. `num_outputs` is the number of outputs the node declares.
pub fn eval_node(
    op: &Op,
    opset: i64,
    inputs: &[Option<&Tensor>],
    num_outputs: usize,
) -> Result<Vec<Tensor>, InterpError> {
    if !is_supported(op) {
        return Err(InterpError::Unsupported(vec![UnsupportedOp {
            op_type: op.qualified_name(),
            nodes: vec![],
        }]));
    }
    let mut pool = BufferPool::new();
    let mut ctx = Ctx {
        opset,
        pool: &mut pool,
    };
    ops::execute(op, &mut ctx, inputs, num_outputs).map_err(|e| e.at(op.qualified_name()))
}
