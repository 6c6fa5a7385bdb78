//! Clip (ONNX opset 11+ form: `input, min?, max?`): `min(max(x, lo), hi)` with absent bounds
//! unlimited. NaN inputs stay NaN.

use super::unary::Unary;
use super::{Ctx, OpResult, arg, contig, opt, tensor};
use crate::error::{OpError, bail};
use crate::num::{Num, with_num_type};
use qopt_ir::Tensor;

/// The scalar bound in `t` converted to `T`.
fn bound<T: Num>(t: Option<&Tensor>, default: T) -> Result<T, OpError> {
    match t {
        None => Ok(default),
        Some(t) if t.len() == 1 => Ok(T::from_f64(t.scalar_f64().unwrap_or(0.0))),
        Some(t) => bail!("Clip bounds must be scalars, got shape {:?}", t.shape()),
    }
}

/// The constant bounds of a Clip node as f32, when the bounds inputs are scalars.
pub fn f32_bounds(lo: Option<&Tensor>, hi: Option<&Tensor>) -> Result<(f32, f32), OpError> {
    Ok((bound(lo, f32::NEG_INFINITY)?, bound(hi, f32::INFINITY)?))
}

pub fn run(ctx: &mut Ctx, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let (lo, hi) = (opt(inputs, 1), opt(inputs, 2));
    let out = match x {
        Tensor::F32(a) => {
            let (lo, hi) = f32_bounds(lo, hi)?;
            let mut v = ctx.alloc(a.len());
            v.copy_from_slice(&contig(a));
            Unary::Clip(lo, hi).apply_inplace(&mut v);
            tensor(a.shape(), v)?
        }
        t => with_num_type!(t.dtype(), T => {
            let (l, h) = (bound::<T>(lo, T::lowest())?, bound::<T>(hi, T::highest())?);
            let a = t.view::<T>().expect("dtype matched");
            T::wrap(a.mapv(|x| {
                let y = if x < l { l } else { x };
                if y > h { h } else { y }
            }))
        }, else => bail!("Clip is not defined for {}", t.dtype())),
    };
    Ok(vec![out])
}
