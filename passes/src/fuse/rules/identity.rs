//! Operators that compute nothing at inference time.

use super::Rewrite;
use crate::fuse::apply::inference_mode;
use egg::rewrite as rw;

#[rustfmt::skip]
pub fn rules() -> Vec<Rewrite> { vec![
    // Identity(x) = x
    rw!("identity"; "(identity ?m ?x)" => "?x"),
    // Dropout(x) = x in inference mode (training_mode absent or false); the ONNX spec makes
    // it an identity then. Only dropouts whose mask output is unused are in the e-graph.
    rw!("dropout"; "(dropout ?m ?x ?ratio ?train)" => "?x" if inference_mode("?train")),
]}
