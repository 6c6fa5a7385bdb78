//! Reductions: `Reduce*`, `ArgMax`/`ArgMin`, `TopK`, `CumSum`
//! (`onnx/defs/reduction/utils.cc`, `ReduceOpGenerator`; math/defs.cc for TopK).
//!
//! - `Reduce*`: the reduced axes become 1 (`keepdims=1`) or disappear. The axes
//!   come from the attribute (the IR keeps the opset 13/18 axes input as a field
//!   when it is constant), else from a tracked axes input; no axes reduce
//!   everything, unless `noop_with_empty_axes` makes the op an identity. Unknown
//!   axes keep the rank (with unknown dims) when `keepdims=1`.
//! - `ArgMax`/`ArgMin`: one axis, int64 output.
//! - `TopK(X, K)`: Values and Indices (int64) are X's shape with `axis` set to K.
//! - `CumSum`: output = input.

use super::ctx::{Ctx, Out, ty};
use super::shape_value::SymInt;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;

pub(crate) fn reduce(cx: &Ctx, axes: &Option<Vec<i64>>, keepdims: i64, noop: i64) -> Out {
    let x = cx.req(0, "data")?;
    let axes: Option<Vec<i64>> = match axes {
        Some(a) => Some(a.clone()),
        None if cx.has(1) => cx.ints(1),
        None => Some(vec![]),
    };
    let keep = keepdims != 0;
    let Some(s) = &x.shape else {
        return Ok(vec![ty(x.dtype, None)]);
    };
    let Some(axes) = axes else {
        // Axes computed at run time: only the rank is known, and only with keepdims.
        let shape = keep.then(|| Shape(vec![Dim::Unknown; s.rank()]));
        return Ok(vec![ty(x.dtype, shape)]);
    };
    if axes.is_empty() && noop != 0 {
        return Ok(vec![x.clone()]);
    }
    let axes = if axes.is_empty() {
        (0..s.rank()).collect()
    } else {
        cx.axes(&axes, s.rank(), "axes")?
    };
    let mut d = Vec::with_capacity(s.rank());
    for (i, dim) in s.0.iter().enumerate() {
        if !axes.contains(&i) {
            d.push(dim.clone());
        } else if keep {
            d.push(Dim::Known(1));
        }
    }
    Ok(vec![ty(x.dtype, Some(Shape(d)))])
}

pub(crate) fn arg_reduce(cx: &Ctx, axis: i64, keepdims: i64) -> Out {
    let x = cx.req(0, "data")?;
    let shape = match &x.shape {
        Some(s) => {
            let a = cx.axis(axis, s.rank(), "axis")?;
            let mut d = s.0.clone();
            if keepdims != 0 {
                d[a] = Dim::Known(1);
            } else {
                d.remove(a);
            }
            Some(Shape(d))
        }
        None => None,
    };
    Ok(vec![ty(Some(DType::I64), shape)])
}

pub(crate) fn top_k(cx: &Ctx, axis: i64) -> Out {
    let x = cx.req(0, "X")?;
    cx.req(1, "K")?;
    let shape = match &x.shape {
        Some(s) => {
            let a = cx.axis(axis, s.rank(), "axis")?;
            let kd = match cx.value(1).map(|v| v.elems) {
                Some(v) if v.len() == 1 => match &v[0] {
                    SymInt::Int(k) if *k < 0 => {
                        return Err(cx.err(format!("K = {k} must not be negative")));
                    }
                    e => e.to_dim().unwrap_or(Dim::Unknown),
                },
                Some(v) => {
                    return Err(cx.err(format!("K has {} elements; it must have one", v.len())));
                }
                None => Dim::Unknown,
            };
            if let (Dim::Known(kv), Dim::Known(dv)) = (&kd, &s.0[a])
                && kv > dv
            {
                return Err(cx.err(format!("K = {kv} is larger than axis {a} of the input {s}")));
            }
            let mut d = s.0.clone();
            d[a] = kd;
            Some(Shape(d))
        }
        None => None,
    };
    Ok(vec![
        ty(x.dtype, shape.clone()),
        ty(Some(DType::I64), shape),
    ])
}

pub(crate) fn cum_sum(cx: &Ctx) -> Out {
    let x = cx.req(0, "x")?;
    cx.req(1, "axis")?;
    if let (Some(s), Some(a)) = (&x.shape, cx.ints(1)) {
        match a.as_slice() {
            [a] => {
                cx.axis(*a, s.rank(), "axis")?;
            }
            _ => return Err(cx.err("axis must have one element")),
        }
    }
    Ok(vec![x.clone()])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn reduce_axes_keepdims_noop() {
        // ReduceMean-18 spec: data [3,2,2], axes [1], keepdims 1 -> [3,1,2]; keepdims 0 ->
        // [3,2]; no axes -> reduce all ([1,1,1] / []); noop_with_empty_axes=1 -> identity.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(2), k(2)]);
        let a = t.node(
            op::ReduceMean {
                axes: Some(vec![1]),
                ..Default::default()
            },
            &[x],
        );
        let b = t.node(
            op::ReduceSum {
                axes: Some(vec![-2]),
                keepdims: 0,
                ..Default::default()
            },
            &[x],
        );
        let c = t.node(op::ReduceMax::default(), &[x]);
        let d = t.node(
            op::ReduceMin {
                keepdims: 0,
                ..Default::default()
            },
            &[x],
        );
        let e = t.node(
            op::ReduceL2 {
                noop_with_empty_axes: 1,
                ..Default::default()
            },
            &[x],
        );
        // Axes as a constant input (opset 18 form kept as an input).
        let ax = t.ints("ax", &[0, 2]);
        let f = t.node(op::ReduceProd::default(), &[x, ax]);
        // Axes computed at run time.
        let dyn_ax = t.input("dyn", DType::I64, &[k(1)]);
        let g = t.node(op::ReduceSumSquare::default(), &[x, dyn_ax]);
        let h = t.node(
            op::ReduceLogSumExp {
                keepdims: 0,
                ..Default::default()
            },
            &[x, dyn_ax],
        );
        t.run();
        assert_eq!(t.ty(a), "f32[3,1,2]");
        assert_eq!(t.ty(b), "f32[3,2]");
        assert_eq!(t.ty(c), "f32[1,1,1]");
        assert_eq!(t.ty(d), "f32[]");
        assert_eq!(t.ty(e), "f32[3,2,2]");
        assert_eq!(t.ty(f), "f32[1,2,1]");
        assert_eq!(t.ty(g), "f32[?,?,?]");
        assert_eq!(t.ty(h), "f32[*]");
    }

    #[test]
    fn reduce_bad_axes() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(2)]);
        t.named(
            "r",
            op::ReduceL1 {
                axes: Some(vec![2]),
                ..Default::default()
            },
            &[x],
        );
        assert_eq!(
            t.run_err(),
            "ReduceL1 node 'r': axes 2 is out of range for an input of rank 2"
        );
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(2)]);
        t.named(
            "r",
            op::ReduceL1 {
                axes: Some(vec![1, -1]),
                ..Default::default()
            },
            &[x],
        );
        assert!(t.run_err().contains("name axis 1 twice"));
    }

    #[test]
    fn arg_and_topk() {
        // ArgMax spec: data [2,2], axis 1, keepdims 1 -> [2,1] int64.
        // TopK spec example: X [3,4], K 3, axis 1 -> Values/Indices [3,3].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(4)]);
        let a = t.node(
            op::ArgMax {
                axis: 1,
                ..Default::default()
            },
            &[x],
        );
        let b = t.node(
            op::ArgMin {
                axis: 0,
                keepdims: 0,
                ..Default::default()
            },
            &[x],
        );
        let kk = t.ints("k", &[3]);
        let tk = t.multi(op::TopK::default(), &[Some(x), Some(kk)], 2);
        let cs_axis = t.scalar_i64("axis", 1);
        let cs = t.node(op::CumSum::default(), &[x, cs_axis]);
        t.run();
        assert_eq!(t.ty(a), "i64[N,1]");
        assert_eq!(t.ty(b), "i64[4]");
        assert_eq!(t.ty(tk[0]), "f32[N,3]");
        assert_eq!(t.ty(tk[1]), "i64[N,3]");
        assert_eq!(t.ty(cs), "f32[N,4]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(4)]);
        let kk = t.ints("k", &[5]);
        t.multi(op::TopK::default(), &[Some(x), Some(kk)], 2);
        assert!(t.run_err().contains("K = 5 is larger than axis 1"));
    }
}
