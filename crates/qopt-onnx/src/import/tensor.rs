//! Decoding ONNX `TensorProto`s: initializers, `Constant` values and tensor attributes.
//!
//! onnx.proto, `TensorProto`: the elements live in exactly one place:
//! - `raw_data`: fixed-width little-endian elements in row-major order;
//! - a typed field: `float_data` (FLOAT), `int32_data` (INT32, and INT8, UINT8, INT16,
//!   UINT16, BOOL and FLOAT16, one element or one f16 bit pattern per int32), `int64_data`
//!   (INT64), `double_data` (DOUBLE), `uint64_data` (UINT32, UINT64);
//! - an external file (`data_location = EXTERNAL`, keys `location`, `offset`, `length`;
//!   onnx `docs/ExternalData.md`), whose `location` is relative to the model's folder.
//!
//! `SparseTensorProto` values (sparse initializers, `Constant.sparse_value`) are densified.
//! Every size comes from the file, so every size is checked before anything is allocated:
//! a corrupt tensor is an error, never a panic or an attempt to allocate terabytes.

use half::f16;
use onnx_protobuf::{SparseTensorProto, TensorProto, tensor_proto::DataLocation};
use qopt_ir::dtype::onnx_type_name;
use qopt_ir::{DType, Element, Tensor};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// A decoded tensor, or the ONNX element type of one qopt cannot hold.
#[derive(Debug)]
pub(crate) enum Decoded {
    Tensor(Tensor),
    /// An element type qopt has no tensor variant for (INT16, STRING, BFLOAT16, ...).
    Unsupported(i32),
}

/// Densified sparse tensors are built in memory from a few values, so a tiny corrupt
/// file could ask for any size: cap them.
const MAX_DENSIFIED_BYTES: usize = 1 << 28;

/// Where external data files are looked up: the model's folder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DataDir<'a>(pub Option<&'a Path>);

/// Dims as sizes and the element count, refusing negative dims and counts whose byte size
/// would not fit in memory.
pub(crate) fn checked_shape(dims: &[i64], elem_size: usize) -> Result<(Vec<usize>, usize), String> {
    let mut shape = Vec::with_capacity(dims.len());
    let mut n: usize = 1;
    for &d in dims {
        if d < 0 {
            return Err(format!("negative dimension {d} in shape {dims:?}"));
        }
        let d = usize::try_from(d).map_err(|_| format!("dimension {d} is too large"))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| format!("shape {dims:?} has too many elements"))?;
        shape.push(d);
    }
    // ndarray also refuses shapes whose non-zero dims multiply past isize::MAX, even when
    // another dim is zero; the byte size must fit as well.
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize));
    match nonzero.and_then(|m| m.checked_mul(elem_size.max(1))) {
        Some(b) if b <= isize::MAX as usize => Ok((shape, n)),
        _ => Err(format!("shape {dims:?} has too many elements")),
    }
}

/// Decode a dense tensor.
pub(crate) fn decode_tensor(t: &TensorProto, dir: DataDir<'_>) -> Result<Decoded, String> {
    let Some(dtype) = DType::from_onnx_code(t.data_type) else {
        if t.data_type == 0 {
            return Err("data type is UNDEFINED".into());
        }
        return Ok(Decoded::Unsupported(t.data_type));
    };
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let (shape, n) = checked_shape(&t.dims, dtype.size())?;
    let external = match t.data_location.enum_value() {
        Ok(DataLocation::DEFAULT) => false,
        Ok(DataLocation::EXTERNAL) => true,
        Err(v) => return Err(format!("unknown data_location {v}")),
    };
    let tensor = if external {
        let bytes = read_external(t, dir, n * dtype.size())?;
        Tensor::from_le_bytes(dtype, &shape, &bytes)?
    } else if !t.raw_data.is_empty() {
        Tensor::from_le_bytes(dtype, &shape, &t.raw_data)?
    } else {
        decode_typed(t, dtype, &shape, n)?
    };
    Ok(Decoded::Tensor(tensor))
}

/// Elements stored in the typed repeated fields.
fn decode_typed(
    t: &TensorProto,
    dtype: DType,
    shape: &[usize],
    n: usize,
) -> Result<Tensor, String> {
    let (field, len) = match dtype {
        DType::F32 => ("float_data", t.float_data.len()),
        DType::F64 => ("double_data", t.double_data.len()),
        DType::I64 => ("int64_data", t.int64_data.len()),
        DType::I32 | DType::I8 | DType::U8 | DType::Bool | DType::F16 => {
            ("int32_data", t.int32_data.len())
        }
    };
    if len != n {
        return Err(if len == 0 {
            format!("{dtype} tensor of shape {shape:?} has {n} elements but no data")
        } else {
            format!("{dtype} tensor of shape {shape:?} needs {n} elements, {field} has {len}")
        });
    }
    fn narrow<T: Element>(
        v: &[i32],
        shape: &[usize],
        f: impl Fn(i32) -> Option<T>,
        what: &str,
    ) -> Result<Tensor, String> {
        let out = v
            .iter()
            .map(|&x| f(x).ok_or_else(|| format!("int32_data value {x} is not a valid {what}")))
            .collect::<Result<Vec<T>, String>>()?;
        Tensor::try_from_vec(shape, out)
    }
    match dtype {
        DType::F32 => Tensor::try_from_vec(shape, t.float_data.clone()),
        DType::F64 => Tensor::try_from_vec(shape, t.double_data.clone()),
        DType::I64 => Tensor::try_from_vec(shape, t.int64_data.clone()),
        DType::I32 => Tensor::try_from_vec(shape, t.int32_data.clone()),
        DType::I8 => narrow(&t.int32_data, shape, |x| i8::try_from(x).ok(), "int8"),
        DType::U8 => narrow(&t.int32_data, shape, |x| u8::try_from(x).ok(), "uint8"),
        // onnx.numpy_helper writes bools as 0/1; any non-zero value is true, as in numpy.
        DType::Bool => narrow(&t.int32_data, shape, |x| Some(x != 0), "bool"),
        // FLOAT16 elements are their IEEE bit patterns, zero-extended to int32.
        DType::F16 => narrow(
            &t.int32_data,
            shape,
            |x| u16::try_from(x).ok().map(f16::from_bits),
            "float16 bit pattern",
        ),
    }
}

/// Read `need` bytes of external data, checking the location cannot leave the model's folder.
fn read_external(t: &TensorProto, dir: DataDir<'_>, need: usize) -> Result<Vec<u8>, String> {
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for e in &t.external_data {
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("external data {} '{v}' is not a byte count", e.key))
        };
        match e.key.as_str() {
            "location" => location = Some(e.value.as_str()),
            "offset" => offset = num(&e.value)?,
            "length" => length = Some(num(&e.value)?),
            // `checksum` (and anything newer) is informational.
            _ => {}
        }
    }
    let location = location
        .filter(|l| !l.is_empty())
        .ok_or("external data has no location")?;
    let rel = Path::new(location);
    for c in rel.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "external data location '{location}' is an absolute path; \
                     locations must be relative to the model's folder"
                ));
            }
            Component::ParentDir => {
                return Err(format!(
                    "external data location '{location}' contains '..' and would leave \
                     the model's folder"
                ));
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    let base = dir.0.ok_or_else(|| {
        format!(
            "the data is in external file '{location}', but the model was read from memory \
             without a folder to find it in (ImportOptions::base_dir)"
        )
    })?;
    let base = if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base
    };
    let path = base.join(rel);
    let open_err =
        |e: std::io::Error| format!("cannot open external data file '{}': {e}", path.display());
    // A symlink inside the folder could still point outside it.
    let real = path.canonicalize().map_err(open_err)?;
    let real_base = base.canonicalize().map_err(open_err)?;
    if !real.starts_with(&real_base) {
        return Err(format!(
            "external data location '{location}' resolves to {}, outside the model's folder",
            real.display()
        ));
    }
    if let Some(len) = length
        && len != need as u64
    {
        return Err(format!(
            "external data length is {len} bytes, the tensor needs {need}"
        ));
    }
    let mut f = std::fs::File::open(&real).map_err(open_err)?;
    let size = f.metadata().map_err(open_err)?.len();
    let end = offset.checked_add(need as u64);
    if end.is_none_or(|e| e > size) {
        return Err(format!(
            "external data file '{}' has {size} bytes; the tensor needs bytes {offset}..{}",
            path.display(),
            offset as u128 + need as u128
        ));
    }
    let mut buf = vec![0u8; need];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read external data file '{}': {e}", path.display()))?;
    Ok(buf)
}

/// Densify a sparse tensor (onnx.proto `SparseTensorProto`): `values` holds NNZ elements,
/// `indices` is INT64 `[NNZ]` (linear) or `[NNZ, rank]` (coordinates), `dims` the dense shape.
pub(crate) fn decode_sparse(s: &SparseTensorProto, dir: DataDir<'_>) -> Result<Decoded, String> {
    let values = s.values.as_ref().ok_or("sparse tensor has no values")?;
    let values = match decode_tensor(values, dir)? {
        Decoded::Tensor(v) => v,
        Decoded::Unsupported(c) => return Ok(Decoded::Unsupported(c)),
    };
    let dtype = values.dtype();
    let (shape, n) = checked_shape(&s.dims, dtype.size())?;
    if n.saturating_mul(dtype.size()) > MAX_DENSIFIED_BYTES {
        return Err(format!(
            "sparse tensor of shape {shape:?} is too large to densify"
        ));
    }
    let nnz = values.len();
    if values.rank() != 1 {
        return Err(format!(
            "sparse values must be 1-D, got shape {:?}",
            values.shape()
        ));
    }
    let w = dtype.size();
    let mut dense = vec![0u8; n * w];
    if nnz == 0 {
        return Tensor::from_le_bytes(dtype, &shape, &dense).map(Decoded::Tensor);
    }
    let indices = match s.indices.as_ref() {
        Some(i) => match decode_tensor(i, dir)? {
            Decoded::Tensor(Tensor::I64(a)) => a,
            _ => return Err("sparse indices must be an INT64 tensor".into()),
        },
        None => return Err("sparse tensor has values but no indices".into()),
    };
    let rank = shape.len();
    let linear: Vec<usize> = match indices.shape() {
        [k] if *k == nnz => indices
            .iter()
            .map(|&i| usize::try_from(i).ok().filter(|&i| i < n))
            .collect::<Option<_>>()
            .ok_or("sparse index out of range")?,
        [k, r] if *k == nnz && *r == rank => {
            let flat: Vec<i64> = indices.iter().copied().collect();
            flat.chunks_exact(rank.max(1))
                .map(|c| {
                    c.iter().zip(&shape).try_fold(0usize, |acc, (&i, &d)| {
                        usize::try_from(i)
                            .ok()
                            .filter(|&i| i < d)
                            .map(|i| acc * d + i)
                    })
                })
                .collect::<Option<_>>()
                .ok_or("sparse index out of range")?
        }
        other => {
            return Err(format!(
                "sparse indices of shape {other:?} do not match {nnz} values of a rank-{rank} tensor"
            ));
        }
    };
    let src = values.to_le_bytes();
    for (k, &pos) in linear.iter().enumerate() {
        dense[pos * w..(pos + 1) * w].copy_from_slice(&src[k * w..(k + 1) * w]);
    }
    Tensor::from_le_bytes(dtype, &shape, &dense).map(Decoded::Tensor)
}

/// `FLOAT16 (10)` style name for messages.
pub(crate) fn type_name(code: i32) -> String {
    format!("{} ({code})", onnx_type_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::StringStringEntryProto;

    fn t(data_type: i32, dims: &[i64]) -> TensorProto {
        TensorProto {
            data_type,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    fn decode(p: &TensorProto) -> Result<Tensor, String> {
        match decode_tensor(p, DataDir(None))? {
            Decoded::Tensor(t) => Ok(t),
            Decoded::Unsupported(c) => Err(format!("unsupported {c}")),
        }
    }

    #[test]
    fn shapes_are_checked_before_allocating() {
        assert_eq!(checked_shape(&[2, 3], 4), Ok((vec![2, 3], 6)));
        assert_eq!(checked_shape(&[], 4), Ok((vec![], 1)));
        // Zero elements, but ndarray would still refuse the huge non-zero dims.
        assert!(checked_shape(&[0, 1 << 62, 1 << 62], 4).is_err());
        assert!(checked_shape(&[1 << 61], 8).is_err());
        assert!(checked_shape(&[3, -1], 4).is_err());
    }

    #[test]
    fn typed_field_conventions() {
        // onnx.proto: BOOL in int32_data, any non-zero is true; FLOAT16 bit patterns.
        let mut b = t(9, &[3]);
        b.int32_data = vec![0, 1, 7];
        assert_eq!(decode(&b).unwrap().to_i64_vec().unwrap(), vec![0, 1, 1]);
        let mut h = t(10, &[2]);
        h.int32_data = vec![0x3c00, 0xc000]; // 1.0 and -2.0 in IEEE half precision
        assert_eq!(decode(&h).unwrap().to_f64_vec(), vec![1.0, -2.0]);
        // Unsupported element types are reported, not decoded.
        assert!(matches!(
            decode_tensor(&t(5, &[1]), DataDir(None)),
            Ok(Decoded::Unsupported(5))
        ));
        // Zero elements need no data at all.
        assert_eq!(decode(&t(7, &[0])).unwrap().shape(), &[0]);
    }

    #[test]
    fn sparse_indices_are_bounds_checked() {
        let values = TensorProto {
            raw_data: 1f32.to_le_bytes().to_vec(),
            ..t(1, &[1])
        };
        let sparse = |indices: Vec<i64>, idims: &[i64]| SparseTensorProto {
            values: Some(values.clone()).into(),
            indices: Some(TensorProto {
                int64_data: indices,
                ..t(7, idims)
            })
            .into(),
            dims: vec![2, 2],
            ..Default::default()
        };
        let ok = decode_sparse(&sparse(vec![3], &[1]), DataDir(None)).unwrap();
        let Decoded::Tensor(d) = ok else { panic!() };
        assert_eq!(d.to_f64_vec(), vec![0.0, 0.0, 0.0, 1.0]);
        let coords = decode_sparse(&sparse(vec![1, 0], &[1, 2]), DataDir(None)).unwrap();
        let Decoded::Tensor(d) = coords else { panic!() };
        assert_eq!(d.to_f64_vec(), vec![0.0, 0.0, 1.0, 0.0]);
        for (idx, dims) in [(vec![4], &[1][..]), (vec![-1], &[1]), (vec![2, 0], &[1, 2])] {
            let e = decode_sparse(&sparse(idx, dims), DataDir(None)).unwrap_err();
            assert!(e.contains("out of range"), "{e}");
        }
        let e = decode_sparse(&sparse(vec![0, 1], &[2]), DataDir(None)).unwrap_err();
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn symlinks_cannot_lead_external_data_out_of_the_folder() {
        let outside_dir = tempfile::tempdir().unwrap();
        let outside = outside_dir.path();
        std::fs::write(outside.join("w.bin"), [0u8; 8]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let model_dir = dir.path();
        std::os::unix::fs::symlink(outside.join("w.bin"), model_dir.join("w.bin")).unwrap();
        let mut p = t(1, &[2]);
        p.data_location = DataLocation::EXTERNAL.into();
        p.external_data = vec![StringStringEntryProto {
            key: "location".into(),
            value: "w.bin".into(),
            ..Default::default()
        }];
        let e = decode_tensor(&p, DataDir(Some(model_dir))).unwrap_err();
        assert!(e.contains("outside the model's folder"), "{e}");
        // The same file inside the folder is fine.
        std::fs::remove_file(model_dir.join("w.bin")).unwrap();
        std::fs::write(model_dir.join("w.bin"), [0u8; 8]).unwrap();
        assert!(decode_tensor(&p, DataDir(Some(model_dir))).is_ok());
    }
}
