//! Conv and depthwise tests. Reference: `reference_conv`, a direct convolution written from the
//! ONNX QLinearConv definition (NHWC input, OIHW weights, padding as the real value 0 = the input
//! zero point, i64 sums), followed by the documented requantization formula (epilogue.rs).

use super::super::gemm::{GemmArgs, run_blocked};
use super::super::gemm_avx512::VnniEmulated;
use super::super::pack::PackedData;
use super::super::rows::Im2colRows;
use super::super::*;
use super::{Rng, Values, draw, simd_kinds};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct ConvProblem {
    geom: Conv2dGeometry,
    input: Vec<i32>,
    za: i32,
    weights: Vec<i8>,
    zb: Vec<i32>,
    bias: Vec<i32>,
    mult: Vec<f32>,
    zo: i32,
    /// Output clamp `[zo + lo, zo + hi]` (cut to the type) instead of Relu.
    clip: Option<(i32, i32)>,
}

fn conv_problem<A: QInt>(
    seed: u64,
    geom: Conv2dGeometry,
    values: Values,
    per_channel_zb: bool,
) -> ConvProblem {
    let mut rng = Rng::new(seed);
    let input = (0..geom.input_len())
        .map(|_| draw(&mut rng, A::MIN, A::MAX, values))
        .collect();
    let weights = (0..geom.weights_len())
        .map(|_| draw(&mut rng, -128, 127, values) as i8)
        .collect();
    let zb = if per_channel_zb {
        (0..geom.out_c).map(|_| rng.range(-20, 20)).collect()
    } else {
        vec![0]
    };
    let typical = 1.0 / (64.0 * 64.0 * (geom.gemm_k() as f32).sqrt());
    ConvProblem {
        geom,
        input,
        za: draw(&mut rng, A::MIN, A::MAX, values),
        weights,
        zb,
        bias: (0..geom.out_c).map(|_| rng.range(-5000, 5000)).collect(),
        mult: (0..geom.out_c)
            .map(|_| typical * (0.5 + 2.0 * rng.unit()))
            .collect(),
        zo: rng.range(-10, 10),
        clip: None,
    }
}

impl ConvProblem {
    fn zb(&self, o: usize) -> i64 {
        if self.zb.len() == 1 {
            self.zb[0] as i64
        } else {
            self.zb[o] as i64
        }
    }

    fn reference_acc(&self) -> Vec<i64> {
        let g = &self.geom;
        let p = &g.params;
        let (cg, og) = (g.in_c_per_group(), g.out_c_per_group());
        let mut out = Vec::with_capacity(g.output_len());
        for n in 0..g.batch {
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    for o in 0..g.out_c {
                        let grp = o / og;
                        let mut s = self.bias[o] as i64;
                        for c in 0..cg {
                            for ky in 0..p.kernel[0] {
                                for kx in 0..p.kernel[1] {
                                    let iy = (oy * p.stride[0] + ky * p.dilation[0]) as i64
                                        - p.pads[0] as i64;
                                    let ix = (ox * p.stride[1] + kx * p.dilation[1]) as i64
                                        - p.pads[1] as i64;
                                    let x = if iy < 0
                                        || ix < 0
                                        || iy >= g.in_h as i64
                                        || ix >= g.in_w as i64
                                    {
                                        self.za // padding is real 0
                                    } else {
                                        let idx = ((n * g.in_h + iy as usize) * g.in_w
                                            + ix as usize)
                                            * g.in_c
                                            + grp * cg
                                            + c;
                                        self.input[idx]
                                    };
                                    let w = self.weights
                                        [((o * cg + c) * p.kernel[0] + ky) * p.kernel[1] + kx];
                                    s += (x - self.za) as i64 * (w as i64 - self.zb(o));
                                }
                            }
                        }
                        out.push(s);
                    }
                }
            }
        }
        out
    }

    fn epilogue<O: QInt>(&self) -> Requantize<O> {
        let zo = self.zo.clamp(O::MIN, O::MAX);
        let clamp = match self.clip {
            Some((lo, hi)) => QClamp {
                lo: (zo + lo).clamp(O::MIN, O::MAX),
                hi: (zo + hi).clamp(O::MIN, O::MAX),
            },
            None => QClamp::relu::<O>(zo),
        };
        Requantize::new(self.geom.out_c, &self.mult, Some(&self.bias), zo, clamp).unwrap()
    }

    fn run_conv<A: QInt, O: QInt>(&self, kind: KernelKind) -> Vec<O> {
        let input: Vec<A> = self.input.iter().map(|&v| A::checked(v).unwrap()).collect();
        let conv = Conv2d::new(kind, self.geom, &self.weights, &self.zb).unwrap();
        let mut out = vec![O::default(); self.geom.output_len()];
        let mut scratch = Vec::new();
        conv.run(
            &input,
            A::checked(self.za).unwrap(),
            &self.epilogue::<O>(),
            &mut out,
            &mut scratch,
        )
        .unwrap();
        out
    }

    /// The SIMD conv path (implicit im2col rows through the blocked driver) with the VNNI
    /// packing, zero-point fill and corrections, and `vpdpbusd` emulated (runs on AVX2).
    fn run_conv_vnni_emulated<A: QInt, O: QInt>(&self) -> Vec<O> {
        let input: Vec<A> = self.input.iter().map(|&v| A::checked(v).unwrap()).collect();
        let conv =
            Conv2d::new_any_cpu(KernelKind::Avx512, self.geom, &self.weights, &self.zb).unwrap();
        let g = &self.geom;
        let epi = self.epilogue::<O>();
        let mut out = vec![O::default(); g.output_len()];
        let pixels = g.out_h * g.out_w;
        let og = g.out_c_per_group();
        for image in 0..g.batch {
            for (group, packed) in conv.packed.iter().enumerate() {
                let PackedData::Vnni(panels) = &packed.data else {
                    unreachable!()
                };
                let rows = Im2colRows {
                    input: &input,
                    geom: g,
                    image,
                    group,
                };
                let args = GemmArgs {
                    za: A::checked(self.za).unwrap(),
                    ch0: group * og,
                    out_ptr: out[image * pixels * g.out_c + group * og..].as_mut_ptr(),
                    ldc: g.out_c,
                };
                // SAFETY: AVX2 checked by the caller; sizes from the validated geometry.
                unsafe { run_blocked::<VnniEmulated, A, _, _>(&rows, &args, panels, packed, &epi) };
            }
        }
        out
    }

    fn run_depthwise<A: QInt, O: QInt>(&self, kind: KernelKind) -> Vec<O> {
        let input: Vec<A> = self.input.iter().map(|&v| A::checked(v).unwrap()).collect();
        let dw = Depthwise::new(kind, self.geom, &self.weights, &self.zb).unwrap();
        let mut out = vec![O::default(); self.geom.output_len()];
        dw.run(
            &input,
            A::checked(self.za).unwrap(),
            &self.epilogue::<O>(),
            &mut out,
        )
        .unwrap();
        out
    }

    fn check<A: QInt, O: QInt>(&self, test: &str) {
        let epi = self.epilogue::<O>();
        let want: Vec<i32> = self
            .reference_acc()
            .iter()
            .enumerate()
            .map(|(i, &acc)| {
                let y = (acc as i32) as f32 * self.mult[i % self.geom.out_c];
                // i64: y may exceed the i32 range (large multipliers).
                (y.round_ties_even() as i64 + epi.zero_point() as i64)
                    .clamp(epi.clamp().lo as i64, epi.clamp().hi as i64) as i32
            })
            .collect();
        let to_i32 = |v: &[O]| v.iter().map(|x| x.to_i32()).collect::<Vec<_>>();
        let scalar = self.run_conv::<A, O>(KernelKind::Scalar);
        assert_eq!(to_i32(&scalar), want, "{test}: scalar conv vs reference");
        for kind in simd_kinds(test) {
            assert_eq!(self.run_conv::<A, O>(kind), scalar, "{test}: {kind} conv");
        }
        if KernelKind::Avx2.is_supported() {
            assert_eq!(
                self.run_conv_vnni_emulated::<A, O>(),
                scalar,
                "{test}: emulated vpdpbusd conv"
            );
        }
        let depthwise =
            self.geom.params.groups == self.geom.in_c && self.geom.out_c == self.geom.in_c;
        if depthwise {
            assert_eq!(
                self.run_depthwise::<A, O>(KernelKind::Scalar),
                scalar,
                "{test}: scalar depthwise"
            );
            for kind in simd_kinds(test) {
                assert_eq!(
                    self.run_depthwise::<A, O>(kind),
                    scalar,
                    "{test}: {kind} depthwise"
                );
            }
        }
    }
}

fn geometry(b: usize, h: usize, w: usize, c: usize, o: usize, p: ConvParams) -> Conv2dGeometry {
    Conv2dGeometry::new(b, h, w, c, o, p).unwrap()
}

#[test]
fn convs_match_reference_and_scalar() {
    let cases = [
        (
            "pointwise",
            geometry(1, 5, 7, 16, 24, ConvParams::new([1, 1])),
        ),
        (
            "pointwise grouped",
            geometry(2, 3, 3, 8, 6, ConvParams::new([1, 1]).groups(2)),
        ),
        (
            "1x1 stride 2",
            geometry(1, 7, 7, 5, 9, ConvParams::new([1, 1]).stride([2, 2])),
        ),
        (
            "3x3 pad 1",
            geometry(1, 9, 8, 3, 16, ConvParams::new([3, 3]).pads([1, 1, 1, 1])),
        ),
        (
            "3x3 s2 asym pad",
            geometry(
                2,
                9,
                10,
                4,
                17,
                ConvParams::new([3, 3]).stride([2, 2]).pads([0, 0, 1, 1]),
            ),
        ),
        (
            "5x3 dilated",
            geometry(
                1,
                11,
                9,
                6,
                8,
                ConvParams::new([5, 3]).dilation([2, 1]).pads([2, 1, 3, 0]),
            ),
        ),
        (
            "grouped 3x3",
            geometry(
                1,
                6,
                6,
                8,
                12,
                ConvParams::new([3, 3]).pads([1, 1, 1, 1]).groups(4),
            ),
        ),
        (
            "big K",
            geometry(1, 4, 4, 130, 10, ConvParams::new([3, 3]).pads([1, 1, 1, 1])),
        ),
    ];
    for (i, (name, g)) in cases.into_iter().enumerate() {
        for values in [Values::Uniform, Values::Extremes] {
            for zb in [false, true] {
                let seed = 100 + i as u64;
                let test = format!("{name} {values:?} zb={zb}");
                conv_problem::<u8>(seed, g, values, zb).check::<u8, u8>(&test);
                conv_problem::<i8>(seed, g, values, zb).check::<i8, i8>(&test);
            }
        }
    }
}

#[test]
fn depthwise_matches_reference_and_scalar() {
    let mut cases = Vec::new();
    for c in [1, 3, 16, 17, 32, 40] {
        for (k, s, pad) in [(3, 1, 1), (3, 2, 1), (5, 1, 2), (5, 2, 2), (3, 2, 0)] {
            let p = ConvParams::new([k, k])
                .stride([s, s])
                .pads([pad, pad, pad, pad])
                .groups(c);
            cases.push((
                format!("dw{k}x{k} s{s} p{pad} c{c}"),
                geometry(1, 9, 11, c, c, p),
            ));
        }
    }
    let p = ConvParams::new([3, 3])
        .dilation([2, 2])
        .pads([0, 1, 2, 0])
        .groups(8);
    cases.push(("dw dilated asym".into(), geometry(2, 7, 6, 8, 8, p)));
    let p = ConvParams::new([3, 3]).pads([1, 1, 1, 1]).groups(16);
    cases.push(("dw 1x1 image".into(), geometry(1, 1, 1, 16, 16, p)));
    // Rows of 7 and 14 outputs (7 and 6 tail pixels) over more than 8 channel blocks: the
    // tail path sums up to 8 blocks of one pixel at once, then the rest (incl. a partial block).
    for (w, c, k) in [(7, 72, 5), (14, 136, 3), (7, 131, 3), (9, 67, 5)] {
        let p = ConvParams::new([k, k])
            .pads([k / 2, k / 2, k / 2, k / 2])
            .groups(c);
        cases.push((format!("dw{k}x{k} w{w} c{c}"), geometry(1, 3, w, c, c, p)));
    }
    // 256 taps: the largest f32-exact SIMD case (sums up to 256·255·255 < 2^24); 289 taps runs the
    // scalar fallback.
    let p = ConvParams::new([16, 16]).pads([8, 8, 7, 7]).groups(9);
    cases.push(("dw 16x16".into(), geometry(1, 18, 17, 9, 9, p)));
    let p = ConvParams::new([17, 17]).pads([8, 8, 8, 8]).groups(3);
    cases.push(("dw 17x17".into(), geometry(1, 5, 6, 3, 3, p)));
    for (i, (name, g)) in cases.into_iter().enumerate() {
        for values in [Values::Uniform, Values::Extremes] {
            let seed = 300 + i as u64;
            let zb = i % 2 == 0;
            let test = format!("{name} {values:?} zb={zb}");
            conv_problem::<u8>(seed, g, values, zb).check::<u8, u8>(&test);
            conv_problem::<i8>(seed, g, values, zb).check::<i8, u8>(&test);
        }
    }
}

/// The depthwise kernel's epilogue paths: biases small enough to start the f32 sums (|bias| +
/// taps·255² <= 2^24) or not (then the bias is added in i32, wrapping like the oracle);
/// multipliers up to EXACT_F32_MAX_MULT (integer clamp after rounding, saturating on both sides
/// here) or above it (float clamp first); Relu and two-sided clamps; u8 and i8 outputs; rows with
/// full 8-pixel steps and tail pixels, channel counts with and without a partial block.
#[test]
fn depthwise_epilogue_paths_match_reference() {
    let biases: [(i32, i32); 4] = [
        (-5000, 5000),
        (-16_000_000, 16_000_000),
        (16_777_216 - 9 * 65025, 16_777_216 - 9 * 65025),
        (i32::MAX - 100, i32::MAX),
    ];
    let mults: [(f32, f32); 4] = [(1e-4, 1e-3), (0.5, 1.0), (63.0, 64.0), (64.5, 200.0)];
    let clips = [None, Some((-3, 2)), Some((-300, 300))];
    let mut case = 0u64;
    for (w, c) in [(17, 16), (9, 43), (7, 64)] {
        let p = ConvParams::new([3, 3]).pads([1, 1, 1, 1]).groups(c);
        let g = geometry(1, 3, w, c, c, p);
        for &(blo, bhi) in &biases {
            for &(mlo, mhi) in &mults {
                for &clip in &clips {
                    case += 1;
                    let values = if case.is_multiple_of(2) {
                        Values::Extremes
                    } else {
                        Values::Uniform
                    };
                    let mut pb = conv_problem::<u8>(900 + case, g, values, case.is_multiple_of(3));
                    let mut rng = Rng::new(case);
                    pb.bias = (0..c)
                        .map(|_| {
                            blo as i64 + (rng.unit() as f64 * (bhi as f64 - blo as f64)) as i64
                        })
                        .map(|b| b as i32)
                        .collect();
                    pb.mult = (0..c).map(|_| mlo + (mhi - mlo) * rng.unit()).collect();
                    pb.clip = clip;
                    let test = format!("dw epilogue w{w} c{c} bias {blo} mult {mlo} clip {clip:?}");
                    pb.check::<u8, u8>(&test);
                    pb.check::<u8, i8>(&test);
                }
            }
        }
    }
}

#[test]
fn conv_size_errors_do_not_panic() {
    let g = geometry(
        1,
        4,
        4,
        4,
        4,
        ConvParams::new([3, 3]).pads([1, 1, 1, 1]).groups(4),
    );
    assert!(Conv2d::new(KernelKind::Scalar, g, &[0; 35], &[0]).is_err());
    assert!(Conv2d::new(KernelKind::Scalar, g, &[0; 36], &[0, 0]).is_err());
    let conv = Conv2d::new(KernelKind::Scalar, g, &[0; 36], &[0]).unwrap();
    let epi = Requantize::<u8>::new(4, &[1.0], None, 0, QClamp::none::<u8>()).unwrap();
    let mut out = vec![0u8; 64];
    assert!(
        conv.run(&[0u8; 63], 0, &epi, &mut out, &mut Vec::new())
            .is_err()
    );
    assert!(
        conv.run(&[0u8; 64], 0, &epi, &mut out[..60], &mut Vec::new())
            .is_err()
    );
    let epi3 = Requantize::<u8>::new(3, &[1.0], None, 0, QClamp::none::<u8>()).unwrap();
    assert!(
        conv.run(&[0u8; 64], 0, &epi3, &mut out, &mut Vec::new())
            .is_err()
    );
    assert!(
        Depthwise::new(
            KernelKind::Scalar,
            geometry(1, 4, 4, 4, 8, ConvParams::new([3, 3]).groups(4)),
            &[0; 72],
            &[0]
        )
        .is_err()
    );
    let dw = Depthwise::new(KernelKind::Scalar, g, &[0; 36], &[0]).unwrap();
    assert!(dw.run(&[0u8; 64], 0, &epi, &mut out[..63]).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn prop_depthwise_simd_equals_scalar(
        h in 1usize..12, w in 1usize..12, c in 1usize..80, k in prop::sample::select(vec![1usize, 3, 5]),
        s in 1usize..3, pad in 0usize..3, seed in any::<u64>(), extremes in any::<bool>(),
    ) {
        let p = ConvParams::new([k, k]).stride([s, s]).pads([pad, pad, pad, pad]).groups(c);
        if let Ok(g) = Conv2dGeometry::new(1, h, w, c, c, p) {
            let values = if extremes { Values::Extremes } else { Values::Uniform };
            conv_problem::<u8>(seed, g, values, seed % 2 == 0).check::<u8, i8>("proptest depthwise");
        }
    }

    #[test]
    fn prop_conv_simd_equals_scalar(
        h in 1usize..9, w in 1usize..9, cg in 1usize..9, og in 1usize..20, groups in 1usize..3,
        k in 1usize..4, s in 1usize..3, pad in 0usize..2, seed in any::<u64>(), extremes in any::<bool>(),
    ) {
        let p = ConvParams::new([k, k]).stride([s, s]).pads([pad, pad, pad, pad]).groups(groups);
        if let Ok(g) = Conv2dGeometry::new(1, h, w, cg * groups, og * groups, p) {
            let values = if extremes { Values::Extremes } else { Values::Uniform };
            conv_problem::<i8>(seed, g, values, seed % 2 == 1).check::<i8, u8>("proptest conv");
        }
    }
}
