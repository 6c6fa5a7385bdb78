//! The `opt`-style driver: load, run a pipeline, write or print.

use crate::app::OptArgs;
use crate::error::CliError;
use crate::progress::CliProgress;
use qopt::ir::{Dim, fsutil};
use qopt::passes::calib_inputs;
use qopt::{Format, Instrumentation, PassContext, Pipeline};
use std::io::Write;
use std::sync::Arc;

pub fn run(mut args: OptArgs) -> Result<(), CliError> {
    if args.list_passes {
        print!("{}", qopt::passes::registry().listing());
        return Ok(());
    }
    // `--load-stats a.json b.json model.onnx` (the list swallowed the model): take it back.
    if args.input.is_none()
        && args
            .calib
            .load_stats
            .last()
            .is_some_and(|f| Format::of(std::path::Path::new(f)).is_ok())
    {
        args.input = args.calib.load_stats.pop().map(Into::into);
    }
    let Some(input) = args.input.as_deref() else {
        return Err(CliError::Usage(
            "no input model given (usage: qopt [--passes=PIPELINE] INPUT [-o OUTPUT]; see qopt --help)".into(),
        ));
    };

    // Everything that can be checked without the model is checked first, so a typo in
    // the pipeline or the output path fails at once rather than after calibration.
    let pipeline = args.passes.as_deref().map(Pipeline::parse).transpose()?;
    let shapes = args
        .input_shape
        .iter()
        .map(|s| parse_input_shape(s))
        .collect::<Result<Vec<_>, _>>()?;
    let target = qopt::passes::target::Target::from_name(&args.target).ok_or_else(|| {
        CliError::Usage(format!(
            "unknown target '{}' (expected one of {})",
            args.target,
            qopt::passes::target::Target::NAMES.join(", ")
        ))
    })?;
    let mut cx = PassContext::new();
    cx.threads = args.threads;
    cx.verbose = args.verbose;
    cx.insert(target);
    let calib_options = args.calib.pairs();
    for (name, value) in &calib_options {
        calib_inputs::apply_option(&mut cx, name, value).map_err(CliError::Usage)?;
    }
    if !args.calib.quiet {
        cx.progress = Arc::new(CliProgress::new());
    }
    if let Some(p) = &pipeline
        && !calib_options.is_empty()
        && !p
            .spec()
            .passes
            .iter()
            .any(|s| matches!(s.name, "observe" | "collect" | "thresholds"))
    {
        eprintln!(
            "warning: --{} has no effect: the pipeline has no calibration pass (calib, or observe,collect,thresholds)",
            calib_options[0].0
        );
    }
    Format::of(input)?;
    if let Some(out) = args.output.as_deref() {
        Format::of(out)?;
        if fsutil::same_file(input, out) {
            return Err(CliError::Overwrite(out.to_path_buf()));
        }
        let dir = out.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir
            && !d.is_dir()
        {
            return Err(CliError::Output(format!(
                "{}: folder {} does not exist",
                out.display(),
                d.display()
            )));
        }
    }

    let mut model = qopt::load(input)?;
    for w in &model.warnings {
        eprintln!("warning: {}: {w}", input.display());
    }
    if !shapes.is_empty() {
        qopt::ir::infer::pin_input_shapes(&mut model.graph, &shapes)
            .map_err(|e| CliError::Usage(format!("--input-shape: {e}")))?;
    }

    if let Some(p) = &pipeline {
        let instr = Instrumentation {
            print_before: args.instr.print_before.clone(),
            print_after: args.instr.print_after.clone(),
            print_before_all: args.instr.print_before_all,
            print_after_all: args.instr.print_after_all,
            stop_after: args.instr.stop_after.clone(),
            time_passes: args.instr.time_passes,
            verify_each: true,
        };
        let mut pm = p.manager(instr)?;
        let result = pm.run(&mut model.graph, &mut cx);
        for m in cx.take_messages() {
            let kind = if m.warning { "warning" } else { "note" };
            eprintln!("{kind}: [{}] {}", m.pass, m.text);
        }
        if args.instr.time_passes {
            eprint!("{}", pm.timing_report());
        }
        result.map_err(|e| CliError::Pass(e.to_string()))?;
    } else if args.instr.print_after_all
        || args.instr.time_passes
        || !args.instr.print_after.is_empty()
        || args.instr.stop_after.is_some()
    {
        return Err(CliError::Usage(
            "instrumentation options need a pipeline (--passes=...)".into(),
        ));
    }

    match args.output.as_deref() {
        Some(out) => qopt::save(&model.graph, out)?,
        None => {
            let text = model.graph.to_string();
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`qopt m.onnx | head`) is not an error worth a message.
            let _ = stdout.write_all(text.as_bytes());
        }
    }
    Ok(())
}

/// `NAME=1,3,224,224` (a dim may be a symbol or `?`).
fn parse_input_shape(s: &str) -> Result<(String, Vec<Dim>), CliError> {
    let bad = |why: &str| {
        CliError::Usage(format!(
            "--input-shape '{s}': {why} (expected NAME=D0,D1,...)"
        ))
    };
    let (name, dims) = s.rsplit_once('=').ok_or_else(|| bad("no '='"))?;
    if name.is_empty() {
        return Err(bad("empty input name"));
    }
    let dims = if dims.trim().is_empty() {
        vec![]
    } else {
        dims.split(',')
            .map(|d| {
                let d = d.trim();
                match d.parse::<u64>() {
                    Ok(n) => Ok(Dim::Known(n)),
                    Err(_) if d == "?" => Ok(Dim::Unknown),
                    Err(_) if !d.is_empty() && !d.starts_with('-') => Ok(Dim::Sym(d.to_string())),
                    Err(_) => Err(bad(&format!("bad dimension '{d}'"))),
                }
            })
            .collect::<Result<_, _>>()?
    };
    Ok((name.to_string(), dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_shapes() {
        let (n, d) = parse_input_shape("x=1,3,N,?").unwrap();
        assert_eq!(n, "x");
        assert_eq!(
            d,
            vec![
                Dim::Known(1),
                Dim::Known(3),
                Dim::Sym("N".into()),
                Dim::Unknown
            ]
        );
        // Value names may contain '='; the last one separates the dims.
        assert_eq!(parse_input_shape("a=b=2").unwrap().0, "a=b");
        assert_eq!(parse_input_shape("s=").unwrap().1, vec![]);
        assert!(parse_input_shape("x").is_err());
        assert!(parse_input_shape("=1").is_err());
        assert!(parse_input_shape("x=1,-2").is_err());
    }
}
