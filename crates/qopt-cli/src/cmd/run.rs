//! `qopt run MODEL --input NAME=FILE.npy ...`: execute a model on qopt's interpreter.
//!
//! Writes one `<output>.npy` per graph output (`--output-dir`), prints a one-line summary
//! per output, and with `--repeat N` the min/median latency of N runs on the same input
//! (outputs written once), so latency can be measured without process start-up.
//!
//! A quantized model ([`qopt::interp::int8::is_quantized`]: Q/DQ pairs or integer operators)
//! runs on the INT8 plan, as a deployment runtime would run it; `--reference` runs it on the
//! fp32 interpreter instead, which executes QuantizeLinear/DequantizeLinear as ONNX defines
//! them (the float QDQ simulation the INT8 plan is checked against).

use crate::app::RunArgs;
use crate::error::CliError;
use qopt::calib::source::InputSpec;
use qopt::calib::source::arrays::{read_npy, read_npz_inputs};
use qopt::interp::{InterpError, Plan, PlanOptions, QPlan, QPlanOptions};
use qopt::ir::{Graph, Shape, Tensor, ValueId, fsutil};
use std::path::Path;
use std::time::Instant;

pub fn run(args: &RunArgs) -> Result<(), CliError> {
    if args.repeat == 0 {
        return Err(CliError::Usage("--repeat must be at least 1".into()));
    }
    for dir in [&args.output_dir, &args.dump_values].into_iter().flatten() {
        if !dir.is_dir() {
            return Err(CliError::Output(format!(
                "{}: folder does not exist",
                dir.display()
            )));
        }
    }
    let model = qopt::load(&args.model)?;
    for w in &model.warnings {
        eprintln!("warning: {}: {w}", args.model.display());
    }
    let g = &model.graph;
    let feeds = read_inputs(g, &args.inputs)?;

    let dump = args.dump_values.is_some();
    let quantized = qopt::interp::int8::is_quantized(g);
    let mut runner = if quantized && !args.reference {
        // Every value is kept for a dump; a kept float value between an op and its
        // QuantizeLinear keeps that op in fp32, so a dump shows what the reference computes.
        let keep = if dump { all_values(g) } else { vec![] };
        let plan = QPlan::new(
            g,
            &QPlanOptions {
                threads: args.threads,
                keep,
                profile: args.profile,
                ..Default::default()
            },
        )
        .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?;
        if args.verbose {
            eprintln!(
                "{}: INT8 plan ({} kernels)",
                args.model.display(),
                plan.kernel_kind()
            );
            let s = plan.summary();
            eprintln!("integer steps: {:?}", s.integer);
            eprintln!("other steps: {:?}", s.other);
            for n in plan.notes() {
                eprintln!("note: {n}");
            }
        }
        Runner::Int8(Box::new(plan))
    } else {
        if args.reference && !quantized {
            eprintln!(
                "warning: {}: --reference: the model is not quantized; it runs on the fp32 interpreter as always",
                args.model.display()
            );
        }
        Runner::Fp32(Box::new(
            Plan::new(
                g,
                &PlanOptions {
                    threads: args.threads,
                    // Fusion hides intermediate values; a dump wants every one of them.
                    fuse: !dump,
                    profile: args.profile,
                    ..Default::default()
                },
            )
            .map_err(|e| CliError::Input(format!("{}: {e}", args.model.display())))?,
        ))
    };

    let named: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let run_err =
        |e: qopt::interp::InterpError| CliError::Input(format!("{}: {e}", args.model.display()));
    let mut times = Vec::with_capacity(args.repeat);
    let mut outputs = Vec::new();
    let mut dumped: Vec<(ValueId, Tensor)> = Vec::new();
    for i in 0..args.repeat {
        let start = Instant::now();
        let outs = if dump && i == 0 {
            runner
                .run_with(&named, |v, t| dumped.push((v, t.clone())))
                .map_err(run_err)?
        } else {
            runner.run(&named).map_err(run_err)?
        };
        times.push(start.elapsed().as_secs_f64() * 1e3);
        if outputs.is_empty() {
            outputs = outs;
        } else {
            runner.recycle(outs);
        }
    }

    let output_names: Vec<&str> = g.outputs().iter().map(|&v| g.value_name(v)).collect();
    for (name, t) in output_names.iter().zip(&outputs) {
        println!("{name}: {}", summary(t));
        if let Some(dir) = &args.output_dir {
            write_npy(&dir.join(format!("{}.npy", file_stem(name))), t)?;
        }
    }
    if let Some(dir) = &args.dump_values {
        let mut index = String::from("file\tvalue\n");
        for (v, t) in &dumped {
            let name = g.value_name(*v);
            let file = format!("{}.npy", file_stem(name));
            write_npy(&dir.join(&file), t)?;
            index.push_str(&format!("{file}\t{name}\n"));
        }
        fsutil::write_atomic(&dir.join("index.tsv"), |w| w.write_all(index.as_bytes()))
            .map_err(|e| CliError::Output(format!("{}: {e}", dir.display())))?;
        eprintln!("wrote {} values to {}", dumped.len(), dir.display());
    }
    if args.profile {
        runner.print_profile();
    }
    if args.repeat > 1 {
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "latency over {} runs: min {:.3} ms, median {:.3} ms",
            sorted.len(),
            sorted[0],
            sorted[sorted.len() / 2]
        );
    }
    Ok(())
}

/// The fp32 interpreter, or the INT8 plan for a quantized model.
enum Runner {
    Fp32(Box<Plan>),
    Int8(Box<QPlan>),
}

impl Runner {
    fn run(&mut self, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, InterpError> {
        match self {
            Runner::Fp32(p) => p.run(inputs),
            Runner::Int8(p) => p.run(inputs),
        }
    }

    fn run_with<F>(
        &mut self,
        inputs: &[(&str, &Tensor)],
        hook: F,
    ) -> Result<Vec<Tensor>, InterpError>
    where
        F: FnMut(ValueId, &Tensor) + Send,
    {
        match self {
            Runner::Fp32(p) => p.run_with(inputs, hook),
            Runner::Int8(p) => p.run_with(inputs, hook),
        }
    }

    /// Time per step kind / op type, slowest first, on stderr.
    fn print_profile(&self) {
        let rows: Vec<(String, u64, f64)> = match self {
            Runner::Fp32(p) => p
                .profile()
                .into_iter()
                .map(|e| (e.op_type, e.calls, e.total.as_secs_f64()))
                .collect(),
            Runner::Int8(p) => p
                .profile()
                .into_iter()
                .map(|(n, c, d)| (n, c, d.as_secs_f64()))
                .collect(),
        };
        let total: f64 = rows.iter().map(|r| r.2).sum();
        eprintln!(
            "{:<28} {:>8} {:>11} {:>6}",
            "step", "calls", "total ms", "%"
        );
        for (name, calls, t) in rows {
            eprintln!(
                "{name:<28} {calls:>8} {:>11.3} {:>6.1}",
                t * 1e3,
                100.0 * t / total.max(1e-12)
            );
        }
    }

    fn recycle(&mut self, outs: Vec<Tensor>) {
        if let Runner::Fp32(p) = self {
            p.recycle(outs);
        }
    }
}

/// Every value a node computes (not inputs or constants), in topological order.
fn all_values(g: &Graph) -> Vec<ValueId> {
    let order = g.topo_order().unwrap_or_default();
    order
        .into_iter()
        .filter(|&n| !g.node(n).op.is_source())
        .flat_map(|n| (0..g.node(n).outputs.len()).map(move |s| ValueId::new(n, s)))
        .collect()
}

/// The graph inputs as the calibration readers describe them.
fn input_specs(g: &Graph) -> Vec<InputSpec> {
    g.input_values()
        .into_iter()
        .map(|v| {
            let vi = g.value(v);
            InputSpec {
                name: vi.name.clone(),
                dtype: vi.ty.dtype.unwrap_or(qopt::ir::DType::F32),
                shape: vi.ty.shape.clone().unwrap_or_else(Shape::scalar),
            }
        })
        .collect()
}

/// `--input NAME=FILE.npy` and `--input FILE.npz` into (input name, tensor) pairs.
fn read_inputs(g: &Graph, specs: &[String]) -> Result<Vec<(String, Tensor)>, CliError> {
    let inputs = input_specs(g);
    let mut feeds: Vec<(String, Tensor)> = Vec::new();
    for s in specs {
        let input_err = |e: String| CliError::Input(format!("--input {s}: {e}"));
        if let Some((name, file)) = s.split_once('=') {
            if !inputs.iter().any(|i| i.name == name) {
                let all: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
                return Err(CliError::Usage(format!(
                    "--input {s}: the model has no input '{name}' (inputs: {})",
                    all.join(", ")
                )));
            }
            let t = read_npy(Path::new(file)).map_err(|e| input_err(e.to_string()))?;
            feeds.push((name.to_string(), t));
        } else if s.ends_with(".npz") {
            let ts =
                read_npz_inputs(Path::new(s), &inputs).map_err(|e| input_err(e.to_string()))?;
            feeds.extend(inputs.iter().map(|i| i.name.clone()).zip(ts));
        } else {
            return Err(CliError::Usage(format!(
                "--input {s}: expected NAME=FILE.npy or FILE.npz"
            )));
        }
    }
    for i in &inputs {
        if !feeds.iter().any(|(n, _)| *n == i.name) {
            return Err(CliError::Usage(format!(
                "no data for input '{}' (give --input {}=FILE.npy)",
                i.name, i.name
            )));
        }
    }
    Ok(feeds)
}

/// A value name as a file name: path separators and other awkward characters become `_`.
fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "_".into() } else { s }
}

fn summary(t: &Tensor) -> String {
    let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let s = t.stats();
    format!(
        "{}[{}] min {:.6} max {:.6} mean {:.6}",
        t.dtype(),
        shape.join(","),
        s.min,
        s.max,
        s.mean
    )
}

fn write_npy(path: &Path, t: &Tensor) -> Result<(), CliError> {
    use ndarray_npy::WriteNpyExt;
    let err = |e: String| CliError::Output(format!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    // NumPy has float16 but ndarray-npy cannot write it: f16 outputs are written as f32.
    match t {
        Tensor::F16(a) => a.mapv(|x| x.to_f32()).write_npy(&mut bytes),
        Tensor::F32(a) => a.write_npy(&mut bytes),
        Tensor::F64(a) => a.write_npy(&mut bytes),
        Tensor::I8(a) => a.write_npy(&mut bytes),
        Tensor::U8(a) => a.write_npy(&mut bytes),
        Tensor::I32(a) => a.write_npy(&mut bytes),
        Tensor::I64(a) => a.write_npy(&mut bytes),
        Tensor::Bool(a) => a.write_npy(&mut bytes),
    }
    .map_err(|e| err(e.to_string()))?;
    fsutil::write_atomic(path, |w| w.write_all(&bytes)).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_names_become_safe_file_names() {
        assert_eq!(
            file_stem("/backbone/conv1/Conv_output_0"),
            "_backbone_conv1_Conv_output_0"
        );
        assert_eq!(
            file_stem("save_infer_model/scale_0.tmp_1"),
            "save_infer_model_scale_0.tmp_1"
        );
        assert_eq!(file_stem(".."), "_");
    }
}
