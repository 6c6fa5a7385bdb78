//! Indexing ops: `Gather`, `GatherElements`, `GatherND`, `ScatterND`,
//! `ScatterElements`, `NonZero`, `Trilu` (tensor/defs.cc).
//!
//! - `Gather(data, indices, axis)`: `data[..axis] + indices.shape + data[axis+1..]`.
//! - `GatherElements`: the indices' shape (same rank as data).
//! - `GatherND(batch_dims b)`: `indices[..q-1] + data[b + indices[q-1]..]`.
//! - `Scatter*`: data's type.
//! - `NonZero`: int64 `[rank, ?]`.
//! - `Trilu`: input's type (at least 2-D).

use super::ctx::{Ctx, Out, ty};
use crate::dim::{Dim, Shape};
use crate::dtype::DType;

pub(crate) fn gather(cx: &Ctx, axis: i64) -> Out {
    let data = cx.req(0, "data")?;
    let idx = cx.req(1, "indices")?;
    let shape = match (&data.shape, &idx.shape) {
        (Some(d), i) => {
            if d.rank() == 0 {
                return Err(cx.err("data is a scalar; Gather needs at least 1-D data"));
            }
            let a = cx.axis(axis, d.rank(), "axis")?;
            i.as_ref().map(|i| {
                let mut out = d.0[..a].to_vec();
                out.extend(i.0.iter().cloned());
                out.extend(d.0[a + 1..].iter().cloned());
                Shape(out)
            })
        }
        (None, _) => None,
    };
    Ok(vec![ty(data.dtype, shape)])
}

pub(crate) fn gather_elements(cx: &Ctx, axis: i64) -> Out {
    let data = cx.req(0, "data")?;
    let idx = cx.req(1, "indices")?;
    if let (Some(d), Some(i)) = (&data.shape, &idx.shape) {
        if d.rank() != i.rank() {
            return Err(cx.err(format!(
                "indices have shape {i} but data has shape {d} (ranks differ)"
            )));
        }
        cx.axis(axis, d.rank(), "axis")?;
    }
    Ok(vec![ty(data.dtype, idx.shape.clone())])
}

pub(crate) fn gather_nd(cx: &Ctx, batch_dims: i64) -> Out {
    let data = cx.req(0, "data")?;
    let idx = cx.req(1, "indices")?;
    let (Some(d), Some(i)) = (&data.shape, &idx.shape) else {
        return Ok(vec![ty(data.dtype, None)]);
    };
    let (r, q) = (d.rank(), i.rank());
    if r == 0 || q == 0 {
        return Err(cx.err(format!(
            "data {d} and indices {i} must both be at least 1-D"
        )));
    }
    let b = usize::try_from(batch_dims)
        .ok()
        .filter(|&b| b < q.min(r))
        .ok_or_else(|| {
            cx.err(format!(
                "batch_dims {batch_dims} must be in [0, {}) for data {d} and indices {i}",
                q.min(r)
            ))
        })?;
    let Dim::Known(last) = i.0[q - 1] else {
        return Ok(vec![ty(data.dtype, None)]);
    };
    let last = usize::try_from(last).unwrap_or(usize::MAX);
    if b.saturating_add(last) > r {
        return Err(cx.err(format!(
            "indices {i} index {last} dims after {b} batch dims of data {d}"
        )));
    }
    let mut out = i.0[..q - 1].to_vec();
    out.extend(d.0[b + last..].iter().cloned());
    Ok(vec![ty(data.dtype, Some(Shape(out)))])
}

pub(crate) fn scatter_nd(cx: &Ctx) -> Out {
    let data = cx.req(0, "data")?;
    cx.req(1, "indices")?;
    cx.req(2, "updates")?;
    Ok(vec![data.clone()])
}

pub(crate) fn scatter_elements(cx: &Ctx, axis: i64) -> Out {
    let data = cx.req(0, "data")?;
    cx.req(1, "indices")?;
    cx.req(2, "updates")?;
    if let Some(d) = &data.shape {
        cx.axis(axis, d.rank(), "axis")?;
    }
    Ok(vec![data.clone()])
}

pub(crate) fn non_zero(cx: &Ctx) -> Out {
    let x = cx.req(0, "X")?;
    let r = x
        .shape
        .as_ref()
        .map_or(Dim::Unknown, |s| Dim::Known(s.rank() as u64));
    Ok(vec![ty(
        Some(DType::I64),
        Some(Shape(vec![r, Dim::Unknown])),
    )])
}

pub(crate) fn trilu(cx: &Ctx) -> Out {
    let x = cx.req(0, "input")?;
    if let Some(s) = &x.shape
        && s.rank() < 2
    {
        return Err(cx.err(format!("input has shape {s}; Trilu needs at least 2-D")));
    }
    Ok(vec![x.clone()])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn gathers() {
        // Gather spec: data [3,2], indices [2,2], axis 0 -> [2,2,2]; axis 1 with data [3,3]
        // and indices [1,2] -> [3,1,2]; a scalar index drops the axis.
        let mut t = T::new();
        let d = t.input("d", DType::F32, &[k(3), k(2)]);
        let i = t.input("i", DType::I64, &[k(2), k(2)]);
        let a = t.node(op::Gather { axis: 0 }, &[d, i]);
        let d2 = t.input("d2", DType::F32, &[n(), k(3)]);
        let i2 = t.input("i2", DType::I64, &[k(1), k(2)]);
        let b = t.node(op::Gather { axis: 1 }, &[d2, i2]);
        let s = t.scalar_i64("s", 0);
        let c = t.node(op::Gather { axis: -1 }, &[d2, s]);
        // GatherElements spec: output has the indices' shape.
        let ge = t.node(op::GatherElements { axis: 1 }, &[d, i]);
        // GatherND spec example 3: data [2,2,2], indices [2,1,2] -> [2,1,2]; batch_dims 1
        // example: data [2,2,2], indices [2,1] -> [2,2].
        let dn = t.input("dn", DType::F32, &[k(2), k(2), k(2)]);
        let in3 = t.input("in3", DType::I64, &[k(2), k(1), k(2)]);
        let g3 = t.node(op::GatherND { batch_dims: 0 }, &[dn, in3]);
        let in5 = t.input("in5", DType::I64, &[k(2), k(1)]);
        let g5 = t.node(op::GatherND { batch_dims: 1 }, &[dn, in5]);
        let nz = t.node(op::NonZero {}, &[dn]);
        let tr = t.node(op::Trilu::default(), &[dn]);
        let upd = t.input("upd", DType::F32, &[k(2), k(1), k(2)]);
        let sc = t.node(op::ScatterND::default(), &[dn, in3, upd]);
        t.run();
        assert_eq!(t.ty(a), "f32[2,2,2]");
        assert_eq!(t.ty(b), "f32[N,1,2]");
        assert_eq!(t.ty(c), "f32[N]");
        assert_eq!(t.ty(ge), "f32[2,2]");
        assert_eq!(t.ty(g3), "f32[2,1,2]");
        assert_eq!(t.ty(g5), "f32[2,2]");
        assert_eq!(t.ty(nz), "i64[3,?]");
        assert_eq!(t.ty(tr), "f32[2,2,2]");
        assert_eq!(t.ty(sc), "f32[2,2,2]");
    }

    #[test]
    fn gather_errors() {
        let mut t = T::new();
        let d = t.input("d", DType::F32, &[k(3), k(2)]);
        let i = t.input("i", DType::I64, &[k(2)]);
        t.named("g", op::Gather { axis: 2 }, &[d, i]);
        assert_eq!(
            t.run_err(),
            "Gather node 'g': axis 2 is out of range for an input of rank 2"
        );
        let mut t = T::new();
        let d = t.input("d", DType::F32, &[]);
        let i = t.input("i", DType::I64, &[k(2)]);
        t.named("g", op::Gather { axis: 0 }, &[d, i]);
        assert!(t.run_err().contains("data is a scalar"));
        let mut t = T::new();
        let d = t.input("d", DType::F32, &[k(2), k(2)]);
        let i = t.input("i", DType::I64, &[k(1), k(3)]);
        t.named("g", op::GatherND::default(), &[d, i]);
        assert!(t.run_err().contains("index 3 dims"));
    }
}
