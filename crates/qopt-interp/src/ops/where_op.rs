//! Where (ONNX): `condition ? X : Y` with three-way numpy broadcasting.

use super::broadcast::{shape_of, ternary_map};
use super::{OpResult, arg, contig, numel, tensor};
use crate::error::bail;
use crate::num::with_any_type;
use qopt_ir::Tensor;

pub fn run(inputs: &[Option<&Tensor>]) -> OpResult {
    let (c, x, y) = (arg(inputs, 0)?, arg(inputs, 1)?, arg(inputs, 2)?);
    let Some(cv) = c.view::<bool>() else {
        bail!("condition must be bool, got {}", c.dtype())
    };
    if x.dtype() != y.dtype() {
        bail!("X and Y types differ: {} and {}", x.dtype(), y.dtype());
    }
    let osh = shape_of(&[c.shape(), x.shape(), y.shape()])?;
    let n = numel(&osh)?;
    let cd = contig(cv);
    let out = with_any_type!(x.dtype(), T => {
        let (xd, yd) = (contig(x.view::<T>().expect("dtype")), contig(y.view::<T>().expect("dtype")));
        let mut o: Vec<T> = vec![xd.first().or(yd.first()).copied().unwrap_or_else(zero::<T>); n];
        ternary_map(&cd, c.shape(), &xd, x.shape(), &yd, y.shape(), &mut o, &osh, |c, a, b| if c { a } else { b });
        tensor(&osh, o)?
    });
    Ok(vec![out])
}

/// A placeholder element for an output that every element will overwrite.
fn zero<T: qopt_ir::Element>() -> T {
    T::from_f64(0.0)
}
