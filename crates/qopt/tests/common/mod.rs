//! Helpers shared by the real-model integration tests of this crate.

use qopt::Graph;
use qopt::interp::{Plan, PlanOptions};
use qopt::ir::Tensor;

/// Runs `g` (fp32 or QDQ: qopt's fp32 interpreter executes QuantizeLinear/DequantizeLinear as
/// ONNX defines them) on each sample and returns its first output, flattened.
pub fn outputs(g: &Graph, xs: &[Vec<(String, Tensor)>]) -> Vec<Vec<f32>> {
    let mut plan = Plan::new(
        g,
        &PlanOptions {
            threads: Some(2),
            fuse: true,
            keep: vec![],
            profile: false,
        },
    )
    .expect("plan");
    xs.iter()
        .map(|s| {
            let named: Vec<(&str, &Tensor)> = s.iter().map(|(n, t)| (n.as_str(), t)).collect();
            let out = plan.run(&named).expect("run");
            out[0]
                .as_f32()
                .expect("f32 output")
                .iter()
                .copied()
                .collect()
        })
        .collect()
}
