//! Slice (ONNX opset 10+: `data, starts, ends, axes?, steps?`). Starts and ends are clamped as
//! the spec says: to `[0, dim]` for positive steps and `[-1, dim - 1]` for negative ones.

use super::{OpResult, arg, axis, ints, opt};
use crate::error::{OpError, bail};
use crate::num::with_any_type;
use ndarray::{Axis, Slice};
use qopt_ir::Tensor;

/// Per axis of the input: (start, end, step) as ndarray slices take them, plus the output size.
pub fn slice_params(
    shape: &[usize],
    starts: &[i64],
    ends: &[i64],
    axes_: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Vec<(usize, isize, isize, isize)>, OpError> {
    let n = starts.len();
    if ends.len() != n || axes_.is_some_and(|a| a.len() != n) || steps.is_some_and(|s| s.len() != n)
    {
        bail!("starts, ends, axes and steps differ in length");
    }
    let mut out = Vec::with_capacity(n);
    let mut seen = vec![false; shape.len()];
    for i in 0..n {
        let a = axis(axes_.map_or(i as i64, |v| v[i]), shape.len())?;
        if std::mem::replace(&mut seen[a], true) {
            bail!("axis {a} is sliced twice");
        }
        let step = steps.map_or(1, |s| s[i]);
        if step == 0 {
            bail!("slice step must not be zero");
        }
        let dim = shape[a] as i64;
        let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (s, e) = (norm(starts[i]), norm(ends[i]));
        let (s, e) = if step > 0 {
            (s.clamp(0, dim), e.clamp(0, dim))
        } else {
            (s.clamp(-1, dim - 1), e.clamp(-1, dim - 1))
        };
        out.push((a, s as isize, e as isize, step as isize));
    }
    Ok(out)
}

pub fn run(inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let starts = ints(arg(inputs, 1)?, "starts")?;
    let ends = ints(arg(inputs, 2)?, "ends")?;
    let axes_ = opt(inputs, 3).map(|t| ints(t, "axes")).transpose()?;
    let steps = opt(inputs, 4).map(|t| ints(t, "steps")).transpose()?;
    let params = slice_params(
        x.shape(),
        &starts,
        &ends,
        axes_.as_deref(),
        steps.as_deref(),
    )?;
    let out = with_any_type!(x.dtype(), T => {
        let mut v = x.view::<T>().expect("dtype").view();
        for &(a, s, e, step) in &params {
            let sl = if step > 0 {
                if e <= s { Slice::new(0, Some(0), 1) } else { Slice::new(s, Some(e), step) }
            } else {
                // Elements s, s + step, ... while > e: ndarray takes the range [e + 1, s + 1)
                // walked backwards with |step| from its end.
                if s <= e { Slice::new(0, Some(0), 1) } else { Slice::new(e + 1, Some(s + 1), step) }
            };
            v.slice_axis_inplace(Axis(a), sl);
        }
        T::wrap(v.as_standard_layout().into_owned())
    });
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_steps_and_clamping() {
        // numpy: np.arange(10)[8:2:-3] == [8, 5]; [-100:100] is everything; [5:1] is empty.
        let x = Tensor::from_vec(&[10], (0..10i64).collect());
        let s = |st: i64, en: i64, step: i64| {
            let ins = [
                Some(&x),
                Some(&Tensor::from_vec(&[1], vec![st])),
                Some(&Tensor::from_vec(&[1], vec![en])),
                None,
                Some(&Tensor::from_vec(&[1], vec![step])),
            ];
            run(&[ins[0], ins[1], ins[2], ins[3], ins[4]]).unwrap()[0]
                .to_i64_vec()
                .unwrap()
        };
        assert_eq!(s(8, 2, -3), vec![8, 5]);
        assert_eq!(s(-100, 100, 1), (0..10).collect::<Vec<_>>());
        assert_eq!(s(5, 1, 1), Vec::<i64>::new());
        assert_eq!(s(-1, -100, -1), (0..10).rev().collect::<Vec<_>>());
        assert_eq!(s(1, i64::MAX, 4), vec![1, 5, 9]);
    }
}
