//! Softmax, LogSoftmax and Hardmax (ONNX). From opset 13 they act on one axis; before 13 the
//! input is coerced to 2-D `[prod(d[..axis]), prod(d[axis..])]` and each row is normalised
//! (the graph's opset decides). Softmax subtracts the maximum first, so large inputs do not
//! overflow; sums run in f64.

use super::{Ctx, OpResult, axis, contig, tensor};
use crate::error::bail;
use qopt_ir::Tensor;
use rayon::prelude::*;

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Kind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

pub fn run(kind: Kind, ax: i64, ctx: &mut Ctx, x: &Tensor) -> OpResult {
    if matches!(x.dtype(), qopt_ir::DType::F64 | qopt_ir::DType::F16) {
        // Computed in f32 (well inside the tolerance these types are used with here).
        let y = run(kind, ax, ctx, &x.cast(qopt_ir::DType::F32))?;
        return Ok(y.into_iter().map(|t| t.cast(x.dtype())).collect());
    }
    let Some(xa) = x.as_f32() else {
        bail!("input must be a float tensor, got {}", x.dtype())
    };
    let sh = xa.shape();
    let rank = sh.len().max(1);
    let a = axis(ax, rank)?;
    let sh1: Vec<usize> = if sh.is_empty() { vec![1] } else { sh.to_vec() };
    let outer: usize = sh1[..a].iter().product();
    let (len, inner) = if ctx.opset < 13 {
        (sh1[a..].iter().product::<usize>(), 1)
    } else {
        (sh1[a], sh1[a + 1..].iter().product::<usize>())
    };
    let mut y = ctx.alloc(xa.len());
    y.copy_from_slice(&contig(xa));
    let block = len * inner;
    if block > 0 {
        y.par_chunks_mut(block)
            .take(outer)
            .for_each(|b| normalise(kind, b, len, inner));
    }
    Ok(vec![tensor(sh, y)?])
}

/// Normalise a `[len, inner]` block along `len`, in place.
fn normalise(kind: Kind, b: &mut [f32], len: usize, inner: usize) {
    let mut max = vec![f32::NEG_INFINITY; inner];
    let mut arg = vec![0usize; inner];
    for l in 0..len {
        for i in 0..inner {
            let v = b[l * inner + i];
            if v > max[i] || v.is_nan() && !max[i].is_nan() {
                max[i] = v;
                arg[i] = l;
            }
        }
    }
    match kind {
        Kind::Hardmax => {
            for l in 0..len {
                for i in 0..inner {
                    b[l * inner + i] = if arg[i] == l { 1.0 } else { 0.0 };
                }
            }
        }
        Kind::Softmax | Kind::LogSoftmax => {
            let mut sum = vec![0f64; inner];
            for l in 0..len {
                for i in 0..inner {
                    let e = (b[l * inner + i] - max[i]).exp();
                    if kind == Kind::Softmax {
                        b[l * inner + i] = e;
                    }
                    sum[i] += e as f64;
                }
            }
            for l in 0..len {
                for i in 0..inner {
                    let v = &mut b[l * inner + i];
                    *v = match kind {
                        Kind::Softmax => (*v as f64 / sum[i]) as f32,
                        _ => *v - max[i] - (sum[i].ln() as f32),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::BufferPool;

    fn sm(kind: Kind, opset: i64, ax: i64, x: Tensor) -> Vec<f32> {
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset,
            pool: &mut pool,
        };
        run(kind, ax, &mut ctx, &x).unwrap()[0]
            .as_f32()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn opset_decides_the_axis_semantics() {
        // Reference: numpy, exp(x - max) / sum over the stated axes.
        let x = Tensor::from_vec(&[2, 2], vec![0f32, 0.0, 0.0, 1000.0]);
        let y13 = sm(Kind::Softmax, 13, 0, x.clone());
        assert_eq!(y13, vec![0.5, 0.0, 0.5, 1.0]);
        // opset 11, axis 0: the whole tensor is one row.
        let y11 = sm(Kind::Softmax, 11, 0, x.clone());
        assert_eq!(y11, vec![0.0, 0.0, 0.0, 1.0]);
        let l = sm(
            Kind::LogSoftmax,
            13,
            1,
            Tensor::from_vec(&[2], vec![0f32, 0.0])
                .into_array::<f32>()
                .map(|a| Tensor::F32(a.into_shape_with_order(vec![1, 2]).unwrap()))
                .unwrap(),
        );
        assert!((l[0] + std::f32::consts::LN_2).abs() < 1e-7);
        assert_eq!(
            sm(
                Kind::Hardmax,
                13,
                -1,
                Tensor::from_vec(&[3], vec![1f32, 3.0, 3.0])
            ),
            vec![0.0, 1.0, 0.0]
        );
    }
}
