//! Encoding tensors, value types and attributes as ONNX protobuf messages.
//!
//! Tensors are always written as `raw_data` (little-endian, row-major; onnx.proto
//! `TensorProto`), the compact form every runtime reads. Attributes kept as [`Attr::Raw`]
//! are the serialized `AttributeProto` the importer saw, written back unchanged.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Value as TypeValue};
use onnx_protobuf::{
    AttributeProto, Message, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use qopt_ir::{Attr, Dim, Tensor, TypeInfo, ValueInfo};

pub(crate) fn encode_tensor(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        raw_data: t.to_le_bytes(),
        ..Default::default()
    }
}

/// The `TypeProto` of a value; `None` when nothing is known about it.
pub(crate) fn encode_type(ty: &TypeInfo) -> Option<TypeProto> {
    if ty.dtype.is_none() && ty.shape.is_none() {
        return None;
    }
    let shape = ty.shape.as_ref().map(|s| TensorShapeProto {
        dim: s
            .dims()
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Dim::Known(n) => Some(dimension::Value::DimValue(*n as i64)),
                    Dim::Sym(s) => Some(dimension::Value::DimParam(s.clone())),
                    Dim::Unknown => None,
                },
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    Some(TypeProto {
        value: Some(TypeValue::TensorType(type_proto::Tensor {
            elem_type: ty.dtype.map_or(0, |d| d.onnx_code()),
            shape: shape.into(),
            ..Default::default()
        })),
        ..Default::default()
    })
}

pub(crate) fn encode_value_info(v: &ValueInfo) -> ValueInfoProto {
    ValueInfoProto {
        name: v.name.clone(),
        type_: encode_type(&v.ty).into(),
        doc_string: v.doc.clone(),
        ..Default::default()
    }
}

/// One attribute; `Err` only for an [`Attr::Raw`] that is not a serialized `AttributeProto`.
pub(crate) fn encode_attr(name: &str, a: &Attr) -> Result<AttributeProto, String> {
    let mut p = AttributeProto {
        name: name.to_string(),
        ..Default::default()
    };
    let ty = match a {
        Attr::Int(v) => {
            p.i = *v;
            AttributeType::INT
        }
        Attr::Float(v) => {
            p.f = *v;
            AttributeType::FLOAT
        }
        Attr::Ints(v) => {
            p.ints = v.clone();
            AttributeType::INTS
        }
        Attr::Floats(v) => {
            p.floats = v.clone();
            AttributeType::FLOATS
        }
        Attr::String(s) => {
            p.s = s.clone().into_bytes();
            AttributeType::STRING
        }
        Attr::Strings(v) => {
            p.strings = v.iter().map(|s| s.clone().into_bytes()).collect();
            AttributeType::STRINGS
        }
        Attr::Tensor(t) => {
            p.t = Some(encode_tensor("", t)).into();
            AttributeType::TENSOR
        }
        Attr::Raw(bytes) => {
            let mut raw = AttributeProto::parse_from_bytes(bytes).map_err(|e| {
                format!("attribute '{name}' holds bytes that are not an ONNX attribute: {e}")
            })?;
            raw.name = name.to_string();
            return Ok(raw);
        }
    };
    p.type_ = ty.into();
    Ok(p)
}
