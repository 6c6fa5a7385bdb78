//! Ops that cut and join along axes: `Concat`, `Split`, `Slice`, `Pad`
//! (tensor/defs.cc).
//!
//! - `Concat(axis)`: equal ranks, equal dims off the axis, the axis dims add up.
//! - `Split(axis, split?)`: the given sizes (attribute, or the opset 13+ input),
//!   which must add up to the axis; without them, equal parts, one per output
//!   (opset 18 allows a smaller last part: `ceil(d / n)` each).
//! - `Slice(data, starts, ends, axes?, steps?)`: per axis, negative starts/ends
//!   count from the end, then they are clamped to `[0, d]` (`[0, d-1]` and
//!   `[-1, d-1]` for negative steps), and the size is
//!   `max(0, ceil((end - start) / step))`.
//! - `Pad(data, pads, constant_value?, axes?)`: `d + pad_begin + pad_end`
//!   (negative pads crop).

use super::InferError;
use super::ctx::{Ctx, Out, ty};
use super::dims::{compatible, sum, unify};
use super::shape_value::SymInt;
use crate::dim::{Dim, Shape};

pub(crate) fn concat(cx: &Ctx, axis: i64) -> Out {
    let n = cx.n_inputs();
    if n == 0 {
        return Err(cx.err("has no inputs"));
    }
    let mut dtype = None;
    let mut known: Vec<(usize, &Shape)> = Vec::new();
    let mut all_ranked = true;
    for i in 0..n {
        let t = cx.req(i, "inputs")?;
        dtype = dtype.or(t.dtype);
        match &t.shape {
            Some(s) => known.push((i, s)),
            None => all_ranked = false,
        }
    }
    let Some(&(_, first)) = known.first() else {
        return Ok(vec![ty(dtype, None)]);
    };
    let r = first.rank();
    let a = cx.axis(axis, r, "axis")?;
    let mut out = first.0.clone();
    for &(i, s) in &known[1..] {
        if s.rank() != r {
            return Err(cx.err(format!(
                "input {i} has shape {s} but input {} has shape {first} (ranks differ)",
                known[0].0
            )));
        }
        for (j, d) in s.0.iter().enumerate() {
            if j == a {
                continue;
            }
            if !compatible(&out[j], d) {
                return Err(cx.err(format!(
                    "input {i} has shape {s}, which differs from {first} on axis {j}"
                )));
            }
            out[j] = unify(&out[j], d);
        }
    }
    out[a] = if all_ranked {
        let along: Vec<Dim> = known.iter().map(|(_, s)| s.0[a].clone()).collect();
        sum(&along)
    } else {
        Dim::Unknown
    };
    Ok(vec![ty(dtype, Some(Shape(out)))])
}

pub(crate) fn split(cx: &Ctx, axis: i64, split: &Option<Vec<i64>>) -> Out {
    let x = cx.req(0, "input")?;
    let n = cx.n_outputs();
    let sizes: Option<Option<Vec<i64>>> = match split {
        Some(s) => Some(Some(s.clone())),
        None if cx.has(1) => Some(cx.ints(1)),
        None => None,
    };
    let Some(s) = &x.shape else {
        return Ok(vec![ty(x.dtype, None); n]);
    };
    let a = cx.axis(axis, s.rank(), "axis")?;
    let d = &s.0[a];
    let parts: Vec<Dim> = match sizes {
        Some(Some(sz)) => {
            if sz.len() != n {
                return Err(cx.err(format!(
                    "split {sz:?} has {} sizes for {n} outputs",
                    sz.len()
                )));
            }
            if sz.iter().any(|&v| v < 0) {
                return Err(cx.err(format!("split {sz:?} has a negative size")));
            }
            let total: i128 = sz.iter().map(|&v| v as i128).sum();
            if let Dim::Known(v) = d
                && total != *v as i128
            {
                return Err(cx.err(format!(
                    "split {sz:?} adds up to {total} but axis {a} of {s} is {v}"
                )));
            }
            sz.iter().map(|&v| Dim::Known(v as u64)).collect()
        }
        Some(None) => vec![Dim::Unknown; n],
        None => match d {
            _ if n == 1 => vec![d.clone()],
            Dim::Known(v) => {
                let v = *v;
                let nn = n as u64;
                if v % nn == 0 {
                    vec![Dim::Known(v / nn); n]
                } else if cx.opset >= 18 {
                    // Opset 18 `num_outputs`: ceil(v / n) per part, the last one smaller.
                    let chunk = v.div_ceil(nn);
                    let last = v
                        .checked_sub(chunk * (nn - 1))
                        .filter(|&l| l > 0)
                        .ok_or_else(|| {
                            cx.err(format!("cannot split axis {a} of {s} ({v}) into {n} parts"))
                        })?;
                    let mut p = vec![Dim::Known(chunk); n - 1];
                    p.push(Dim::Known(last));
                    p
                } else {
                    return Err(cx.err(format!(
                        "cannot split axis {a} of {s} ({v}) into {n} equal parts"
                    )));
                }
            }
            _ => vec![Dim::Unknown; n],
        },
    };
    Ok(parts
        .into_iter()
        .map(|p| {
            let mut dims = s.0.clone();
            dims[a] = p;
            ty(x.dtype, Some(Shape(dims)))
        })
        .collect())
}

/// Clamped `(start, end)` of a slice over a dim of size `d` (the Slice spec).
fn clamp_slice(d: i64, start: i64, end: i64, step: i64) -> (i128, i128) {
    let (d, mut s, mut e) = (d.max(0) as i128, start as i128, end as i128);
    if s < 0 {
        s += d;
    }
    if e < 0 {
        e += d;
    }
    if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, (d - 1).max(0)), e.clamp(-1, d - 1))
    }
}

/// Number of elements a slice takes from a dim of size `d`.
fn slice_len(d: i64, start: i64, end: i64, step: i64) -> u64 {
    if d <= 0 {
        return 0;
    }
    let (s, e) = clamp_slice(d, start, end, step);
    let step = step as i128;
    let n = if step > 0 {
        (e - s + step - 1).div_euclid(step)
    } else {
        (s - e + (-step) - 1).div_euclid(-step)
    };
    n.max(0) as u64
}

/// The indices a 1-D slice selects from `len` elements (for tracked shape values).
pub(crate) fn slice_indices(len: i64, start: i64, end: i64, step: i64) -> Option<Vec<usize>> {
    if step == 0 {
        return None;
    }
    let (s, _) = clamp_slice(len, start, end, step);
    let n = slice_len(len, start, end, step);
    Some(
        (0..n as i128)
            .map(|i| (s + i * step as i128) as usize)
            .collect(),
    )
}

/// Whether an end index stands for "to the end" of any dim (`INT_MAX`-like sentinels).
fn is_open_end(e: i64) -> bool {
    e >= i32::MAX as i64
}

pub(crate) fn slice(cx: &Ctx) -> Out {
    let x = cx.req(0, "data")?;
    cx.req(1, "starts")?;
    cx.req(2, "ends")?;
    let Some(s) = &x.shape else {
        return Ok(vec![ty(x.dtype, None)]);
    };
    let r = s.rank();
    let starts = cx.value(1).map(|v| v.elems);
    let ends = cx.value(2).map(|v| v.elems);
    let axes: Option<Vec<i64>> = if cx.has(3) { cx.ints(3) } else { None };
    let steps: Option<Vec<i64>> = if cx.has(4) { cx.ints(4) } else { None };
    // Any operand computed at run time: the sliced axes (all, if axes are unknown) are unknown.
    let unknown_axes = |cx: &Ctx| -> Result<Vec<Dim>, InferError> {
        let mut d = s.0.clone();
        match (&axes, cx.has(3)) {
            (Some(a), _) => {
                for i in cx.axes(a, r, "axes")? {
                    d[i] = Dim::Unknown;
                }
            }
            (None, true) => d = vec![Dim::Unknown; r],
            (None, false) => {
                let n = starts.as_ref().or(ends.as_ref()).map_or(r, Vec::len).min(r);
                for x in &mut d[..n] {
                    *x = Dim::Unknown;
                }
            }
        }
        Ok(d)
    };
    let (Some(starts), Some(ends)) = (&starts, &ends) else {
        return Ok(vec![ty(x.dtype, Some(Shape(unknown_axes(cx)?)))]);
    };
    if (cx.has(3) && axes.is_none()) || (cx.has(4) && steps.is_none()) {
        return Ok(vec![ty(x.dtype, Some(Shape(unknown_axes(cx)?)))]);
    }
    let n = starts.len();
    if ends.len() != n {
        return Err(cx.err(format!("starts has {n} values but ends has {}", ends.len())));
    }
    let axes = match axes {
        Some(a) if a.len() != n => {
            return Err(cx.err(format!("axes has {} values for {n} starts", a.len())));
        }
        Some(a) => cx.axes(&a, r, "axes")?,
        None if n > r => {
            return Err(cx.err(format!("{n} starts for an input of rank {r}")));
        }
        None => (0..n).collect(),
    };
    let steps = match steps {
        Some(st) if st.len() != n => {
            return Err(cx.err(format!("steps has {} values for {n} starts", st.len())));
        }
        Some(st) => st,
        None => vec![1; n],
    };
    let mut out = s.0.clone();
    for i in 0..n {
        let (a, step) = (axes[i], steps[i]);
        if step == 0 {
            return Err(cx.err("steps must not be 0"));
        }
        let d = &s.0[a];
        out[a] = match (d, &starts[i], &ends[i]) {
            (Dim::Known(v), SymInt::Int(st), SymInt::Int(en)) => {
                Dim::Known(slice_len(*v as i64, *st, *en, step))
            }
            // Whole-axis slices keep a symbolic dim: [0:INT_MAX], [0:d] where d is the same
            // symbol, and the reversal [-1:INT_MIN:-1].
            (d, SymInt::Int(0), SymInt::Int(e)) if step == 1 && is_open_end(*e) => d.clone(),
            (Dim::Sym(x), SymInt::Int(0), SymInt::Sym(y)) if step == 1 && x == y => d.clone(),
            (d, SymInt::Int(-1), SymInt::Int(e)) if step == -1 && *e <= i32::MIN as i64 => {
                d.clone()
            }
            _ => Dim::Unknown,
        };
    }
    Ok(vec![ty(x.dtype, Some(Shape(out)))])
}

pub(crate) fn pad(cx: &Ctx) -> Out {
    let x = cx.req(0, "data")?;
    cx.req(1, "pads")?;
    let Some(s) = &x.shape else {
        return Ok(vec![ty(x.dtype, None)]);
    };
    let r = s.rank();
    let axes: Option<Vec<usize>> = if cx.has(3) {
        match cx.ints(3) {
            Some(a) => Some(cx.axes(&a, r, "axes")?),
            None => return Ok(vec![ty(x.dtype, Some(Shape(vec![Dim::Unknown; r])))]),
        }
    } else {
        None
    };
    let axes = axes.unwrap_or_else(|| (0..r).collect());
    let Some(pads) = cx.value(1).map(|v| v.elems) else {
        let mut d = s.0.clone();
        for &a in &axes {
            d[a] = Dim::Unknown;
        }
        return Ok(vec![ty(x.dtype, Some(Shape(d)))]);
    };
    let n = axes.len();
    if pads.len() != 2 * n {
        return Err(cx.err(format!(
            "pads has {} values for {n} axes (needs {})",
            pads.len(),
            2 * n
        )));
    }
    let mut out = s.0.clone();
    for (i, &a) in axes.iter().enumerate() {
        out[a] = match (&s.0[a], &pads[i], &pads[i + n]) {
            (Dim::Known(v), SymInt::Int(b), SymInt::Int(e)) => {
                let o = (*v as i128) + (*b as i128) + (*e as i128);
                if o < 0 {
                    return Err(cx.err(format!(
                        "pads {b} and {e} on axis {a} of {s} leave a negative size"
                    )));
                }
                Dim::Known(o as u64)
            }
            (d, SymInt::Int(0), SymInt::Int(0)) => d.clone(),
            _ => Dim::Unknown,
        };
    }
    Ok(vec![ty(x.dtype, Some(Shape(out)))])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::slice_len;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn concat_shapes() {
        // Concat spec: equal dims off the axis, the axis adds up.
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[n(), k(96), sym("H"), sym("W")]);
        let b = t.input("b", DType::F32, &[n(), k(32), sym("H"), sym("W")]);
        let c = t.node(op::Concat { axis: 1 }, &[a, b]);
        let d = t.node(op::Concat { axis: 0 }, &[a, a]);
        let e = t.input("e", DType::F32, &[k(1), k(0), k(2)]);
        let f = t.input("f", DType::F32, &[k(1), k(3), k(2)]);
        let g = t.node(op::Concat { axis: -2 }, &[e, f]);
        t.run();
        assert_eq!(t.ty(c), "f32[N,128,H,W]");
        assert_eq!(t.ty(d), "f32[?,96,H,W]");
        assert_eq!(t.ty(g), "f32[1,3,2]");

        let mut t = T::new();
        let a = t.input("a", DType::F32, &[k(2), k(3)]);
        let b = t.input("b", DType::F32, &[k(4), k(5)]);
        t.named("cat", op::Concat { axis: 0 }, &[a, b]);
        assert!(
            t.run_err()
                .contains("input 1 has shape [4,5], which differs from [2,3] on axis 1")
        );
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[k(2), k(3)]);
        let b = t.input("b", DType::F32, &[k(2)]);
        t.named("cat", op::Concat { axis: 0 }, &[a, b]);
        assert!(t.run_err().contains("ranks differ"));
    }

    #[test]
    fn split_shapes() {
        // Split spec: [6] split [2,4] -> [2],[4]; equal split into 3 -> [2],[2],[2];
        // opset 18 num_outputs 4 on 7 -> ceil(7/4) = 2: [2],[2],[2],[1].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(6)]);
        let a = t.multi(
            op::Split {
                axis: 1,
                split: Some(vec![2, 4]),
            },
            &[Some(x)],
            2,
        );
        let b = t.multi(
            op::Split {
                axis: 1,
                split: None,
            },
            &[Some(x)],
            3,
        );
        let sz = t.ints("sz", &[1, 5]);
        let c = t.multi(
            op::Split {
                axis: -1,
                split: None,
            },
            &[Some(x), Some(sz)],
            2,
        );
        let y = t.input("y", DType::F32, &[k(7)]);
        let d = t.multi(op::Split::default(), &[Some(y)], 4);
        t.run();
        assert_eq!(
            (t.ty(a[0]), t.ty(a[1])),
            ("f32[N,2]".into(), "f32[N,4]".into())
        );
        assert!(b.iter().all(|&v| t.ty(v) == "f32[N,2]"));
        assert_eq!(
            (t.ty(c[0]), t.ty(c[1])),
            ("f32[N,1]".into(), "f32[N,5]".into())
        );
        let dd: Vec<String> = d.iter().map(|&v| t.ty(v)).collect();
        assert_eq!(dd, ["f32[2]", "f32[2]", "f32[2]", "f32[1]"]);

        let mut t = T::with_opset(13);
        let y = t.input("y", DType::F32, &[k(7)]);
        t.multi(op::Split::default(), &[Some(y)], 2);
        assert!(
            t.run_err()
                .contains("cannot split axis 0 of [7] (7) into 2 equal parts")
        );
        let mut t = T::new();
        let y = t.input("y", DType::F32, &[k(7)]);
        t.multi(
            op::Split {
                axis: 0,
                split: Some(vec![3, 3]),
            },
            &[Some(y)],
            2,
        );
        assert!(t.run_err().contains("adds up to 6 but axis 0 of [7] is 7"));
    }

    #[test]
    fn slice_arithmetic_matches_numpy() {
        // numpy: len(range(10)[1:-1]) = 8, [-3:] = 3, [::-1] = 10, [8:2:-2] = 3,
        // [5:100] = 5, [-100:3] = 3, [3:1] = 0, [-1:-11:-1] = 10, [0:INT64_MAX] = 10.
        assert_eq!(slice_len(10, 1, -1, 1), 8);
        assert_eq!(slice_len(10, -3, i64::MAX, 1), 3);
        assert_eq!(slice_len(10, -1, i64::MIN, -1), 10);
        assert_eq!(slice_len(10, 8, 2, -2), 3);
        assert_eq!(slice_len(10, 5, 100, 1), 5);
        assert_eq!(slice_len(10, -100, 3, 1), 3);
        assert_eq!(slice_len(10, 3, 1, 1), 0);
        assert_eq!(slice_len(10, -1, -11, -1), 10);
        assert_eq!(slice_len(10, 0, i64::MAX, 1), 10);
        assert_eq!(slice_len(0, 0, 5, 1), 0);
        assert_eq!(slice_len(0, -1, i64::MIN, -1), 0);
    }

    #[test]
    fn slice_shapes() {
        // Slice spec example 1: data [2,4], axes [0,1], starts [1,0], ends [2,3], steps [1,2]
        // -> [1,2]. Example 2: starts [0,1], ends [-1,1000] -> [1,3].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(4)]);
        let (s1, e1, a1, st1) = (
            t.ints("s1", &[1, 0]),
            t.ints("e1", &[2, 3]),
            t.ints("a1", &[0, 1]),
            t.ints("st1", &[1, 2]),
        );
        let y1 = t.node(op::Slice {}, &[x, s1, e1, a1, st1]);
        let (s2, e2) = (t.ints("s2", &[0, 1]), t.ints("e2", &[-1, 1000]));
        let y2 = t.node(op::Slice {}, &[x, s2, e2]);
        // Symbolic dims: a whole-axis slice keeps them, a partial one cannot name its size.
        let xs = t.input("xs", DType::F32, &[n(), k(3), sym("H"), sym("W")]);
        let (s3, e3, a3) = (
            t.ints("s3", &[0, 1]),
            t.ints("e3", &[i64::MAX, 3]),
            t.ints("a3", &[2, 3]),
        );
        let y3 = t.node(op::Slice {}, &[xs, s3, e3, a3]);
        let a4 = t.ints("a4", &[1, 2]);
        let y4 = t.node(op::Slice {}, &[xs, s3, e3, a4]);
        // Run-time starts: the sliced axes are unknown.
        let ds = t.input("ds", DType::I64, &[k(1)]);
        let e5 = t.ints("e5", &[2]);
        let a5 = t.ints("a5", &[1]);
        let y5 = t.node(op::Slice {}, &[xs, ds, e5, a5]);
        t.run();
        assert_eq!(t.ty(y1), "f32[1,2]");
        assert_eq!(t.ty(y2), "f32[1,3]");
        assert_eq!(t.ty(y3), "f32[N,3,H,?]");
        assert_eq!(t.ty(y4), "f32[N,3,?,W]");
        assert_eq!(t.ty(y5), "f32[N,?,H,W]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(4)]);
        let (s, e, a, st) = (
            t.ints("s", &[0]),
            t.ints("e", &[1]),
            t.ints("a", &[0]),
            t.ints("st", &[0]),
        );
        t.named("sl", op::Slice {}, &[x, s, e, a, st]);
        assert_eq!(t.run_err(), "Slice node 'sl': steps must not be 0");
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(4)]);
        let (s, e, a) = (t.ints("s", &[0]), t.ints("e", &[1]), t.ints("a", &[-3]));
        t.named("sl", op::Slice {}, &[x, s, e, a]);
        assert!(
            t.run_err()
                .contains("axes -3 is out of range for an input of rank 2")
        );
    }

    #[test]
    fn pad_shapes() {
        // Pad spec: [3,2] with pads [0,2,0,0] -> [3,4]; negative pads crop; axes (opset 18).
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(2)]);
        let p = t.ints("p", &[0, 2, 0, 0]);
        let a = t.node(op::Pad::default(), &[x, p]);
        let p2 = t.ints("p2", &[-1, 0, 0, 1]);
        let b = t.node(op::Pad::default(), &[x, p2]);
        let xs = t.input("xs", DType::F32, &[n(), k(3), sym("H"), sym("W")]);
        let p3 = t.ints("p3", &[1, 1, 1, 1]);
        let ax = t.ints("ax", &[1, 3]);
        let c = t.multi(op::Pad::default(), &[Some(xs), Some(p3), None, Some(ax)], 1)[0];
        t.run();
        assert_eq!(t.ty(a), "f32[3,4]");
        assert_eq!(t.ty(b), "f32[2,3]");
        assert_eq!(t.ty(c), "f32[N,5,H,?]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(2)]);
        let p = t.ints("p", &[0, 2]);
        t.named("pad", op::Pad::default(), &[x, p]);
        assert!(
            t.run_err()
                .contains("pads has 2 values for 2 axes (needs 4)")
        );
    }
}
