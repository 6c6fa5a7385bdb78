//! Deployment targets and their quantization rules (DESIGN.md §5).
//!
//! A [`TargetSpec`] is data: which ops run in int8, how activations, weights and biases
//! are quantized, where Q/DQ go, which ops share their input's scale and which have a
//! fixed output scale. `observe`, `thresholds`, `qdq` and the backends read it; none of
//! them hard-codes a target. [`activations_to_quantize`] is the one answer to "which
//! values get quantization parameters", shared by `observe` (what to measure) and `qdq`
//! (where to put Q/DQ), so the two can never disagree.

use qopt_ir::{DType, Graph, NodeId, Op, ValueId};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Ops whose weights get one scale per output channel (Conv axis 0, ConvTranspose axis 1,
    /// Gemm/MatMul by layout); the weights of the other weighted ops get one scale per tensor.
    pub per_channel: &'static [&'static str],
}

impl WeightRule {
    pub fn is_per_channel(&self, op_type: &str) -> bool {
        self.per_channel.contains(&op_type)
    }
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
    /// full-integer model). A quantized value's every use reads the dequantized value, as
    /// ONNX Runtime's quantizer rewires them, so that the producer can fuse with its Q.
    AroundOps,
    /// Only on the inputs of weighted ops (Conv, ConvTranspose, Gemm, MatMul), on the
    /// residual inputs of Add and on pooling inputs, nothing on weighted ops' outputs:
    /// TensorRT fuses Conv+BN+ReLU(+Add) around explicit Q/DQ and propagates scales itself
    /// (TensorRT developer guide, "Q/DQ layer placement recommendations"). Only the uses
    /// that asked for it read the dequantized value.
    WeightedInputs,
}

/// How the ops of [`TargetSpec::same_scale_ops`] share parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameScale {
    /// The output reuses its data input's parameters, and is quantized only when that input
    /// is (ONNX Runtime's `quantize_output_same_as_input` for Reshape, MaxPool, Resize, ...).
    FollowInput,
    /// Inputs and outputs are one group with one set of parameters over the union of their
    /// ranges, and the op is always quantized (TFLite's int8 spec: Concat, pools, Reshape...).
    Shared,
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
    pub same_scale: SameScale,
    pub fixed_outputs: &'static [FixedOutput],
    /// Relu and Clip(0, c) after a quantized value: with asymmetric activations the output
    /// quantization (zero point at the bottom of the grid) clamps exactly as the op does,
    /// so the op is dropped and its input takes its place (ONNX Runtime's
    /// `QDQRemovableActivation`; TFLite's fused activation functions).
    pub removable_activations: &'static [&'static str],
    pub activations: ActivationRule,
    pub weights: WeightRule,
    pub bias: BiasRule,
    pub placement: Placement,
    /// The calibration method `calib` uses when none is given.
    pub default_method: &'static str,
}

/// Weighted ops: their weight input is quantized per channel.
pub const WEIGHTED_OPS: &[&str] = &["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// The quantization ops themselves: values around them are quantized already (QAT models,
/// models from other quantizers), and `qdq` leaves them as they are.
pub const QUANTIZATION_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
];

/// ONNX Runtime's quantizer (`onnxruntime/quantization/registry.py`, 1.32): the ops of its
/// QDQ and QLinear registries that get their own input and output parameters. The
/// normalisation ops of its QDQ registry are left out: its CPU provider has no int8 kernel
/// for them, so quantizing them costs accuracy and gains nothing.
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
    "Softmax",
    "GlobalAveragePool",
    "Concat",
    "Where",
];

/// ONNX Runtime's `QDQDirect8BitOp` and friends: data movement and max/average pooling whose
/// output is quantized with its input's parameters when the input is quantized.
const ORT_SAME_SCALE: &[&str] = &[
    "Reshape",
    "Flatten",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Resize",
    "MaxPool",
    "AveragePool",
    "Slice",
    "Pad",
    "Split",
    "Gather",
    "GatherElements",
    "TopK",
];

pub static ONNXRUNTIME: TargetSpec = TargetSpec {
    target: Target::OnnxRuntime,
    quantized_ops: ORT_OPS,
    same_scale_ops: ORT_SAME_SCALE,
    same_scale: SameScale::FollowInput,
    fixed_outputs: &[],
    removable_activations: &["Relu", "Clip"],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: false,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: WEIGHTED_OPS,
    },
    bias: BiasRule::Int32,
    placement: Placement::AroundOps,
    default_method: "minmax",
};

pub static TENSORRT: TargetSpec = TargetSpec {
    target: Target::TensorRt,
    // Weighted ops, the residual Add, and pooling (TensorRT runs int8 pooling on a quantized
    // input). Concat and data movement are left to TensorRT's own scale propagation.
    quantized_ops: &[
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "AveragePool",
        "GlobalAveragePool",
        "MaxPool",
    ],
    same_scale_ops: &[],
    same_scale: SameScale::FollowInput,
    fixed_outputs: &[],
    // Symmetric activations: a zero point in the middle of the grid cannot clamp.
    removable_activations: &[],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: true,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: WEIGHTED_OPS,
    },
    bias: BiasRule::Float,
    placement: Placement::WeightedInputs,
    default_method: "kl",
};

/// LiteRT's int8 builtin ops, by the ONNX op they come from (TFLite 8-bit quantization spec).
const TFLITE_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Relu",
    "Clip",
    "LeakyRelu",
    "PRelu",
    "Sigmoid",
    "Tanh",
    "HardSwish",
    "Softmax",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "ReduceMean",
    "Concat",
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
    "DepthToSpace",
    "SpaceToDepth",
    "Max",
    "Min",
];

pub static TFLITE: TargetSpec = TargetSpec {
    target: Target::TfLite,
    quantized_ops: TFLITE_OPS,
    // "Restriction: input and outputs must all have same scale/zero_point".
    same_scale_ops: &[
        "MaxPool",
        "GlobalMaxPool",
        "AveragePool",
        "GlobalAveragePool",
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
        "DepthToSpace",
        "SpaceToDepth",
        "Max",
        "Min",
    ],
    same_scale: SameScale::Shared,
    fixed_outputs: &[
        // LOGISTIC and SOFTMAX: scale 1/256, zero point -128; TANH: 1/128, 0.
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
    removable_activations: &["Relu", "Clip"],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: false,
    },
    weights: WeightRule {
        dtype: DType::I8,
        // CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV per channel; FULLY_CONNECTED and
        // BATCH_MATMUL per tensor.
        per_channel: &["Conv", "ConvTranspose"],
    },
    bias: BiasRule::Int32,
    placement: Placement::AroundOps,
    default_method: "minmax",
};

pub static MINDSPORE: TargetSpec = TargetSpec {
    target: Target::MindSpore,
    quantized_ops: ORT_OPS,
    same_scale_ops: ORT_SAME_SCALE,
    same_scale: SameScale::FollowInput,
    fixed_outputs: &[],
    // MindSpore Lite's converter fuses activations itself; keep them visible to it.
    removable_activations: &[],
    activations: ActivationRule {
        dtype: DType::I8,
        symmetric: false,
    },
    weights: WeightRule {
        dtype: DType::I8,
        per_channel: &[],
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

/// Whether `v` is internal to a fused Conv/Gemm + activation unit.
pub fn is_fused(g: &Graph, v: ValueId) -> bool {
    g.value(v).ann.notes.contains_key(FUSED_ACTIVATION_NOTE)
}

/// Whether `v` is quantized already: the output of a DequantizeLinear or the input of a
/// QuantizeLinear (a QAT model, or one quantized before).
pub fn is_quantized_already(g: &Graph, v: ValueId) -> bool {
    matches!(g.node(v.node).op, Op::DequantizeLinear(_))
        || g.consumers(v)
            .iter()
            .any(|&(c, _)| matches!(g.node(c).op, Op::QuantizeLinear(_)))
}

fn is_graph_input(g: &Graph, v: ValueId) -> bool {
    matches!(g.node(v.node).op, Op::Input)
}

/// What an input slot of a quantized op carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRole {
    /// Data: an activation (or a float constant of a non-weighted op).
    Data,
    /// The weight of a weighted op: per-channel along `axis` where the target wants it.
    Weight { axis: Option<usize> },
    /// The bias of Conv/ConvTranspose/Gemm: int32 with scale `s_in * s_w[c]` or float.
    Bias,
}

/// The role of input `slot` of node `n`; `None` for inputs that carry no data to quantize
/// (shapes, indices, axes, Clip bounds, Resize scales, a Gemm bias that is not a plain
/// per-column vector).
pub fn input_role(g: &Graph, n: NodeId, slot: usize) -> Option<InputRole> {
    let op = &g.node(n).op;
    let konst = g.const_input(n, slot);
    let rank = konst.map(|t| t.rank());
    match op {
        Op::Conv(_) => [
            Some(InputRole::Data),
            Some(InputRole::Weight { axis: Some(0) }),
            Some(InputRole::Bias),
        ]
        .get(slot)
        .copied()
        .flatten(),
        Op::ConvTranspose(_) => [
            Some(InputRole::Data),
            Some(InputRole::Weight { axis: Some(1) }),
            Some(InputRole::Bias),
        ]
        .get(slot)
        .copied()
        .flatten(),
        Op::Gemm(gm) => match slot {
            0 => Some(InputRole::Data),
            1 if konst.is_some() && rank == Some(2) => Some(InputRole::Weight {
                axis: Some(if gm.trans_b != 0 { 0 } else { 1 }),
            }),
            1 => Some(InputRole::Data),
            // Only a per-column bias C[N] (or [1, N]) with alpha = beta = 1 has the scale
            // s_a * s_b[n]; anything else stays float.
            2 if konst.is_some_and(|t| t.rank() == 1 || (t.rank() == 2 && t.shape()[0] == 1))
                && gm.alpha == 1.0
                && gm.beta == 1.0 =>
            {
                Some(InputRole::Bias)
            }
            _ => None,
        },
        Op::MatMul(_) => match (slot, rank) {
            // B[..., K, N]: one scale per column N.
            (1, Some(r)) if r >= 2 => Some(InputRole::Weight { axis: Some(r - 1) }),
            (0 | 1, Some(_)) => Some(InputRole::Weight { axis: None }),
            (0 | 1, None) => Some(InputRole::Data),
            _ => None,
        },
        Op::Add(_)
        | Op::Sub(_)
        | Op::Mul(_)
        | Op::Div(_)
        | Op::Max(_)
        | Op::Min(_)
        | Op::Sum(_)
        | Op::Mean(_)
        | Op::Concat(_) => Some(InputRole::Data),
        Op::Where(_) => (slot == 1 || slot == 2).then_some(InputRole::Data),
        _ => (slot == 0).then_some(InputRole::Data),
    }
}

/// Which uses of a quantized value read its dequantized form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uses {
    /// Every use, graph outputs included ([`Placement::AroundOps`]).
    All,
    /// Only these (consumer, input slot) pairs ([`Placement::WeightedInputs`]).
    Only(Vec<(NodeId, usize)>),
}

/// Values that share one set of quantization parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SameScaleGroup {
    /// Sorted.
    pub members: Vec<ValueId>,
    /// [`SameScale::FollowInput`]: the member whose parameters the others copy;
    /// [`SameScale::Shared`]: `None`, the parameters cover the union of the members' ranges.
    pub source: Option<ValueId>,
}

/// A constant input of a quantized op that `qdq` quantizes (a weight, a bias, or a float
/// constant operand such as the scale of a Mul).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConstInput {
    pub node: NodeId,
    pub slot: usize,
    pub role: InputRole,
}

/// Where a target puts quantization in a graph: the one answer `observe` (what to measure)
/// and `qdq` (where Q/DQ go) both read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantPlan {
    /// Every activation that gets quantization parameters, and which of its uses read the
    /// quantized form.
    pub activations: BTreeMap<ValueId, Uses>,
    pub groups: Vec<SameScaleGroup>,
    pub fixed: BTreeMap<ValueId, FixedOutput>,
    /// `(activation node, its input)`: a Relu/Clip whose clamp the quantization of its
    /// output performs (see [`TargetSpec::removable_activations`]). Its input is not
    /// quantized; `qdq` drops the node when the output's parameters make that exact.
    pub removable: Vec<(NodeId, ValueId)>,
    /// Constant inputs to quantize, in topological order of their consumers.
    pub constants: Vec<ConstInput>,
}

/// Relu, or Clip with a constant lower bound of 0 and a constant (or no) upper bound.
fn is_zero_clamp(g: &Graph, n: NodeId) -> bool {
    match g.node(n).op {
        Op::Relu(_) => true,
        Op::Clip(_) => {
            let lo = g.const_input(n, 1).and_then(|t| t.scalar_f64());
            let hi_ok = g.input(n, 2).is_none() || g.const_input(n, 2).is_some();
            lo == Some(0.0) && hi_ok
        }
        _ => false,
    }
}

/// Pad keeps its input's scale when it pads with values of the input or with 0, which
/// every quantized range holds (ONNX Runtime's `QDQPad`).
fn pad_keeps_scale(g: &Graph, n: NodeId) -> bool {
    match &g.node(n).op {
        Op::Pad(p) if p.mode == qopt_ir::attr::PadMode::Constant => match g.input(n, 2) {
            None => true,
            Some(_) => g.const_input(n, 2).and_then(|t| t.scalar_f64()) == Some(0.0),
        },
        _ => true,
    }
}

struct Builder<'g> {
    g: &'g Graph,
    spec: &'g TargetSpec,
    plan: QuantPlan,
    /// Same-scale links (input, output).
    links: Vec<(ValueId, ValueId)>,
}

impl Builder<'_> {
    fn eligible(&self, v: ValueId) -> bool {
        let g = self.g;
        g.const_value(v).is_none()
            && is_float_value(g, v)
            && !is_fused(g, v)
            && !is_quantized_already(g, v)
    }

    fn request(&mut self, v: ValueId, user: (NodeId, usize)) {
        match self.spec.placement {
            Placement::AroundOps => {
                self.plan.activations.insert(v, Uses::All);
            }
            Placement::WeightedInputs => {
                let e = self.plan.activations.entry(v).or_insert(Uses::Only(vec![]));
                if let Uses::Only(list) = e
                    && !list.contains(&user)
                {
                    list.push(user);
                    list.sort();
                }
            }
        }
    }

    fn mark_outputs(&mut self, n: NodeId) {
        if self.spec.placement != Placement::AroundOps {
            return;
        }
        let g = self.g;
        let fixed = self
            .spec
            .fixed_outputs
            .iter()
            .find(|f| f.op == g.node(n).op.op_type());
        for slot in 0..g.node(n).outputs.len() {
            let v = ValueId::new(n, slot);
            if self.eligible(v) {
                self.plan.activations.insert(v, Uses::All);
                if let Some(f) = fixed {
                    self.plan.fixed.insert(v, *f);
                }
            }
        }
    }

    fn node(&mut self, n: NodeId) {
        let g = self.g;
        let op = &g.node(n).op;
        if !op.domain().is_empty() || op.is_source() {
            return;
        }
        let t = op.op_type();
        if QUANTIZATION_OPS.contains(&t) {
            return;
        }
        let inputs = g.inputs(n);
        let quantized = self.spec.quantized_ops.contains(&t);
        let same = self.spec.same_scale_ops.contains(&t) && pad_keeps_scale(g, n);

        if quantized && self.spec.removable_activations.contains(&t) && is_zero_clamp(g, n) {
            self.removable_activation(n, inputs.first().copied().flatten());
            return;
        }
        if quantized {
            self.quantized_op(n, &inputs, same);
        } else if same
            && self.spec.placement == Placement::AroundOps
            && let Some(Some(v)) = inputs.first().copied()
            && self.plan.activations.contains_key(&v)
        {
            // FollowInput: quantized only because its input is.
            self.mark_outputs(n);
            for slot in 0..g.node(n).outputs.len() {
                let o = ValueId::new(n, slot);
                if self.plan.activations.contains_key(&o) {
                    self.links.push((v, o));
                }
            }
        }
    }

    /// ONNX Runtime's `QDQRemovableActivation`: kept in float when its input is not
    /// quantized; otherwise its input becomes internal when nothing else reads it.
    fn removable_activation(&mut self, n: NodeId, input: Option<ValueId>) {
        let g = self.g;
        let Some(v) = input else { return };
        let fused = is_fused(g, v);
        let upstream = self.plan.activations.get(&v) == Some(&Uses::All);
        if !fused && !upstream {
            return;
        }
        if g.use_count(v) == 1 && !is_graph_input(g, v) {
            self.plan.activations.remove(&v);
            self.plan.removable.push((n, v));
        } else if !fused {
            self.request(v, (n, 0));
        }
        self.mark_outputs(n);
    }

    fn quantized_op(&mut self, n: NodeId, inputs: &[Option<ValueId>], same: bool) {
        let g = self.g;
        // TensorRT's residual Add: the branch straight from a weighted op fuses into it
        // (Conv+Add), only the other inputs get Q/DQ.
        let mut fused_branch_left =
            self.spec.placement == Placement::WeightedInputs && matches!(g.node(n).op, Op::Add(_));
        for (slot, v) in inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            let Some(role) = input_role(g, n, slot) else {
                continue;
            };
            if g.const_value(v).is_some() {
                let float = g.const_value(v).is_some_and(|c| c.dtype().is_float());
                let wanted = match role {
                    InputRole::Weight { .. } | InputRole::Bias => true,
                    // Constant operands of non-weighted ops: TensorRT quantizes them itself.
                    InputRole::Data => self.spec.placement == Placement::AroundOps,
                };
                if float && wanted {
                    self.plan.constants.push(ConstInput {
                        node: n,
                        slot,
                        role,
                    });
                }
                continue;
            }
            if role != InputRole::Data || !self.eligible(v) {
                continue;
            }
            if fused_branch_left
                && WEIGHTED_OPS.contains(&g.node(v.node).op.op_type())
                && g.use_count(v) == 1
            {
                fused_branch_left = false;
                continue;
            }
            self.request(v, (n, slot));
            if same && self.spec.same_scale == SameScale::Shared {
                for o in 0..g.node(n).outputs.len() {
                    self.links.push((v, ValueId::new(n, o)));
                }
            }
        }
        self.mark_outputs(n);
        if same
            && self.spec.same_scale == SameScale::FollowInput
            && let Some(Some(v)) = inputs.first().copied()
            && self.plan.activations.contains_key(&v)
        {
            for o in 0..g.node(n).outputs.len() {
                self.links.push((v, ValueId::new(n, o)));
            }
        }
    }

    fn finish(mut self) -> QuantPlan {
        // Union-find over the same-scale links; the source of a FollowInput group is the
        // member that is no link's output (the first input along the chain).
        let mut parent: BTreeMap<ValueId, ValueId> = BTreeMap::new();
        fn find(p: &mut BTreeMap<ValueId, ValueId>, v: ValueId) -> ValueId {
            let mut r = v;
            while let Some(&q) = p.get(&r) {
                if q == r {
                    break;
                }
                r = q;
            }
            p.insert(v, r);
            r
        }
        let links: Vec<_> = self
            .links
            .iter()
            .copied()
            .filter(|(a, b)| {
                self.plan.activations.contains_key(a) && self.plan.activations.contains_key(b)
            })
            .collect();
        for &(a, b) in &links {
            parent.entry(a).or_insert(a);
            parent.entry(b).or_insert(b);
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra != rb {
                let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
                parent.insert(hi, lo);
            }
        }
        let mut groups: BTreeMap<ValueId, Vec<ValueId>> = BTreeMap::new();
        let keys: Vec<ValueId> = parent.keys().copied().collect();
        for v in keys {
            let r = find(&mut parent, v);
            groups.entry(r).or_default().push(v);
        }
        let outputs: BTreeSet<ValueId> = links.iter().map(|&(_, b)| b).collect();
        for (_, members) in groups {
            let source = match self.spec.same_scale {
                SameScale::FollowInput => members.iter().copied().find(|m| !outputs.contains(m)),
                SameScale::Shared => None,
            };
            self.plan.groups.push(SameScaleGroup { members, source });
        }
        self.plan
    }
}

/// Where `spec` quantizes `g`: activations, same-scale groups, fixed outputs, removable
/// activations and constant inputs. Deterministic (topological order, sorted maps).
pub fn plan(g: &Graph, spec: &TargetSpec) -> QuantPlan {
    let mut b = Builder {
        g,
        spec,
        plan: QuantPlan::default(),
        links: vec![],
    };
    let Ok(order) = g.topo_order() else {
        return b.plan;
    };
    for n in order {
        b.node(n);
    }
    b.finish()
}

/// The activation values a target quantizes (see [`plan`]): what `observe` measures and
/// `qdq` puts Q/DQ on. Sorted, so passes that iterate it are deterministic.
pub fn activations_to_quantize(g: &Graph, spec: &TargetSpec) -> Vec<ValueId> {
    plan(g, spec).activations.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::op::{Add, Clip, Concat, Conv, MaxPool, Relu, Softmax};
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
        let plan = plan(&g, &ONNXRUNTIME);
        // The conv output only feeds the Relu, which the output quantization replaces
        // (ORT's QDQRemovableActivation); MaxPool follows its input's scale.
        assert_eq!(activations_to_quantize(&g, &ONNXRUNTIME), vec![x, r, a, p]);
        assert_eq!(plan.removable, vec![(r.node, c)]);
        assert_eq!(
            plan.groups,
            vec![SameScaleGroup {
                members: vec![a, p],
                source: Some(a)
            }]
        );
        assert_eq!(
            plan.constants,
            vec![ConstInput {
                node: c.node,
                slot: 1,
                role: InputRole::Weight { axis: Some(0) }
            }]
        );
        // A fused conv output is internal to the Conv+Relu unit: the same answer.
        g.value_mut(c)
            .ann
            .notes
            .insert(FUSED_ACTIVATION_NOTE.into(), Attr::String("Relu".into()));
        assert_eq!(activations_to_quantize(&g, &ONNXRUNTIME), vec![x, r, a, p]);
    }

    #[test]
    fn relu_after_an_unquantized_value_stays_float() {
        // ORT keeps a Relu in float when its input is not quantized (here a graph input
        // feeding only the Relu, whose producer quantizes nothing).
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[4])));
        let r = g.add_simple("relu", Relu {}, &[x], "r");
        g.set_outputs(vec![r]);
        assert!(activations_to_quantize(&g, &ONNXRUNTIME).is_empty());
    }

    #[test]
    fn symmetric_targets_keep_activations() {
        let (g, [x, c, r, a]) = graph();
        // TensorRT: inputs of the conv, of the residual Add and of the pool; no outputs.
        let p = plan(&g, &TENSORRT);
        assert_eq!(
            p.activations.keys().copied().collect::<Vec<_>>(),
            vec![x, r, a]
        );
        assert!(p.removable.is_empty());
        assert_eq!(
            p.activations[&x],
            Uses::Only(vec![(c.node, 0), (a.node, 1)])
        );
    }

    #[test]
    fn tensorrt_residual_add_quantizes_only_the_skip_branch() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 2, 4, 4])));
        let w = g.add_const("w", Tensor::from_vec(&[2, 2, 1, 1], vec![1f32; 4]));
        let c = g.add_simple("conv", Conv::default(), &[x, w], "c");
        let a = g.add_simple("add", Add {}, &[c, x], "a");
        let r = g.add_simple("relu", Relu {}, &[a], "r");
        g.set_outputs(vec![r]);
        let p = plan(&g, &TENSORRT);
        // x feeds the conv and is the residual: both uses read the quantized x; the conv
        // output goes into the Add unquantized (Conv+Add fusion); nothing on the output.
        assert_eq!(p.activations.len(), 1);
        assert_eq!(
            p.activations[&x],
            Uses::Only(vec![(c.node, 0), (a.node, 1)])
        );
    }

    #[test]
    fn tflite_concat_shares_one_group_and_softmax_is_fixed() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 4])));
        let y = g.add_input("y", TypeInfo::new(DType::F32, Shape::known(&[1, 4])));
        let zero = g.add_const("zero", Tensor::scalar(0f32));
        let six = g.add_const("six", Tensor::scalar(6f32));
        let a = g.add_simple("add", Add {}, &[x, y], "a");
        let cl = g.add_simple("clip", Clip {}, &[y, zero, six], "cl");
        let cat = g.add_simple("cat", Concat { axis: 1 }, &[a, cl], "cat");
        let s = g.add_simple("sm", Softmax { axis: -1 }, &[cat], "s");
        g.set_outputs(vec![s]);
        let p = plan(&g, &TFLITE);
        assert_eq!(
            p.groups,
            vec![SameScaleGroup {
                members: vec![a, cl, cat],
                source: None
            }]
        );
        assert_eq!(p.fixed[&s].scale, 1.0 / 256.0);
        // The Clip's input is a graph input: kept, and quantized as the Clip's input.
        assert!(p.removable.is_empty());
        assert!(p.activations.contains_key(&y));
        // ONNX Runtime quantizes the Concat's inputs and output on their own.
        assert!(plan(&g, &ONNXRUNTIME).groups.is_empty());
    }

    #[test]
    fn quantized_values_are_left_alone() {
        use qopt_ir::op::{DequantizeLinear, QuantizeLinear};
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 2, 4, 4])));
        let s = g.add_const("s", Tensor::scalar(0.1f32));
        let z = g.add_const("z", Tensor::scalar(0i8));
        let q = g.add_simple("q", QuantizeLinear::default(), &[x, s, z], "xq");
        let dq = g.add_simple("dq", DequantizeLinear::default(), &[q, s, z], "xdq");
        let w = g.add_const("w", Tensor::from_vec(&[2, 2, 1, 1], vec![1f32; 4]));
        let c = g.add_simple("conv", Conv::default(), &[dq, w], "c");
        g.set_outputs(vec![c]);
        let p = plan(&g, &ONNXRUNTIME);
        assert_eq!(p.activations.keys().copied().collect::<Vec<_>>(), vec![c]);
    }

    #[test]
    fn names_round_trip() {
        for n in Target::NAMES {
            assert_eq!(Target::from_name(n).unwrap().name(), n);
            assert_eq!(Target::from_name(n).unwrap().spec().target.name(), n);
        }
    }
}
