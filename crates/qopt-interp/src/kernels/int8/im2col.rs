//! int8 im2col for NHWC: one row per output pixel holding its receptive field in (ky, kx, c)
//! order, so the conv is a GEMM against weights reordered the same way (`Conv2d`). Taps in the
//! padding hold the input zero point, not 0: padding is 0.0 in real values, which is `za` in the
//! quantized domain (ONNX QLinearConv and the QDQ reference both pad the real-valued input).

use super::error::{Int8Error, check_len};
use super::geometry::Conv2dGeometry;
use super::qtype::QInt;
use std::ops::Range;

/// Writes rows `pixels` (output pixel indices `oy * out_w + ox` of image `image`) of group `group`'s
/// im2col matrix into `out`, which must hold exactly `pixels.len() * geom.gemm_k()` elements.
pub fn im2col<A: QInt>(
    input: &[A],
    geom: &Conv2dGeometry,
    image: usize,
    group: usize,
    pixels: Range<usize>,
    zero_point: A,
    out: &mut [A],
) -> Result<(), Int8Error> {
    check_len("im2col input", input.len(), geom.input_len())?;
    if image >= geom.batch || group >= geom.params.groups {
        return Err(Int8Error::Shape {
            what: "im2col",
            detail: format!(
                "image {image} / group {group} out of {} / {}",
                geom.batch, geom.params.groups
            ),
        });
    }
    if pixels.start > pixels.end || pixels.end > geom.out_h * geom.out_w {
        return Err(Int8Error::Shape {
            what: "im2col",
            detail: format!("pixels {pixels:?} out of {}", geom.out_h * geom.out_w),
        });
    }
    let k = geom.gemm_k();
    check_len("im2col output", out.len(), pixels.len() * k)?;
    let cg = geom.in_c_per_group();
    let [kh, kw] = geom.params.kernel;
    let image_base = image * geom.in_h * geom.in_w * geom.in_c + group * cg;
    for (row, p) in out.chunks_exact_mut(k.max(1)).zip(pixels) {
        let (oy, ox) = (p / geom.out_w, p % geom.out_w);
        for ky in 0..kh {
            let iy = geom.input_pos(0, oy, ky);
            for kx in 0..kw {
                let dst = &mut row[(ky * kw + kx) * cg..(ky * kw + kx + 1) * cg];
                match (iy, geom.input_pos(1, ox, kx)) {
                    (Some(iy), Some(ix)) => {
                        let src = image_base + (iy * geom.in_w + ix) * geom.in_c;
                        dst.copy_from_slice(&input[src..src + cg]);
                    }
                    _ => dst.fill(zero_point),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::geometry::ConvParams;
    use super::*;

    #[test]
    fn padding_taps_hold_the_zero_point() {
        // 1 image 2x2x1, 3x3 kernel, pad 1: the centre pixel's patch written out by hand.
        let g =
            Conv2dGeometry::new(1, 2, 2, 1, 1, ConvParams::new([3, 3]).pads([1, 1, 1, 1])).unwrap();
        let input = [1u8, 2, 3, 4];
        let mut out = vec![0u8; 9];
        im2col(&input, &g, 0, 0, 0..1, 9u8, &mut out).unwrap();
        assert_eq!(out, vec![9, 9, 9, 9, 1, 2, 9, 3, 4]);
        assert!(im2col(&input, &g, 0, 0, 0..2, 9u8, &mut out).is_err());
        assert!(im2col(&input, &g, 1, 0, 0..1, 9u8, &mut out).is_err());
        assert!(im2col(&input, &g, 0, 0, 3..5, 9u8, &mut out).is_err());
    }

    #[test]
    fn groups_take_their_channel_slice() {
        // 1x1 image with 4 channels, 2 groups, 1x1 kernel: group 1 reads channels 2..4.
        let g = Conv2dGeometry::new(1, 1, 1, 4, 2, ConvParams::new([1, 1]).groups(2)).unwrap();
        let mut out = vec![0i8; 2];
        im2col(&[1i8, 2, 3, 4], &g, 0, 1, 0..1, 0, &mut out).unwrap();
        assert_eq!(out, vec![3, 4]);
    }
}
