//! `qopt inspect MODEL`: what a user wants to know about a model at a glance.

use crate::error::CliError;
use qopt::ir::{Graph, Op, TypeInfo};
use std::collections::BTreeMap;
use std::path::Path;

pub fn run(path: &Path) -> Result<(), CliError> {
    let model = qopt::load(path)?;
    for w in &model.warnings {
        eprintln!("warning: {}: {w}", path.display());
    }
    print!("{}", summary(path, &model.graph));
    Ok(())
}

fn type_str(t: &TypeInfo) -> String {
    let d = t
        .dtype
        .map(|d| d.name().to_string())
        .unwrap_or_else(|| "?".into());
    let s = t
        .shape
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_else(|| "[*]".into());
    format!("{d}{s}")
}

pub fn summary(path: &Path, g: &Graph) -> String {
    let mut s = format!("model: {}\n", path.display());
    s.push_str(&format!("graph: {}\n", g.name));
    let m = &g.meta;
    let opsets: Vec<String> = m
        .opset_imports
        .iter()
        .map(|(d, v)| format!("{}={v}", if d.is_empty() { "ai.onnx" } else { d }))
        .collect();
    s.push_str(&format!("opset: {}\n", opsets.join(" ")));
    if !m.producer_name.is_empty() {
        s.push_str(&format!(
            "producer: {} {}\n",
            m.producer_name, m.producer_version
        ));
    }
    s.push_str("inputs:\n");
    for v in g.input_values() {
        let vi = g.value(v);
        s.push_str(&format!("  {}: {}\n", vi.name, type_str(&vi.ty)));
    }
    s.push_str("outputs:\n");
    for &v in g.outputs() {
        let vi = g.value(v);
        s.push_str(&format!("  {}: {}\n", vi.name, type_str(&vi.ty)));
    }
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    let (mut params, mut consts, mut const_bytes) = (0usize, 0usize, 0usize);
    for n in g.node_ids() {
        match &g.node(n).op {
            Op::Input => {}
            Op::Const(t) => {
                consts += 1;
                const_bytes += t.len() * t.dtype().size();
                // Parameters are the weights, not the small shape/axes constants.
                if t.dtype().is_float() || t.dtype().is_quantized() {
                    params += t.len();
                }
            }
            op => *hist.entry(op.qualified_name()).or_default() += 1,
        }
    }
    let nodes: usize = hist.values().sum();
    s.push_str(&format!(
        "nodes: {nodes} ops, {consts} constants ({:.2} MB)\n",
        const_bytes as f64 / 1e6
    ));
    s.push_str(&format!("parameters: {params}\n"));
    s.push_str("ops:\n");
    let mut rows: Vec<(String, usize)> = hist.into_iter().collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for (op, c) in rows {
        s.push_str(&format!("  {c:5}  {op}\n"));
    }
    s
}
