//! Range (ONNX): `start, start + delta, ...` while below `limit` (above, for negative delta);
//! `max(ceil((limit - start) / delta), 0)` elements.

use super::{OpResult, arg, numel, tensor};
use crate::error::bail;
use crate::num::{Num, with_num_type};
use qopt_ir::Tensor;

pub fn run(inputs: &[Option<&Tensor>]) -> OpResult {
    let (s, l, d) = (arg(inputs, 0)?, arg(inputs, 1)?, arg(inputs, 2)?);
    if s.dtype() != l.dtype() || s.dtype() != d.dtype() {
        bail!("start, limit and delta types differ");
    }
    if s.len() != 1 || l.len() != 1 || d.len() != 1 {
        bail!("start, limit and delta must be scalars");
    }
    let out = with_num_type!(s.dtype(), T => {
        let one = |t: &Tensor| *t.view::<T>().expect("dtype").iter().next().expect("one element");
        let (start, limit, delta) = (one(s), one(l), one(d));
        let n = if T::IS_FLOAT {
            let (a, b, c) = (start.to_f64(), limit.to_f64(), delta.to_f64());
            if c == 0.0 || !a.is_finite() || !b.is_finite() { bail!("Range needs finite bounds and a non-zero delta") }
            ((b - a) / c).ceil().max(0.0)
        } else {
            let (a, b, c) = (start.to_f64() as i128, limit.to_f64() as i128, delta.to_f64() as i128);
            if c == 0 { bail!("Range delta must not be zero") }
            let q = (b - a + c - c.signum()) / c;
            q.max(0) as f64
        };
        let n = n as usize;
        numel(&[n])?;
        // numpy's arange: start + i * delta (not a running sum, which drifts).
        let v: Vec<T> = (0..n).map(|i| start.add(T::from_f64(i as f64).mul(delta))).collect();
        tensor(&[n], v)?
    }, else => bail!("Range is not defined for {}", s.dtype()));
    Ok(vec![out])
}
