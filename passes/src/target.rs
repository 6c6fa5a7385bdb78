//! Deployment targets and their quantization rules (DESIGN.md §5).
//!
//! A [`TargetSpec`] is data: which ops run in int8, how activations, weights and biases
//! are quantized, where Q/DQ go, which ops share their input's scale and which have a
//! fixed output scale. `observe`, `thresholds`, `qdq` and the backends read it; none of
//! them hard-codes a target. [`activations_to_quantize`] is the one answer to "which
//! values get quantization parameters", shared by `observe` (what to measure) and `qdq`
//! (where to put Q/DQ), so the two can never disagree.

use qopt_ir::{DType, Graph, Op, ValueId};
use std::collections::BTreeSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    #[default]
    OnnxRuntime,
    TensorRt,
    TfLite,
    MindSpore,
}

impl Target {
    pub const NAMES: [&'static str; 4] = ["onnxruntime", "tensorrt", "tflite", "mindspore"];

    pub fn from_name(s: &str) -> Option<Target> {
        match s {
            "onnxruntime" | "ort" => Some(Target::OnnxRuntime),
            "tensorrt" | "trt" => Some(Target::TensorRt),
            "tflite" | "litert" => Some(Target::TfLite),
            "mindspore" => Some(Target::MindSpore),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::OnnxRuntime => "onnxruntime",
            Target::TensorRt => "tensorrt",
            Target::TfLite => "tflite",
            Target::MindSpore => "mindspore",
        }
    }

    pub fn spec(self) -> &'static TargetSpec {
        match self {
            Target::OnnxRuntime => &ONNXRUNTIME,
            Target::TensorRt => &TENSORRT,
            Target::TfLite => &TFLITE,
            Target::MindSpore => &MINDSPORE,
        }
    }
}

/// How activations are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActivationRule {
    pub dtype: DType,
    /// Symmetric (zero point 0, range [-128, 127]) or asymmetric.
    pub symmetric: bool,
}

/// How weights are quantized: always symmetric, narrow range [-127, 127] (DESIGN.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightRule {
    pub dtype: DType,
    /// One scale per output channel (Conv axis 0, ConvTranspose axis 1, Gemm/MatMul by layout).
    pub per_channel: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasRule {
    /// int32 with scale `s_in * s_w[c]` and zero point 0 (ONNX Runtime, TFLite).
    Int32,
    /// Left in float (TensorRT, MindSpore).
    Float,
}

/// Where Q/DQ pairs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On every input and output of every quantized op (ONNX Runtime's QDQ format, TFLite's
    /// full-integer model).
    AroundOps,
    /// Only on the inputs of weighted ops (Conv, ConvTranspose, Gemm, MatMul) and on the
    /// residual inputs of Add, nothing on weighted ops' outputs: TensorRT fuses
    /// Conv+BN+ReLU(+Add) around explicit Q/DQ and quantizes the rest itself.
    WeightedInputs,
}

/// An op whose output has a fixed quantization, whatever the calibration says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FixedOutput {
    pub op: &'static str,
    pub scale: f32,
    pub zero_point: i32,
}

#[derive(Debug)]
pub struct TargetSpec {
    pub target: Target,
    /// Ops that run in int8 on the target: Q/DQ around them (per [`Placement`]).
    pub quantized_ops: &'static [&'static str],
    /// Ops whose output must use their (first) input's quantization parameters.
    pub same_scale_ops: &'static [&'static str],
    pub fixed_outputs: &'static [FixedOutput],
    pub activations: ActivationRule,
    pub weights: WeightRule,
    pub bias: BiasRule,
    pub placement: Placement,
    /// The calibration method `calib` uses when none is given.
    pub default_method: &'static str,
}

/// Weighted ops: their weight input is quantized per channel.
pub const WEIGHTED_OPS: &[&str] = &["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// Data-movement and max-style ops that keep values as they are: the output can reuse the
/// input's scale exactly.
const SAME_SCALE: &[&str] = &[
    "MaxPool",
    "GlobalMaxPool",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Split",
    "Slice",
    "Gather",
    "Pad",
    "Resize",
    "Upsample",
    "DepthToSpace",
    "SpaceToDepth",
    "Identity",
];

/// ONNX Runtime's QDQ quantizer op set (its CPU execution provider has int8 kernels or
/// QDQ fusions for these).
const ORT_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Mul",
    "Relu",
    "Clip",
    "LeakyRelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Softmax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Concat",
    "Resize",
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Split",
    "Gather",
    "Pad",
];

pub static ONNXRUNTIME: TargetSpec = TargetSpec {
    target: Target::OnnxRuntime,
    quantized_ops: ORT_OPS,
    same_scale_ops: SAME_SCALE,
    fixed_outputs: &[],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: false,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: true,
    },
    bias: BiasRule::Int32,
    placement: Placement::AroundOps,
    default_method: "minmax",
};

pub static TENSORRT: TargetSpec = TargetSpec {
    target: Target::TensorRt,
    quantized_ops: &[
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "AveragePool",
        "GlobalAveragePool",
        "MaxPool",
        "Concat",
    ],
    same_scale_ops: SAME_SCALE,
    fixed_outputs: &[],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: true,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: true,
    },
    bias: BiasRule::Float,
    placement: Placement::WeightedInputs,
    default_method: "kl",
};

pub static TFLITE: TargetSpec = TargetSpec {
    target: Target::TfLite,
    quantized_ops: ORT_OPS,
    same_scale_ops: &[
        "MaxPool",
        "GlobalMaxPool",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Split",
        "Slice",
        "Gather",
        "Pad",
        "Resize",
        "Concat",
        "AveragePool",
        "GlobalAveragePool",
        "DepthToSpace",
        "SpaceToDepth",
        "Identity",
    ],
    fixed_outputs: &[
        FixedOutput {
            op: "Softmax",
            scale: 1.0 / 256.0,
            zero_point: -128,
        },
        FixedOutput {
            op: "Sigmoid",
            scale: 1.0 / 256.0,
            zero_point: -128,
        },
        FixedOutput {
            op: "Tanh",
            scale: 1.0 / 128.0,
            zero_point: 0,
        },
    ],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: false,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: true,
    },
    bias: BiasRule::Int32,
    placement: Placement::AroundOps,
    default_method: "minmax",
};

pub static MINDSPORE: TargetSpec = TargetSpec {
    target: Target::MindSpore,
    quantized_ops: ORT_OPS,
    same_scale_ops: SAME_SCALE,
    fixed_outputs: &[],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: false,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: false,
    },
    bias: BiasRule::Float,
    placement: Placement::AroundOps,
    default_method: "minmax",
};

impl TargetSpec {
    pub fn quantizes(&self, op: &Op) -> bool {
        op.domain().is_empty() && self.quantized_ops.contains(&op.op_type())
    }
}

/// The annotation note `fuse` puts on a Conv/Gemm output that feeds a fused activation:
/// such a value is internal to the fused unit and gets no quantization of its own.
pub const FUSED_ACTIVATION_NOTE: &str = "fused_act";

fn is_float_value(g: &Graph, v: ValueId) -> bool {
    // Unknown types are assumed float: shape-infer has not run, and skipping a real
    // activation would silently leave a layer unquantized.
    g.value(v).ty.dtype.is_none_or(|d| d.is_float())
}

fn is_fused(g: &Graph, v: ValueId) -> bool {
    g.value(v).ann.notes.contains_key(FUSED_ACTIVATION_NOTE)
}

/// The activation values a target quantizes: the non-constant float inputs and outputs of
/// every quantized op (per the spec's placement), minus values internal to a fused
/// Conv+activation unit. Sorted, so passes that iterate it are deterministic.
pub fn activations_to_quantize(g: &Graph, spec: &TargetSpec) -> Vec<ValueId> {
    let mut out = BTreeSet::new();
    let Ok(order) = g.topo_order() else {
        return vec![];
    };
    for n in order {
        let node = g.node(n);
        if !spec.quantizes(&node.op) {
            continue;
        }
        let weighted = WEIGHTED_OPS.contains(&node.op.op_type());
        for (slot, v) in g.inputs(n).into_iter().enumerate() {
            let Some(v) = v else { continue };
            if g.const_value(v).is_some() || !is_float_value(g, v) || is_fused(g, v) {
                continue;
            }
            let wanted = match spec.placement {
                Placement::AroundOps => true,
                // Weighted ops: the data input (both for an activation x activation
                // MatMul); other quantized ops, such as the residual Add: every input.
                Placement::WeightedInputs => {
                    !weighted || slot == 0 || node.op.op_type() == "MatMul"
                }
            };
            if wanted {
                out.insert(v);
            }
        }
        if spec.placement == Placement::AroundOps {
            for slot in 0..node.outputs.len() {
                let v = ValueId::new(n, slot);
                if !is_fused(g, v) && is_float_value(g, v) {
                    out.insert(v);
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::op::{Add, Conv, MaxPool, Relu};
    use qopt_ir::{Attr, Shape, Tensor, TypeInfo};

    fn graph() -> (Graph, [ValueId; 4]) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 2, 4, 4])));
        let w = g.add_const("w", Tensor::from_vec(&[2, 2, 1, 1], vec![1f32; 4]));
        let c = g.add_simple("conv", Conv::default(), &[x, w], "c");
        let r = g.add_simple("relu", Relu {}, &[c], "r");
        let a = g.add_simple("add", Add {}, &[r, x], "a");
        let p = g.add_simple(
            "pool",
            MaxPool {
                kernel_shape: vec![2, 2],
                ..Default::default()
            },
            &[a],
            "p",
        );
        g.set_outputs(vec![p]);
        (g, [x, c, r, a])
    }

    #[test]
    fn ort_quantizes_around_every_op() {
        let (mut g, [x, c, r, a]) = graph();
        let p = g.outputs()[0];
        assert_eq!(
            activations_to_quantize(&g, &ONNXRUNTIME),
            vec![x, c, r, a, p]
        );
        // A fused conv output is internal to the Conv+Relu unit.
        g.value_mut(c)
            .ann
            .notes
            .insert(FUSED_ACTIVATION_NOTE.into(), Attr::String("Relu".into()));
        assert_eq!(activations_to_quantize(&g, &ONNXRUNTIME), vec![x, r, a, p]);
    }

    #[test]
    fn tensorrt_quantizes_inputs_of_weighted_ops_and_adds() {
        let (g, [x, _c, r, a]) = graph();
        assert_eq!(activations_to_quantize(&g, &TENSORRT), vec![x, r, a]);
    }

    #[test]
    fn names_round_trip() {
        for n in Target::NAMES {
            assert_eq!(Target::from_name(n).unwrap().name(), n);
            assert_eq!(Target::from_name(n).unwrap().spec().target.name(), n);
        }
    }
}
