//! ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
//! ReduceSumSquare, ReduceLogSumExp, ArgMax and ArgMin (ONNX).
//!
//! Axes come from the op field (attribute in old opsets, constant input folded by the importer)
//! or from input 1 at run time; no axes means all axes, or the identity with
//! `noop_with_empty_axes`. The input is viewed with the kept axes first and the reduced axes
//! last, so each output element reduces one contiguous row, in order: results do not depend on
//! the thread count. Float sums accumulate in f64; integer arithmetic wraps. An empty reduction
//! gives the identity of the operation (0, 1, -inf for Max, +inf for Min; NaN for Mean).

use super::{OpResult, arg, axes, axis, ints, opt, tensor};
use crate::error::bail;
use crate::num::{Num, with_num_type};
use qopt_ir::{Element, Op, Tensor};

#[derive(Clone, Copy, PartialEq, Debug)]
enum R {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSumExp,
}

/// Rows to reduce: (output shape, rows of `len` elements laid out contiguously).
fn rows<T: Element>(
    x: &ndarray::ArrayD<T>,
    red: &[usize],
    keepdims: bool,
) -> (Vec<usize>, Vec<T>, usize) {
    let rank = x.ndim();
    let kept: Vec<usize> = (0..rank).filter(|a| !red.contains(a)).collect();
    let perm: Vec<usize> = kept.iter().chain(red.iter()).copied().collect();
    let len: usize = red.iter().map(|&a| x.shape()[a]).product();
    let data: Vec<T> = x.view().permuted_axes(perm).iter().copied().collect();
    let osh: Vec<usize> = if keepdims {
        (0..rank)
            .map(|a| if red.contains(&a) { 1 } else { x.shape()[a] })
            .collect()
    } else {
        kept.iter().map(|&a| x.shape()[a]).collect()
    };
    (osh, data, len)
}

fn reduce_float<T: Num>(r: R, row: &[T]) -> T {
    let f = |v: T| v.to_f64();
    let n = row.len() as f64;
    let v = match r {
        R::Sum => row.iter().map(|&v| f(v)).sum(),
        R::Mean => row.iter().map(|&v| f(v)).sum::<f64>() / n,
        R::SumSquare => row.iter().map(|&v| f(v) * f(v)).sum(),
        R::L1 => row.iter().map(|&v| f(v).abs()).sum(),
        R::L2 => row.iter().map(|&v| f(v) * f(v)).sum::<f64>().sqrt(),
        R::Prod => row.iter().map(|&v| f(v)).product(),
        R::LogSumExp => {
            let m = row.iter().map(|&v| f(v)).fold(f64::NEG_INFINITY, f64::max);
            if m.is_infinite() {
                m
            } else {
                m + row.iter().map(|&v| (f(v) - m).exp()).sum::<f64>().ln()
            }
        }
        R::Max => return row.iter().fold(T::lowest(), |a, &b| a.max_nan(b)),
        R::Min => return row.iter().fold(T::highest(), |a, &b| a.min_nan(b)),
    };
    T::from_f64(v)
}

fn reduce_int<T: Num>(r: R, row: &[T]) -> T {
    match r {
        R::Sum => row.iter().fold(T::zero(), |a, &b| a.add(b)),
        R::Mean => row
            .iter()
            .fold(T::zero(), |a, &b| a.add(b))
            .div(T::from_f64(row.len() as f64)),
        R::SumSquare => row.iter().fold(T::zero(), |a, &b| a.add(b.mul(b))),
        R::L1 => row.iter().fold(T::zero(), |a, &b| a.add(b.abs())),
        R::Prod => row.iter().fold(T::one(), |a, &b| a.mul(b)),
        R::Max => row.iter().fold(T::lowest(), |a, &b| a.max_nan(b)),
        R::Min => row.iter().fold(T::highest(), |a, &b| a.min_nan(b)),
        R::L2 | R::LogSumExp => reduce_float(r, row),
    }
}

pub fn run(op: &Op, inputs: &[Option<&Tensor>]) -> OpResult {
    let (r, field, keepdims, noop) = match op {
        Op::ReduceMean(o) => (R::Mean, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceSum(o) => (R::Sum, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceMax(o) => (R::Max, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceMin(o) => (R::Min, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceProd(o) => (R::Prod, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceL1(o) => (R::L1, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceL2(o) => (R::L2, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceSumSquare(o) => (R::SumSquare, &o.axes, o.keepdims, o.noop_with_empty_axes),
        Op::ReduceLogSumExp(o) => (R::LogSumExp, &o.axes, o.keepdims, o.noop_with_empty_axes),
        _ => bail!("not a reduction"),
    };
    let x = arg(inputs, 0)?;
    let ax: Vec<i64> = match (field, opt(inputs, 1)) {
        (Some(a), _) => a.clone(),
        (None, Some(t)) => ints(t, "axes")?,
        (None, None) => vec![],
    };
    if ax.is_empty() && noop != 0 {
        return Ok(vec![x.clone()]);
    }
    if x.dtype() == qopt_ir::DType::Bool && matches!(r, R::Max | R::Min) {
        // Max is "any", Min is "all": the same on 0/1 bytes.
        let y = run(
            op,
            &[
                Some(&x.cast(qopt_ir::DType::U8)),
                inputs.get(1).copied().flatten(),
            ],
        )?;
        return Ok(y
            .into_iter()
            .map(|t| t.cast(qopt_ir::DType::Bool))
            .collect());
    }
    let red = if ax.is_empty() {
        (0..x.rank()).collect()
    } else {
        axes(&ax, x.rank())?
    };
    let out = with_num_type!(x.dtype(), T => {
        let (osh, data, len) = rows(x.view::<T>().expect("dtype"), &red, keepdims != 0);
        let n: usize = osh.iter().product();
        let out: Vec<T> = (0..n).map(|i| {
            let row = &data[i * len..(i + 1) * len];
            if T::IS_FLOAT { reduce_float(r, row) } else { reduce_int(r, row) }
        }).collect();
        tensor(&osh, out)?
    }, else => bail!("{} is not defined for {}", op.op_type(), x.dtype()));
    Ok(vec![out])
}

/// ArgMax (`max = true`) or ArgMin along one axis; NaN counts as the extreme (numpy).
pub fn arg_extreme(max: bool, ax: i64, keepdims: i64, last: i64, x: &Tensor) -> OpResult {
    let a = axis(ax, x.rank().max(1))?;
    if x.rank() == 0 {
        return Ok(vec![Tensor::scalar(0i64)]);
    }
    let out = with_num_type!(x.dtype(), T => {
        let (osh, data, len) = rows(x.view::<T>().expect("dtype"), &[a], keepdims != 0);
        if len == 0 {
            bail!("cannot take the arg extreme of an empty axis");
        }
        let n: usize = osh.iter().product();
        let out: Vec<i64> = (0..n).map(|i| {
            let row = &data[i * len..(i + 1) * len];
            let mut best = 0usize;
            for (j, &v) in row.iter().enumerate().skip(1) {
                let b = row[best];
                if b.is_nan() {
                    break;
                }
                let better = v.is_nan() || if max { v > b || (last != 0 && v == b) } else { v < b || (last != 0 && v == b) };
                if better {
                    best = j;
                }
            }
            best as i64
        }).collect();
        tensor(&osh, out)?
    }, else => bail!("ArgMax/ArgMin are not defined for {}", x.dtype()));
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::op::{ReduceMax, ReduceMean, ReduceSum};

    #[test]
    fn reductions_follow_numpy() {
        // numpy: x = np.arange(24).reshape(2,3,4)
        let x = Tensor::from_vec(&[2, 3, 4], (0..24).map(|v| v as f32).collect());
        let m = run(
            &Op::ReduceMean(ReduceMean {
                axes: Some(vec![1]),
                keepdims: 0,
                ..Default::default()
            }),
            &[Some(&x)],
        )
        .unwrap()
        .remove(0);
        assert_eq!(m.shape(), &[2, 4]);
        assert_eq!(m.to_f64_vec(), vec![4., 5., 6., 7., 16., 17., 18., 19.]);
        let axes_in = Tensor::from_vec(&[2], vec![0i64, 2]);
        let s = run(
            &Op::ReduceSum(ReduceSum::default()),
            &[Some(&x), Some(&axes_in)],
        )
        .unwrap()
        .remove(0);
        assert_eq!(s.shape(), &[1, 3, 1]);
        // numpy: np.arange(24).reshape(2,3,4).sum(axis=(0,2), keepdims=True) == [[[60],[92],[124]]]
        assert_eq!(s.to_f64_vec(), vec![60., 92., 124.]);
        let e = Tensor::from_vec(&[0], Vec::<f32>::new());
        let mx = run(
            &Op::ReduceMax(ReduceMax {
                keepdims: 0,
                ..Default::default()
            }),
            &[Some(&e)],
        )
        .unwrap()
        .remove(0);
        assert_eq!(mx.to_f64_vec(), vec![f64::NEG_INFINITY]);
        let noop = run(
            &Op::ReduceSum(ReduceSum {
                noop_with_empty_axes: 1,
                ..Default::default()
            }),
            &[Some(&x)],
        )
        .unwrap()
        .remove(0);
        assert_eq!(noop, x);
    }

    #[test]
    fn arg_extremes() {
        let x = Tensor::from_vec(&[2, 3], vec![1f32, 5.0, 5.0, f32::NAN, 0.0, 9.0]);
        assert_eq!(
            arg_extreme(true, 1, 0, 0, &x).unwrap()[0]
                .to_i64_vec()
                .unwrap(),
            vec![1, 0]
        );
        assert_eq!(
            arg_extreme(true, 1, 0, 1, &x).unwrap()[0]
                .to_i64_vec()
                .unwrap(),
            vec![2, 0]
        );
        assert_eq!(arg_extreme(false, 0, 1, 0, &x).unwrap()[0].shape(), &[1, 3]);
    }
}
