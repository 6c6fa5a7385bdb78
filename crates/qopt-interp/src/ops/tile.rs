//! Tile (ONNX): repeat a tensor `repeats[i]` times along each axis.

use super::{OpResult, contig, ints, numel, tensor};
use crate::error::bail;
use crate::num::with_any_type;
use qopt_ir::Tensor;

pub fn run(x: &Tensor, repeats: &Tensor) -> OpResult {
    let r = ints(repeats, "repeats")?;
    if r.len() != x.rank() || r.iter().any(|&v| v < 0) {
        bail!("repeats {r:?} do not fit rank {}", x.rank());
    }
    let ish = x.shape();
    let osh: Vec<usize> = ish.iter().zip(&r).map(|(&d, &k)| d * k as usize).collect();
    let n = numel(&osh)?;
    let rank = ish.len();
    let mut istr = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        istr[i] = istr[i + 1] * ish[i + 1];
    }
    let out = with_any_type!(x.dtype(), T => {
        let d = contig(x.view::<T>().expect("dtype"));
        let mut v: Vec<T> = Vec::with_capacity(n);
        let mut pos = vec![0usize; rank];
        for _ in 0..n {
            let off: usize = (0..rank).map(|i| (pos[i] % ish[i]) * istr[i]).sum();
            v.push(d[off]);
            for i in (0..rank).rev() {
                pos[i] += 1;
                if pos[i] < osh[i] {
                    break;
                }
                pos[i] = 0;
            }
        }
        tensor(&osh, v)?
    });
    Ok(vec![out])
}
