//! Activation quantization parameters from the calibration annotations.
//!
//! Per value, in this order: parameters already on the value (`@q`, set by hand or read
//! from a QAT model) win; a fixed-output op gets the spec's; a same-scale group gets one
//! set (the source member's, or the union of the members' ranges); anything else gets
//! `QScheme::qparams(@range)` with the target's activation scheme (DESIGN.md §5).

use super::QdqError;
use crate::target::{QuantPlan, TargetSpec};
use qopt_calib::qparams::QScheme;
use qopt_ir::{DType, Graph, QParams, Range, ValueId};
use std::collections::BTreeMap;

/// The scheme of the target's activations on a `bits`-bit grid.
pub(crate) fn activation_scheme(spec: &TargetSpec, bits: u32) -> QScheme {
    let base = if spec.activations.symmetric {
        QScheme::ACTIVATIONS_SYMMETRIC
    } else if spec.activations.dtype == DType::U8 {
        QScheme::U8_ASYMMETRIC
    } else {
        QScheme::ACTIVATIONS_ASYMMETRIC
    };
    QScheme {
        dtype: spec.activations.dtype,
        bits,
        ..base
    }
}

fn from_range(g: &Graph, scheme: QScheme, v: ValueId, r: Range) -> Result<QParams, QdqError> {
    scheme.qparams(r).map_err(|e| QdqError::Params {
        value: g.value_name(v).to_string(),
        msg: e.to_string(),
    })
}

/// Parameters for every activation of `plan`.
pub(crate) fn resolve(
    g: &Graph,
    spec: &TargetSpec,
    plan: &QuantPlan,
    bits: u32,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<ValueId, QParams>, QdqError> {
    let scheme = activation_scheme(spec, bits);
    let mut out = BTreeMap::new();
    let mut missing: Vec<ValueId> = vec![];
    let fixed = |v: &ValueId| {
        plan.fixed
            .get(v)
            .map(|f| QParams::per_tensor(spec.activations.dtype, f.scale, f.zero_point))
    };
    for grp in &plan.groups {
        let given = grp
            .members
            .iter()
            .find_map(|m| g.value(*m).ann.qparams.clone().or_else(|| fixed(m)));
        let p = match (given, grp.source) {
            (Some(p), _) => Some(p),
            (None, Some(s)) => match g.value(s).ann.range {
                Some(r) => Some(from_range(g, scheme, s, r)?),
                None => {
                    missing.push(s);
                    None
                }
            },
            (None, None) => {
                let union = grp
                    .members
                    .iter()
                    .filter_map(|m| g.value(*m).ann.range)
                    .reduce(|a, b| Range::new(a.min.min(b.min), a.max.max(b.max)));
                match union {
                    Some(r) => Some(from_range(g, scheme, grp.members[0], r)?),
                    None => {
                        missing.push(grp.members[0]);
                        None
                    }
                }
            }
        };
        if let Some(p) = p {
            for m in &grp.members {
                out.insert(*m, p.clone());
            }
        }
    }
    let grouped: std::collections::BTreeSet<ValueId> = plan
        .groups
        .iter()
        .flat_map(|gr| gr.members.iter().copied())
        .collect();
    for &v in plan.activations.keys() {
        if grouped.contains(&v) {
            continue;
        }
        let info = g.value(v);
        let p = if let Some(q) = &info.ann.qparams {
            q.clone()
        } else if let Some(p) = fixed(&v) {
            p
        } else if let Some(r) = info.ann.range {
            from_range(g, scheme, v, r)?
        } else {
            missing.push(v);
            continue;
        };
        out.insert(v, p);
    }
    // Some values calibrated, others not: those saw no finite number during calibration (for
    // example float casts inside shape sub-graphs, or `--keep-fp32`): they stay fp32, as
    // `thresholds` already said. Only a graph with no calibrated value at all is an error.
    if !missing.is_empty() && !out.is_empty() {
        missing.sort();
        let names: Vec<&str> = missing.iter().map(|v| g.value_name(*v)).collect();
        warnings.push(format!(
            "{} value(s) without a calibrated range stay fp32: {}",
            names.len(),
            names.join(", ")
        ));
        return Ok(out);
    }
    if let Some(&first) = missing.iter().min() {
        let node = g.node(first.node);
        let what = if node.op.is_source() {
            if matches!(node.op, qopt_ir::Op::Input) {
                "a graph input".to_string()
            } else {
                "a constant".to_string()
            }
        } else {
            format!("output of {}", g.describe(first.node))
        };
        let more = match missing.len() {
            1 => String::new(),
            2 => ", nor does 1 other value".to_string(),
            n => format!(", nor do {} other values", n - 1),
        };
        return Err(QdqError::NoRange {
            value: g.value_name(first).to_string(),
            what,
            more,
        });
    }
    Ok(out)
}
