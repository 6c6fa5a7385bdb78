//! Operator forms that depend on the opset.
//!
//! Later opsets moved some attributes into inputs (onnx `docs/Changelog.md`):
//! - `Squeeze`/`Unsqueeze` `axes`: attribute up to opset 12, optional input from 13;
//! - `ReduceSum` `axes`: attribute up to 12, input from 13;
//! - the other `Reduce*` ops' `axes`: attribute up to 17, input from 18;
//! - `Split` `split`: attribute up to 12, input from 13; from 18 a split without sizes needs
//!   `num_outputs`.
//!
//! The IR keeps these as op fields whatever the opset (`qopt_ir::op`), so the importer folds a
//! constant input into the field and the exporter writes the form the graph's opset asks for.
//! `Softmax`, `LogSoftmax` and `Hardmax` default to `axis = 1` before opset 13 and to -1 from 13.
//! `Clip` took `min`/`max` as attributes before opset 11 and as inputs since.

use qopt_ir::{Attr, Graph, ModelMeta, Op};

/// An attribute that later opsets pass as an input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MovedAttr {
    /// Name of the attribute (and of the IR field).
    pub key: &'static str,
    /// The input slot it moved to.
    pub slot: usize,
    /// The first opset where it is an input.
    pub since: i64,
}

pub(crate) fn moved_attr(op: &Op) -> Option<MovedAttr> {
    let (key, since) = match op {
        Op::Squeeze(_) | Op::Unsqueeze(_) | Op::ReduceSum(_) => ("axes", 13),
        Op::ReduceMean(_)
        | Op::ReduceMax(_)
        | Op::ReduceMin(_)
        | Op::ReduceProd(_)
        | Op::ReduceL1(_)
        | Op::ReduceL2(_)
        | Op::ReduceSumSquare(_)
        | Op::ReduceLogSumExp(_) => ("axes", 18),
        Op::Split(_) => ("split", 13),
        _ => return None,
    };
    Some(MovedAttr {
        key,
        slot: 1,
        since,
    })
}

/// The opset from which `Split` needs `num_outputs` when no sizes are given.
pub(crate) const SPLIT_NUM_OUTPUTS_SINCE: i64 = 18;

/// The opset from which `Clip` bounds are inputs.
pub(crate) const CLIP_INPUTS_SINCE: i64 = 11;

/// The opset from which the softmax family defaults to the last axis.
pub(crate) const SOFTMAX_LAST_AXIS_SINCE: i64 = 13;

/// Set the moved attribute's field of `op` to `values` (rebuilding it from its attributes,
/// so this needs no per-op code).
pub(crate) fn with_moved_attr(op: &Op, m: MovedAttr, values: Vec<i64>) -> Result<Op, String> {
    let mut attrs: Vec<(String, Attr)> =
        op.attrs().into_iter().filter(|(k, _)| k != m.key).collect();
    attrs.push((m.key.to_string(), Attr::Ints(values)));
    Op::from_parts(op.domain(), op.op_type(), &attrs).map_err(|e| e.to_string())
}

/// The ONNX IR version that goes with an opset of the default domain (onnx `helper.VERSION_TABLE`),
/// for graphs that were not imported and so carry none.
pub(crate) fn ir_version_for_opset(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// The default-domain opset written for a graph that carries none (built in code, not imported).
pub const DEFAULT_OPSET: i64 = 17;

/// The metadata the exporter writes for `g`: its own, with what ONNX requires filled in: an
/// opset import for the default domain when ops use it (or nothing is imported at all),
/// version 1 of any other domain a node uses but the graph does not import, and an IR version
/// matching the opset when there is none. The importer applies the same completion (with a
/// warning per item), so an imported graph's metadata is what its export will say.
pub(crate) fn completed_meta(g: &Graph) -> (ModelMeta, Vec<String>) {
    let mut meta = g.meta.clone();
    let mut notes = Vec::new();
    let mut uses_onnx = false;
    let mut custom: Vec<&str> = Vec::new();
    for n in g.node_ids() {
        let op = &g.node(n).op;
        match op.domain() {
            _ if op.is_source() => {}
            "" | "ai.onnx" => uses_onnx = true,
            d => custom.push(d),
        }
    }
    custom.sort();
    custom.dedup();
    if meta.onnx_opset().is_none() && (uses_onnx || meta.opset_imports.is_empty()) {
        meta.opset_imports.insert(0, (String::new(), DEFAULT_OPSET));
        notes.push(format!(
            "no opset import for the default ONNX domain; opset {DEFAULT_OPSET} assumed"
        ));
    }
    for d in custom {
        if !meta.opset_imports.iter().any(|(od, _)| od == d) {
            meta.opset_imports.push((d.to_string(), 1));
            notes.push(format!(
                "nodes use domain '{d}', which the model does not import; version 1 assumed"
            ));
        }
    }
    if meta.ir_version <= 0 {
        meta.ir_version = ir_version_for_opset(meta.onnx_opset().unwrap_or(DEFAULT_OPSET));
        notes.push(format!(
            "no IR version; {} assumed (the one that goes with the opset)",
            meta.ir_version
        ));
    }
    (meta, notes)
}
