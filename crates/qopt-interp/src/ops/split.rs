//! Split (ONNX): cut a tensor along an axis into parts given by `split` (attribute, or input 1
//! in opset 13+), or into as many equal parts as the node has outputs; when the size does not
//! divide, the last part is smaller (opset 18 `num_outputs` rule).

use super::{OpResult, arg, axis, ints, opt};
use crate::error::bail;
use crate::num::with_any_type;
use ndarray::{Axis, Slice};
use qopt_ir::Tensor;
use qopt_ir::op::Split;

pub fn run(o: &Split, inputs: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    let x = arg(inputs, 0)?;
    let a = axis(o.axis, x.rank())?;
    let dim = x.shape()[a];
    let sizes: Vec<usize> = match (&o.split, opt(inputs, 1)) {
        (Some(s), _) => s.iter().map(|&v| v.max(0) as usize).collect(),
        (None, Some(t)) => ints(t, "split")?
            .iter()
            .map(|&v| v.max(0) as usize)
            .collect(),
        (None, None) => {
            if num_outputs == 0 {
                bail!("Split has no outputs");
            }
            let part = dim.div_ceil(num_outputs);
            (0..num_outputs)
                .map(|i| part.min(dim.saturating_sub(i * part)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != dim {
        bail!("split sizes {sizes:?} do not add up to dimension {dim}");
    }
    if sizes.len() != num_outputs {
        bail!("{} split sizes for {num_outputs} outputs", sizes.len());
    }
    let mut start = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for s in sizes {
        let part = with_any_type!(x.dtype(), T => {
            let v = x.view::<T>().expect("dtype");
            T::wrap(v.slice_axis(Axis(a), Slice::from(start..start + s)).as_standard_layout().into_owned())
        });
        out.push(part);
        start += s;
    }
    Ok(out)
}
