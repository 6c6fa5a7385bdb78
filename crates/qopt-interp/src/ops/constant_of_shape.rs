//! ConstantOfShape (ONNX): a tensor of the given shape filled with `value` (f32 0 by default).

use super::{OpResult, ints, numel};
use crate::error::bail;
use ndarray::{ArrayD, IxDyn};
use qopt_ir::op::ConstantOfShape;
use qopt_ir::{Tensor, dispatch_tensor};

pub fn run(o: &ConstantOfShape, shape: &Tensor) -> OpResult {
    let dims = ints(shape, "shape")?;
    if dims.iter().any(|&d| d < 0) {
        bail!("negative dimension in shape {dims:?}");
    }
    let dims: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
    numel(&dims)?;
    let value = o
        .value
        .as_deref()
        .cloned()
        .unwrap_or_else(|| Tensor::from_vec(&[1], vec![0f32]));
    if value.len() != 1 {
        bail!("value must have one element, got {}", value.len());
    }
    let out = dispatch_tensor!(&value, a => {
        let v = *a.iter().next().expect("one element");
        qopt_ir::Element::wrap(ArrayD::from_elem(IxDyn(&dims), v))
    });
    Ok(vec![out])
}
