//! Decoding ONNX value types (`TypeProto`) into [`TypeInfo`].
//!
//! onnx.proto `TensorShapeProto.Dimension` is a oneof: `dim_value` (a size) or `dim_param`
//! (a symbol such as `batch` or `p2o.DynamicDimension.0`); a dimension with neither is
//! unknown. Some exporters (PaddlePaddle's older paddle2onnx) write `dim_value: -1` for a
//! dynamic size, which is read as unknown too. A missing `shape` is an unknown rank.

use super::tensor::type_name;
use onnx_protobuf::TypeProto;
use onnx_protobuf::tensor_shape_proto::dimension::Value as DimValue;
use onnx_protobuf::type_proto::Value as TypeValue;
use qopt_ir::{DType, Dim, Shape, TypeInfo};

/// The type of a value; `Err` for types qopt cannot represent (non-tensor types, element
/// types without a qopt dtype). A missing type is unknown, not an error.
pub(crate) fn decode_type(t: Option<&TypeProto>) -> Result<TypeInfo, String> {
    let Some(t) = t else {
        return Ok(TypeInfo::unknown());
    };
    let tensor = match &t.value {
        None => return Ok(TypeInfo::unknown()),
        Some(TypeValue::TensorType(tt)) => tt,
        Some(TypeValue::SequenceType(_)) => return Err("sequence types are not supported".into()),
        Some(TypeValue::MapType(_)) => return Err("map types are not supported".into()),
        Some(TypeValue::OptionalType(_)) => return Err("optional types are not supported".into()),
        Some(TypeValue::SparseTensorType(_)) => {
            return Err("sparse tensor values are not supported".into());
        }
        Some(_) => return Err("this value type is not supported".into()),
    };
    let dtype = match tensor.elem_type {
        0 => None,
        code => Some(
            DType::from_onnx_code(code)
                .ok_or_else(|| format!("element type {} is not supported", type_name(code)))?,
        ),
    };
    let shape = tensor.shape.as_ref().map(|s| {
        Shape(
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(v)) if *v >= 0 => Dim::Known(*v as u64),
                    Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect(),
        )
    });
    Ok(TypeInfo { dtype, shape })
}
