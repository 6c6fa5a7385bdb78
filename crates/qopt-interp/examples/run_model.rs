//! Run an ONNX model on the fp32 interpreter: the stand-in for `qopt run` until the CLI has it.
//!
//! ```text
//! cargo run --release -p qopt-interp --example run_model -- MODEL \
//!     [--input NAME=FILE.npy]... [--threads N] [--repeat N] [--output-dir DIR] [--profile] [--no-fuse]
//! ```
//! Inputs are f32 `.npy` files; an input without a file gets seeded standard-normal data of the
//! model's static shape (`--shape NAME=1x3x224x224` overrides symbolic dims). With `--repeat N`
//! the model runs N times on the same input and min/median latency are printed.

use ndarray::ArrayD;
use qopt_interp::{Plan, PlanOptions};
use qopt_ir::{Dim, Tensor};
use std::collections::HashMap;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Deterministic standard-normal-ish data (sum of uniforms from an LCG), no extra crates.
fn seeded(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32) / (1u64 << 24) as f32
    };
    let v: Vec<f32> = (0..n)
        .map(|_| (0..4).map(|_| next()).sum::<f32>() - 2.0)
        .collect();
    Tensor::from_vec(shape, v)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut model = None;
    let mut files: Vec<(String, String)> = vec![];
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    let (mut threads, mut repeat, mut out_dir, mut profile, mut fuse) =
        (None, 1usize, None, false, true);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--input" => {
                let v = val()?;
                let (n, f) = v.split_once('=').ok_or("--input NAME=FILE.npy")?;
                files.push((n.into(), f.into()));
            }
            "--shape" => {
                let v = val()?;
                let (n, s) = v.split_once('=').ok_or("--shape NAME=1x3x224x224")?;
                shapes.insert(
                    n.into(),
                    s.split('x').map(str::parse).collect::<Result<_, _>>()?,
                );
            }
            "--threads" => threads = Some(val()?.parse()?),
            "--repeat" => repeat = val()?.parse()?,
            "--output-dir" => out_dir = Some(val()?),
            "--profile" => profile = true,
            "--no-fuse" => fuse = false,
            _ if model.is_none() => model = Some(a),
            _ => return Err(format!("unexpected argument {a}").into()),
        }
    }
    let model = model
        .ok_or("usage: run_model MODEL [--input NAME=FILE.npy]... [--threads N] [--repeat N]")?;
    let t = Instant::now();
    let g = qopt_onnx::load(&model)?.graph;
    let load = t.elapsed();
    let t = Instant::now();
    let mut plan = Plan::new(
        &g,
        &PlanOptions {
            threads,
            fuse,
            profile,
            ..Default::default()
        },
    )?;
    eprintln!(
        "loaded in {:.1} ms, planned in {:.1} ms, {} threads",
        load.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3,
        plan.threads()
    );
    let mut feeds: Vec<(String, Tensor)> = vec![];
    for (i, pi) in plan.inputs().iter().enumerate() {
        let t = match files.iter().find(|(n, _)| *n == pi.name) {
            Some((_, f)) => Tensor::F32(
                ndarray_npy::read_npy::<_, ArrayD<f32>>(f).map_err(|e| format!("{f}: {e}"))?,
            ),
            None => {
                let shape = match shapes.get(&pi.name) {
                    Some(s) => s.clone(),
                    None => pi
                        .ty
                        .shape
                        .as_ref()
                        .map(|s| {
                            s.dims()
                                .iter()
                                .map(|d| {
                                    if let Dim::Known(k) = d {
                                        Ok(*k as usize)
                                    } else {
                                        Err(format!(
                                            "input {} has a symbolic shape: pass --shape",
                                            pi.name
                                        ))
                                    }
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .ok_or("input without shape")??,
                };
                seeded(&shape, i as u64)
            }
        };
        feeds.push((pi.name.clone(), t));
    }
    let named: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut times = vec![];
    let mut outs = vec![];
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let o = plan.run(&named)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if std::env::var_os("QOPT_POOL_STATS").is_some() {
            eprintln!("pool: {:?}", plan.pool_stats());
        }
        if !outs.is_empty() {
            plan.recycle(std::mem::replace(&mut outs, o));
        } else {
            outs = o;
        }
    }
    times.sort_by(f64::total_cmp);
    for (name, t) in plan.output_names().iter().zip(&outs) {
        let s = t.stats();
        println!(
            "{name}: {} {:?} min {:.6} max {:.6} mean {:.6}",
            t.dtype(),
            t.shape(),
            s.min,
            s.max,
            s.mean
        );
        if let Some(dir) = &out_dir {
            let file =
                std::path::Path::new(dir).join(format!("{}.npy", name.replace(['/', '\\'], "_")));
            if let Some(a) = t.as_f32() {
                ndarray_npy::write_npy(&file, a)?;
            }
        }
    }
    println!(
        "latency over {} runs: min {:.3} ms, median {:.3} ms",
        times.len(),
        times[0],
        times[times.len() / 2]
    );
    for e in plan.profile().iter().take(15) {
        println!(
            "  {:<24} {:>5} calls {:>9.3} ms",
            e.op_type,
            e.calls,
            e.total.as_secs_f64() * 1e3
        );
    }
    if std::env::var_os("QOPT_PROFILE_STEPS").is_some() {
        let mut steps = plan.profile_steps();
        steps.sort_by_key(|s| std::cmp::Reverse(s.2));
        for (d, c, t) in steps.iter().take(40) {
            println!(
                "  {:>9.3} ms  {d}",
                t.as_secs_f64() * 1e3 / (*c).max(1) as f64
            );
        }
    }
    Ok(())
}
