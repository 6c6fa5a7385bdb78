//! Layout conversions between the ONNX layout (NCHW) and the channels-last layout (NHWC) the int8
//! conv kernels read and write (`kernels/int8/mod.rs`). A rank-4 value the plan keeps NHWC is
//! stored with the physical shape `[N, H, W, C]`; its logical (ONNX) shape is `[N, C, H, W]`.
//!
//! When `H·W = 1` or `C = 1` both layouts have the same bytes and the conversion is a reshape (the
//! squeeze-and-excitation vectors and the classifier input of every MobileNet-like net).

use super::{Step, StepCx};
use crate::error::{OpError, bail};
use qopt_ir::{Element, Tensor, dispatch_tensor};

/// `[N, C, H, W]` -> `[N, H, W, C]`.
pub fn nhwc_shape(nchw: &[usize]) -> [usize; 4] {
    [nchw[0], nchw[2], nchw[3], nchw[1]]
}

/// `[N, H, W, C]` -> `[N, C, H, W]`.
pub fn nchw_shape(nhwc: &[usize]) -> [usize; 4] {
    [nhwc[0], nhwc[3], nhwc[1], nhwc[2]]
}

/// Moves axis 1 of `[n, c, hw]` to the end: `dst[(n, hw, c)] = src[(n, c, hw)]`.
fn channels_last<T: Copy + Default>(src: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    let mut dst = vec![T::default(); src.len()];
    for b in 0..n {
        let (s, d) = (
            &src[b * c * hw..(b + 1) * c * hw],
            &mut dst[b * c * hw..(b + 1) * c * hw],
        );
        // Blocks of 8 channels keep both sides' accesses short-strided.
        for c0 in (0..c).step_by(8) {
            let c1 = (c0 + 8).min(c);
            for p in 0..hw {
                for ch in c0..c1 {
                    d[p * c + ch] = s[ch * hw + p];
                }
            }
        }
    }
    dst
}

/// Moves the last axis of `[n, hw, c]` to axis 1: `dst[(n, c, hw)] = src[(n, hw, c)]`.
fn channels_first<T: Copy + Default>(src: &[T], n: usize, c: usize, hw: usize) -> Vec<T> {
    let mut dst = vec![T::default(); src.len()];
    for b in 0..n {
        let (s, d) = (
            &src[b * c * hw..(b + 1) * c * hw],
            &mut dst[b * c * hw..(b + 1) * c * hw],
        );
        for c0 in (0..c).step_by(8) {
            let c1 = (c0 + 8).min(c);
            for p in 0..hw {
                for ch in c0..c1 {
                    d[ch * hw + p] = s[p * c + ch];
                }
            }
        }
    }
    dst
}

fn convert(t: &Tensor, to_nhwc: bool) -> Result<Tensor, OpError> {
    if t.rank() != 4 {
        bail!(
            "channels-last layout needs a rank-4 tensor, got shape {:?}",
            t.shape()
        );
    }
    let s = t.shape();
    let (shape, n, c, hw) = if to_nhwc {
        (nhwc_shape(s), s[0], s[1], s[2] * s[3])
    } else {
        (nchw_shape(s), s[0], s[3], s[1] * s[2])
    };
    if hw == 1 || c == 1 {
        return crate::ops::shape::with_shape(t, &shape);
    }
    Ok(dispatch_tensor!(t, a => {
        let src = crate::ops::contig(a);
        let v = if to_nhwc {
            channels_last(&src, n, c, hw)
        } else {
            channels_first(&src, n, c, hw)
        };
        Element::wrap(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&shape), v)
                .map_err(|e| OpError(e.to_string()))?,
        )
    }))
}

/// An ONNX-layout rank-4 tensor in channels-last layout.
pub fn to_nhwc(t: &Tensor) -> Result<Tensor, OpError> {
    convert(t, true)
}

/// A channels-last rank-4 tensor back in the ONNX layout.
pub fn to_nchw(t: &Tensor) -> Result<Tensor, OpError> {
    convert(t, false)
}

/// A layout conversion step.
pub struct Convert {
    pub to_nhwc: bool,
}

impl Step for Convert {
    fn run(&mut self, _cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = crate::ops::arg(ins, 0)?;
        Ok(vec![convert(x, self.to_nhwc)?])
    }
    fn name(&self) -> String {
        if self.to_nhwc { "to NHWC" } else { "to NCHW" }.into()
    }
    fn is_integer(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_the_reshape_shortcut() {
        // Reference: ndarray's own axis permutation.
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&[2, 11, 3, 5]), |d| {
            (d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]) as i32
        });
        let t = Tensor::I32(a.clone());
        let n = to_nhwc(&t).unwrap();
        let want = a
            .view()
            .permuted_axes(vec![0, 2, 3, 1])
            .as_standard_layout()
            .into_owned();
        assert_eq!(n.view::<i32>().unwrap(), &want);
        assert!(to_nchw(&n).unwrap().bit_eq(&t));
        // H*W = 1: same bytes.
        let v = Tensor::from_vec(&[1, 4, 1, 1], vec![1u8, 2, 3, 4]);
        assert_eq!(to_nhwc(&v).unwrap().shape(), &[1, 1, 1, 4]);
        assert!(to_nhwc(&Tensor::from_vec(&[4], vec![0u8; 4])).is_err());
    }
}
