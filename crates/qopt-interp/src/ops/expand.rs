//! Expand (ONNX): broadcast a tensor to a shape (numpy rules, in both directions).

use super::broadcast::shape_of;
use super::{OpResult, ints, numel};
use crate::error::{OpError, bail};
use crate::num::with_any_type;
use ndarray::IxDyn;
use qopt_ir::Tensor;

pub fn run(x: &Tensor, shape: &Tensor) -> OpResult {
    let s = ints(shape, "shape")?;
    if s.iter().any(|&d| d < 0) {
        bail!("negative dimension in shape {s:?}");
    }
    let s: Vec<usize> = s.iter().map(|&d| d as usize).collect();
    let osh = shape_of(&[x.shape(), &s])?;
    numel(&osh)?;
    let out = with_any_type!(x.dtype(), T => {
        let v = x.view::<T>().expect("dtype");
        let b = v.broadcast(IxDyn(&osh)).ok_or_else(|| OpError(format!("cannot expand {:?} to {osh:?}", x.shape())))?;
        T::wrap(b.as_standard_layout().into_owned())
    });
    Ok(vec![out])
}
