//! ONNX conformance of the INT8 interpreter: every ONNX backend node test in
//! `testdata/onnx-node/` (copied from the onnx 1.22.0 wheel by `tools/extract_onnx_node_tests.py`)
//! that uses QuantizeLinear, DequantizeLinear, QLinearConv, QLinearMatMul, ConvInteger,
//! MatMulInteger or DynamicQuantizeLinear runs through the integer plan on every kernel family
//! this CPU supports, and must reproduce ONNX's expected outputs bit for bit (integers exactly,
//! floats to the bit). Scales and zero points are graph inputs in most of these tests, so they
//! exercise the run-time-parameter forms of the steps; the `_expanded` variants, built from
//! primitive ops, run too.
//!
//! Known failures: `int8_onnx_node_known_failures.txt` (same format as the fp32 list).

mod support;

use qopt_interp::int8::{QPlan, QPlanOptions};
use qopt_interp::kernels::int8::KernelKind;
use qopt_ir::Tensor;
use std::collections::BTreeSet;
use std::path::Path;

const OPS: [&str; 7] = [
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeLinear",
];

fn bit_equal(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() || got.shape() != want.shape() {
        return Err(format!(
            "{}{:?} != expected {}{:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    if !got.bit_eq(want) {
        let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
        let i = a
            .iter()
            .zip(&b)
            .position(|(x, y)| x.to_bits() != y.to_bits())
            .unwrap_or(0);
        return Err(format!("element {i}: {} != expected {}", a[i], b[i]));
    }
    Ok(())
}

fn run_case(dir: &Path, kind: KernelKind) -> Result<(), String> {
    let g = qopt_onnx::load(dir.join("model.onnx"))
        .map_err(|e| format!("import: {e}"))?
        .graph;
    let mut plan = QPlan::new(
        &g,
        &QPlanOptions {
            threads: Some(1),
            kernels: Some(kind),
            ..Default::default()
        },
    )
    .map_err(|e| format!("plan: {e}"))?;
    let mut sets: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    sets.sort();
    for set in sets {
        let names: Vec<String> = plan.inputs().iter().map(|i| i.name.clone()).collect();
        let inputs: Vec<Tensor> = (0..names.len())
            .map(|i| support::read_npy(&set.join(format!("input_{i}.npy"))))
            .collect::<Result<_, _>>()?;
        let feed: Vec<(&str, &Tensor)> = names.iter().map(String::as_str).zip(&inputs).collect();
        let outs = plan.run(&feed).map_err(|e| format!("run: {e}"))?;
        for (i, got) in outs.iter().enumerate() {
            let p = set.join(format!("output_{i}.npy"));
            if p.exists() {
                bit_equal(got, &support::read_npy(&p)?).map_err(|e| format!("output {i}: {e}"))?;
            }
        }
    }
    Ok(())
}

#[test]
fn onnx_backend_node_tests_on_the_int8_plan() {
    let root = support::workspace_root().join("testdata/onnx-node");
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!(
            "SKIP: {} is absent (run tools/extract_onnx_node_tests.py)",
            root.display()
        );
        return;
    };
    let known_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/int8_onnx_node_known_failures.txt"),
    )
    .unwrap_or_default();
    let known: BTreeSet<&str> = known_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(':').next().unwrap_or("").trim())
        .collect();
    let mut dirs: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").exists())
        .filter(|p| {
            let m = qopt_onnx::load(p.join("model.onnx"));
            m.is_ok_and(|m| {
                m.graph
                    .node_ids()
                    .into_iter()
                    .any(|n| OPS.contains(&m.graph.node(n).op.op_type()))
            })
        })
        .collect();
    dirs.sort();
    assert!(
        !dirs.is_empty(),
        "no quantization node tests found in {}",
        root.display()
    );
    let mut unexpected = vec![];
    let mut passed = 0;
    for kind in KernelKind::ALL {
        if !kind.is_supported() {
            eprintln!("SKIP: {kind} kernels: this CPU cannot run them");
            continue;
        }
        for dir in &dirs {
            let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            let r = std::panic::catch_unwind(|| run_case(dir, kind))
                .unwrap_or_else(|_| Err("PANIC".into()));
            match r {
                Ok(()) => passed += 1,
                Err(e) => {
                    let mark = if known.contains(name) { "known" } else { "NEW" };
                    println!("  FAIL ({mark}, {kind}) {name}: {e}");
                    if !known.contains(name) {
                        unexpected.push(format!("{name} ({kind})"));
                    }
                }
            }
        }
    }
    println!(
        "INT8 node tests: {passed} passed over {} folders",
        dirs.len()
    );
    assert!(unexpected.is_empty(), "unexpected failures: {unexpected:?}");
}
