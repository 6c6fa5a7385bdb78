//! Direct depthwise int8 convolution (groups = input channels = output channels) on NHWC tensors:
//! `acc[c] = bias[c] + Σ_taps (x_tap[c] − za)·(w_tap[c] − zb[c])`, then the epilogue. Any kernel
//! size, stride, dilation and padding (the nets we target use 3x3 and 5x5, strides 1 and 2).
//! Padding taps are the input zero point, i.e. 0.0 (see `im2col.rs`), so they contribute nothing.
//!
//! The scalar kernel here is the oracle; `depthwise_avx2.rs` vectorises across channels (8 per
//! vector, 8 output pixels per step) with exact integer sums carried in f32 FMAs (kernels of up to
//! 258 taps; larger ones run the scalar kernel). A channel multiplier > 1 (O = k·C) is not depthwise here: run it as a grouped [`Conv2d`].
//!
//! [`Conv2d`]: super::Conv2d

use super::dispatch::KernelKind;
use super::epilogue::Epilogue;
use super::error::{Int8Error, check_len};
use super::geometry::Conv2dGeometry;
use super::qtype::QInt;

/// A depthwise conv with its weights prepared for one kernel family.
#[derive(Debug, Clone)]
pub struct Depthwise {
    pub(crate) geom: Conv2dGeometry,
    pub(crate) kind: KernelKind,
    /// `(w − zb)` as `[tap][c]` (scalar kernel).
    pub(crate) w: Vec<i32>,
    /// Channels rounded up to 8 (the SIMD kernel's vector width).
    pub(crate) cp: usize,
    /// `(w − zb)` as f32 `[tap][cp]`, channels past C zero (SIMD kernel; see depthwise_avx2.rs).
    pub(crate) wf: Vec<f32>,
}

impl Depthwise {
    /// `weights`: ONNX `[C, 1, KH, KW]` i8; zero points 1 or C values in [-128, 127].
    pub fn new(
        kind: KernelKind,
        geom: Conv2dGeometry,
        weights: &[i8],
        weight_zero_points: &[i32],
    ) -> Result<Depthwise, Int8Error> {
        kind.check_supported()?;
        let c = geom.in_c;
        if geom.params.groups != c || geom.out_c != c {
            return Err(Int8Error::Shape {
                what: "depthwise conv",
                detail: format!(
                    "needs groups = input channels = output channels, got groups {}, {} -> {}",
                    geom.params.groups, c, geom.out_c
                ),
            });
        }
        check_len("depthwise weights", weights.len(), geom.weights_len())?;
        let zb: Vec<i32> = match weight_zero_points.len() {
            1 => vec![weight_zero_points[0]; c],
            len if len == c => weight_zero_points.to_vec(),
            len => {
                return Err(Int8Error::Param {
                    what: "depthwise weight zero points",
                    detail: format!("{len} values for {c} channels"),
                });
            }
        };
        if let Some(z) = zb.iter().find(|z| !(-128..=127).contains(*z)) {
            return Err(Int8Error::Param {
                what: "depthwise weight zero point",
                detail: format!("{z} is outside the i8 range"),
            });
        }
        let taps = geom.params.kernel[0] * geom.params.kernel[1];
        let cp = c.next_multiple_of(8);
        let mut w = vec![0i32; taps * c];
        let mut wf = vec![0f32; taps * cp];
        for ch in 0..c {
            for t in 0..taps {
                let v = weights[ch * taps + t] as i32 - zb[ch];
                w[t * c + ch] = v;
                wf[t * cp + ch] = v as f32;
            }
        }
        Ok(Depthwise {
            geom,
            kind,
            w,
            cp,
            wf,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &Conv2dGeometry {
        &self.geom
    }

    /// Re-targets the conv at another input size or padding, keeping the prepared weights.
    /// `geom` must keep the channels and kernel.
    pub fn set_geometry(&mut self, geom: Conv2dGeometry) -> Result<(), Int8Error> {
        super::conv::check_same_layer("depthwise conv", &self.geom, &geom)?;
        self.geom = geom;
        Ok(())
    }

    /// Runs the conv: `input` NHWC with zero point `input_zero_point`, `epilogue` for C channels,
    /// `output` NHWC.
    pub fn run<A: QInt, E: Epilogue>(
        &self,
        input: &[A],
        input_zero_point: A,
        epilogue: &E,
        output: &mut [E::Out],
    ) -> Result<(), Int8Error> {
        let g = &self.geom;
        check_len("depthwise input", input.len(), g.input_len())?;
        check_len("depthwise output", output.len(), g.output_len())?;
        check_len("depthwise epilogue channels", epilogue.channels(), g.out_c)?;
        match self.kind {
            KernelKind::Scalar => self.run_scalar(input, input_zero_point, epilogue, output),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Avx2 | KernelKind::Avx512 => {
                let taps = g.params.kernel[0] * g.params.kernel[1];
                if taps > super::depthwise_avx2::MAX_EXACT_TAPS {
                    // f32 sums would no longer be exact (no real net has such a kernel).
                    self.run_scalar(input, input_zero_point, epilogue, output);
                    return Ok(());
                }
                // The AVX-512 family runs the AVX2 depthwise kernel (it needs AVX2, checked here).
                KernelKind::Avx2.check_supported()?;
                // SAFETY: AVX2 and FMA checked; sizes checked above; taps within the exact bound.
                unsafe {
                    super::depthwise_avx2::run(self, input, input_zero_point, epilogue, output)
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("SIMD kinds are refused off x86-64 by check_supported in new"),
        }
        Ok(())
    }

    fn run_scalar<A: QInt, E: Epilogue>(&self, input: &[A], za: A, epi: &E, output: &mut [E::Out]) {
        let g = &self.geom;
        let c = g.in_c;
        let [kh, kw] = g.params.kernel;
        let za = za.to_i32();
        let bias = epi.bias_padded();
        let mut out_idx = 0;
        for image in 0..g.batch {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    for ch in 0..c {
                        let mut acc = bias[ch];
                        for ky in 0..kh {
                            let Some(iy) = g.input_pos(0, oy, ky) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = g.input_pos(1, ox, kx) else {
                                    continue;
                                };
                                let x = input[((image * g.in_h + iy) * g.in_w + ix) * c + ch];
                                let prod = (x.to_i32() - za) * self.w[(ky * kw + kx) * c + ch];
                                acc = acc.wrapping_add(prod);
                            }
                        }
                        output[out_idx] = epi.convert(acc, ch);
                        out_idx += 1;
                    }
                }
            }
        }
    }
}
