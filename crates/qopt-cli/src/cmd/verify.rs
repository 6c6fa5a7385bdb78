//! `qopt verify REF.onnx QUANT.onnx --data SOURCE`: compare a quantized model with its fp32
//! original over data, per quantized layer and per output (the logic is `qopt::verify`; this
//! reads the models and the data, prints the table and writes `--json` / `--plot`).

use crate::app::VerifyArgs;
use crate::error::CliError;
use crate::progress::{CalibProgress, CliProgress};
use qopt::ir::fsutil;
use qopt::verify::{Engine, VerifyError, VerifyOptions};
use std::path::Path;

impl From<VerifyError> for CliError {
    fn from(e: VerifyError) -> CliError {
        CliError::Input(e.to_string())
    }
}

fn load(path: &Path) -> Result<qopt::Graph, CliError> {
    let m = qopt::load(path)?;
    for w in &m.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    Ok(m.graph)
}

pub fn run(args: &VerifyArgs) -> Result<(), CliError> {
    if args.limit == Some(0) {
        return Err(CliError::Usage("--limit 0 leaves no samples".into()));
    }
    for out in [&args.json, &args.plot].into_iter().flatten() {
        for model in [&args.reference_model, &args.quantized_model] {
            if out == model {
                return Err(CliError::Overwrite(out.clone()));
            }
        }
    }
    let preprocess = args
        .preprocess
        .as_deref()
        .map(qopt::passes::calib_inputs::parse_preprocess)
        .transpose()
        .map_err(|e| CliError::Usage(format!("--preprocess: {e}")))?;
    let reference = load(&args.reference_model)?;
    let quant = load(&args.quantized_model)?;
    let progress = CalibProgress {
        inner: (!args.quiet).then(CliProgress::new),
    };
    let samples = qopt::verify::load_samples(
        &reference,
        &args.data,
        args.limit,
        preprocess,
        args.strict,
        &progress,
    )
    .map_err(|e| CliError::Input(format!("--data {}: {e}", args.data)))?;
    let opts = VerifyOptions {
        engine: if args.reference {
            Engine::Reference
        } else {
            Engine::Int8
        },
        threads: args.threads,
        sensitivity: args.sensitivity,
    };
    let report = qopt::verify::verify(&reference, &quant, &samples, &opts, &progress)?;
    print!("{}", qopt::verify::table(&report));
    if let Some(path) = &args.json {
        let mut v = serde_json::to_value(&report)
            .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "reference_model".into(),
                args.reference_model.display().to_string().into(),
            );
            o.insert(
                "quantized_model".into(),
                args.quantized_model.display().to_string().into(),
            );
        }
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
        fsutil::write_atomic(path, |w| {
            w.write_all(text.as_bytes())?;
            w.write_all(b"\n")
        })
        .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
    }
    if let Some(path) = &args.plot {
        let svg = qopt::verify::plot::svg(&report);
        fsutil::write_atomic(path, |w| w.write_all(svg.as_bytes()))
            .map_err(|e| CliError::Output(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}
