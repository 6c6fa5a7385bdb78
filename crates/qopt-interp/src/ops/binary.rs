//! Element-wise binary ops with numpy broadcasting: Add, Sub, Mul, Div, Pow, Mod, PRelu; the
//! comparisons Equal, Less, LessOrEqual, Greater, GreaterOrEqual; the logical And, Or, Xor; and
//! the variadic Min, Max, Sum, Mean (ONNX operator specs of the same names).
//!
//! Arithmetic is IEEE for floats (NaN/Inf propagate; Min/Max propagate NaN like numpy) and
//! wrapping for integers, with `x / 0 = 0` (see `num.rs`). f16 computes in f32.

use super::broadcast::{binary_inplace, binary_map, shape_of};
use super::{Ctx, OpResult, numel, tensor};
use crate::error::{OpError, bail};
use crate::num::{Num, with_num_type};
use qopt_ir::{DType, Element, Op, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Mod(bool),
    PRelu,
    Min,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Logic {
    And,
    Or,
    Xor,
}

enum Kind {
    Arith(Arith),
    Cmp(Cmp),
    Logic(Logic),
}

fn kind(op: &Op) -> Option<Kind> {
    Some(match op {
        Op::Add(_) | Op::Sum(_) | Op::Mean(_) => Kind::Arith(Arith::Add),
        Op::Sub(_) => Kind::Arith(Arith::Sub),
        Op::Mul(_) => Kind::Arith(Arith::Mul),
        Op::Div(_) => Kind::Arith(Arith::Div),
        Op::Pow(_) => Kind::Arith(Arith::Pow),
        Op::Mod(m) => Kind::Arith(Arith::Mod(m.fmod != 0)),
        Op::PRelu(_) => Kind::Arith(Arith::PRelu),
        Op::Min(_) => Kind::Arith(Arith::Min),
        Op::Max(_) => Kind::Arith(Arith::Max),
        Op::Equal(_) => Kind::Cmp(Cmp::Eq),
        Op::Less(_) => Kind::Cmp(Cmp::Lt),
        Op::LessOrEqual(_) => Kind::Cmp(Cmp::Le),
        Op::Greater(_) => Kind::Cmp(Cmp::Gt),
        Op::GreaterOrEqual(_) => Kind::Cmp(Cmp::Ge),
        Op::And(_) => Kind::Logic(Logic::And),
        Op::Or(_) => Kind::Logic(Logic::Or),
        Op::Xor(_) => Kind::Logic(Logic::Xor),
        _ => return None,
    })
}

#[inline(always)]
fn arith<T: Num>(k: Arith) -> impl Fn(T, T) -> T + Sync + Copy {
    move |x: T, y: T| match k {
        Arith::Add => x.add(y),
        Arith::Sub => x.sub(y),
        Arith::Mul => x.mul(y),
        Arith::Div => x.div(y),
        Arith::Pow => x.pow(y),
        Arith::Mod(f) => x.rem(y, f),
        Arith::PRelu => {
            if x < T::zero() {
                y.mul(x)
            } else {
                x
            }
        }
        Arith::Min => x.min_nan(y),
        Arith::Max => x.max_nan(y),
    }
}

/// Run `$body` with `$f` bound to a closure for `$k`, one monomorphic closure per case so each
/// inner loop is specialised (and vectorised) for its operation.
macro_rules! with_arith {
    ($k:expr, $T:ty, $f:ident => $body:expr) => {
        match $k {
            Arith::Add => {
                let $f = |x: $T, y: $T| x.add(y);
                $body
            }
            Arith::Sub => {
                let $f = |x: $T, y: $T| x.sub(y);
                $body
            }
            Arith::Mul => {
                let $f = |x: $T, y: $T| x.mul(y);
                $body
            }
            Arith::Div => {
                let $f = |x: $T, y: $T| x.div(y);
                $body
            }
            k => {
                let $f = arith::<$T>(k);
                $body
            }
        }
    };
}

fn data<T: Element>(t: &Tensor) -> std::borrow::Cow<'_, [T]> {
    super::contig(t.view::<T>().expect("dtype checked by the caller"))
}

fn arith_typed<T: Num>(
    k: Arith,
    a: &Tensor,
    b: &Tensor,
    osh: &[usize],
    ctx: &mut Ctx,
) -> Result<Tensor, OpError> {
    let n = numel(osh)?;
    let (ad, bd) = (data::<T>(a), data::<T>(b));
    let mut out: Vec<T> = if T::DTYPE == DType::F32 {
        // SAFETY-free reuse: the pool hands out initialised f32 buffers.
        let v = ctx.alloc(n);
        let v: Box<dyn std::any::Any> = Box::new(v);
        *v.downcast::<Vec<T>>().expect("T is f32")
    } else {
        vec![T::default(); n]
    };
    with_arith!(k, T, f => binary_map(&ad, a.shape(), &bd, b.shape(), &mut out, osh, f));
    tensor(osh, out)
}

fn to_f32_if_f16(t: &Tensor) -> std::borrow::Cow<'_, Tensor> {
    if t.dtype() == DType::F16 {
        std::borrow::Cow::Owned(t.cast(DType::F32))
    } else {
        std::borrow::Cow::Borrowed(t)
    }
}

pub fn run(op: &Op, ctx: &mut Ctx, a: &Tensor, b: &Tensor) -> OpResult {
    let Some(k) = kind(op) else {
        bail!("not a binary op")
    };
    if a.dtype() == DType::F16 || b.dtype() == DType::F16 {
        let out = run(op, ctx, &to_f32_if_f16(a), &to_f32_if_f16(b))?;
        return Ok(out
            .into_iter()
            .map(|t| {
                if t.dtype() == DType::F32 {
                    t.cast(DType::F16)
                } else {
                    t
                }
            })
            .collect());
    }
    let osh = match k {
        // PRelu broadcasts the slope to X only (unidirectional).
        Kind::Arith(Arith::PRelu) => {
            let s = shape_of(&[a.shape(), b.shape()])?;
            if s != a.shape() {
                bail!(
                    "slope of shape {:?} does not broadcast to X of shape {:?}",
                    b.shape(),
                    a.shape()
                );
            }
            s
        }
        _ => shape_of(&[a.shape(), b.shape()])?,
    };
    let out = match k {
        Kind::Arith(Arith::Pow) if a.dtype() != b.dtype() => {
            // Mixed types (ONNX Pow T, T1): compute in f64, return the base's type.
            let (x, y) = (a.cast(DType::F64), b.cast(DType::F64));
            let mut o = vec![0f64; numel(&osh)?];
            binary_map(
                &data::<f64>(&x),
                a.shape(),
                &data::<f64>(&y),
                b.shape(),
                &mut o,
                &osh,
                |x, y| x.powf(y),
            );
            tensor(&osh, o)?.cast(a.dtype())
        }
        Kind::Arith(k) => {
            if a.dtype() != b.dtype() {
                bail!("input types differ: {} and {}", a.dtype(), b.dtype());
            }
            with_num_type!(a.dtype(), T => arith_typed::<T>(k, a, b, &osh, ctx)?,
                else => bail!("{} is not supported for {}", op.op_type(), a.dtype()))
        }
        Kind::Cmp(c) => {
            if a.dtype() != b.dtype() {
                bail!("input types differ: {} and {}", a.dtype(), b.dtype());
            }
            let mut o = vec![false; numel(&osh)?];
            if a.dtype() == DType::Bool {
                // Equal on booleans.
                let (x, y) = (data::<bool>(a), data::<bool>(b));
                binary_map(&x, a.shape(), &y, b.shape(), &mut o, &osh, |x, y| {
                    cmp(c, &x, &y)
                });
            } else {
                with_num_type!(a.dtype(), T => {
                    let (x, y) = (data::<T>(a), data::<T>(b));
                    binary_map(&x, a.shape(), &y, b.shape(), &mut o, &osh, |x, y| cmp(c, &x, &y));
                }, else => bail!("{} is not supported for {}", op.op_type(), a.dtype()));
            }
            tensor(&osh, o)?
        }
        Kind::Logic(l) => {
            let (Some(x), Some(y)) = (a.view::<bool>(), b.view::<bool>()) else {
                bail!(
                    "{} needs bool inputs, got {} and {}",
                    op.op_type(),
                    a.dtype(),
                    b.dtype()
                )
            };
            let mut o = vec![false; numel(&osh)?];
            let (x, y) = (super::contig(x), super::contig(y));
            binary_map(&x, a.shape(), &y, b.shape(), &mut o, &osh, |x, y| match l {
                Logic::And => x && y,
                Logic::Or => x || y,
                Logic::Xor => x ^ y,
            });
            tensor(&osh, o)?
        }
    };
    Ok(vec![out])
}

#[inline(always)]
fn cmp<T: PartialOrd>(c: Cmp, x: &T, y: &T) -> bool {
    match c {
        Cmp::Eq => x == y,
        Cmp::Lt => x < y,
        Cmp::Le => x <= y,
        Cmp::Gt => x > y,
        Cmp::Ge => x >= y,
    }
}

/// Min, Max, Sum, Mean over one or more inputs, folded left to right with broadcasting.
pub fn run_variadic(op: &Op, ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let ins: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
    let Some((first, rest)) = ins.split_first() else {
        bail!("needs at least one input")
    };
    let mut acc = (*first).clone();
    for t in rest {
        acc = run(op, ctx, &acc, t)?.remove(0);
    }
    if matches!(op, Op::Mean(_)) && ins.len() > 1 {
        let n = Tensor::scalar(ins.len() as f64).cast(acc.dtype());
        acc = run(&Op::Div(Default::default()), ctx, &acc, &n)?.remove(0);
    }
    Ok(vec![acc])
}

/// Whether `op` can overwrite its first operand in place: f32 arithmetic whose output has the
/// first operand's shape.
pub fn can_run_inplace(op: &Op, a: &Tensor, b: &Tensor) -> bool {
    matches!(kind(op), Some(Kind::Arith(_)))
        && !matches!(op, Op::Sum(_) | Op::Mean(_) | Op::Min(_) | Op::Max(_))
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
        && shape_of(&[a.shape(), b.shape()]).is_ok_and(|s| s == a.shape())
}

/// `a = op(a, b)` (or `a = op(b, a)` when `swapped`), for the plan's in-place execution.
/// The caller checked [`can_run_inplace`] with `a` as the operand of the output's shape.
pub fn run_inplace(op: &Op, a: &mut Tensor, b: &Tensor, swapped: bool) -> Result<(), OpError> {
    let Some(Kind::Arith(k)) = kind(op) else {
        bail!("not an in-place op")
    };
    let shape = a.shape().to_vec();
    let (Some(av), Some(bv)) = (a.view_mut::<f32>(), b.view::<f32>()) else {
        bail!("in-place ops are f32 only")
    };
    let Some(ad) = av.as_slice_mut() else {
        bail!("in-place operand is not contiguous")
    };
    let bd = super::contig(bv);
    if swapped {
        with_arith!(k, f32, f => binary_inplace(ad, &shape, &bd, b.shape(), |x, y| f(y, x)));
    } else {
        with_arith!(k, f32, f => binary_inplace(ad, &shape, &bd, b.shape(), f));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::BufferPool;

    fn run1(op: Op, a: Tensor, b: Tensor) -> Tensor {
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset: 17,
            pool: &mut pool,
        };
        run(&op, &mut ctx, &a, &b).unwrap().remove(0)
    }

    #[test]
    fn arithmetic_follows_numpy() {
        // Reference values: numpy with the same inputs.
        let a = Tensor::from_vec(&[2, 2], vec![1f32, -2.0, 3.0, f32::NAN]);
        let b = Tensor::from_vec(&[2], vec![2f32, 0.0]);
        let s = run1(Op::Div(Default::default()), a.clone(), b.clone());
        let v = s.as_f32().unwrap().as_slice().unwrap().to_vec();
        assert_eq!(v[0], 0.5);
        assert_eq!(v[1], f32::NEG_INFINITY);
        assert!(v[3].is_nan());
        let m = run1(Op::Max(Default::default()), a.clone(), b);
        assert!(m.as_f32().unwrap()[[1, 1]].is_nan());
        let p = run1(
            Op::Pow(Default::default()),
            Tensor::from_vec(&[2], vec![2f32, 3.0]),
            Tensor::from_vec(&[1], vec![2i64]),
        );
        assert_eq!(p.as_f32().unwrap().as_slice().unwrap(), &[4.0, 9.0]);
        let d = run1(
            Op::Div(Default::default()),
            Tensor::from_vec(&[2], vec![7i64, -7]),
            Tensor::from_vec(&[2], vec![2i64, 0]),
        );
        assert_eq!(d.to_i64_vec().unwrap(), vec![3, 0]);
        let pr = run1(
            Op::PRelu(Default::default()),
            Tensor::from_vec(&[2, 2], vec![-1f32, 2.0, -3.0, 4.0]),
            Tensor::from_vec(&[2, 1], vec![0.5f32, 0.25]),
        );
        assert_eq!(
            pr.as_f32().unwrap().as_slice().unwrap(),
            &[-0.5, 2.0, -0.75, 4.0]
        );
    }

    #[test]
    fn comparisons_and_logic() {
        let e = run1(
            Op::Less(Default::default()),
            Tensor::from_vec(&[3], vec![1i64, 5, 3]),
            Tensor::scalar(3i64),
        );
        assert_eq!(e.to_i64_vec().unwrap(), vec![1, 0, 0]);
        let x = run1(
            Op::Xor(Default::default()),
            Tensor::from_vec(&[2], vec![true, false]),
            Tensor::from_vec(&[2], vec![true, true]),
        );
        assert_eq!(x.to_i64_vec().unwrap(), vec![0, 1]);
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset: 17,
            pool: &mut pool,
        };
        assert!(
            run(
                &Op::Add(Default::default()),
                &mut ctx,
                &Tensor::scalar(1f32),
                &Tensor::scalar(1i64)
            )
            .is_err()
        );
        assert!(
            run(
                &Op::Add(Default::default()),
                &mut ctx,
                &Tensor::from_vec(&[2], vec![1f32, 2.0]),
                &Tensor::from_vec(&[3], vec![1f32, 2.0, 3.0])
            )
            .is_err()
        );
    }

    #[test]
    fn inplace_matches_out_of_place() {
        let a = Tensor::from_vec(&[2, 3], vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = Tensor::from_vec(&[3], vec![1f32, 2.0, 4.0]);
        for op in [Op::Sub(Default::default()), Op::Div(Default::default())] {
            let want = run1(op.clone(), b.clone(), a.clone());
            let mut t = a.clone();
            assert!(can_run_inplace(&op, &t, &b));
            run_inplace(&op, &mut t, &b, true).unwrap();
            assert_eq!(t, want);
        }
    }
}
