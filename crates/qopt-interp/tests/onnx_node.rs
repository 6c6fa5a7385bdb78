//! ONNX conformance: the backend node tests shipped in the `onnx` 1.22.0 wheel
//! (`onnx/backend/test/data/node/`), copied by `tools/extract_onnx_node_tests.py` into
//! `testdata/onnx-node/` for every op the fp32 interpreter supports. Each folder's model runs on
//! every data set and its outputs are compared with ONNX's own expected outputs using the
//! tolerance ONNX's runner uses (rtol 1e-3, atol 1e-7 for floats; exact for ints and bools).
//!
//! Tests that fail today are listed in `tests/onnx_node_known_failures.txt` with the reason;
//! the test fails on any other failure (a regression) and reports listed tests that now pass.
//! `QOPT_NODE_TEST=substring` runs only matching folders; the summary per op type is printed.

mod support;

use qopt_interp::{Plan, PlanOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Ops only the INT8 interpreter runs (their node tests are in `int8_onnx_node.rs`).
const INT8_ONLY: [&str; 5] = [
    "QLinearConv",
    "QLinearMatMul",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeLinear",
];

fn is_int8_only(dir: &Path) -> bool {
    qopt_onnx::load(dir.join("model.onnx")).is_ok_and(|m| {
        m.graph
            .node_ids()
            .into_iter()
            .any(|n| INT8_ONLY.contains(&m.graph.node(n).op.op_type()))
    })
}

fn run_case(dir: &Path) -> Result<BTreeSet<String>, String> {
    let imported = qopt_onnx::load(dir.join("model.onnx")).map_err(|e| format!("import: {e}"))?;
    let g = imported.graph;
    let ops: BTreeSet<String> = g
        .node_ids()
        .into_iter()
        .map(|n| &g.node(n).op)
        .filter(|op| !op.is_source())
        .map(|op| op.qualified_name())
        .collect();
    let mut plan = Plan::new(
        &g,
        &PlanOptions {
            threads: Some(1),
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
        let mut inputs = Vec::new();
        for i in 0..names.len() {
            let p = set.join(format!("input_{i}.npy"));
            inputs.push(support::read_npy(&p)?);
        }
        let feed: Vec<(&str, &qopt_ir::Tensor)> =
            names.iter().map(String::as_str).zip(&inputs).collect();
        let outs = plan.run(&feed).map_err(|e| format!("run: {e}"))?;
        for (i, got) in outs.iter().enumerate() {
            let p = set.join(format!("output_{i}.npy"));
            if !p.exists() {
                continue;
            }
            let want = support::read_npy(&p)?;
            support::allclose(got, &want, 1e-3, 1e-7).map_err(|e| format!("output {i}: {e}"))?;
        }
    }
    Ok(ops)
}

#[test]
fn onnx_backend_node_tests() {
    let root = support::workspace_root().join("testdata/onnx-node");
    let Ok(entries) = std::fs::read_dir(&root) else {
        eprintln!(
            "SKIP: {} is absent (run tools/extract_onnx_node_tests.py)",
            root.display()
        );
        return;
    };
    let filter = std::env::var("QOPT_NODE_TEST").ok();
    let mut dirs: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").exists() && !is_int8_only(p))
        .collect();
    dirs.sort();
    let known_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_node_known_failures.txt"),
    )
    .unwrap_or_default();
    let known: BTreeSet<&str> = known_text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(':').next().unwrap_or("").trim())
        .collect();

    let mut per_op: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures: Vec<(String, String)> = vec![];
    let mut passed = 0;
    for dir in &dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        // A panic is a failure too (and a bug: bad input must give an error).
        let r = std::panic::catch_unwind(|| run_case(dir)).unwrap_or_else(|p| {
            Err(format!(
                "PANIC: {:?}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            ))
        });
        let ops = match &r {
            Ok(ops) => ops.clone(),
            Err(_) => qopt_onnx::load(dir.join("model.onnx"))
                .map(|m| {
                    m.graph
                        .node_ids()
                        .into_iter()
                        .map(|n| m.graph.node(n).op.qualified_name())
                        .filter(|o| o != "Input" && o != "Const")
                        .collect()
                })
                .unwrap_or_default(),
        };
        // Attribute single-op tests to their op; "expanded" tests exercise op combinations.
        if !name.ends_with("_expanded") && !name.contains("_expanded_") {
            for op in &ops {
                let e = per_op.entry(op.clone()).or_default();
                e.1 += 1;
                if r.is_ok() {
                    e.0 += 1;
                }
            }
        }
        match r {
            Ok(_) => passed += 1,
            Err(e) => failures.push((name, e)),
        }
    }
    let total = passed + failures.len();
    println!("ONNX node tests: {passed}/{total} passed");
    println!("per op (single-op tests passed/total):");
    for (op, (p, t)) in &per_op {
        println!("  {op:<24} {p}/{t}");
    }
    let mut unexpected = vec![];
    for (name, e) in &failures {
        let mark = if known.contains(name.as_str()) {
            "known"
        } else {
            "NEW"
        };
        println!("  FAIL ({mark}) {name}: {e}");
        if !known.contains(name.as_str()) {
            unexpected.push(name.clone());
        }
    }
    let failed: BTreeSet<&str> = failures.iter().map(|(n, _)| n.as_str()).collect();
    let fixed: Vec<&&str> = known
        .iter()
        .filter(|k| {
            !failed.contains(**k)
                && dirs.iter().any(|d| d.ends_with(k))
                && filter.as_deref().is_none_or(|f| k.contains(f))
        })
        .collect();
    if !fixed.is_empty() {
        println!("listed as known failures but passing now (remove them from the list): {fixed:?}");
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected failures: {unexpected:?}",
        unexpected.len()
    );
}
