//! MatMul (ONNX, numpy `matmul` semantics): batched matrix products with broadcast batch
//! axes; a 1-D A is a row vector and a 1-D B a column vector, their axis removed from the
//! result. A product whose B is one matrix is a single GEMM with the batch folded into M.
//! Non-f32 inputs (shape sub-graphs) use a plain triple loop.

use super::broadcast::{Rows, shape_of};
use super::{Ctx, OpResult, contig, numel, tensor};
use crate::error::{OpError, bail};
use crate::kernels::SendPtr;
use crate::kernels::gemm::{Epilogue, MatRef, sgemm, sgemm_block};
use crate::num::{Num, with_num_type};
use qopt_ir::Tensor;
use rayon::prelude::*;

/// (batch shape of A, of B, broadcast batch shape, m, k, n, output shape).
type Dims = (
    Vec<usize>,
    Vec<usize>,
    Vec<usize>,
    usize,
    usize,
    usize,
    Vec<usize>,
);

fn dims(ash: &[usize], bsh: &[usize]) -> Result<Dims, OpError> {
    if ash.is_empty() || bsh.is_empty() {
        bail!("MatMul inputs must have rank >= 1, got {ash:?} and {bsh:?}");
    }
    let a2: Vec<usize> = if ash.len() == 1 {
        vec![1, ash[0]]
    } else {
        ash.to_vec()
    };
    let b2: Vec<usize> = if bsh.len() == 1 {
        vec![bsh[0], 1]
    } else {
        bsh.to_vec()
    };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != kb {
        bail!("inner dimensions differ: {ash:?} x {bsh:?}");
    }
    let (ab, bb) = (a2[..a2.len() - 2].to_vec(), b2[..b2.len() - 2].to_vec());
    let batch = shape_of(&[&ab, &bb])?;
    let mut out = batch.clone();
    if ash.len() > 1 {
        out.push(m);
    }
    if bsh.len() > 1 {
        out.push(n);
    }
    Ok((ab, bb, batch, m, k, n, out))
}

pub fn run(ctx: &mut Ctx, a: &Tensor, b: &Tensor) -> OpResult {
    if a.dtype() != b.dtype() {
        bail!("input types differ: {} and {}", a.dtype(), b.dtype());
    }
    let (ab, bb, batch, m, k, n, osh) = dims(a.shape(), b.shape())?;
    let total = numel(&osh)?;
    let nb: usize = batch.iter().product();
    let out = match (a, b) {
        (Tensor::F32(aa), Tensor::F32(ba)) => {
            let (ad, bd) = (contig(aa), contig(ba));
            let mut y = ctx.alloc(total);
            if bb.iter().product::<usize>() == 1 && ab == batch {
                // One B for every batch: fold the batch into M.
                sgemm(
                    nb * m,
                    n,
                    k,
                    1.0,
                    MatRef::row_major(&ad, k),
                    MatRef::row_major(&bd, n),
                    false,
                    &mut y,
                    n,
                    &Epilogue::default(),
                );
            } else {
                let rows = Rows::new(&batch, [&ab, &bb]);
                let yp = SendPtr(y.as_mut_ptr());
                let one = |i: usize| {
                    let [oa, ob] = if batch.is_empty() {
                        [0, 0]
                    } else {
                        rows_offsets(&rows, i)
                    };
                    let am = MatRef::row_major(&ad[oa * m * k..], k);
                    let bm = MatRef::row_major(&bd[ob * k * n..], n);
                    // SAFETY: batch i writes only its own m x n block of `y`.
                    let ys =
                        unsafe { std::slice::from_raw_parts_mut(yp.get().add(i * m * n), m * n) };
                    sgemm_block(
                        m,
                        n,
                        k,
                        1.0,
                        am,
                        bm,
                        false,
                        ys,
                        n,
                        &Epilogue::default(),
                        (0, 0),
                    );
                };
                (0..nb).into_par_iter().for_each(one);
            }
            tensor(&osh, y)?
        }
        _ => with_num_type!(a.dtype(), T => naive::<T>(a, b, &ab, &bb, &batch, m, k, n, &osh)?,
            else => bail!("MatMul is not defined for {}", a.dtype())),
    };
    Ok(vec![out])
}

/// Offsets (in matrices) of batch `i` in A and B.
fn rows_offsets(rows: &Rows<2>, i: usize) -> [usize; 2] {
    // Rows splits off the last batch axis as the inner loop; recombine.
    let inner = rows.inner();
    let [sa, sb] = rows.inner_strides();
    let [oa, ob] = rows.offsets(i / inner);
    let j = i % inner;
    [oa + j * sa, ob + j * sb]
}

#[allow(clippy::too_many_arguments)]
fn naive<T: Num>(
    a: &Tensor,
    b: &Tensor,
    ab: &[usize],
    bb: &[usize],
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
    osh: &[usize],
) -> Result<Tensor, OpError> {
    let (ad, bd) = (
        contig(a.view::<T>().expect("dtype")),
        contig(b.view::<T>().expect("dtype")),
    );
    let nb: usize = batch.iter().product();
    let rows = Rows::new(batch, [ab, bb]);
    let mut y = vec![T::zero(); nb * m * n];
    for i in 0..nb {
        let [oa, ob] = if batch.is_empty() {
            [0, 0]
        } else {
            rows_offsets(&rows, i)
        };
        for r in 0..m {
            for c in 0..n {
                let mut s = T::zero();
                for p in 0..k {
                    s = s.add(ad[(oa * m + r) * k + p].mul(bd[(ob * k + p) * n + c]));
                }
                y[(i * m + r) * n + c] = s;
            }
        }
    }
    tensor(osh, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::BufferPool;

    fn mm(a: Tensor, b: Tensor) -> Tensor {
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset: 17,
            pool: &mut pool,
        };
        run(&mut ctx, &a, &b).unwrap().remove(0)
    }

    #[test]
    fn numpy_matmul_shapes_and_values() {
        // numpy: np.arange(12).reshape(2,2,3) @ np.arange(6).reshape(3,2)
        let a = Tensor::from_vec(&[2, 2, 3], (0..12).map(|v| v as f32).collect());
        let b = Tensor::from_vec(&[3, 2], (0..6).map(|v| v as f32).collect());
        let y = mm(a.clone(), b);
        assert_eq!(y.shape(), &[2, 2, 2]);
        assert_eq!(
            y.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![10., 13., 28., 40., 46., 67., 64., 94.]
        );
        // Broadcast batch: [2,2,3] @ [1,3,1] and vector forms.
        let b = Tensor::from_vec(&[1, 3, 1], vec![1f32, 1.0, 1.0]);
        assert_eq!(
            mm(a.clone(), b)
                .as_f32()
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            vec![3., 12., 21., 30.]
        );
        let v = Tensor::from_vec(&[3], vec![1f32, 0.0, 0.0]);
        let y = mm(a, v);
        assert_eq!(y.shape(), &[2, 2]);
        assert_eq!(
            y.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![0., 3., 6., 9.]
        );
        let yi = mm(
            Tensor::from_vec(&[2], vec![1i64, 2]),
            Tensor::from_vec(&[2, 2], vec![1i64, 2, 3, 4]),
        );
        assert_eq!(yi.shape(), &[2]);
        assert_eq!(yi.to_i64_vec().unwrap(), vec![7, 10]);
    }
}
