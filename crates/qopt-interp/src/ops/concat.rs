//! Concat (ONNX): join tensors of one type along an axis (empty inputs take part too).

use super::{OpResult, axis};
use crate::error::{OpError, bail};
use crate::num::with_any_type;
use ndarray::Axis;
use qopt_ir::Tensor;

pub fn run(ax: i64, inputs: &[Option<&Tensor>]) -> OpResult {
    let ins: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
    let Some(first) = ins.first() else {
        bail!("Concat needs at least one input")
    };
    let a = axis(ax, first.rank())?;
    for t in &ins {
        if t.dtype() != first.dtype() {
            bail!("input types differ: {} and {}", first.dtype(), t.dtype());
        }
        if t.rank() != first.rank()
            || t.shape()
                .iter()
                .zip(first.shape())
                .enumerate()
                .any(|(i, (x, y))| i != a && x != y)
        {
            bail!(
                "cannot concatenate shapes {:?} and {:?} on axis {a}",
                first.shape(),
                t.shape()
            );
        }
    }
    let out = with_any_type!(first.dtype(), T => {
        let views: Vec<_> = ins.iter().map(|t| t.view::<T>().expect("dtype").view()).collect();
        T::wrap(ndarray::concatenate(Axis(a), &views).map_err(|e| OpError(e.to_string()))?)
    });
    Ok(vec![out])
}
