//! `qdq`: materialise QuantizeLinear/DequantizeLinear from the calibration annotations, per
//! the target spec (DESIGN.md §4-§5).
//!
//! - Where: [`crate::target::plan`] (the placement every target spec describes as data).
//! - Activations: the `@range` that calibration wrote becomes a scale and zero point
//!   (`QScheme::qparams`, ONNX Runtime's `compute_scale_zp`); same-scale groups share one
//!   set, fixed-output ops get theirs from the spec, a value that already carries `@q`
//!   keeps it. Each quantized value gets one Q -> DQ pair; its uses read the DQ output
//!   ([`insert`]). A Relu/Clip whose clamp the output quantization performs exactly is
//!   dropped, as ONNX Runtime's quantizer does ([`activations`]).
//! - Constants ([`constants`]): weights int8 symmetric (per channel where the target wants
//!   it) stored as int8 + DequantizeLinear, or float + QuantizeLinear + DequantizeLinear
//!   with `fake=true`; a weight that carries `@q` (per-channel int8 scales chosen by `eq`)
//!   is quantized with those; biases int32 with scale `s_in * s_w[c]` or float per target;
//!   float operands of other quantized ops int8 per tensor. `rounding=stochastic` rounds
//!   weights up or down at random with probability by distance (seeded, reproducible).
//! - The opset is raised to 13 when a per-axis Q/DQ needs it ([`opset`]).
//!
//! Existing QuantizeLinear/DequantizeLinear nodes (a QAT model) are left as they are, and
//! the values around them are not quantized again. A value to quantize without a range is
//! an error that names it: run `calib` first.

mod activations;
pub(crate) mod constants;
mod insert;
pub mod opset;
pub(crate) mod params;
mod rounding;

use crate::target::{Target, plan};
use qopt_ir::{Graph, Op};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};
use std::collections::HashSet;

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "fake",
        kind: OptKind::Bool,
        default: Some("false"),
        help: "keep float weights and quantize them with QuantizeLinear (the form QAT tools fine-tune from)",
    },
    OptionSpec {
        name: "rounding",
        kind: OptKind::Enum(&["nearest", "stochastic"]),
        default: Some("nearest"),
        help: "weight rounding: nearest (half to even) or stochastic (up or down by distance)",
    },
    OptionSpec {
        name: "seed",
        kind: OptKind::Int {
            min: 0,
            max: i64::MAX,
        },
        default: Some("0"),
        help: "seed of stochastic rounding",
    },
    OptionSpec {
        name: "bits",
        kind: OptKind::Int { min: 2, max: 8 },
        default: Some("8"),
        help: "bits of the integer grid (7: EasyQuant's int7; stored as int8/uint8 all the same)",
    },
];

/// How weights are rounded onto the integer grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Round half to even, as QuantizeLinear does.
    Nearest,
    /// Round down or up with probability 1 - frac and frac (Gupta et al., "Deep Learning
    /// with Limited Numerical Precision", 2015), from a ChaCha8 stream per weight.
    Stochastic { seed: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QdqOptions {
    pub fake: bool,
    pub rounding: Rounding,
    /// Bits of the activation and weight grids (8; 7 for EasyQuant-style int7). The storage
    /// type stays int8/uint8: only the scales (and so the grid points used) change.
    pub bits: u32,
}

impl Default for QdqOptions {
    fn default() -> Self {
        QdqOptions {
            fake: false,
            rounding: Rounding::Nearest,
            bits: 8,
        }
    }
}

/// Everything that stops `qdq`.
#[derive(Debug, thiserror::Error)]
pub enum QdqError {
    #[error(
        "value '{value}' ({what}) has no calibrated range to quantize it with{more}: run calib \
         first (for example --passes=calib,qdq --calib DATA)"
    )]
    NoRange {
        value: String,
        what: String,
        more: String,
    },
    #[error("value '{value}': {msg}")]
    Params { value: String, msg: String },
    #[error("{0}")]
    Opset(String),
}

impl From<QdqError> for PassError {
    fn from(e: QdqError) -> PassError {
        PassError::Failed(e.to_string())
    }
}

pub struct Qdq {
    pub options: QdqOptions,
}

impl Qdq {
    pub fn from_options(o: &PassOptions) -> Qdq {
        let rounding = match o.str("rounding") {
            Some("stochastic") => Rounding::Stochastic {
                seed: o.int("seed").unwrap_or(0) as u64,
            },
            _ => Rounding::Nearest,
        };
        Qdq {
            options: QdqOptions {
                fake: o.bool("fake"),
                rounding,
                bits: o.int("bits").unwrap_or(8) as u32,
            },
        }
    }
}

impl Pass for Qdq {
    fn name(&self) -> &str {
        "qdq"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let target = cx.get::<Target>().copied().unwrap_or_default();
        let report = quantize(g, target, self.options)?;
        for w in &report.warnings {
            let w = w.clone();
            cx.warn("qdq", w);
        }
        cx.note(
            "qdq",
            format!(
                "{} activations, {} weights, {} biases quantized for {}",
                report.activations,
                report.weights,
                report.biases,
                target.name()
            ),
        );
        Ok(Changed::from_bool(report.changed()))
    }
}

/// What [`quantize`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub activations: usize,
    pub weights: usize,
    pub biases: usize,
    pub removed_activations: usize,
    pub opset_raised: bool,
    pub warnings: Vec<String>,
}

impl Report {
    fn changed(&self) -> bool {
        self.activations + self.weights + self.biases + self.removed_activations > 0
            || self.opset_raised
    }
}

/// Quantize `g` for `target` (the body of the `qdq` pass, for callers without a pipeline).
pub fn quantize(g: &mut Graph, target: Target, opts: QdqOptions) -> Result<Report, QdqError> {
    let spec = target.spec();
    let plan = plan(g, spec);
    let mut report = Report::default();
    let mut params = params::resolve(g, spec, &plan, opts.bits, &mut report.warnings)?;
    let mut uses = plan.activations.clone();
    report.removed_activations =
        activations::remove_clamps(g, &plan.removable, &mut params, &mut uses);
    let mut names = Names::new(g);
    let mut per_axis = false;
    let c = constants::quantize(g, spec, &plan.constants, &params, opts, &mut names)?;
    report.weights = c.weights;
    report.biases = c.biases;
    report.warnings.extend(c.warnings);
    per_axis |= c.per_axis;
    report.activations = insert::activations(g, &uses, &params, &mut names);
    if per_axis
        && g.meta
            .onnx_opset()
            .is_some_and(|v| v < opset::PER_AXIS_SINCE)
    {
        opset::upgrade(g, opset::PER_AXIS_SINCE).map_err(QdqError::Opset)?;
        report.opset_raised = true;
    }
    Ok(report)
}

/// Value names in use, to make new ones unique without rescanning the graph each time.
pub(crate) struct Names(HashSet<String>);

impl Names {
    pub(crate) fn new(g: &Graph) -> Names {
        Names(
            g.node_ids()
                .into_iter()
                .flat_map(|n| g.node(n).outputs.iter().map(|v| v.name.clone()))
                .collect(),
        )
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free; the name is taken.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let name = if self.0.contains(base) {
            (1..)
                .map(|i| format!("{base}_{i}"))
                .find(|n| !self.0.contains(n))
                .expect("unbounded")
        } else {
            base.to_string()
        };
        self.0.insert(name.clone());
        name
    }
}

/// Whether `g` holds quantization nodes already (a QAT model, or one quantized before).
pub fn has_qdq(g: &Graph) -> bool {
    g.node_ids().into_iter().any(|n| {
        matches!(
            g.node(n).op,
            Op::QuantizeLinear(_) | Op::DequantizeLinear(_)
        )
    })
}
