//! Decoding ONNX `AttributeProto`s into qopt's untyped [`Attr`].
//!
//! The attribute's declared `type` picks the payload field (onnx.proto `AttributeProto`).
//! onnx-protobuf's `AttributeProto::as_value` is not used: it panics when the declared type
//! and the payload disagree (DESIGN.md §11), which a corrupt file can arrange.
//!
//! Attributes qopt does not interpret (sub-graphs, sparse tensors, type protos, tensor lists,
//! references to function attributes, tensors of unsupported element types, strings that are
//! not UTF-8) are kept as [`Attr::Raw`]: the serialized `AttributeProto`, exported unchanged.

use super::tensor::{DataDir, Decoded, decode_tensor};
use onnx_protobuf::{AttributeProto, Message, attribute_proto::AttributeType};
use qopt_ir::Attr;
use std::sync::Arc;

pub(crate) fn decode_attr(a: &AttributeProto, dir: DataDir<'_>) -> Result<Attr, String> {
    if !a.ref_attr_name.is_empty() {
        return raw(a);
    }
    let ty = a
        .type_
        .enum_value()
        .map_err(|code| format!("unknown attribute type {code}"))?;
    let utf8 = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    Ok(match ty {
        AttributeType::FLOAT => Attr::Float(a.f),
        AttributeType::INT => Attr::Int(a.i),
        AttributeType::FLOATS => Attr::Floats(a.floats.clone()),
        AttributeType::INTS => Attr::Ints(a.ints.clone()),
        AttributeType::STRING => match utf8(&a.s) {
            Some(s) => Attr::String(s),
            None => return raw(a),
        },
        AttributeType::STRINGS => match a.strings.iter().map(|s| utf8(s)).collect() {
            Some(v) => Attr::Strings(v),
            None => return raw(a),
        },
        AttributeType::TENSOR => {
            let t =
                a.t.as_ref()
                    .ok_or("attribute of type TENSOR holds no tensor")?;
            match decode_tensor(t, dir)? {
                Decoded::Tensor(t) => Attr::Tensor(Arc::new(t)),
                Decoded::Unsupported(_) => return raw(a),
            }
        }
        AttributeType::UNDEFINED => return Err("attribute has no type (UNDEFINED)".into()),
        AttributeType::GRAPH
        | AttributeType::GRAPHS
        | AttributeType::SPARSE_TENSOR
        | AttributeType::SPARSE_TENSORS
        | AttributeType::TENSORS
        | AttributeType::TYPE_PROTO
        | AttributeType::TYPE_PROTOS => return raw(a),
    })
}

fn raw(a: &AttributeProto) -> Result<Attr, String> {
    a.write_to_bytes()
        .map(Attr::Raw)
        .map_err(|e| format!("cannot re-encode attribute: {e}"))
}

/// True when the attribute carries a sub-graph (If, Loop, Scan bodies).
pub(crate) fn has_subgraph(a: &AttributeProto) -> bool {
    a.g.is_some() || !a.graphs.is_empty()
}
