//! qopt's passes, one file (or folder) each, and [`registry()`]: the table of every pass with its
//! name, summary and options (DESIGN.md §4).

pub mod calib_inputs;
pub mod collect;
pub mod const_fold;
pub mod dce;
pub mod dynamic;
pub mod eq;
pub mod fold_bias;
pub mod fuse;
pub mod observe;
pub mod qdq;
pub mod shape_infer;
pub mod target;
pub mod thresholds;
pub mod thresholds_auto;
pub mod thresholds_refine;

/// The `--calib SOURCE` argument, as given; the calibration passes interpret it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalibSourceArg(pub String);

use qopt_pass::{AliasInfo, PassInfo, Registry};

/// Every registered pass and alias.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(PassInfo {
        name: "dce",
        summary: "remove nodes that no graph output depends on",
        options: &[],
        create: |_| Ok(Box::new(dce::Dce)),
    });
    r.register(PassInfo {
        name: "const-fold",
        summary: "evaluate nodes whose inputs are known at compile time (shape sub-graphs included)",
        options: const_fold::OPTIONS,
        create: |o| Ok(Box::new(const_fold::ConstFold::new(o))),
    });
    r.register(PassInfo {
        name: "shape-infer",
        summary: "infer every value's element type and shape (symbolic dims carried through)",
        options: &[],
        create: |_| Ok(Box::new(shape_infer::ShapeInfer)),
    });
    r.register(PassInfo {
        name: "fuse",
        summary: "fold BatchNormalization and per-channel constants into Conv/Gemm weights, MatMul+Add -> Gemm, drop Identity/Dropout, mark fused activations (egg)",
        options: fuse::OPTIONS,
        create: |o| Ok(Box::new(fuse::Fuse::from_options(o))),
    });
    r.register(PassInfo {
        name: "fold-bias",
        summary: "fold a constant Add/Sub after Conv/Gemm/MatMul into the bias input",
        options: &[],
        create: |_| Ok(Box::new(fold_bias::FoldBias)),
    });
    r.register(PassInfo {
        name: "observe",
        summary: "put an Observer on every activation the target quantizes (--keep-fp32 skips values)",
        options: observe::OPTIONS,
        create: observe::Observe::create,
    });
    r.register(PassInfo {
        name: "collect",
        summary: "run the calibration data (--calib, --load-stats) through the fp32 interpreter into the observers",
        options: collect::OPTIONS,
        create: collect::Collect::create,
    });
    r.register(PassInfo {
        name: "thresholds",
        summary: "choose each observed value's @range by a calibration method, remove the observers",
        options: thresholds::OPTIONS,
        create: thresholds::Thresholds::create,
    });
    r.register_alias(AliasInfo {
        name: "calib",
        summary: "calibrate: observe, collect and thresholds in one step",
        expansion: &["observe", "collect", "thresholds"],
    });
    r.register(PassInfo {
        name: "eq",
        summary: "EasyQuant: per layer, search weight (per channel) and activation scales around the calibrated ones for the best output cosine with the quantized upstream network",
        options: eq::OPTIONS,
        create: eq::Eq::create,
    });
    r.register(PassInfo {
        name: "qdq",
        summary: "insert QuantizeLinear/DequantizeLinear per the target from the calibrated ranges: int8 per-channel weights, int32 or float bias, target placement",
        options: qdq::OPTIONS,
        create: |o| Ok(Box::new(qdq::Qdq::from_options(o))),
    });
    r.register(PassInfo {
        name: "dynamic",
        summary: "dynamic quantization: int8 weights for MatMul/Gemm (and Conv), activations quantized at run time (DynamicQuantizeLinear + MatMulInteger/ConvInteger)",
        options: dynamic::OPTIONS,
        create: |o| Ok(Box::new(dynamic::Dynamic::from_options(o))),
    });
    r
}
