//! Gather and GatherElements (ONNX). Indices may be negative (counted from the end); an index
//! out of range is an error, not a panic.

use super::{OpResult, axis, contig, ints, numel, tensor};
use crate::error::bail;
use crate::num::with_any_type;
use qopt_ir::Tensor;

pub fn gather(ax: i64, data: &Tensor, indices: &Tensor) -> OpResult {
    let a = axis(ax, data.rank())?;
    let idx = ints(indices, "indices")?;
    let shape = data.shape();
    let dim = shape[a];
    let idx: Vec<usize> = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim as i64 } else { i };
            if j < 0 || j >= dim as i64 {
                Err(crate::error::OpError(format!(
                    "index {i} is out of range for axis {a} of size {dim}"
                )))
            } else {
                Ok(j as usize)
            }
        })
        .collect::<Result<_, _>>()?;
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a + 1..].iter().product();
    let mut osh = shape[..a].to_vec();
    osh.extend_from_slice(indices.shape());
    osh.extend_from_slice(&shape[a + 1..]);
    numel(&osh)?;
    let out = with_any_type!(data.dtype(), T => {
        let d = contig(data.view::<T>().expect("dtype"));
        let mut v: Vec<T> = Vec::with_capacity(outer * idx.len() * inner);
        for o in 0..outer {
            for &i in &idx {
                let s = (o * dim + i) * inner;
                v.extend_from_slice(&d[s..s + inner]);
            }
        }
        tensor(&osh, v)?
    });
    Ok(vec![out])
}

pub fn gather_elements(ax: i64, data: &Tensor, indices: &Tensor) -> OpResult {
    let r = data.rank();
    let a = axis(ax, r)?;
    if indices.rank() != r {
        bail!("indices rank {} differs from data rank {r}", indices.rank());
    }
    let idx = ints(indices, "indices")?;
    let (ds, is) = (data.shape(), indices.shape());
    if (0..r).any(|i| i != a && is[i] > ds[i]) {
        bail!("indices shape {is:?} exceeds data shape {ds:?}");
    }
    let mut dstr = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        dstr[i] = dstr[i + 1] * ds[i + 1];
    }
    let out = with_any_type!(data.dtype(), T => {
        let d = contig(data.view::<T>().expect("dtype"));
        let mut v: Vec<T> = Vec::with_capacity(idx.len());
        let mut pos = vec![0usize; r];
        for &k in &idx {
            let dim = ds[a] as i64;
            let j = if k < 0 { k + dim } else { k };
            if j < 0 || j >= dim {
                bail!("index {k} is out of range for axis {a} of size {dim}");
            }
            let off: usize = (0..r).map(|i| if i == a { j as usize } else { pos[i] } * dstr[i]).sum();
            v.push(d[off]);
            for i in (0..r).rev() {
                pos[i] += 1;
                if pos[i] < is[i] {
                    break;
                }
                pos[i] = 0;
            }
        }
        tensor(is, v)?
    });
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_rows_and_negative_indices() {
        // numpy: np.take(np.arange(6).reshape(3,2), [[2,-3]], axis=0)
        let d = Tensor::from_vec(&[3, 2], (0..6i64).collect());
        let i = Tensor::from_vec(&[1, 2], vec![2i64, -3]);
        let g = gather(0, &d, &i).unwrap().remove(0);
        assert_eq!(g.shape(), &[1, 2, 2]);
        assert_eq!(g.to_i64_vec().unwrap(), vec![4, 5, 0, 1]);
        assert!(gather(0, &d, &Tensor::from_vec(&[1], vec![3i64])).is_err());
        // np.take_along_axis([[1,2],[3,4]], [[0,0],[1,0]], axis=1) == [[1,1],[4,3]]
        let d = Tensor::from_vec(&[2, 2], vec![1i64, 2, 3, 4]);
        let i = Tensor::from_vec(&[2, 2], vec![0i64, 0, 1, 0]);
        assert_eq!(
            gather_elements(1, &d, &i).unwrap()[0].to_i64_vec().unwrap(),
            vec![1, 1, 4, 3]
        );
    }
}
