//! Ops that produce shapes or retype data: `Shape`, `Size`, `Cast`, `CastLike`,
//! `Range`, `ConstantOfShape`, `Dropout` (tensor/defs.cc, generator/defs.cc,
//! nn/defs.cc).
//!
//! - `Shape(start?, end?)`: int64 `[end - start]` after clamping both to
//!   `[0, r]` (negative values count from the end; opset 15).
//! - `Size`: int64 scalar.
//! - `Cast(to)`: input shape, element type `to`; `CastLike`: input 1's type.
//! - `Range(start, limit, delta)`: `[max(ceil((limit - start) / delta), 0)]`,
//!   start's element type.
//! - `ConstantOfShape(shape)`: dims from the (tracked) shape input, `value`'s
//!   element type (f32 by default).
//! - `Dropout`: output = input, and a bool mask of the same shape.

use super::ctx::{Ctx, Out, ty};
use super::shape_value::SymInt;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::tensor::Tensor;

pub(crate) fn shape(cx: &Ctx, start: i64, end: Option<i64>) -> Out {
    let x = cx.req(0, "data")?;
    let len = match &x.shape {
        Some(s) => {
            let r = s.rank() as i64;
            let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
            let (a, b) = (clamp(start), clamp(end.unwrap_or(r)));
            Dim::Known((b - a).max(0) as u64)
        }
        None => Dim::Unknown,
    };
    Ok(vec![ty(Some(DType::I64), Some(Shape(vec![len])))])
}

pub(crate) fn size(cx: &Ctx) -> Out {
    cx.req(0, "data")?;
    Ok(vec![ty(Some(DType::I64), Some(Shape::scalar()))])
}

pub(crate) fn cast(cx: &Ctx, to: DType) -> Out {
    Ok(vec![ty(Some(to), cx.req(0, "input")?.shape.clone())])
}

pub(crate) fn cast_like(cx: &Ctx) -> Out {
    let x = cx.req(0, "input")?;
    let t = cx.req(1, "target_type")?;
    Ok(vec![ty(t.dtype, x.shape.clone())])
}

/// Number of elements of `Range(start, limit, delta)`; `None` for a zero or
/// non-finite step or a length that does not fit.
pub(crate) fn range_len(start: f64, limit: f64, delta: f64) -> Option<u64> {
    if delta == 0.0 || !(start.is_finite() && limit.is_finite() && delta.is_finite()) {
        return None;
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    (n < 9.0e15).then_some(n as u64)
}

pub(crate) fn range(cx: &Ctx) -> Out {
    let names = ["start", "limit", "delta"];
    let mut dtype = None;
    for (slot, name) in names.iter().enumerate() {
        let t = cx.req(slot, name)?;
        dtype = dtype.or(t.dtype);
        if let Some(s) = &t.shape
            && s.rank() != 0
            && !(s.rank() == 1 && s.0[0] == Dim::Known(1))
        {
            return Err(cx.err(format!("{name} has shape {s}; it must be a scalar")));
        }
    }
    let scalar = |slot: usize| -> Option<SymInt> {
        match cx.value(slot).map(|v| v.elems) {
            Some(v) if v.len() == 1 => Some(v[0].clone()),
            _ => None,
        }
    };
    let float_scalar = |slot: usize| -> Option<f64> {
        match cx.floats(slot).as_deref() {
            Some([x]) => Some(*x),
            _ => None,
        }
    };
    // Constants of any type first (float ranges), then tracked integers and symbols.
    let len = match (float_scalar(0), float_scalar(1), float_scalar(2)) {
        (Some(s), Some(l), Some(d)) => {
            if d == 0.0 {
                return Err(cx.err("delta must not be 0"));
            }
            range_len(s, l, d).map_or(Dim::Unknown, Dim::Known)
        }
        _ => match (scalar(0), scalar(1), scalar(2)) {
            (_, _, Some(SymInt::Int(0))) => return Err(cx.err("delta must not be 0")),
            (Some(SymInt::Int(s)), Some(SymInt::Int(l)), Some(SymInt::Int(d))) => {
                range_len(s as f64, l as f64, d as f64).map_or(Dim::Unknown, Dim::Known)
            }
            // range(0, N, 1) has N elements.
            (Some(SymInt::Int(0)), Some(SymInt::Sym(l)), Some(SymInt::Int(1))) => Dim::Sym(l),
            _ => Dim::Unknown,
        },
    };
    Ok(vec![ty(dtype, Some(Shape(vec![len])))])
}

pub(crate) fn constant_of_shape(cx: &Ctx, value: Option<&Tensor>) -> Out {
    let input = cx.req(0, "input")?;
    if let Some(s) = &input.shape
        && s.rank() != 1
    {
        return Err(cx.err(format!("input has shape {s}; it must be 1-D")));
    }
    let dtype = match value {
        Some(t) if t.len() != 1 => {
            return Err(cx.err(format!(
                "value has {} elements; it must have exactly one",
                t.len()
            )));
        }
        Some(t) => t.dtype(),
        None => DType::F32,
    };
    let shape = match cx.shape_operand(0) {
        Some(v) => {
            let mut d = Vec::with_capacity(v.len());
            for e in &v {
                d.push(
                    e.to_dim()
                        .ok_or_else(|| cx.err(format!("shape {v:?} has a negative size")))?,
                );
            }
            Some(Shape(d))
        }
        None => None,
    };
    Ok(vec![ty(Some(dtype), shape)])
}

pub(crate) fn dropout(cx: &Ctx) -> Out {
    let x = cx.req(0, "data")?;
    Ok(vec![x.clone(), ty(Some(DType::Bool), x.shape.clone())])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;
    use crate::tensor::Tensor;
    use std::sync::Arc;

    #[test]
    fn shape_size_cast() {
        // Shape-15 spec: [2,3,4] -> [3]; start 1 -> [2]; start -1 -> [1]; end 10 clamps.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), k(4)]);
        let a = t.node(op::Shape::default(), &[x]);
        let b = t.node(
            op::Shape {
                start: 1,
                end: None,
            },
            &[x],
        );
        let c = t.node(
            op::Shape {
                start: -1,
                end: Some(10),
            },
            &[x],
        );
        let d = t.node(
            op::Shape {
                start: 2,
                end: Some(1),
            },
            &[x],
        );
        let s = t.node(op::Size {}, &[x]);
        let ca = t.node(
            op::Cast {
                to: DType::I32,
                ..Default::default()
            },
            &[x],
        );
        let cl = t.node(op::CastLike::default(), &[x, a]);
        let dr = t.multi(op::Dropout::default(), &[Some(x)], 2);
        t.run();
        assert_eq!(t.ty(a), "i64[3]");
        assert_eq!(t.ty(b), "i64[2]");
        assert_eq!(t.ty(c), "i64[1]");
        assert_eq!(t.ty(d), "i64[0]");
        assert_eq!(t.ty(s), "i64[]");
        assert_eq!(t.ty(ca), "i32[N,3,4]");
        assert_eq!(t.ty(cl), "i64[N,3,4]");
        assert_eq!(t.ty(dr[0]), "f32[N,3,4]");
        assert_eq!(t.ty(dr[1]), "bool[N,3,4]");
    }

    #[test]
    fn ranges() {
        // Range spec examples: (3, 9, 3) -> [3, 6] (2 elements); (10, 4, -2) -> [10, 8, 6]
        // (3 elements); float (1.0, 2.5, 0.5) -> 3 elements.
        let mut t = T::new();
        let (s, l, d) = (
            t.scalar_i64("s", 3),
            t.scalar_i64("l", 9),
            t.scalar_i64("d", 3),
        );
        let a = t.node(op::Range {}, &[s, l, d]);
        let (s2, l2, d2) = (
            t.scalar_i64("s2", 10),
            t.scalar_i64("l2", 4),
            t.scalar_i64("d2", -2),
        );
        let b = t.node(op::Range {}, &[s2, l2, d2]);
        let fs = t.konst("fs", Tensor::scalar(1.0f32));
        let fl = t.konst("fl", Tensor::scalar(2.5f32));
        let fd = t.konst("fd", Tensor::scalar(0.5f32));
        let c = t.node(op::Range {}, &[fs, fl, fd]);
        // range(0, Shape(x)[1], 1) has the symbolic length T.
        let x = t.input("x", DType::F32, &[n(), sym("T")]);
        let sh = t.node(op::Shape::default(), &[x]);
        let one = t.scalar_i64("one", 1);
        let zero = t.scalar_i64("zero", 0);
        let tt = t.node(op::Gather { axis: 0 }, &[sh, one]);
        let r = t.node(op::Range {}, &[zero, tt, one]);
        t.run();
        assert_eq!(t.ty(a), "i64[2]");
        assert_eq!(t.ty(b), "i64[3]");
        assert_eq!(t.ty(c), "f32[3]");
        assert_eq!(t.ty(r), "i64[T]");

        let mut t = T::new();
        let (s, l, d) = (
            t.scalar_i64("s", 3),
            t.scalar_i64("l", 9),
            t.scalar_i64("d", 0),
        );
        t.named("rg", op::Range {}, &[s, l, d]);
        assert_eq!(t.run_err(), "Range node 'rg': delta must not be 0");
    }

    #[test]
    fn constant_of_shape() {
        // ConstantOfShape spec: shape [4,3,2] with value int32 -> i32[4,3,2]; default f32.
        let mut t = T::new();
        let s = t.ints("s", &[4, 3, 2]);
        let v = Arc::new(Tensor::from_vec(&[1], vec![1i32]));
        let a = t.node(op::ConstantOfShape { value: Some(v) }, &[s]);
        let b = t.node(op::ConstantOfShape { value: None }, &[s]);
        let ds = t.input("ds", DType::I64, &[k(2)]);
        let c = t.node(op::ConstantOfShape { value: None }, &[ds]);
        t.run();
        assert_eq!(t.ty(a), "i32[4,3,2]");
        assert_eq!(t.ty(b), "f32[4,3,2]");
        assert_eq!(t.ty(c), "f32[?,?]");

        let mut t = T::new();
        let s = t.ints("s", &[4, -3]);
        t.named("cos", op::ConstantOfShape { value: None }, &[s]);
        assert!(t.run_err().contains("negative size"));
    }
}
