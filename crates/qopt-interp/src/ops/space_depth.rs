//! DepthToSpace (DCR and CRD modes) and SpaceToDepth (ONNX), as reshape-transpose-reshape
//! exactly as the spec defines them.

use super::{OpResult, transpose};
use crate::error::bail;
use qopt_ir::Tensor;
use qopt_ir::attr::DepthToSpaceMode;
use qopt_ir::op::{DepthToSpace, SpaceToDepth};

fn dims4(x: &Tensor) -> Result<[usize; 4], crate::error::OpError> {
    match x.shape() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        s => bail!("expected a 4-D input, got {s:?}"),
    }
}

pub fn depth_to_space(o: &DepthToSpace, x: &Tensor) -> OpResult {
    let [n, c, h, w] = dims4(x)?;
    let b = o.blocksize.max(1) as usize;
    if c % (b * b) != 0 {
        bail!("channels {c} are not divisible by blocksize^2 = {}", b * b);
    }
    let (tmp, perm): (Vec<usize>, [i64; 6]) = match o.mode {
        DepthToSpaceMode::Dcr => (vec![n, b, b, c / (b * b), h, w], [0, 3, 4, 1, 5, 2]),
        DepthToSpaceMode::Crd => (vec![n, c / (b * b), b, b, h, w], [0, 1, 4, 2, 5, 3]),
    };
    let t = super::shape::with_shape(x, &tmp)?;
    let t = transpose::run(&perm, &t)?.remove(0);
    Ok(vec![super::shape::with_shape(
        &t,
        &[n, c / (b * b), h * b, w * b],
    )?])
}

pub fn space_to_depth(o: &SpaceToDepth, x: &Tensor) -> OpResult {
    let [n, c, h, w] = dims4(x)?;
    let b = o.blocksize.max(1) as usize;
    if h % b != 0 || w % b != 0 {
        bail!("spatial size {h}x{w} is not divisible by blocksize {b}");
    }
    let t = super::shape::with_shape(x, &[n, c, h / b, b, w / b, b])?;
    let t = transpose::run(&[0, 3, 5, 1, 2, 4], &t)?.remove(0);
    Ok(vec![super::shape::with_shape(
        &t,
        &[n, c * b * b, h / b, w / b],
    )?])
}
