//! Pad (ONNX opset 11+: `data, pads, constant_value?, axes?`), modes constant, reflect, edge
//! and wrap. Negative pads crop. Each output coordinate maps to an input coordinate per axis
//! (or to the constant), like numpy.pad, which the ONNX reference uses.

use super::{OpResult, arg, axis, contig, ints, numel, opt, tensor};
use crate::error::{OpError, bail};
use crate::num::with_any_type;
use qopt_ir::attr::PadMode;
use qopt_ir::op::Pad;
use qopt_ir::{Element, Tensor};

/// Input coordinate of output coordinate `o` on an axis of size `n` padded by `pb` before.
fn source(o: usize, pb: i64, n: usize, mode: PadMode) -> Option<usize> {
    let i = o as i64 - pb;
    let n = n as i64;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    if n == 0 {
        return None;
    }
    match mode {
        PadMode::Constant => None,
        PadMode::Edge => Some(i.clamp(0, n - 1) as usize),
        PadMode::Wrap => Some(i.rem_euclid(n) as usize),
        PadMode::Reflect => {
            if n == 1 {
                return Some(0);
            }
            let period = 2 * (n - 1);
            let m = i.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
    }
}

pub fn run(o: &Pad, inputs: &[Option<&Tensor>]) -> OpResult {
    let x = arg(inputs, 0)?;
    let rank = x.rank();
    let pads = ints(arg(inputs, 1)?, "pads")?;
    let ax: Vec<usize> = match opt(inputs, 3) {
        Some(t) => ints(t, "axes")?
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * ax.len() {
        bail!("pads has {} values for {} axes", pads.len(), ax.len());
    }
    let mut pb = vec![0i64; rank];
    let mut pe = vec![0i64; rank];
    for (k, &a) in ax.iter().enumerate() {
        pb[a] = pads[k];
        pe[a] = pads[k + ax.len()];
    }
    let ish = x.shape();
    let mut osh = Vec::with_capacity(rank);
    for a in 0..rank {
        let d = ish[a] as i64 + pb[a] + pe[a];
        if d < 0 {
            bail!("pads {pads:?} crop axis {a} of size {} below zero", ish[a]);
        }
        osh.push(d as usize);
    }
    let n = numel(&osh)?;
    if o.mode != PadMode::Constant && ish.iter().zip(&osh).any(|(&i, &o)| i == 0 && o > 0) {
        bail!("{} padding of an empty axis", o.mode.as_str());
    }
    let maps: Vec<Vec<Option<usize>>> = (0..rank)
        .map(|a| {
            (0..osh[a])
                .map(|i| source(i, pb[a], ish[a], o.mode))
                .collect()
        })
        .collect();
    let out = with_any_type!(x.dtype(), T => {
        let cv: T = match opt(inputs, 2) {
            Some(c) if c.len() == 1 => *c.view::<T>().ok_or_else(|| OpError(format!("constant_value type {} differs from data type {}", c.dtype(), x.dtype())))?.iter().next().expect("one"),
            Some(c) if c.is_empty() => T::from_f64(0.0),
            Some(c) => bail!("constant_value must be a scalar, got shape {:?}", c.shape()),
            None => T::from_f64(0.0),
        };
        let d = contig(x.view::<T>().expect("dtype"));
        tensor(&osh, pad_data(&d, ish, &osh, &maps, cv, n))?
    });
    Ok(vec![out])
}

fn pad_data<T: Element>(
    d: &[T],
    ish: &[usize],
    osh: &[usize],
    maps: &[Vec<Option<usize>>],
    cv: T,
    n: usize,
) -> Vec<T> {
    let rank = ish.len();
    if rank == 0 {
        return d.to_vec();
    }
    let mut istr = vec![1usize; rank];
    for i in (0..rank - 1).rev() {
        istr[i] = istr[i + 1] * ish[i + 1];
    }
    let last = osh[rank - 1];
    let mut v: Vec<T> = Vec::with_capacity(n);
    if last == 0 {
        return v;
    }
    let rows = n / last;
    let mut pos = vec![0usize; rank - 1];
    for _ in 0..rows {
        let mut base = Some(0usize);
        for a in 0..rank - 1 {
            base = base.and_then(|b| maps[a][pos[a]].map(|i| b + i * istr[a]));
        }
        match base {
            None => v.extend(std::iter::repeat_n(cv, last)),
            Some(b) => v.extend(maps[rank - 1].iter().map(|m| m.map_or(cv, |i| d[b + i]))),
        }
        for a in (0..rank - 1).rev() {
            pos[a] += 1;
            if pos[a] < osh[a] {
                break;
            }
            pos[a] = 0;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_match_numpy_pad() {
        // numpy: np.pad([1,2,3], (2,3), mode) for reflect/edge/wrap/constant.
        let x = Tensor::from_vec(&[3], vec![1i64, 2, 3]);
        let p = Tensor::from_vec(&[2], vec![2i64, 3]);
        let run_mode = |mode| {
            run(&Pad { mode }, &[Some(&x), Some(&p)]).unwrap()[0]
                .to_i64_vec()
                .unwrap()
        };
        assert_eq!(run_mode(PadMode::Reflect), vec![3, 2, 1, 2, 3, 2, 1, 2]);
        assert_eq!(run_mode(PadMode::Edge), vec![1, 1, 1, 2, 3, 3, 3, 3]);
        assert_eq!(run_mode(PadMode::Wrap), vec![2, 3, 1, 2, 3, 1, 2, 3]);
        assert_eq!(run_mode(PadMode::Constant), vec![0, 0, 1, 2, 3, 0, 0, 0]);
        let crop = Tensor::from_vec(&[2], vec![-1i64, 0]);
        assert_eq!(
            run(&Pad::default(), &[Some(&x), Some(&crop)]).unwrap()[0]
                .to_i64_vec()
                .unwrap(),
            vec![2, 3]
        );
    }
}
