//! Shape-changing ops that keep the data: `Reshape`, `Flatten`, `Transpose`,
//! `Squeeze`, `Unsqueeze`, `Expand`, `Tile` (tensor/defs.cc).
//!
//! - `Reshape(data, shape)`: `0` copies the input dim at the same index (unless
//!   `allowzero`), `-1` is what remains of the element count. The target comes
//!   from a constant or a tracked shape computation and may hold symbols; the
//!   `-1` cancels symbols against the input's (`[N,C,H,W] -> [0,-1]` with C, H, W
//!   known gives `[N, C*H*W]`).
//! - `Flatten(axis)`: `[prod(d[..axis]), prod(d[axis..])]`, axis in `[-r, r]`.
//! - `Transpose(perm)`: permuted dims; no perm reverses them.
//! - `Squeeze(axes?)`: removes the given axes (which must be 1), or every 1 when
//!   no axes are given (then every dim must be known to decide the rank).
//! - `Unsqueeze(axes)`: inserts 1s at `axes`, normalised against the output rank.
//! - `Expand(input, shape)`: multidirectional broadcast of the input with `shape`.
//! - `Tile(input, repeats)`: `d[i] * repeats[i]`.

use super::InferError;
use super::ctx::{Ctx, Out, ty};
use super::dims::{Product, broadcast, product};
use super::shape_value::SymInt;
use crate::dim::{Dim, Shape};

pub(crate) fn reshape(cx: &Ctx, allowzero: bool) -> Out {
    let data = cx.req(0, "data")?;
    cx.req(1, "shape")?;
    let Some(target) = cx.shape_operand(1) else {
        return Ok(vec![ty(data.dtype, None)]);
    };
    Ok(vec![ty(
        data.dtype,
        Some(reshape_dims(cx, data.shape.as_ref(), &target, allowzero)?),
    )])
}

fn reshape_dims(
    cx: &Ctx,
    input: Option<&Shape>,
    target: &[SymInt],
    allowzero: bool,
) -> Result<Shape, InferError> {
    let show = || {
        let t: Vec<String> = target
            .iter()
            .map(|e| match e {
                SymInt::Int(n) => n.to_string(),
                SymInt::Sym(s) => s.clone(),
                SymInt::Unknown => "?".into(),
            })
            .collect();
        format!("[{}]", t.join(","))
    };
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, e) in target.iter().enumerate() {
        out.push(match e {
            SymInt::Int(0) if !allowzero => match input {
                Some(s) => s.0.get(i).cloned().ok_or_else(|| {
                    cx.err(format!(
                        "shape {} copies dim {i} (0) from an input of rank {}",
                        show(),
                        s.rank()
                    ))
                })?,
                None => Dim::Unknown,
            },
            SymInt::Int(-1) => {
                if infer_at.replace(i).is_some() {
                    return Err(cx.err(format!("shape {} has more than one -1", show())));
                }
                Dim::Unknown
            }
            SymInt::Int(n) if *n < 0 => {
                return Err(cx.err(format!("shape {} has the invalid size {n}", show())));
            }
            e => e.to_dim().unwrap_or(Dim::Unknown),
        });
    }
    if allowzero && infer_at.is_some() && target.contains(&SymInt::Int(0)) {
        return Err(cx.err(format!(
            "shape {} has both 0 and -1, which allowzero=1 forbids",
            show()
        )));
    }
    let total = input.and_then(|s| Product::of(&s.0));
    match infer_at {
        Some(at) => {
            let rest: Vec<Dim> = out
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != at)
                .map(|(_, d)| d.clone())
                .collect();
            if let (Some(total), Some(rest)) = (&total, Product::of(&rest)) {
                match total.div(&rest) {
                    Some(q) => out[at] = q.to_dim(),
                    // Both fully known and not divisible: the model is wrong.
                    None if total.syms.is_empty() && rest.syms.is_empty() => {
                        return Err(cx.err(format!(
                            "cannot reshape {} into {}: {} elements are not a multiple of {}",
                            input.map_or(String::new(), |s| s.to_string()),
                            show(),
                            total.coef,
                            rest.coef
                        )));
                    }
                    None => {}
                }
            }
        }
        None => {
            if let (Some(total), Some(new)) = (&total, Product::of(&out))
                && total.syms.is_empty()
                && new.syms.is_empty()
                && total.coef != new.coef
            {
                return Err(cx.err(format!(
                    "cannot reshape {} ({} elements) into {} ({} elements)",
                    input.map_or(String::new(), |s| s.to_string()),
                    total.coef,
                    Shape(out.clone()),
                    new.coef
                )));
            }
        }
    }
    Ok(Shape(out))
}

pub(crate) fn flatten(cx: &Ctx, axis: i64) -> Out {
    let x = cx.req(0, "input")?;
    let shape = match &x.shape {
        Some(s) => {
            let r = s.rank() as i64;
            let a = if axis < 0 { axis + r } else { axis };
            if !(0..=r).contains(&a) {
                return Err(cx.err(format!(
                    "axis {axis} is out of range for an input of rank {r} (allowed: -{r}..={r})"
                )));
            }
            let a = a as usize;
            Some(Shape(vec![product(&s.0[..a]), product(&s.0[a..])]))
        }
        None => Some(Shape(vec![Dim::Unknown, Dim::Unknown])),
    };
    Ok(vec![ty(x.dtype, shape)])
}

pub(crate) fn transpose(cx: &Ctx, perm: &[i64]) -> Out {
    let x = cx.req(0, "data")?;
    let shape = match &x.shape {
        Some(s) => {
            let r = s.rank();
            let perm: Vec<i64> = if perm.is_empty() {
                (0..r as i64).rev().collect()
            } else {
                perm.to_vec()
            };
            let mut seen = vec![false; r];
            let ok = perm.len() == r
                && perm.iter().all(|&p| {
                    usize::try_from(p)
                        .is_ok_and(|p| p < r && !std::mem::replace(&mut seen[p], true))
                });
            if !ok {
                return Err(cx.err(format!(
                    "perm {perm:?} is not a permutation of the {r} axes of {s}"
                )));
            }
            Some(Shape(
                perm.iter().map(|&p| s.0[p as usize].clone()).collect(),
            ))
        }
        None if !perm.is_empty() => Some(Shape(vec![Dim::Unknown; perm.len()])),
        None => None,
    };
    Ok(vec![ty(x.dtype, shape)])
}

/// Axes from the attribute field, else from input 1. `Ok(None)`: given but not known.
fn axes_operand(cx: &Ctx, field: &Option<Vec<i64>>) -> Option<Option<Vec<i64>>> {
    match field {
        Some(a) => Some(Some(a.clone())),
        None if cx.has(1) => Some(cx.ints(1)),
        None => None,
    }
}

pub(crate) fn squeeze(cx: &Ctx, axes: &Option<Vec<i64>>) -> Out {
    let x = cx.req(0, "data")?;
    let axes = axes_operand(cx, axes);
    let Some(s) = &x.shape else {
        return Ok(vec![ty(x.dtype, None)]);
    };
    let shape = match axes {
        Some(None) => None,
        None => {
            // Remove every 1; with a symbolic or unknown dim the rank is undecided.
            if s.0.iter().all(Dim::is_known) {
                Some(Shape(
                    s.0.iter()
                        .filter(|d| **d != Dim::Known(1))
                        .cloned()
                        .collect(),
                ))
            } else {
                None
            }
        }
        Some(Some(a)) => {
            let a = cx.axes(&a, s.rank(), "axes")?;
            for &i in &a {
                if let Dim::Known(v) = s.0[i]
                    && v != 1
                {
                    return Err(cx.err(format!(
                        "cannot squeeze axis {i} of {s}: its size is {v}, not 1"
                    )));
                }
            }
            Some(Shape(
                s.0.iter()
                    .enumerate()
                    .filter(|(i, _)| !a.contains(i))
                    .map(|(_, d)| d.clone())
                    .collect(),
            ))
        }
    };
    Ok(vec![ty(x.dtype, shape)])
}

pub(crate) fn unsqueeze(cx: &Ctx, axes: &Option<Vec<i64>>) -> Out {
    let x = cx.req(0, "data")?;
    let axes = match axes_operand(cx, axes) {
        None => return Err(cx.err("axes are required")),
        Some(a) => a,
    };
    let (Some(s), Some(a)) = (&x.shape, axes) else {
        return Ok(vec![ty(x.dtype, None)]);
    };
    let r = s.rank() + a.len();
    let a = cx.axes(&a, r, "axes")?;
    let mut src = s.0.iter();
    let d = (0..r)
        .map(|i| {
            if a.contains(&i) {
                Dim::Known(1)
            } else {
                src.next().cloned().unwrap_or(Dim::Unknown)
            }
        })
        .collect();
    Ok(vec![ty(x.dtype, Some(Shape(d)))])
}

pub(crate) fn expand(cx: &Ctx) -> Out {
    let x = cx.req(0, "input")?;
    cx.req(1, "shape")?;
    let target = match cx.shape_operand(1) {
        Some(t) => t,
        None => return Ok(vec![ty(x.dtype, None)]),
    };
    let mut dims = Vec::with_capacity(target.len());
    for e in &target {
        dims.push(
            e.to_dim()
                .ok_or_else(|| cx.err(format!("shape {target:?} has a negative size")))?,
        );
    }
    let shape = match &x.shape {
        Some(s) => Some(broadcast(&[s, &Shape(dims)]).map_err(|m| cx.err(m))?),
        None => None,
    };
    Ok(vec![ty(x.dtype, shape)])
}

pub(crate) fn tile(cx: &Ctx) -> Out {
    let x = cx.req(0, "input")?;
    cx.req(1, "repeats")?;
    let Some(s) = &x.shape else {
        return Ok(vec![ty(x.dtype, None)]);
    };
    let reps = cx.shape_operand(1);
    let shape = match reps {
        Some(r) => {
            if r.len() != s.rank() {
                return Err(cx.err(format!(
                    "repeats has {} values for an input of rank {} ({s})",
                    r.len(),
                    s.rank()
                )));
            }
            let mut d = Vec::with_capacity(r.len());
            for (dim, rep) in s.0.iter().zip(&r) {
                d.push(match rep {
                    SymInt::Int(n) if *n < 0 => {
                        return Err(cx.err(format!("repeats has the negative value {n}")));
                    }
                    SymInt::Int(n) => dim.mul(&Dim::Known(*n as u64)),
                    e if *dim == Dim::Known(1) => e.to_dim().unwrap_or(Dim::Unknown),
                    _ => Dim::Unknown,
                });
            }
            Shape(d)
        }
        None => Shape(vec![Dim::Unknown; s.rank()]),
    };
    Ok(vec![ty(x.dtype, Some(shape))])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn reshape_constant_targets() {
        // Reshape spec and backend tests (test_reshape_*): [2,3,4] with
        // [4,2,3] -> [4,2,3]; [-1] -> [24]; [2,0,4,1] -> [2,3,4,1] (0 copies);
        // [2,-1,2] -> [2,6,2]; allowzero=1 with [3,4,0] on a [0,3,4] input -> [3,4,0].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3), k(4)]);
        let cases = [
            (vec![4, 2, 3], "f32[4,2,3]"),
            (vec![-1], "f32[24]"),
            (vec![2, 0, 4, 1], "f32[2,3,4,1]"),
            (vec![2, -1, 2], "f32[2,6,2]"),
        ];
        let mut outs = Vec::new();
        for (i, (s, want)) in cases.iter().enumerate() {
            let sv = t.ints(&format!("s{i}"), s);
            outs.push((t.node(op::Reshape::default(), &[x, sv]), *want));
        }
        let z = t.input("z", DType::F32, &[k(0), k(3), k(4)]);
        let sz = t.ints("sz", &[3, 4, 0]);
        let yz = t.node(op::Reshape { allowzero: 1 }, &[z, sz]);
        t.run();
        for (y, want) in outs {
            assert_eq!(t.ty(y), want);
        }
        assert_eq!(t.ty(yz), "f32[3,4,0]");
    }

    #[test]
    fn reshape_resolves_symbols() {
        // [N,16,1,W] -> [0,16,-1]: 0 copies N, -1 = N*16*W / (N*16) = W.
        // [N,C=8,H,W] -> [0,-1]: N*8*H*W / N = 8*H*W, not a single symbol -> ?.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(16), k(1), sym("W")]);
        let s = t.ints("s", &[0, 16, -1]);
        let y = t.node(op::Reshape::default(), &[x, s]);
        let x2 = t.input("x2", DType::F32, &[n(), k(8), sym("H"), sym("W")]);
        let s2 = t.ints("s2", &[0, -1]);
        let y2 = t.node(op::Reshape::default(), &[x2, s2]);
        let x3 = t.input("x3", DType::F32, &[n(), k(8), k(2), k(5)]);
        let y3 = t.node(op::Reshape::default(), &[x3, s2]);
        t.run();
        assert_eq!(t.ty(y), "f32[N,16,W]");
        assert_eq!(t.ty(y2), "f32[N,?]");
        assert_eq!(t.ty(y3), "f32[N,80]");
    }

    #[test]
    fn reshape_errors() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3), k(4)]);
        let s = t.ints("s", &[5, -1]);
        t.named("r", op::Reshape::default(), &[x, s]);
        assert_eq!(
            t.run_err(),
            "Reshape node 'r': cannot reshape [2,3,4] into [5,-1]: 24 elements are not a multiple of 5"
        );
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3), k(4)]);
        let s = t.ints("s", &[-1, -1]);
        t.named("r", op::Reshape::default(), &[x, s]);
        assert!(t.run_err().contains("more than one -1"));
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        let s = t.ints("s", &[0, 0, 0]);
        t.named("r", op::Reshape::default(), &[x, s]);
        assert!(
            t.run_err()
                .contains("copies dim 2 (0) from an input of rank 2")
        );
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        let s = t.ints("s", &[7]);
        t.named("r", op::Reshape::default(), &[x, s]);
        assert!(t.run_err().contains("(6 elements) into [7] (7 elements)"));
    }

    #[test]
    fn reshape_with_runtime_target_keeps_rank() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        let s = t.input("s", DType::I64, &[k(3)]);
        let y = t.node(op::Reshape::default(), &[x, s]);
        t.run();
        assert_eq!(t.ty(y), "f32[?,?,?]");
    }

    #[test]
    fn flatten_transpose() {
        // Flatten spec: [2,3,4,5], axis 2 -> [6,20]; axis 0 -> [1,120]; axis -1 -> [24,5].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3), k(4), k(5)]);
        let a = t.node(op::Flatten { axis: 2 }, &[x]);
        let b = t.node(op::Flatten { axis: 0 }, &[x]);
        let c = t.node(op::Flatten { axis: -1 }, &[x]);
        let xs = t.input("xs", DType::F32, &[n(), k(1280), k(1), k(1)]);
        let d = t.node(op::Flatten { axis: 1 }, &[xs]);
        let e = t.node(
            op::Transpose {
                perm: vec![0, 2, 3, 1],
            },
            &[xs],
        );
        let f = t.node(op::Transpose::default(), &[xs]);
        t.run();
        assert_eq!(t.ty(a), "f32[6,20]");
        assert_eq!(t.ty(b), "f32[1,120]");
        assert_eq!(t.ty(c), "f32[24,5]");
        assert_eq!(t.ty(d), "f32[N,1280]");
        assert_eq!(t.ty(e), "f32[N,1,1,1280]");
        assert_eq!(t.ty(f), "f32[1,1,1280,N]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        t.named("tr", op::Transpose { perm: vec![0, 0] }, &[x]);
        assert!(t.run_err().contains("perm [0, 0] is not a permutation"));
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        t.named("fl", op::Flatten { axis: 3 }, &[x]);
        assert!(t.run_err().contains("axis 3 is out of range"));
    }

    #[test]
    fn squeeze_unsqueeze() {
        // Squeeze spec: [1,3,4,5] axes [0] -> [3,4,5]; no axes removes every 1.
        // Unsqueeze spec: [3,4,5] axes [0,4] -> [1,3,4,5,1]; axes [-1] -> [3,4,5,1].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(3), k(1), k(5)]);
        let a = t.node(
            op::Squeeze {
                axes: Some(vec![0]),
            },
            &[x],
        );
        let b = t.node(op::Squeeze { axes: None }, &[x]);
        let y = t.input("y", DType::F32, &[k(3), k(4), k(5)]);
        let c = t.node(
            op::Unsqueeze {
                axes: Some(vec![0, 4]),
            },
            &[y],
        );
        let d = t.node(
            op::Unsqueeze {
                axes: Some(vec![-1]),
            },
            &[y],
        );
        let ax = t.ints("ax", &[1]);
        let e = t.node(op::Unsqueeze { axes: None }, &[y, ax]);
        let xs = t.input("xs", DType::F32, &[n(), k(1), sym("T")]);
        let f = t.node(op::Squeeze { axes: None }, &[xs]);
        let g = t.node(
            op::Squeeze {
                axes: Some(vec![1]),
            },
            &[xs],
        );
        t.run();
        assert_eq!(t.ty(a), "f32[3,1,5]");
        assert_eq!(t.ty(b), "f32[3,5]");
        assert_eq!(t.ty(c), "f32[1,3,4,5,1]");
        assert_eq!(t.ty(d), "f32[3,4,5,1]");
        assert_eq!(t.ty(e), "f32[3,1,4,5]");
        assert_eq!(t.ty(f), "f32[*]");
        assert_eq!(t.ty(g), "f32[N,T]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        t.named(
            "sq",
            op::Squeeze {
                axes: Some(vec![1]),
            },
            &[x],
        );
        assert!(
            t.run_err()
                .contains("cannot squeeze axis 1 of [2,3]: its size is 3")
        );
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(2), k(3)]);
        t.named(
            "us",
            op::Unsqueeze {
                axes: Some(vec![3]),
            },
            &[x],
        );
        assert!(
            t.run_err()
                .contains("axes 3 is out of range for an input of rank 3")
        );
    }

    #[test]
    fn expand_and_tile() {
        // Expand spec: [3,1] with shape [2,1,6] -> [2,3,6]; [3,1] with [3,4] -> [3,4].
        // Tile spec: [2,2] with repeats [1,2] -> [2,4].
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(1)]);
        let s = t.ints("s", &[2, 1, 6]);
        let a = t.node(op::Expand {}, &[x, s]);
        let s2 = t.ints("s2", &[3, 4]);
        let b = t.node(op::Expand {}, &[x, s2]);
        let y = t.input("y", DType::F32, &[k(2), n()]);
        let r = t.ints("r", &[1, 2]);
        let c = t.node(op::Tile {}, &[y, r]);
        let r2 = t.ints("r2", &[3, 1]);
        let d = t.node(op::Tile {}, &[y, r2]);
        t.run();
        assert_eq!(t.ty(a), "f32[2,3,6]");
        assert_eq!(t.ty(b), "f32[3,4]");
        assert_eq!(t.ty(c), "f32[2,?]");
        assert_eq!(t.ty(d), "f32[6,N]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(3), k(2)]);
        let s = t.ints("s", &[3, 4]);
        t.named("ex", op::Expand {}, &[x, s]);
        assert!(t.run_err().contains("cannot be broadcast"));
    }
}
