//! Helpers shared by the interpreter's integration tests: a `.npy` reader for every dtype the
//! IR holds, workspace paths, and tensor comparison.

#![allow(dead_code)]

use qopt_ir::{DType, Tensor};
use std::path::{Path, PathBuf};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Read a `.npy` file (format versions 1-3, little-endian, C order) into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let err = |m: &str| format!("{}: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(err(&format!("unsupported .npy version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + hlen)
            .ok_or_else(|| err("truncated header"))?,
    )
    .map_err(|_| err("header is not UTF-8"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}':"))? + key.len() + 3;
        Some(header[i..].trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| err("no descr"))?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(err("Fortran order is not supported"));
    }
    let shape_s = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err("no shape"))?;
    let shape: Vec<usize> = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err("bad shape")))
        .collect::<Result<_, _>>()?;
    let dtype = match descr {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "<f2" => DType::F16,
        "|i1" => DType::I8,
        "|u1" => DType::U8,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|b1" => DType::Bool,
        d => return Err(err(&format!("unsupported dtype {d}"))),
    };
    Tensor::from_le_bytes(dtype, &shape, &bytes[start + hlen..]).map_err(|e| err(&e))
}

/// Compare like `numpy.testing.assert_allclose(actual, expected, rtol, atol)` for floats
/// (NaN equal to NaN) and exactly for everything else. `Err` says where they differ.
pub fn allclose(actual: &Tensor, expected: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if actual.dtype() != expected.dtype() {
        return Err(format!(
            "dtype {} != expected {}",
            actual.dtype(),
            expected.dtype()
        ));
    }
    if actual.shape() != expected.shape() {
        return Err(format!(
            "shape {:?} != expected {:?}",
            actual.shape(),
            expected.shape()
        ));
    }
    let (a, e) = (actual.to_f64_vec(), expected.to_f64_vec());
    let float = actual.dtype().is_float();
    for (i, (&x, &y)) in a.iter().zip(&e).enumerate() {
        let ok = if float {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= atol + rtol * y.abs()
        } else {
            x == y
        };
        if !ok {
            return Err(format!("element {i}: {x} != expected {y}"));
        }
    }
    Ok(())
}

/// Relative L2 error `||a - b|| / ||b||` of two f32 tensors of the same shape.
pub fn rel_l2(a: &Tensor, b: &Tensor) -> Result<f64, String> {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return Err(format!(
            "{}{:?} vs {}{:?}",
            a.dtype(),
            a.shape(),
            b.dtype(),
            b.shape()
        ));
    }
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let num: f64 = x.iter().zip(&y).map(|(p, q)| (p - q) * (p - q)).sum();
    let den: f64 = y.iter().map(|q| q * q).sum();
    Ok(if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    })
}
