//! Debugging aid: run a quantized model on the INT8 plan and write every value the plan
//! computes anyway (quantized tensors, fp32 fallbacks' outputs; not the float values that fused
//! kernels never produce) as `.npy` files, to diff against ONNX Runtime's intermediates.
//!
//! ```text
//! cargo run --release -p qopt-interp --example int8_trace -- MODEL OUT_DIR NAME=INPUT.npy... [--reference]
//! ```
//! With `--reference` the fp32 interpreter runs the graph instead (every value).

use ndarray_npy::WriteNpyExt;
use qopt_interp::int8::{QPlan, QPlanOptions};
use qopt_interp::{Plan, PlanOptions};
use qopt_ir::{Op, Tensor, ValueId};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .ok_or("usage: int8_trace MODEL OUT_DIR NAME=FILE.npy...")?;
    let out = PathBuf::from(args.get(1).ok_or("missing OUT_DIR")?);
    std::fs::create_dir_all(&out)?;
    let reference = args.iter().any(|a| a == "--reference");
    let g = qopt_onnx::load(model)?.graph;
    let mut feed: Vec<(String, Tensor)> = vec![];
    for a in args.iter().skip(2).filter(|a| a.contains('=')) {
        let (n, f) = a.split_once('=').unwrap();
        let arr: ndarray::ArrayD<f32> = ndarray_npy::read_npy(f)?;
        feed.push((n.to_string(), Tensor::F32(arr)));
    }
    let keep: Vec<ValueId> = g
        .node_ids()
        .into_iter()
        .filter(|&n| !g.node(n).op.is_source())
        .flat_map(|n| (0..g.node(n).outputs.len()).map(move |s| ValueId::new(n, s)))
        .filter(|&v| {
            if reference {
                return true;
            }
            let cons = g.consumers(v);
            let only_q = !cons.is_empty()
                && cons
                    .iter()
                    .all(|(c, _)| matches!(g.node(*c).op, Op::QuantizeLinear(_)));
            !only_q && !matches!(g.node(v.node).op, Op::DequantizeLinear(_))
        })
        .collect();
    let refs: Vec<(&str, &Tensor)> = feed.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let dump = |v: ValueId, t: &Tensor| {
        let name = g.value(v).name.replace(['/', ':'], "_");
        let path = out.join(format!("{name}.npy"));
        let f = std::fs::File::create(&path).expect("create");
        let r = match t {
            Tensor::F32(a) => a.write_npy(f),
            Tensor::U8(a) => a.write_npy(f),
            Tensor::I8(a) => a.write_npy(f),
            Tensor::I32(a) => a.write_npy(f),
            Tensor::I64(a) => a.write_npy(f),
            _ => Ok(()),
        };
        r.expect("write");
    };
    if reference {
        let mut p = Plan::new(
            &g,
            &PlanOptions {
                threads: Some(1),
                fuse: false,
                ..Default::default()
            },
        )?;
        p.run_with(&refs, |v, t| dump(v, t))?;
    } else {
        let mut p = QPlan::new(
            &g,
            &QPlanOptions {
                threads: Some(1),
                keep,
                ..Default::default()
            },
        )?;
        p.run_with(&refs, |v, t| dump(v, t))?;
        for n in p.notes() {
            eprintln!("note: {n}");
        }
    }
    Ok(())
}
