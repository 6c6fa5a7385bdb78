//! The operators qopt understands, as one table.
//!
//! Every operator is a struct with typed attribute fields whose defaults are the
//! ONNX operator spec's. The [`define_ops!`] table below generates the structs,
//! the [`Op`] enum and the conversions to and from untyped [`Attr`] lists, so the
//! ONNX importer, the exporter, the printer and the parser all read one table
//! (like LLVM's `PassRegistry.def`). A field is written out only when it differs
//! from its default, or always when marked `#[required]`.
//!
//! Attributes that later opsets moved into inputs (Squeeze/Unsqueeze/Reduce* axes,
//! Split sizes) are kept as fields here whatever the opset; the ONNX importer moves
//! constant inputs into them and the exporter writes the form the opset asks for.
//!
//! Besides ONNX operators there are four graph-level ops: [`Op::Input`] (a graph
//! input), [`Op::Const`] (an initializer or `Constant`), [`Op::Observer`] (inserted
//! by calibration) and [`Op::Custom`] (anything else, carried unchanged).

use crate::attr::*;
use crate::dtype::DType;
use crate::observer::ObserverState;
use crate::tensor::Tensor;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AttrError {
    #[error("unknown attribute `{0}`")]
    Unknown(String),
    #[error("missing required attribute `{0}`")]
    Missing(&'static str),
    #[error("attribute `{name}`: {msg}")]
    Invalid { name: String, msg: String },
}

/// An operator qopt does not interpret: kept with all its attributes and exported unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Custom {
    pub domain: String,
    pub op_type: String,
    pub attrs: Vec<(String, Attr)>,
}

macro_rules! op_name {
    ($name:ident) => {
        stringify!($name)
    };
    ($name:ident, $o:literal) => {
        $o
    };
}

macro_rules! op_domain {
    () => {
        ""
    };
    ($d:literal) => {
        $d
    };
}

macro_rules! define_ops {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident $(@ $domain:literal)? {
            $( $(#[$flag:ident])* $field:ident $(as $fname:literal)? : $fty:ty = $fdef:expr ),* $(,)?
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Clone, Debug, PartialEq)]
            pub struct $name { $(pub $field: $fty,)* }

            impl Default for $name {
                #[allow(clippy::default_trait_access)]
                fn default() -> Self { Self { $($field: $fdef,)* } }
            }

            impl $name {
                pub const OP_TYPE: &'static str = stringify!($name);
                pub const DOMAIN: &'static str = op_domain!($($domain)?);

                /// Attributes to write: present and non-default, or required.
                #[allow(unused_variables, unused_mut)]
                pub fn attrs(&self) -> Vec<(&'static str, Attr)> {
                    let d = Self::default();
                    let mut v = Vec::new();
                    $(
                        let required = false $(|| stringify!($flag) == "required")*;
                        if !AttrPresence::is_absent(&self.$field) && (required || self.$field != d.$field) {
                            v.push((op_name!($field $(, $fname)?), AttrValue::to_attr(&self.$field)));
                        }
                    )*
                    v
                }

                /// Build from an untyped attribute list, filling in defaults.
                #[allow(unused_mut, unused_variables, unused_labels)]
                pub fn from_attrs(attrs: &[(String, Attr)]) -> Result<Self, AttrError> {
                    let mut s = Self::default();
                    'next: for (k, a) in attrs {
                        $(
                            if k == op_name!($field $(, $fname)?) {
                                s.$field = AttrValue::from_attr(a)
                                    .map_err(|msg| AttrError::Invalid { name: k.clone(), msg })?;
                                continue 'next;
                            }
                        )*
                        return Err(AttrError::Unknown(k.clone()));
                    }
                    $(
                        let required = false $(|| stringify!($flag) == "required")*;
                        let name = op_name!($field $(, $fname)?);
                        if required && !attrs.iter().any(|(k, _)| k == name) {
                            return Err(AttrError::Missing(name));
                        }
                    )*
                    Ok(s)
                }
            }

            impl From<$name> for Op {
                fn from(op: $name) -> Op { Op::$name(op) }
            }
        )*

        /// An operator node's operation.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            /// A graph input.
            Input,
            /// A constant (an ONNX initializer or `Constant` node).
            Const(Arc<Tensor>),
            /// A calibration observer: passes its input through and accumulates statistics.
            Observer(Box<ObserverState>),
            /// An operator qopt does not interpret.
            Custom(Box<Custom>),
            $($name($name),)*
        }

        impl Op {
            /// The ONNX operator type (`Conv`), or the graph-level name (`Input`, `Const`, `Observer`).
            pub fn op_type(&self) -> &str {
                match self {
                    Op::Input => "Input",
                    Op::Const(_) => "Const",
                    Op::Observer(_) => "Observer",
                    Op::Custom(c) => &c.op_type,
                    $(Op::$name(_) => $name::OP_TYPE,)*
                }
            }

            /// The ONNX domain ("" is the default `ai.onnx` domain).
            pub fn domain(&self) -> &str {
                match self {
                    Op::Input | Op::Const(_) => "",
                    Op::Observer(_) => "qopt",
                    Op::Custom(c) => &c.domain,
                    $(Op::$name(_) => $name::DOMAIN,)*
                }
            }

            /// Attributes as written to ONNX and to the text format.
            pub fn attrs(&self) -> Vec<(String, Attr)> {
                match self {
                    Op::Input | Op::Const(_) | Op::Observer(_) => vec![],
                    Op::Custom(c) => c.attrs.clone(),
                    $(Op::$name(o) => o.attrs().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),)*
                }
            }

            /// Build an operator from its domain, type and attributes. An operator not in the
            /// table becomes [`Op::Custom`]; a known one with bad attributes is an error.
            pub fn from_parts(domain: &str, op_type: &str, attrs: &[(String, Attr)]) -> Result<Op, AttrError> {
                let domain = if domain == "ai.onnx" { "" } else { domain };
                $(
                    if op_type == $name::OP_TYPE && domain == $name::DOMAIN {
                        return $name::from_attrs(attrs).map(Op::$name);
                    }
                )*
                Ok(Op::Custom(Box::new(Custom {
                    domain: domain.to_string(),
                    op_type: op_type.to_string(),
                    attrs: attrs.to_vec(),
                })))
            }

            /// (domain, op type) of every operator in the table.
            pub fn known_ops() -> &'static [(&'static str, &'static str)] {
                &[$(($name::DOMAIN, $name::OP_TYPE),)*]
            }
        }
    };
}

define_ops! {
    // ---- elementwise unary -------------------------------------------------------------
    Abs {}
    Neg {}
    Sqrt {}
    Exp {}
    Log {}
    Reciprocal {}
    Floor {}
    Ceil {}
    Round {}
    Sign {}
    Sin {}
    Cos {}
    Tan {}
    Atan {}
    Erf {}
    Sigmoid {}
    Tanh {}
    Relu {}
    Softplus {}
    Softsign {}
    Not {}
    IsNaN {}
    IsInf { detect_negative: i64 = 1, detect_positive: i64 = 1 }
    Identity {}
    HardSwish {}
    Mish {}
    LeakyRelu { alpha: f32 = 0.01 }
    Elu { alpha: f32 = 1.0 }
    Celu { alpha: f32 = 1.0 }
    Selu { alpha: f32 = 1.673_263_2, gamma: f32 = 1.050_701 }
    ThresholdedRelu { alpha: f32 = 1.0 }
    HardSigmoid { alpha: f32 = 0.2, beta: f32 = 0.5 }
    Gelu { approximate: GeluApprox = GeluApprox::None }
    /// Inputs: X, slope (broadcast to X).
    PRelu {}
    /// Inputs: input, min?, max? (opset 11+ form).
    Clip {}

    // ---- elementwise binary and variadic -------------------------------------------------
    Add {}
    Sub {}
    Mul {}
    Div {}
    Pow {}
    Mod { fmod: i64 = 0 }
    Equal {}
    Less {}
    LessOrEqual {}
    Greater {}
    GreaterOrEqual {}
    And {}
    Or {}
    Xor {}
    /// Inputs: condition, X, Y.
    Where {}
    Min {}
    Max {}
    Sum {}
    Mean {}

    // ---- normalisation and activation over axes -----------------------------------------
    /// Opset 13+ semantics over one axis; before 13 the input is coerced to 2-D at `axis`
    /// (the importer records the opset on the graph, which the interpreter consults).
    Softmax { #[required] axis: i64 = -1 }
    LogSoftmax { #[required] axis: i64 = -1 }
    Hardmax { #[required] axis: i64 = -1 }
    /// Inputs: X, scale, B, mean, var.
    BatchNormalization { epsilon: f32 = 1e-5, momentum: f32 = 0.9, training_mode: i64 = 0 }
    InstanceNormalization { epsilon: f32 = 1e-5 }
    LayerNormalization { axis: i64 = -1, epsilon: f32 = 1e-5, stash_type: i64 = 1 }
    GroupNormalization { epsilon: f32 = 1e-5, #[required] num_groups: i64 = 1, stash_type: i64 = 1 }
    LRN { alpha: f32 = 1e-4, beta: f32 = 0.75, bias: f32 = 1.0, #[required] size: i64 = 1 }

    // ---- linear algebra and convolution --------------------------------------------------
    MatMul {}
    Gemm { alpha: f32 = 1.0, beta: f32 = 1.0, trans_a as "transA": i64 = 0, trans_b as "transB": i64 = 0 }
    /// Empty lists mean the spec's rank-dependent default (ones, zeros, or the weight's shape).
    Conv {
        auto_pad: AutoPad = AutoPad::NotSet,
        dilations: Vec<i64> = vec![],
        group: i64 = 1,
        kernel_shape: Vec<i64> = vec![],
        pads: Vec<i64> = vec![],
        strides: Vec<i64> = vec![],
    }
    ConvTranspose {
        auto_pad: AutoPad = AutoPad::NotSet,
        dilations: Vec<i64> = vec![],
        group: i64 = 1,
        kernel_shape: Vec<i64> = vec![],
        output_padding: Vec<i64> = vec![],
        output_shape: Vec<i64> = vec![],
        pads: Vec<i64> = vec![],
        strides: Vec<i64> = vec![],
    }
    Einsum { #[required] equation: String = String::new() }

    // ---- pooling and reductions ----------------------------------------------------------
    MaxPool {
        auto_pad: AutoPad = AutoPad::NotSet,
        ceil_mode: i64 = 0,
        dilations: Vec<i64> = vec![],
        #[required] kernel_shape: Vec<i64> = vec![],
        pads: Vec<i64> = vec![],
        storage_order: i64 = 0,
        strides: Vec<i64> = vec![],
    }
    AveragePool {
        auto_pad: AutoPad = AutoPad::NotSet,
        ceil_mode: i64 = 0,
        count_include_pad: i64 = 0,
        dilations: Vec<i64> = vec![],
        #[required] kernel_shape: Vec<i64> = vec![],
        pads: Vec<i64> = vec![],
        strides: Vec<i64> = vec![],
    }
    GlobalAveragePool {}
    GlobalMaxPool {}
    /// `axes: None` reduces over all axes (or none, with `noop_with_empty_axes`), unless a
    /// run-time axes input is connected.
    ReduceMean { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceSum { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceMax { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceMin { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceProd { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceL1 { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceL2 { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceSumSquare { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ReduceLogSumExp { axes: Option<Vec<i64>> = None, keepdims: i64 = 1, noop_with_empty_axes: i64 = 0 }
    ArgMax { axis: i64 = 0, keepdims: i64 = 1, select_last_index: i64 = 0 }
    ArgMin { axis: i64 = 0, keepdims: i64 = 1, select_last_index: i64 = 0 }
    TopK { axis: i64 = -1, largest: i64 = 1, sorted: i64 = 1 }
    CumSum { exclusive: i64 = 0, reverse: i64 = 0 }

    // ---- resampling ----------------------------------------------------------------------
    /// Inputs: X, roi?, scales?, sizes?.
    Resize {
        antialias: i64 = 0,
        axes: Vec<i64> = vec![],
        coordinate_transformation_mode: CoordTransform = CoordTransform::HalfPixel,
        cubic_coeff_a: f32 = -0.75,
        exclude_outside: i64 = 0,
        extrapolation_value: f32 = 0.0,
        keep_aspect_ratio_policy: KeepAspectRatio = KeepAspectRatio::Stretch,
        mode: ResizeMode = ResizeMode::Nearest,
        nearest_mode: NearestMode = NearestMode::RoundPreferFloor,
    }
    /// Inputs: X, scales. Deprecated since opset 10 but still exported by some tools.
    Upsample { mode: ResizeMode = ResizeMode::Nearest }
    DepthToSpace { #[required] blocksize: i64 = 1, mode: DepthToSpaceMode = DepthToSpaceMode::Dcr }
    SpaceToDepth { #[required] blocksize: i64 = 1 }

    // ---- shape and data movement ---------------------------------------------------------
    /// Inputs: data, pads, constant_value?, axes?.
    Pad { mode: PadMode = PadMode::Constant }
    /// Inputs: data, shape.
    Reshape { allowzero: i64 = 0 }
    Flatten { axis: i64 = 1 }
    /// Empty `perm` reverses the axes.
    Transpose { perm: Vec<i64> = vec![] }
    Squeeze { axes: Option<Vec<i64>> = None }
    Unsqueeze { axes: Option<Vec<i64>> = None }
    Concat { #[required] axis: i64 = 0 }
    /// `split: None` splits evenly into as many parts as the node has outputs.
    Split { axis: i64 = 0, split: Option<Vec<i64>> = None }
    /// Inputs: data, starts, ends, axes?, steps?.
    Slice {}
    Gather { axis: i64 = 0 }
    GatherElements { axis: i64 = 0 }
    GatherND { batch_dims: i64 = 0 }
    ScatterND { reduction: ScatterReduction = ScatterReduction::None }
    ScatterElements { axis: i64 = 0, reduction: ScatterReduction = ScatterReduction::None }
    Shape { start: i64 = 0, end: Option<i64> = None }
    Size {}
    Cast { #[required] to: DType = DType::F32, saturate: i64 = 1 }
    CastLike { saturate: i64 = 1 }
    /// Inputs: start, limit, delta.
    Range {}
    Expand {}
    Tile {}
    NonZero {}
    /// Fills a tensor of the input shape with `value` (f32 zero when absent).
    ConstantOfShape { value: Option<Arc<Tensor>> = None }
    /// Inference: identity (the mask output, if any, is all true).
    Dropout { seed: Option<i64> = None }
    Trilu { upper: i64 = 1 }

    // ---- quantization ----------------------------------------------------------------------
    /// Inputs: x, y_scale, y_zero_point?. `q = saturate(round_half_even(x / s) + zp)`.
    QuantizeLinear { axis: i64 = 1, saturate: i64 = 1, block_size: i64 = 0, output_dtype: Option<DType> = None }
    /// Inputs: x, x_scale, x_zero_point?. `x = (q - zp) * s`.
    DequantizeLinear { axis: i64 = 1, block_size: i64 = 0 }
    DynamicQuantizeLinear {}
    QLinearConv {
        auto_pad: AutoPad = AutoPad::NotSet,
        dilations: Vec<i64> = vec![],
        group: i64 = 1,
        kernel_shape: Vec<i64> = vec![],
        pads: Vec<i64> = vec![],
        strides: Vec<i64> = vec![],
    }
    QLinearMatMul {}
    ConvInteger {
        auto_pad: AutoPad = AutoPad::NotSet,
        dilations: Vec<i64> = vec![],
        group: i64 = 1,
        kernel_shape: Vec<i64> = vec![],
        pads: Vec<i64> = vec![],
        strides: Vec<i64> = vec![],
    }
    MatMulInteger {}
    /// ONNX Runtime contrib op. Inputs: A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp.
    QLinearAdd @ "com.microsoft" {}
    QLinearMul @ "com.microsoft" {}
    QLinearGlobalAveragePool @ "com.microsoft" { channels_last: i64 = 0 }
}

impl Op {
    pub fn is_const(&self) -> bool {
        matches!(self, Op::Const(_))
    }

    pub fn as_const(&self) -> Option<&Arc<Tensor>> {
        match self {
            Op::Const(t) => Some(t),
            _ => None,
        }
    }

    /// True for graph inputs and constants: nodes without inputs of their own.
    pub fn is_source(&self) -> bool {
        matches!(self, Op::Input | Op::Const(_))
    }

    /// `domain::OpType` for ops outside the default domain, `OpType` otherwise.
    pub fn qualified_name(&self) -> String {
        match self.domain() {
            "" => self.op_type().to_string(),
            d => format!("{d}::{}", self.op_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(v: &[(&str, Attr)]) -> Vec<(String, Attr)> {
        v.iter().map(|(k, a)| (k.to_string(), a.clone())).collect()
    }

    #[test]
    fn defaults_are_filled_and_not_written_back() {
        let op = Op::from_parts(
            "",
            "Conv",
            &attrs(&[
                ("group", Attr::Int(1)),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ]),
        )
        .unwrap();
        let Op::Conv(c) = &op else { panic!("{op:?}") };
        assert_eq!(c.group, 1);
        assert_eq!(c.auto_pad, AutoPad::NotSet);
        assert_eq!(op.attrs(), attrs(&[("pads", Attr::Ints(vec![1, 1, 1, 1]))]));
    }

    #[test]
    fn renamed_and_required_fields() {
        let op = Op::from_parts("", "Gemm", &attrs(&[("transB", Attr::Int(1))])).unwrap();
        assert!(matches!(&op, Op::Gemm(g) if g.trans_b == 1));
        assert_eq!(op.attrs(), attrs(&[("transB", Attr::Int(1))]));
        assert_eq!(
            Op::from_parts("", "Concat", &[]).unwrap_err(),
            AttrError::Missing("axis")
        );
        // Required attributes are written even at their default value.
        let c = Op::from_parts("", "Concat", &attrs(&[("axis", Attr::Int(0))])).unwrap();
        assert_eq!(c.attrs(), attrs(&[("axis", Attr::Int(0))]));
    }

    #[test]
    fn unknown_ops_are_custom_and_unknown_attrs_are_errors() {
        let op = Op::from_parts("my.domain", "Frobnicate", &attrs(&[("x", Attr::Int(3))])).unwrap();
        assert_eq!(op.qualified_name(), "my.domain::Frobnicate");
        assert_eq!(op.attrs(), attrs(&[("x", Attr::Int(3))]));
        let e = Op::from_parts("", "Relu", &attrs(&[("alpha", Attr::Float(1.0))])).unwrap_err();
        assert_eq!(e, AttrError::Unknown("alpha".into()));
        let e = Op::from_parts(
            "",
            "Resize",
            &attrs(&[("mode", Attr::String("fancy".into()))]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nearest"), "{e}");
    }

    #[test]
    fn contrib_ops_need_their_domain() {
        assert!(matches!(
            Op::from_parts("com.microsoft", "QLinearAdd", &[]).unwrap(),
            Op::QLinearAdd(_)
        ));
        assert!(matches!(
            Op::from_parts("", "QLinearAdd", &[]).unwrap(),
            Op::Custom(_)
        ));
        assert!(matches!(
            Op::from_parts("ai.onnx", "Relu", &[]).unwrap(),
            Op::Relu(_)
        ));
    }
}
