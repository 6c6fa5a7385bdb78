//! Conv2d geometry shared by the int8 conv helpers: NHWC input `[N, H, W, C]`, ONNX weights
//! `[O, C/groups, KH, KW]`, ONNX pads `[top, left, bottom, right]` (the plan turns `auto_pad`
//! into explicit pads before building this).

use super::error::Int8Error;

/// Kernel, strides, dilations, pads and groups of a 2-D convolution (ONNX Conv attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// `[KH, KW]`.
    pub kernel: [usize; 2],
    /// `[SH, SW]`.
    pub stride: [usize; 2],
    /// `[DH, DW]`.
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Number of groups.
    pub groups: usize,
}

impl ConvParams {
    /// A `kh x kw` kernel with stride 1, dilation 1, no padding, one group.
    pub fn new(kernel: [usize; 2]) -> ConvParams {
        ConvParams {
            kernel,
            stride: [1, 1],
            dilation: [1, 1],
            pads: [0; 4],
            groups: 1,
        }
    }
    /// With strides.
    pub fn stride(mut self, stride: [usize; 2]) -> ConvParams {
        self.stride = stride;
        self
    }
    /// With dilations.
    pub fn dilation(mut self, dilation: [usize; 2]) -> ConvParams {
        self.dilation = dilation;
        self
    }
    /// With pads `[top, left, bottom, right]`.
    pub fn pads(mut self, pads: [usize; 4]) -> ConvParams {
        self.pads = pads;
        self
    }
    /// With groups.
    pub fn groups(mut self, groups: usize) -> ConvParams {
        self.groups = groups;
        self
    }
}

/// A validated convolution: shapes, attributes and the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    /// Images.
    pub batch: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output channels.
    pub out_c: usize,
    /// Attributes.
    pub params: ConvParams,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Conv2dGeometry {
    /// Validates the attributes against the shapes and computes the output size (ONNX Conv:
    /// `out = (in + pad_begin + pad_end - dilation*(k-1) - 1) / stride + 1`).
    pub fn new(
        batch: usize,
        in_h: usize,
        in_w: usize,
        in_c: usize,
        out_c: usize,
        params: ConvParams,
    ) -> Result<Conv2dGeometry, Int8Error> {
        let bad = |detail: String| Int8Error::Shape {
            what: "conv",
            detail,
        };
        let p = params;
        if p.kernel.contains(&0) || p.stride.contains(&0) || p.dilation.contains(&0) {
            return Err(bad(format!(
                "kernel {:?}, strides {:?} and dilations {:?} must be positive",
                p.kernel, p.stride, p.dilation
            )));
        }
        if p.groups == 0 || !in_c.is_multiple_of(p.groups) || !out_c.is_multiple_of(p.groups) {
            return Err(bad(format!(
                "groups {} must divide input channels {in_c} and output channels {out_c}",
                p.groups
            )));
        }
        let out_dim = |size: usize, pb: usize, pe: usize, k: usize, s: usize, d: usize| {
            let span = d.checked_mul(k - 1)?.checked_add(1)?;
            let padded = size.checked_add(pb)?.checked_add(pe)?;
            (padded >= span).then(|| (padded - span) / s + 1)
        };
        let out_h = out_dim(
            in_h,
            p.pads[0],
            p.pads[2],
            p.kernel[0],
            p.stride[0],
            p.dilation[0],
        );
        let out_w = out_dim(
            in_w,
            p.pads[1],
            p.pads[3],
            p.kernel[1],
            p.stride[1],
            p.dilation[1],
        );
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return Err(bad(format!(
                "kernel {:?} with dilations {:?} does not fit the padded {in_h}x{in_w} input",
                p.kernel, p.dilation
            )));
        };
        // Every buffer size derived below must fit usize.
        [batch, in_h, in_w, in_c.max(out_c)]
            .iter()
            .chain([batch, out_h, out_w, out_c.max(in_c)].iter())
            .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
            .ok_or_else(|| bad("sizes overflow usize".to_string()))?;
        Ok(Conv2dGeometry {
            batch,
            in_h,
            in_w,
            in_c,
            out_c,
            params,
            out_h,
            out_w,
        })
    }

    /// Elements of the NHWC input.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.in_c
    }

    /// Elements of the NHWC output.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_h * self.out_w * self.out_c
    }

    /// Input channels per group.
    pub fn in_c_per_group(&self) -> usize {
        self.in_c / self.params.groups
    }

    /// Output channels per group.
    pub fn out_c_per_group(&self) -> usize {
        self.out_c / self.params.groups
    }

    /// Taps per output channel and group (`KH * KW * C/groups`), the GEMM's K.
    pub fn gemm_k(&self) -> usize {
        self.params.kernel[0] * self.params.kernel[1] * self.in_c_per_group()
    }

    /// Elements of the ONNX weight tensor `[O, C/groups, KH, KW]`.
    pub fn weights_len(&self) -> usize {
        self.out_c * self.gemm_k()
    }

    /// Input position of tap `k` (0..KH or 0..KW) for output position `o` along axis `axis`, or
    /// None in the padding.
    #[inline]
    pub(crate) fn input_pos(&self, axis: usize, o: usize, k: usize) -> Option<usize> {
        let p = &self.params;
        let pos = o * p.stride[axis] + k * p.dilation[axis];
        let size = if axis == 0 { self.in_h } else { self.in_w };
        pos.checked_sub(p.pads[axis]).filter(|&i| i < size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_the_onnx_formula() {
        // Reference: ONNX Conv output shape formula, worked by hand.
        let g = Conv2dGeometry::new(
            1,
            112,
            112,
            32,
            32,
            ConvParams::new([3, 3])
                .stride([2, 2])
                .pads([0, 0, 1, 1])
                .groups(32),
        )
        .unwrap();
        assert_eq!((g.out_h, g.out_w), (56, 56));
        let g = Conv2dGeometry::new(
            2,
            7,
            9,
            4,
            6,
            ConvParams::new([3, 2]).dilation([2, 3]).pads([1, 0, 1, 2]),
        )
        .unwrap();
        assert_eq!((g.out_h, g.out_w), (5, 8));
    }

    #[test]
    fn bad_geometry_is_an_error() {
        assert!(Conv2dGeometry::new(1, 2, 2, 3, 4, ConvParams::new([3, 3])).is_err());
        assert!(Conv2dGeometry::new(1, 8, 8, 3, 4, ConvParams::new([3, 3]).groups(2)).is_err());
        assert!(Conv2dGeometry::new(1, 8, 8, 3, 4, ConvParams::new([3, 0])).is_err());
        assert!(
            Conv2dGeometry::new(1, 8, 8, 4, 4, ConvParams::new([3, 3]).stride([0, 1])).is_err()
        );
        assert!(Conv2dGeometry::new(usize::MAX, 8, 8, 4, 4, ConvParams::new([1, 1])).is_err());
    }
}
