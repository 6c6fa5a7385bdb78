//! Ops that only change or report a shape (ONNX specs): Reshape (0 copies a dimension unless
//! `allowzero`, -1 is inferred), Flatten, Squeeze, Unsqueeze (axes as attribute or input),
//! Shape (with `start`/`end`), and Dropout at inference (identity, mask all true).

use super::{OpResult, arg, axes, ints, opt};
use crate::error::{OpError, bail};
use qopt_ir::op::{Flatten, Reshape, Shape, Squeeze, Unsqueeze};
use qopt_ir::{Tensor, dispatch_tensor};

/// `x` with a new shape of the same element count (the data is copied once).
pub fn with_shape(x: &Tensor, shape: &[usize]) -> Result<Tensor, OpError> {
    if shape.iter().product::<usize>() != x.len() {
        bail!("cannot reshape {:?} to {:?}", x.shape(), shape);
    }
    Ok(dispatch_tensor!(x, a => {
        let a = a.as_standard_layout().into_owned();
        qopt_ir::Element::wrap(a.into_shape_with_order(ndarray::IxDyn(shape)).map_err(|e| OpError(e.to_string()))?)
    }))
}

/// The output shape of Reshape for input shape `inp`.
pub fn reshape_shape(inp: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>, OpError> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => match inp.get(i) {
                Some(&v) => out.push(v),
                None => bail!("shape {spec:?} copies dimension {i} that the input {inp:?} lacks"),
            },
            d if d >= 0 => out.push(d as usize),
            _ => bail!("invalid shape {spec:?}"),
        }
    }
    let total: usize = inp.iter().product();
    if let Some(i) = infer {
        let rest: usize = out.iter().product();
        if rest == 0 || !total.is_multiple_of(rest) {
            bail!("cannot reshape {inp:?} to {spec:?}");
        }
        out[i] = total / rest;
    }
    if out.iter().product::<usize>() != total {
        bail!("cannot reshape {inp:?} ({total} elements) to {spec:?}");
    }
    Ok(out)
}

pub fn reshape(o: &Reshape, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let spec = ints(arg(inputs, 1)?, "shape")?;
    let shape = reshape_shape(x.shape(), &spec, o.allowzero != 0)?;
    Ok(vec![with_shape(x, &shape)?])
}

pub fn flatten_shape(inp: &[usize], a: i64) -> Result<Vec<usize>, OpError> {
    let r = inp.len();
    let a = if a < 0 { a + r as i64 } else { a };
    if a < 0 || a > r as i64 {
        bail!("axis {a} is out of range for rank {r}");
    }
    let a = a as usize;
    Ok(vec![inp[..a].iter().product(), inp[a..].iter().product()])
}

pub fn flatten(o: &Flatten, x: &Tensor) -> OpResult {
    Ok(vec![with_shape(x, &flatten_shape(x.shape(), o.axis)?)?])
}

/// Axes from the attribute field, or from input 1 when the field is absent.
fn axes_field_or_input(
    field: &Option<Vec<i64>>,
    inputs: &[Option<&Tensor>],
) -> Result<Option<Vec<i64>>, OpError> {
    match (field, opt(inputs, 1)) {
        (Some(a), _) => Ok(Some(a.clone())),
        (None, Some(t)) => Ok(Some(ints(t, "axes")?)),
        (None, None) => Ok(None),
    }
}

pub fn squeeze_shape(inp: &[usize], ax: Option<&[i64]>) -> Result<Vec<usize>, OpError> {
    match ax {
        None => Ok(inp.iter().copied().filter(|&d| d != 1).collect()),
        Some(a) => {
            let a = axes(a, inp.len())?;
            if let Some(&bad) = a.iter().find(|&&i| inp[i] != 1) {
                bail!("cannot squeeze axis {bad} of size {} in {inp:?}", inp[bad]);
            }
            Ok(inp
                .iter()
                .enumerate()
                .filter(|(i, _)| !a.contains(i))
                .map(|(_, &d)| d)
                .collect())
        }
    }
}

pub fn squeeze(o: &Squeeze, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let ax = axes_field_or_input(&o.axes, inputs)?;
    Ok(vec![with_shape(
        x,
        &squeeze_shape(x.shape(), ax.as_deref())?,
    )?])
}

pub fn unsqueeze_shape(inp: &[usize], ax: &[i64]) -> Result<Vec<usize>, OpError> {
    let rank = inp.len() + ax.len();
    let a = axes(ax, rank)?;
    let mut it = inp.iter();
    Ok((0..rank)
        .map(|i| {
            if a.contains(&i) {
                1
            } else {
                *it.next().expect("rank adds up")
            }
        })
        .collect())
}

pub fn unsqueeze(o: &Unsqueeze, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let Some(ax) = axes_field_or_input(&o.axes, inputs)? else {
        bail!("Unsqueeze needs axes")
    };
    Ok(vec![with_shape(x, &unsqueeze_shape(x.shape(), &ax)?)?])
}

pub fn shape(o: &Shape, x: &Tensor) -> OpResult {
    let r = x.rank() as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(o.start);
    let end = clampi(o.end.unwrap_or(r));
    let dims: Vec<i64> = x.shape()[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Ok(vec![Tensor::from_vec(&[dims.len()], dims)])
}

pub fn dropout(inputs: &[Option<&Tensor>], num_outputs: usize) -> OpResult {
    let x = arg(inputs, 0)?;
    let mut out = vec![x.clone()];
    if num_outputs > 1 {
        out.push(Tensor::Bool(ndarray::ArrayD::from_elem(
            ndarray::IxDyn(x.shape()),
            true,
        )));
    }
    Ok(out)
}

/// The output shape of a shape-only op, when the plan can run it without copying (it moves the
/// input's buffer into the output). `None` for other ops.
pub fn zero_copy_shape(
    op: &qopt_ir::Op,
    inputs: &[Option<&Tensor>],
) -> Option<Result<Vec<usize>, OpError>> {
    use qopt_ir::Op;
    let x = opt(inputs, 0)?;
    let r = match op {
        Op::Reshape(o) => opt(inputs, 1)
            .ok_or_else(|| OpError("missing input 1".into()))
            .and_then(|s| ints(s, "shape"))
            .and_then(|s| reshape_shape(x.shape(), &s, o.allowzero != 0)),
        Op::Flatten(o) => flatten_shape(x.shape(), o.axis),
        Op::Squeeze(o) => axes_field_or_input(&o.axes, inputs)
            .and_then(|a| squeeze_shape(x.shape(), a.as_deref())),
        Op::Unsqueeze(o) => match axes_field_or_input(&o.axes, inputs) {
            Ok(Some(a)) => unsqueeze_shape(x.shape(), &a),
            Ok(None) => Err(OpError("Unsqueeze needs axes".into())),
            Err(e) => Err(e),
        },
        Op::Identity(_) | Op::Observer(_) => Ok(x.shape().to_vec()),
        Op::Dropout(_) => Ok(x.shape().to_vec()),
        _ => return None,
    };
    Some(r)
}

/// Move `x` into a tensor of `shape` without copying its data (it must be contiguous).
pub fn reshape_owned(x: Tensor, shape: &[usize]) -> Result<Tensor, OpError> {
    Ok(dispatch_tensor!(x, a => {
        let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
        qopt_ir::Element::wrap(a.into_shape_with_order(ndarray::IxDyn(shape)).map_err(|e| OpError(e.to_string()))?)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_rules() {
        assert_eq!(
            reshape_shape(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert_eq!(reshape_shape(&[2, 0], &[0, 5], true).unwrap(), vec![0, 5]);
        assert!(reshape_shape(&[2, 3], &[-1, -1], false).is_err());
        assert!(reshape_shape(&[2, 3], &[4, -1], false).is_err());
        assert_eq!(reshape_shape(&[0, 3], &[3, 0], true).unwrap(), vec![3, 0]);
    }

    #[test]
    fn squeeze_unsqueeze() {
        assert_eq!(squeeze_shape(&[1, 3, 1], None).unwrap(), vec![3]);
        assert!(squeeze_shape(&[1, 3], Some(&[1])).is_err());
        assert_eq!(
            unsqueeze_shape(&[3, 4], &[0, -1]).unwrap(),
            vec![1, 3, 4, 1]
        );
        assert_eq!(flatten_shape(&[2, 3, 4], -1).unwrap(), vec![6, 4]);
        assert_eq!(flatten_shape(&[2, 3], 0).unwrap(), vec![1, 6]);
    }
}
