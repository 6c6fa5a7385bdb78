//! Command-line definition (clap derive). Doc comments are the help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// qopt quantizes ONNX models to INT8 for TensorRT, TFLite, MindSpore and ONNX Runtime.
///
/// Without a subcommand, qopt reads INPUT (.onnx or .qir), runs the pass pipeline and
/// writes OUTPUT (.onnx or .qir, by extension), or prints the graph as .qir text.
#[derive(Parser, Debug)]
#[command(name = "qopt", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub opt: OptArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Summarise a model: inputs, outputs, op histogram, parameter count, opset.
    Inspect {
        /// The model (.onnx or .qir).
        model: PathBuf,
    },
    /// Quantize a model for a target with the recommended pipeline (fuse, calibrate with
    /// the target's method, insert Q/DQ): `qopt quantize MODEL --calib DATA -o OUT`.
    Quantize(Box<QuantizeArgs>),
    /// Run a model on qopt's interpreter and write its outputs as .npy files. A quantized
    /// model (Q/DQ pairs or integer operators) runs on the INT8 plan unless --reference.
    Run(RunArgs),
    /// Compare a quantized model with its fp32 original over data: per quantized layer and
    /// per output, cosine similarity, SQNR, max abs error, top-1 agreement.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The fp32 model (.onnx or .qir).
    pub model: PathBuf,

    /// Where to write the quantized model (.onnx or .qir).
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: PathBuf,

    /// Calibration data and options (`--calib` or `--load-stats` is required).
    #[command(flatten)]
    pub calib: CalibArgs,

    /// The deployment target.
    #[arg(long, value_name = "TARGET", default_value = "onnxruntime")]
    pub target: String,

    /// Calibration method instead of the target's default (minmax, percentile, kl, mse,
    /// admm, auto; options in braces, e.g. `percentile{p=99.9}`).
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,

    /// Pin an input's shape, e.g. `--input-shape x=1,3,640,640` (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    pub input_shape: Vec<String>,

    /// Worker threads for passes that compute (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Print notes explaining what passes did.
    #[arg(short, long)]
    pub verbose: bool,

    /// Report the wall time of every pass on stderr.
    #[arg(long)]
    pub time_passes: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The model (.onnx or .qir).
    pub model: PathBuf,
    /// An input: `NAME=FILE.npy`, or a `.npz` whose arrays are named after the inputs (repeatable).
    #[arg(long = "input", value_name = "NAME=FILE.npy|FILE.npz")]
    pub inputs: Vec<String>,
    /// Write one `<output>.npy` per graph output into this folder.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Also write every intermediate value as `.npy` into this folder (with an index.tsv).
    #[arg(long, value_name = "DIR")]
    pub dump_values: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Run the model N times on the same input and print min/median latency.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: usize,
    /// Run a quantized model as the float QDQ simulation (the fp32 interpreter executing
    /// QuantizeLinear/DequantizeLinear as ONNX defines them) instead of the INT8 plan.
    #[arg(long)]
    pub reference: bool,
    /// Print how the INT8 plan lowered the graph and why nodes run in fp32.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print the time spent per step kind (INT8 plan) or op type (fp32) over all runs,
    /// slowest first, on stderr.
    #[arg(long)]
    pub profile: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The fp32 model (.onnx or .qir).
    pub reference_model: PathBuf,
    /// The quantized model (.onnx or .qir) made from it.
    pub quantized_model: PathBuf,
    /// Data to run both models on, as --calib takes it: a folder of images or of .npy/.npz
    /// files, one .npy/.npz file whose first axis indexes the samples, or `random:N{seed=S}`.
    #[arg(long, value_name = "SOURCE")]
    pub data: String,
    /// Use only the first N samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Image preprocessing, as for --calib (default: imagenet).
    #[arg(long, value_name = "PRESET|KEY=VALUE,...")]
    pub preprocess: Option<String>,
    /// Fail on a sample with NaN/Inf values instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// Run the quantized model as the float QDQ simulation instead of the INT8 plan.
    #[arg(long)]
    pub reference: bool,
    /// Also rank the quantized layers by output SQNR when only that layer is quantized, and
    /// when only that layer is left in fp32 (float QDQ simulation; 2 runs per layer).
    #[arg(long)]
    pub sensitivity: bool,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a bar chart of per-layer SQNR as SVG to FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress lines.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct OptArgs {
    /// The model to transform (.onnx or .qir).
    pub input: Option<PathBuf>,

    /// Where to write the result (.onnx or .qir); without it the graph is printed as .qir text.
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: Option<PathBuf>,

    /// The pass pipeline, e.g. `fuse,calib{method=kl},qdq` (see --list-passes).
    #[arg(long, value_name = "PIPELINE")]
    pub passes: Option<String>,

    /// The deployment target whose rules the passes follow.
    #[arg(long, value_name = "TARGET", default_value = "onnxruntime")]
    pub target: String,

    /// Pin an input's shape, e.g. `--input-shape x=1,3,640,640` (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    pub input_shape: Vec<String>,

    /// List the registered passes with their options, and exit.
    #[arg(long)]
    pub list_passes: bool,

    /// Worker threads for passes that compute (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Print notes explaining what passes did.
    #[arg(short, long)]
    pub verbose: bool,

    #[command(flatten)]
    pub calib: CalibArgs,

    #[command(flatten)]
    pub instr: InstrArgs,
}

/// Calibration (the `observe`, `collect` and `thresholds` passes, or `calib` for all three).
#[derive(Args, Debug, Default)]
pub struct CalibArgs {
    /// Calibration data: a folder of images (PNG, JPEG) or of .npy/.npz files (one sample
    /// each), one .npy/.npz file whose first axis indexes the samples, or
    /// `random:N{seed=S}` for smoke tests.
    #[arg(long, value_name = "SOURCE")]
    pub calib: Option<String>,

    /// Use only the first N calibration samples (in file-name order).
    #[arg(long, value_name = "N")]
    pub calib_limit: Option<String>,

    /// Collect only the samples whose index is I modulo K (split one source across K
    /// processes, then merge their --save-stats files with --load-stats).
    #[arg(long, value_name = "I/K")]
    pub calib_shard: Option<String>,

    /// Image preprocessing: a preset (imagenet, ppocr, ppocr-cls, ppocr-det, none), optionally
    /// followed by key=value,... (resize, crop, scale, mean, std, order=rgb|bgr,
    /// layout=nchw|nhwc, height, width, max-side, multiple). Default: imagenet.
    #[arg(long, value_name = "PRESET|KEY=VALUE,...")]
    pub preprocess: Option<String>,

    /// Fail on a calibration sample with NaN/Inf values instead of skipping it.
    #[arg(long)]
    pub strict: bool,

    /// Write the collected statistics to FILE (JSON), for --load-stats.
    #[arg(long, value_name = "FILE")]
    pub save_stats: Option<String>,

    /// Merge statistics saved by --save-stats (several files, e.g. one per shard, merge
    /// exactly). Put the model before this option, or end the list with another option.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub load_stats: Vec<String>,

    /// Use METHOD for the values whose name, or whose node's name, matches the regex PATTERN
    /// entirely (repeatable; the first match wins), e.g. 'backbone\..*=percentile{p=99.9}'.
    #[arg(long = "override", value_name = "PATTERN=METHOD")]
    pub overrides: Vec<String>,

    /// Leave the values matching PATTERN (value or node name, regex) in fp32 (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub keep_fp32: Vec<String>,

    /// No progress bar or progress lines.
    #[arg(short, long)]
    pub quiet: bool,
}

impl CalibArgs {
    /// The options as (name, value) pairs in the spelling `calib_inputs::apply_option` takes.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = Vec::new();
        let one = |v: &mut Vec<(&'static str, String)>, k, x: &Option<String>| {
            if let Some(x) = x {
                v.push((k, x.clone()));
            }
        };
        one(&mut v, "calib", &self.calib);
        one(&mut v, "calib-limit", &self.calib_limit);
        one(&mut v, "calib-shard", &self.calib_shard);
        one(&mut v, "preprocess", &self.preprocess);
        one(&mut v, "save-stats", &self.save_stats);
        if self.strict {
            v.push(("strict", String::new()));
        }
        v.extend(self.load_stats.iter().map(|f| ("load-stats", f.clone())));
        v.extend(self.overrides.iter().map(|o| ("override", o.clone())));
        v.extend(self.keep_fp32.iter().map(|p| ("keep-fp32", p.clone())));
        v
    }
}

/// Debugging the pipeline, after LLVM's `-print-after` family.
#[derive(Args, Debug, Default)]
pub struct InstrArgs {
    /// Print the graph to stderr after every pass.
    #[arg(long)]
    pub print_after_all: bool,
    /// Print the graph to stderr before every pass.
    #[arg(long)]
    pub print_before_all: bool,
    /// Print the graph to stderr after these passes (comma-separated names).
    #[arg(long, value_name = "PASSES", value_delimiter = ',')]
    pub print_after: Vec<String>,
    /// Print the graph to stderr before these passes (comma-separated names).
    #[arg(long, value_name = "PASSES", value_delimiter = ',')]
    pub print_before: Vec<String>,
    /// Stop the pipeline after this pass.
    #[arg(long, value_name = "PASS")]
    pub stop_after: Option<String>,
    /// Report the wall time of every pass on stderr.
    #[arg(long)]
    pub time_passes: bool,
}
