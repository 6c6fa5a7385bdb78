//! `qopt quantize`: the recommended static-quantization pipeline for a target, so that a
//! user needs no pipeline syntax: `fuse,calib,qdq`, with `calib` on the target's method
//! (`TargetSpec::default_method`) unless `--method` says otherwise.

use crate::app::{InstrArgs, OptArgs, QuantizeArgs};
use crate::error::CliError;

/// The pipeline `qopt quantize` runs for an optional method override.
pub fn pipeline(method: Option<&str>) -> String {
    match method {
        // Quoted: a method's own options use braces (`percentile{p=99.9}`).
        Some(m) => format!("fuse,calib{{method=\"{m}\"}},qdq"),
        None => "fuse,calib,qdq".to_string(),
    }
}

pub fn run(args: QuantizeArgs) -> Result<(), CliError> {
    if let Some(m) = &args.method
        && m.contains('"')
    {
        return Err(CliError::Usage(format!(
            "--method '{m}': expected NAME or NAME{{key=value ...}} (e.g. percentile{{p=99.9}})"
        )));
    }
    if args.calib.calib.is_none() && args.calib.load_stats.is_empty() {
        return Err(CliError::Usage(
            "qopt quantize needs calibration data: --calib SOURCE or --load-stats FILE...".into(),
        ));
    }
    super::opt::run(OptArgs {
        input: Some(args.model),
        output: Some(args.output),
        passes: Some(pipeline(args.method.as_deref())),
        target: args.target,
        calib: args.calib,
        input_shape: args.input_shape,
        list_passes: false,
        threads: args.threads,
        verbose: args.verbose,
        instr: InstrArgs {
            time_passes: args.time_passes,
            ..Default::default()
        },
    })
}
