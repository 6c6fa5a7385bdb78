//! Quantized Add and Mul with rescaling: QLinearAdd / QLinearMul (com.microsoft, as ONNX Runtime
//! defines them) and the QDQ pattern `DQ(a), DQ(b) -> Add|Mul -> Q(y)`, on the kernel of
//! `kernels/int8/qbinary.rs`, which computes the QDQ reference formula in f32 and so is bit-exact
//! with it: `y = Q(DQ(a) + DQ(b))` (or `·`).
//!
//! Broadcasting is numpy's, on the tensors as stored: both operands are in the same layout (the
//! lowering converts a constant operand to channels-last at plan time when the other one is). The
//! output shape is `a`'s (the operands are swapped when only `b` has it; Add and Mul commute), and
//! the broadcast is cut into runs where `b` repeats with a period that divides the run: a
//! per-channel vector against NHWC data is one run per image, a per-channel vector against NCHW
//! data one run per channel.

use super::{Operand, QOut, Step, StepCx, kerr, out_tensor, qdata, scale1, zero_point1};
use crate::error::{OpError, bail};
use crate::kernels::int8::{BinaryOp, QBinary, QInt};
use crate::ops::broadcast::shape_of;
use qopt_ir::{DType, Element, Tensor};

pub struct QBinaryStep {
    pub op: BinaryOp,
    pub a: Operand,
    pub a_scale: Operand,
    pub a_zp: Operand,
    pub b: Operand,
    pub b_scale: Operand,
    pub b_zp: Operand,
    pub y_scale: Operand,
    pub y_zp: Operand,
}

/// Runs of a broadcast: `(a_offset, b_offset)` pairs, each covering `run` elements of `a` against
/// `b_len` elements of `b` repeated.
struct Runs {
    run: usize,
    b_len: usize,
    starts: Vec<(usize, usize)>,
}

/// The runs for `b` broadcast against `a` (same rank after padding `b` with leading 1s; every
/// `b` dim is 1 or `a`'s).
fn runs(a: &[usize], b: &[usize]) -> Option<Runs> {
    if b.len() > a.len() {
        return None;
    }
    let mut bp = vec![1usize; a.len() - b.len()];
    bp.extend_from_slice(b);
    if bp.iter().zip(a).any(|(&x, &y)| x != 1 && x != y) {
        return None;
    }
    let r = a.len();
    // Suffix where b equals a, then the run of broadcast (size-1) dims before it.
    let mut j = r;
    while j > 0 && bp[j - 1] == a[j - 1] {
        j -= 1;
    }
    let inner: usize = a[j..].iter().product();
    let mut i0 = j;
    while i0 > 0 && bp[i0 - 1] == 1 {
        i0 -= 1;
    }
    let rep: usize = a[i0..j].iter().product();
    // Strides of b (0 where broadcast) over the outer dims.
    let mut bstride = vec![0usize; r];
    let mut s = 1;
    for d in (0..r).rev() {
        bstride[d] = if bp[d] == 1 { 0 } else { s };
        s *= bp[d];
    }
    let outer: usize = a[..i0].iter().product();
    let mut starts = Vec::with_capacity(outer);
    let mut idx = vec![0usize; i0];
    for o in 0..outer {
        let boff: usize = idx.iter().zip(&bstride).map(|(i, s)| i * s).sum();
        starts.push((o * rep * inner, boff));
        for d in (0..i0).rev() {
            idx[d] += 1;
            if idx[d] < a[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(Runs {
        run: rep * inner,
        b_len: inner,
        starts,
    })
}

/// `t` as the other quantized type when they differ: i8 <-> u8 by ±128 on values and zero point,
/// which leaves every dequantized value unchanged.
fn as_type(t: &Tensor, zp: i32, to: DType) -> Result<(Tensor, i32), OpError> {
    Ok(match (t, to) {
        (Tensor::I8(a), DType::U8) => (Tensor::U8(a.mapv(|v| (v as i32 + 128) as u8)), zp + 128),
        (Tensor::U8(a), DType::I8) => (Tensor::I8(a.mapv(|v| (v as i32 - 128) as i8)), zp - 128),
        (t, _) => (t.clone(), zp),
    })
}

fn run_typed<I: QInt + Element, O: QInt + Element>(
    q: &QBinary,
    kind: crate::kernels::int8::KernelKind,
    a: &Tensor,
    b: &Tensor,
) -> Result<Tensor, OpError> {
    let (ad, bd) = (qdata::<I>(a)?, qdata::<I>(b)?);
    let mut y = vec![O::default(); ad.len()];
    if a.shape() == b.shape() {
        q.run(kind, &ad, &bd, &mut y).map_err(kerr)?;
    } else {
        let Some(r) = runs(a.shape(), b.shape()) else {
            bail!("cannot broadcast {:?} against {:?}", b.shape(), a.shape());
        };
        for &(ao, bo) in &r.starts {
            q.run(
                kind,
                &ad[ao..ao + r.run],
                &bd[bo..bo + r.b_len],
                &mut y[ao..ao + r.run],
            )
            .map_err(kerr)?;
        }
    }
    out_tensor(a.shape(), y)
}

impl Step for QBinaryStep {
    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let mut a = self.a.req(ins, "A")?;
        let mut b = self.b.req(ins, "B")?;
        let mut pa = (
            scale1(self.a_scale.req(ins, "A scale")?, "A scale")?,
            zero_point1(self.a_zp.get(ins), "A zero point")?,
        );
        let mut pb = (
            scale1(self.b_scale.req(ins, "B scale")?, "B scale")?,
            zero_point1(self.b_zp.get(ins), "B zero point")?,
        );
        let y_zp = self.y_zp.get(ins);
        let py = (
            scale1(self.y_scale.req(ins, "C scale")?, "C scale")?,
            zero_point1(y_zp, "C zero point")?,
        );
        let out = match y_zp.map(|t| t.dtype()) {
            None => QOut::of(a.dtype()).unwrap_or(QOut::U8),
            Some(d) => match QOut::of(d) {
                Some(o) => o,
                None => bail!("C zero point must be u8 or i8, got {d}"),
            },
        };
        let shape = shape_of(&[a.shape(), b.shape()])?;
        if a.shape() != shape.as_slice() && b.shape() == shape.as_slice() {
            std::mem::swap(&mut a, &mut b);
            std::mem::swap(&mut pa, &mut pb);
        }
        let expanded;
        if a.shape() != shape.as_slice() {
            expanded = crate::ops::expand::run(
                a,
                &Tensor::from_vec(&[shape.len()], shape.iter().map(|&d| d as i64).collect()),
            )?
            .remove(0);
            a = &expanded;
        }
        let converted;
        if b.dtype() != a.dtype() {
            let (t, z) = as_type(b, pb.1, a.dtype())?;
            converted = t;
            pb.1 = z;
            b = &converted;
        }
        let q = QBinary::new(self.op, pa, pb, py).map_err(kerr)?;
        let y = match (a.dtype(), out) {
            (DType::U8, QOut::U8) => run_typed::<u8, u8>(&q, cx.kind, a, b),
            (DType::U8, QOut::I8) => run_typed::<u8, i8>(&q, cx.kind, a, b),
            (DType::I8, QOut::U8) => run_typed::<i8, u8>(&q, cx.kind, a, b),
            (DType::I8, QOut::I8) => run_typed::<i8, i8>(&q, cx.kind, a, b),
            (d, _) => bail!("quantized {:?} needs u8 or i8 inputs, got {d}", self.op),
        }?;
        Ok(vec![y])
    }

    fn name(&self) -> String {
        format!("Q{:?}", self.op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: numpy broadcasting written out element by element.
    fn check(a: &[usize], b: &[usize]) {
        let r = runs(a, b).expect("broadcastable");
        let total: usize = a.iter().product();
        let mut bp = vec![1usize; a.len() - b.len()];
        bp.extend_from_slice(b);
        let mut covered = vec![false; total];
        for &(ao, bo) in &r.starts {
            for i in 0..r.run {
                let flat = ao + i;
                // b's flat index of a's element `flat`.
                let mut rem = flat;
                let mut coords = vec![0; a.len()];
                for d in (0..a.len()).rev() {
                    coords[d] = rem % a[d];
                    rem /= a[d];
                }
                let mut bi = 0;
                for d in 0..a.len() {
                    bi = bi * bp[d] + if bp[d] == 1 { 0 } else { coords[d] };
                }
                assert_eq!(bo + i % r.b_len, bi, "{a:?} {b:?} at {flat}");
                covered[flat] = true;
            }
        }
        assert!(covered.iter().all(|&c| c), "{a:?} {b:?}");
    }

    #[test]
    fn broadcast_runs_match_numpy_indexing() {
        check(&[1, 7, 5, 16], &[1, 1, 1, 16]); // SE vector vs NHWC
        check(&[1, 16, 7, 5], &[1, 16, 1, 1]); // per channel vs NCHW
        check(&[2, 16, 7, 5], &[2, 16, 1, 1]);
        check(&[2, 3, 4, 5], &[3, 1, 5]);
        check(&[2, 3, 4, 5], &[1]);
        check(&[2, 3, 4, 5], &[2, 1, 4, 1]);
        check(&[4, 5], &[4, 5]);
        assert!(runs(&[2, 3], &[3, 3]).is_none());
    }
}
