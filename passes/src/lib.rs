//! qopt's passes, one file (or folder) each, and [`registry()`]: the table of every pass
//! with its name, summary and options (DESIGN.md §4).

pub mod fold_bias;
pub mod fuse;

use qopt_pass::{OptKind, OptionSpec, PassInfo, Registry};

const FUSE_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "bn",
        kind: OptKind::Bool,
        default: Some("true"),
        help: "fold BatchNormalization into Conv/ConvTranspose/Gemm",
    },
    OptionSpec {
        name: "scale",
        kind: OptKind::Bool,
        default: Some("true"),
        help: "fold per-channel Mul/Div by constants into weights",
    },
    OptionSpec {
        name: "bias",
        kind: OptKind::Bool,
        default: Some("true"),
        help: "fold per-channel Add/Sub of constants into biases; MatMul+Add -> Gemm",
    },
    OptionSpec {
        name: "identity",
        kind: OptKind::Bool,
        default: Some("true"),
        help: "remove Identity and inference Dropout",
    },
    OptionSpec {
        name: "act",
        kind: OptKind::Bool,
        default: Some("true"),
        help: "mark Conv/Gemm + Relu/Clip(0,6)/LeakyRelu as fused (@fused_act note)",
    },
    OptionSpec {
        name: "iters",
        kind: OptKind::Int { min: 1, max: 1000 },
        default: Some("32"),
        help: "bound on rewrite iterations",
    },
];

/// Every registered pass and alias.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(PassInfo {
        name: "fuse",
        summary: "fold BatchNormalization and per-channel constants into Conv/Gemm weights, MatMul+Add -> Gemm, drop Identity/Dropout, mark fused activations (egg)",
        options: FUSE_OPTIONS,
        create: |o| Ok(Box::new(fuse::Fuse::from_options(o))),
    });
    r.register(PassInfo {
        name: "fold-bias",
        summary: "fold a constant Add/Sub after Conv/Gemm/MatMul into the bias input",
        options: &[],
        create: |_| Ok(Box::new(fold_bias::FoldBias)),
    });
    r
}
