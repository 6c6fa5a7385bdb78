//! Transpose (ONNX): permute axes (`perm` empty: reverse them).

use super::{OpResult, axes};
use crate::error::bail;
use qopt_ir::{Tensor, dispatch_tensor};

pub fn perm_of(perm: &[i64], rank: usize) -> Result<Vec<usize>, crate::error::OpError> {
    if perm.is_empty() {
        return Ok((0..rank).rev().collect());
    }
    if perm.len() != rank {
        bail!("perm {perm:?} does not match rank {rank}");
    }
    // `axes` rejects repeats; keep the given order.
    axes(perm, rank)?;
    Ok(perm
        .iter()
        .map(|&p| {
            if p < 0 {
                (p + rank as i64) as usize
            } else {
                p as usize
            }
        })
        .collect())
}

pub fn run(perm: &[i64], x: &Tensor) -> OpResult {
    let p = perm_of(perm, x.rank())?;
    Ok(vec![dispatch_tensor!(x, a => {
        qopt_ir::Element::wrap(a.view().permuted_axes(p.clone()).as_standard_layout().into_owned())
    })])
}
