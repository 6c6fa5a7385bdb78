//! Quantized 2-D convolution (QLinearConv / the QDQ Conv pattern) on NHWC tensors, as GEMMs:
//! a 1x1 stride-1 unpadded conv reads the input directly as the `M x K` operand (`M = H·W`,
//! `K = C/groups`, row stride `C`); any other conv is a GEMM over im2col rows. The SIMD families
//! prepare those rows straight from the input (`rows.rs`, no im2col matrix in memory); the scalar
//! oracle runs the explicit [`im2col`] in cache-sized row blocks. One GEMM per image and group; the weights are packed once per group in (ky, kx, c) order
//! to match im2col. Depthwise convs have their own direct kernel ([`super::Depthwise`]).

use super::dispatch::KernelKind;
use super::epilogue::Epilogue;
use super::error::{Int8Error, check_len};
use super::gemm::{ActMatrix, GemmArgs, OutMatrix, gemm_channels, run_simd};
use super::geometry::Conv2dGeometry;
use super::im2col::im2col;
use super::pack::PackedB;
use super::qtype::QInt;
use super::rows::Im2colRows;

/// Bytes of im2col rows per block: big enough to amortise a GEMM call, small enough for L2.
const IM2COL_BLOCK_BYTES: usize = 128 * 1024;

/// Checks that `new` describes the same layer as `old` (channels, kernel, groups), whatever the
/// input size, strides, dilations and pads.
pub(crate) fn check_same_layer(
    what: &'static str,
    old: &Conv2dGeometry,
    new: &Conv2dGeometry,
) -> Result<(), Int8Error> {
    if (old.in_c, old.out_c, old.params.kernel, old.params.groups)
        != (new.in_c, new.out_c, new.params.kernel, new.params.groups)
    {
        return Err(Int8Error::Shape {
            what,
            detail: format!(
                "prepared for {} -> {} channels, kernel {:?}, {} groups; asked for {} -> {}, {:?}, {}",
                old.in_c,
                old.out_c,
                old.params.kernel,
                old.params.groups,
                new.in_c,
                new.out_c,
                new.params.kernel,
                new.params.groups
            ),
        });
    }
    Ok(())
}

/// A convolution with its weights packed for one kernel family.
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub(crate) geom: Conv2dGeometry,
    /// One packed `K x (O/groups)` matrix per group.
    pub(crate) packed: Vec<PackedB>,
    pointwise: bool,
}

impl Conv2d {
    /// Packs ONNX weights `[O, C/groups, KH, KW]` (i8) with zero points (1 or O values).
    pub fn new(
        kind: KernelKind,
        geom: Conv2dGeometry,
        weights: &[i8],
        weight_zero_points: &[i32],
    ) -> Result<Conv2d, Int8Error> {
        kind.check_supported()?;
        Self::new_any_cpu(kind, geom, weights, weight_zero_points)
    }

    /// [`Conv2d::new`] without the CPU check (packing is plain Rust; tests pack for AVX-512 and
    /// run the emulated VNNI scheme).
    pub(crate) fn new_any_cpu(
        kind: KernelKind,
        geom: Conv2dGeometry,
        weights: &[i8],
        weight_zero_points: &[i32],
    ) -> Result<Conv2d, Int8Error> {
        check_len("conv weights", weights.len(), geom.weights_len())?;
        let (o, groups) = (geom.out_c, geom.params.groups);
        if weight_zero_points.len() != 1 && weight_zero_points.len() != o {
            return Err(Int8Error::Param {
                what: "conv weight zero points",
                detail: format!(
                    "{} values for {o} output channels",
                    weight_zero_points.len()
                ),
            });
        }
        let (og, cg) = (geom.out_c_per_group(), geom.in_c_per_group());
        let [kh, kw] = geom.params.kernel;
        let k = geom.gemm_k();
        let packed = (0..groups)
            .map(|g| {
                let zps = if weight_zero_points.len() == 1 {
                    weight_zero_points
                } else {
                    &weight_zero_points[g * og..(g + 1) * og]
                };
                PackedB::pack_any_cpu(kind, k, og, zps, |kk, n| {
                    let (tap, c) = (kk / cg, kk % cg);
                    let (ky, kx) = (tap / kw, tap % kw);
                    weights[(((g * og + n) * cg + c) * kh + ky) * kw + kx]
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let p = &geom.params;
        let pointwise = p.kernel == [1, 1] && p.stride == [1, 1] && p.pads == [0; 4];
        Ok(Conv2d {
            geom,
            packed,
            pointwise,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geom
    }

    /// Re-targets the conv at another input size or padding, keeping the packed weights (a plan
    /// packs once and runs inputs of any size). `geom` must keep the channels, kernel and groups.
    pub fn set_geometry(&mut self, geom: Conv2dGeometry) -> Result<(), Int8Error> {
        check_same_layer("conv", &self.geom, &geom)?;
        let p = &geom.params;
        self.pointwise = p.kernel == [1, 1] && p.stride == [1, 1] && p.pads == [0; 4];
        self.geom = geom;
        Ok(())
    }

    /// Runs the conv: `input` NHWC with zero point `input_zero_point`, `epilogue` for all `O`
    /// channels, `output` NHWC. `scratch` holds im2col blocks between calls (reuse it).
    pub fn run<A: QInt, E: Epilogue>(
        &self,
        input: &[A],
        input_zero_point: A,
        epilogue: &E,
        output: &mut [E::Out],
        scratch: &mut Vec<A>,
    ) -> Result<(), Int8Error> {
        let g = &self.geom;
        check_len("conv input", input.len(), g.input_len())?;
        check_len("conv output", output.len(), g.output_len())?;
        check_len("conv epilogue channels", epilogue.channels(), g.out_c)?;
        let pixels = g.out_h * g.out_w;
        let (og, cg, k) = (g.out_c_per_group(), g.in_c_per_group(), g.gemm_k());
        let block = (IM2COL_BLOCK_BYTES / k.max(1)).clamp(12, pixels.max(12)) / 12 * 12;
        for image in 0..g.batch {
            let out_image = &mut output[image * pixels * g.out_c..(image + 1) * pixels * g.out_c];
            for (group, packed) in self.packed.iter().enumerate() {
                if self.pointwise {
                    let start = image * pixels * g.in_c + group * cg;
                    let a = ActMatrix {
                        data: &input[start..],
                        rows: pixels,
                        stride: g.in_c,
                        zero_point: input_zero_point,
                    };
                    let mut out = OutMatrix {
                        data: &mut out_image[group * og..],
                        stride: g.out_c,
                    };
                    gemm_channels(&a, packed, epilogue, group * og, &mut out)?;
                    continue;
                }
                if packed.kind() != KernelKind::Scalar {
                    // SIMD: implicit im2col, rows prepared straight from the input.
                    let rows = Im2colRows {
                        input,
                        geom: g,
                        image,
                        group,
                    };
                    let args = GemmArgs {
                        za: input_zero_point,
                        ch0: group * og,
                        out_ptr: out_image[group * og..].as_mut_ptr(),
                        ldc: g.out_c,
                    };
                    // SAFETY: the family was checked at pack time (the CPU does not change); the
                    // input, output and epilogue sizes are checked above, and the rows of an
                    // image's group cover `pixels` rows of K.
                    unsafe { run_simd(&rows, &args, packed, epilogue) };
                    continue;
                }
                // Scalar: the textbook path, explicit im2col blocks.
                let mut p0 = 0;
                while p0 < pixels {
                    let rows = block.min(pixels - p0);
                    scratch.resize(rows * k, A::default());
                    im2col(
                        input,
                        g,
                        image,
                        group,
                        p0..p0 + rows,
                        input_zero_point,
                        scratch,
                    )?;
                    let a = ActMatrix {
                        data: scratch,
                        rows,
                        stride: k,
                        zero_point: input_zero_point,
                    };
                    let mut out = OutMatrix {
                        data: &mut out_image[p0 * g.out_c + group * og..],
                        stride: g.out_c,
                    };
                    gemm_channels(&a, packed, epilogue, group * og, &mut out)?;
                    p0 += rows;
                }
            }
        }
        Ok(())
    }
}
