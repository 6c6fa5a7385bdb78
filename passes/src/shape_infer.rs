//! `shape-infer`: record every value's element type and shape on the graph.
//!
//! A thin pass over `qopt_ir::infer::infer_shapes`, which follows the ONNX operator
//! specs' inference functions and carries symbolic dims through. Values whose type
//! stays unknown (custom ops and what they feed) are listed in a verbose note.

use qopt_ir::Graph;
use qopt_ir::infer::infer_shapes;
use qopt_pass::{Changed, Pass, PassContext, PassError};

pub struct ShapeInfer;

impl Pass for ShapeInfer {
    fn name(&self) -> &str {
        "shape-infer"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let report = infer_shapes(g).map_err(|e| PassError::msg(e.to_string()))?;
        if !report.unknown.is_empty() {
            cx.note("shape-infer", report.to_string());
        }
        Ok(Changed::from_bool(report.changed > 0))
    }
}
