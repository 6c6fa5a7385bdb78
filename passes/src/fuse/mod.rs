//! `fuse`: algebraic fusions before quantization, as egg rewrite rules (DESIGN.md §4).
//!
//! What it does:
//! - BatchNormalization (inference) folded into a preceding Conv, ConvTranspose or Gemm,
//!   also when the layer has no bias (one is created), through single-use chains
//!   (`ConvTranspose -> Add(bias) -> BatchNormalization`, as PaddlePaddle exports) and for
//!   weights held in Constant nodes;
//! - per-channel Mul/Div/Add/Sub by constants after Conv/ConvTranspose/Gemm folded into the
//!   weight and bias;
//! - MatMul + Add(bias) -> Gemm when A is 2-D, B a 2-D constant and the bias broadcasts as [N];
//! - Identity and inference Dropout (mask unused) removed;
//! - Conv/ConvTranspose/Gemm followed by Relu, Clip(0, 6) or LeakyRelu marked as one unit.
//!
//! **The `fused_act` note.** The graph keeps `Conv -> Relu`; the layer's output value gets
//! the annotation note `@fused_act="Relu"` (`"Clip"` for Clip(0, 6), `"LeakyRelu"`), naming
//! the activation that is its only consumer. It means: quantize the pair as one unit; put the
//! quantization (Q/DQ, observer) on the activation's output, none on the layer's output.
//! `observe` and `qdq` read it ([`activation::FUSED_ACT`]).
//!
//! How: the whole graph becomes one e-graph ([`convert`]) in the language of [`lang`], with
//! an e-class analysis carrying shapes and constants ([`analysis`]). The rule tables
//! ([`rules`], one file per topic) run to saturation; numeric folds are custom appliers
//! ([`apply`], arithmetic in [`fold`]). A DAG-aware extraction ([`extract`]) picks one form
//! per e-class counting shared sub-graphs once, and the graph is rebuilt in place
//! ([`rebuild`]): untouched nodes keep their ids, names and annotations, a folded conv keeps
//! the conv's node name and takes the name of the value it replaces, graph output names never
//! change. A fold never duplicates work: a layer whose output has another use keeps its
//! BatchNormalization.
//!
//! Shapes come from `qopt_ir::infer_shapes` run on a copy of the graph (recorded types
//! where inference fails), so the graph's recorded types change only where nodes change.
//!
//! Numerics: folded weights are computed in f64 and rounded once to the weight's type; the
//! fused graph's outputs match the unfused graph's within 1e-5 relative L2 (tests).
//!
//! Options: `bn`, `scale`, `bias`, `identity` (rule tables) and `act` (the activation marks),
//! all on by default; `iters` bounds the rewrite iterations.

pub mod activation;
pub mod analysis;
pub mod apply;
pub mod convert;
pub mod extract;
pub mod fold;
pub mod lang;
pub mod rebuild;
pub mod rules;

#[cfg(test)]
mod refeval;
#[cfg(test)]
mod tests;

use egg::{Runner, SimpleScheduler, StopReason};
use qopt_ir::Graph;
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};
use rules::Topics;
use std::collections::HashSet;
use std::time::Duration;

pub use activation::FUSED_ACT;

/// Default bound on rewrite iterations; real models saturate in fewer than ten.
pub const DEFAULT_ITERS: usize = 32;

/// The pass's options, for the registry.
pub const OPTIONS: &[OptionSpec] = &[
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
        name: "const",
        kind: OptKind::Bool,
        default: Some("true"),
        help: "first fold constant sub-graphs (const-fold), so weights and biases computed from constants fold too",
    },
    OptionSpec {
        name: "iters",
        kind: OptKind::Int { min: 1, max: 1000 },
        default: Some("32"),
        help: "bound on rewrite iterations",
    },
];

/// What a fusion run did.
#[derive(Clone, Debug, PartialEq)]
pub struct FuseReport {
    pub changed: bool,
    pub nodes_before: usize,
    pub nodes_after: usize,
    /// Rewrite iterations run, and whether the e-graph saturated within the limit.
    pub iterations: usize,
    pub saturated: bool,
    /// Matches that were not folded, with the reason (for `--verbose`).
    pub refusals: Vec<String>,
}

/// Run the selected rule tables on `g` and rebuild it; optionally mark fused activations.
pub fn fuse_graph(
    g: &mut Graph,
    topics: Topics,
    mark_act: bool,
    iters: usize,
) -> Result<FuseReport, String> {
    let nodes_before = g.node_count();
    // The rules need ranks (MatMul + Add -> Gemm wants a 2-D A) that models often do not
    // record for intermediate values: infer them on a copy, so the graph's own recorded
    // types change only where `fuse` changes the graph. Node ids are the same in the copy.
    // If inference fails, the recorded types are all there is.
    let mut typed = g.clone();
    let mut low = match qopt_ir::infer_shapes(&mut typed) {
        Ok(_) => convert::lower(&typed)?,
        Err(_) => convert::lower(g)?,
    };
    drop(typed);
    let classes = low.egraph.number_of_classes();
    let egraph = std::mem::take(&mut low.egraph);
    let rules = topics.rules();
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_scheduler(SimpleScheduler)
        .with_iter_limit(iters)
        .with_node_limit(classes.saturating_mul(16).max(100_000))
        // Limits must not depend on the machine's speed (same input, same output).
        .with_time_limit(Duration::from_secs(24 * 3600))
        .run(&rules);
    let saturated = matches!(runner.stop_reason, Some(StopReason::Saturated));
    let iterations = runner.iterations.len();
    low.egraph = runner.egraph;
    let eg = &low.egraph;

    let original: HashSet<_> = low
        .lang_nodes
        .iter()
        .map(|(_, e)| egg::Language::map_children(e.clone(), |c| eg.find(c)))
        .collect();
    let choice = extract::extract(eg, &original);
    let mut changed = rebuild::rebuild(g, &low, eg, &choice)?;
    if mark_act {
        changed |= activation::mark_fused_activations(g);
    }
    Ok(FuseReport {
        changed,
        nodes_before,
        nodes_after: g.node_count(),
        iterations,
        saturated,
        refusals: eg.analysis.refusals.iter().cloned().collect(),
    })
}

/// The `fuse` pass.
pub struct Fuse {
    pub topics: Topics,
    pub mark_activations: bool,
    /// Run `const-fold` first (option `const`).
    pub fold_constants: bool,
    pub iters: usize,
}

impl Default for Fuse {
    fn default() -> Self {
        Fuse {
            topics: Topics::ALL,
            mark_activations: true,
            fold_constants: true,
            iters: DEFAULT_ITERS,
        }
    }
}

impl Fuse {
    pub fn from_options(o: &PassOptions) -> Fuse {
        Fuse {
            topics: Topics {
                batchnorm: o.bool("bn"),
                scale: o.bool("scale"),
                bias: o.bool("bias"),
                identity: o.bool("identity"),
            },
            mark_activations: o.bool("act"),
            fold_constants: o.bool("const"),
            iters: o.int("iters").map_or(DEFAULT_ITERS, |i| i as usize),
        }
    }
}

/// Run a fusion as pass `name`, reporting to the context.
pub(crate) fn run_as_pass(
    name: &str,
    g: &mut Graph,
    cx: &mut PassContext,
    topics: Topics,
    mark_act: bool,
    iters: usize,
) -> Result<Changed, PassError> {
    let r = fuse_graph(g, topics, mark_act, iters).map_err(PassError::Failed)?;
    if !r.saturated {
        cx.warn(
            name,
            format!("rewriting stopped after {} iterations before saturating; some folds may be missing", r.iterations),
        );
    }
    for why in &r.refusals {
        cx.note(name, why.clone());
    }
    cx.note(
        name,
        format!(
            "{} nodes -> {} nodes in {} iterations",
            r.nodes_before, r.nodes_after, r.iterations
        ),
    );
    Ok(Changed::from_bool(r.changed))
}

impl Pass for Fuse {
    fn name(&self) -> &str {
        "fuse"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        // Weights and biases are often computed from constants in the exported graph
        // (PaddlePaddle's SE blocks add `Reshape(offset, shape)` after a bias-less Conv): folded
        // first, they are constants the rules can fold into the layer, as ONNX Runtime's
        // `quant_pre_process` does with the ONNX optimizer. Otherwise `qdq` would quantize the
        // Conv output and the reshaped bias as two activations.
        let folded = if self.fold_constants {
            let n = crate::const_fold::fold_constants(g, crate::const_fold::DEFAULT_MAX_ELEMENTS)?;
            if n > 0 {
                cx.note("fuse", format!("const-fold: folded {n} nodes first"));
            }
            n
        } else {
            0
        };
        let changed = run_as_pass(
            "fuse",
            g,
            cx,
            self.topics,
            self.mark_activations,
            self.iters,
        )?;
        Ok(if folded > 0 { Changed::Yes } else { changed })
    }
}
