//! GEMM tests. References: `reference_acc` (i64 accumulation of Σ (a−za)(b−zb) + bias, written
//! independently of the kernels) with `reference_requant` (the formula documented in epilogue.rs)
//! for bit-exactness, and exact f64 math for the ONNX QDQ formula within 1 LSB.

use super::super::gemm::{GemmArgs, run_blocked};
use super::super::gemm_avx512::VnniEmulated;
use super::super::pack::PackedData;
use super::super::rows::MatrixRows;
use super::super::*;
use super::{Rng, Values, draw, simd_kinds};
use proptest::prelude::*;

/// One random problem.
#[derive(Debug, Clone)]
struct Problem {
    m: usize,
    k: usize,
    n: usize,
    lda: usize,
    a: Vec<i32>,
    za: i32,
    b: Vec<i8>, // k x n
    zb: Vec<i32>,
    bias: Option<Vec<i32>>,
    mult: Vec<f32>,
    zo: i32,
    clamp_kind: u8,
}

fn problem<A: QInt>(
    seed: u64,
    m: usize,
    k: usize,
    n: usize,
    values: Values,
    zb_nonzero: bool,
) -> Problem {
    let mut rng = Rng::new(seed);
    let lda = k + rng.range(0, 3) as usize;
    let a = (0..m * lda)
        .map(|_| draw(&mut rng, A::MIN, A::MAX, values))
        .collect();
    let b = (0..k * n)
        .map(|_| draw(&mut rng, -128, 127, values) as i8)
        .collect();
    let za = draw(&mut rng, A::MIN, A::MAX, values);
    let zb = (0..n)
        .map(|_| if zb_nonzero { rng.range(-128, 127) } else { 0 })
        .collect();
    let bias = (!rng.next_u64().is_multiple_of(3))
        .then(|| (0..n).map(|_| rng.range(-100_000, 100_000)).collect());
    // Multipliers spread so outputs cover the range and saturate sometimes.
    let typical = 1.0 / (128.0 * 64.0 * (k.max(1) as f32).sqrt());
    let mult = (0..n)
        .map(|_| typical * (0.25 + 4.0 * rng.unit()))
        .collect();
    Problem {
        m,
        k,
        n,
        lda,
        a,
        za,
        b,
        zb,
        bias,
        mult,
        zo: rng.range(-20, 20),
        clamp_kind: (rng.next_u64() % 3) as u8,
    }
}

impl Problem {
    fn a_as<A: QInt>(&self) -> Vec<A> {
        self.a.iter().map(|&v| A::checked(v).unwrap()).collect()
    }
    fn epilogue<O: QInt>(&self) -> Requantize<O> {
        let zo = self.zo.clamp(O::MIN, O::MAX);
        let clamp = match self.clamp_kind {
            0 => QClamp::none::<O>(),
            1 => QClamp::relu::<O>(zo),
            _ => QClamp::clip::<O>(Some(0.0), Some(6.0), 0.05, zo),
        };
        Requantize::new(self.n, &self.mult, self.bias.as_deref(), zo, clamp).unwrap()
    }
    fn pack(&self, kind: KernelKind) -> PackedB {
        PackedB::pack_any_cpu(kind, self.k, self.n, &self.zb, |k, n| {
            self.b[k * self.n + n]
        })
        .unwrap()
    }
    /// Independent reference: exact i64 sums.
    fn reference_acc(&self) -> Vec<i64> {
        let mut out = vec![0i64; self.m * self.n];
        for i in 0..self.m {
            for j in 0..self.n {
                let mut s: i64 = self.bias.as_ref().map_or(0, |b| b[j] as i64);
                for kk in 0..self.k {
                    s += (self.a[i * self.lda + kk] - self.za) as i64
                        * (self.b[kk * self.n + j] as i64 - self.zb[j] as i64);
                }
                out[i * self.n + j] = s;
            }
        }
        out
    }
}

/// The documented formula, written from its statement in epilogue.rs.
fn reference_requant(acc: i64, mult: f32, zo: i32, clamp: QClamp) -> i32 {
    let acc32 = acc as i32; // tests keep sums inside i32 where they check this formula
    let y = acc32 as f32 * mult;
    (y.round_ties_even() as i64 + zo as i64).clamp(clamp.lo as i64, clamp.hi as i64) as i32
}

fn run_kind<A: QInt, E: Epilogue>(
    p: &Problem,
    kind: KernelKind,
    epi: &E,
    emulate: bool,
) -> Vec<E::Out> {
    let a = p.a_as::<A>();
    let act = ActMatrix {
        data: &a,
        rows: p.m,
        stride: p.lda,
        zero_point: A::checked(p.za).unwrap(),
    };
    // Output rows with a stride wider than n, prefilled, to catch stray writes.
    let ldc = p.n + 3;
    let mut out = vec![E::Out::default(); p.m * ldc];
    let packed = p.pack(kind);
    if emulate {
        let PackedData::Vnni(panels) = &packed.data else {
            unreachable!()
        };
        let args = GemmArgs {
            za: act.zero_point,
            ch0: 0,
            out_ptr: out.as_mut_ptr(),
            ldc,
        };
        if p.m > 0 && p.n > 0 {
            let rows = MatrixRows { a: act, k: p.k };
            // SAFETY: the emulated scheme needs AVX2 only (checked by callers); sizes are consistent.
            unsafe { run_blocked::<VnniEmulated, A, _, E>(&rows, &args, panels, &packed, epi) };
        }
    } else {
        let mut om = OutMatrix {
            data: &mut out,
            stride: ldc,
        };
        gemm(&act, &packed, epi, &mut om).unwrap();
    }
    // Drop the padding columns (which must still be default).
    let mut dense = Vec::with_capacity(p.m * p.n);
    for i in 0..p.m {
        dense.extend_from_slice(&out[i * ldc..i * ldc + p.n]);
    }
    dense
}

/// The (kind, emulated) pairs to run on this CPU.
fn paths(test: &str) -> Vec<(KernelKind, bool)> {
    let mut v: Vec<(KernelKind, bool)> = simd_kinds(test).into_iter().map(|k| (k, false)).collect();
    if KernelKind::Avx2.is_supported() {
        v.push((KernelKind::Avx512, true));
    }
    v
}

fn check_all_paths<A: QInt, O: QInt>(p: &Problem, test: &str) {
    let epi = p.epilogue::<O>();
    let scalar = run_kind::<A, _>(p, KernelKind::Scalar, &epi, false);
    // Scalar vs the independent reference, bit-exact (sums fit i32 in these tests).
    let acc = p.reference_acc();
    for (idx, (&got, &s)) in scalar.iter().zip(&acc).enumerate() {
        assert!(i32::try_from(s).is_ok());
        let want = reference_requant(s, p.mult[idx % p.n], epi.zero_point(), epi.clamp());
        assert_eq!(
            got.to_i32(),
            want,
            "{test}: scalar vs reference at {idx}, acc {s}"
        );
        // And within 1 LSB of exact math (the ONNX QDQ formula without float rounding).
        let exact = (s as f64 * epi.multiplier(idx % p.n) as f64).round_ties_even()
            + epi.zero_point() as f64;
        let exact = exact.clamp(epi.clamp().lo as f64, epi.clamp().hi as f64);
        assert!(
            (got.to_i32() as f64 - exact).abs() <= 1.0,
            "{test}: {got:?} vs exact {exact}"
        );
    }
    let raw = Int32Out::new(p.n, p.bias.as_deref()).unwrap();
    let scalar_raw = run_kind::<A, _>(p, KernelKind::Scalar, &raw, false);
    assert_eq!(
        scalar_raw,
        acc.iter().map(|&v| v as i32).collect::<Vec<_>>(),
        "{test}: i32 out"
    );
    let deq = DequantizeOut::new(p.n, &p.mult, p.bias.as_deref()).unwrap();
    let scalar_deq = run_kind::<A, _>(p, KernelKind::Scalar, &deq, false);
    for (kind, emulate) in paths(test) {
        let what = format!(
            "{test}: {kind}{}",
            if emulate { " (emulated vpdpbusd)" } else { "" }
        );
        let got = run_kind::<A, _>(p, kind, &epi, emulate);
        assert_eq!(
            got, scalar,
            "{what}: requantized output differs from scalar"
        );
        assert_eq!(
            run_kind::<A, _>(p, kind, &raw, emulate),
            scalar_raw,
            "{what}: i32 output"
        );
        let got_deq = run_kind::<A, _>(p, kind, &deq, emulate);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got_deq), bits(&scalar_deq), "{what}: f32 output");
    }
}

const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 1, 17),
    (7, 1, 9),
    (5, 3, 8),
    (6, 16, 16),
    (13, 31, 33),
    (12, 32, 24),
    (25, 144, 24),
    (3, 1280, 40),
    (40, 7, 100),
    (2, 2, 1),
    (30, 17, 31),
    (0, 5, 5),
    (4, 0, 5),
];

#[test]
fn gemm_kernels_match_scalar_on_random_and_extreme_values() {
    let mut seed = 1;
    for &(m, k, n) in SHAPES {
        for values in [Values::Uniform, Values::Extremes] {
            for zb in [false, true] {
                seed += 1;
                let test = format!("m{m} k{k} n{n} {values:?} zb={zb}");
                check_all_paths::<u8, u8>(&problem::<u8>(seed, m, k, n, values, zb), &test);
                check_all_paths::<i8, i8>(&problem::<i8>(seed, m, k, n, values, zb), &test);
                check_all_paths::<u8, i8>(&problem::<u8>(seed, m, k, n, values, zb), &test);
                check_all_paths::<i8, u8>(&problem::<i8>(seed, m, k, n, values, zb), &test);
            }
        }
    }
}

#[test]
fn saturating_inputs_give_exact_sums() {
    // Every pair of products is 255 * -128 * 2 = -65280, far below i16: a plain vpmaddubsw chain
    // would saturate each pair to -32768. Reference: the closed form K * 255 * -128.
    for (kind, emulate) in paths("saturation")
        .into_iter()
        .chain([(KernelKind::Scalar, false)])
    {
        let k = 64;
        let p = Problem {
            m: 3,
            k,
            n: 20,
            lda: k,
            a: vec![255; 3 * k],
            za: 0,
            b: vec![-128; k * 20],
            zb: vec![0; 20],
            bias: None,
            mult: vec![1.0; 20],
            zo: 0,
            clamp_kind: 0,
        };
        let raw = Int32Out::new(20, None).unwrap();
        let got = run_kind::<u8, _>(&p, kind, &raw, emulate);
        assert!(
            got.iter().all(|&v| v == (k as i32) * 255 * -128),
            "{kind}: {:?}",
            &got[..4]
        );
    }
}

#[test]
fn wrapping_sums_agree_across_kernels() {
    // K large enough for Σ (a-za)(b-zb) to overflow i32: all kernels must wrap identically
    // (the scalar oracle defines the result modulo 2^32). Reference: i64 sum wrapped to i32.
    let k = 40_000;
    let p = Problem {
        m: 2,
        k,
        n: 3,
        lda: k,
        a: vec![-128; 2 * k],
        za: 127,
        b: vec![127; k * 3],
        zb: vec![-128, 0, 5],
        bias: None,
        mult: vec![1.0; 3],
        zo: 0,
        clamp_kind: 0,
    };
    let raw = Int32Out::new(3, None).unwrap();
    let want: Vec<i32> = p.reference_acc().iter().map(|&v| v as i32).collect();
    assert!(p.reference_acc().iter().any(|&v| i32::try_from(v).is_err()));
    for (kind, emulate) in paths("wrapping")
        .into_iter()
        .chain([(KernelKind::Scalar, false)])
    {
        assert_eq!(
            run_kind::<i8, _>(&p, kind, &raw, emulate),
            want,
            "{kind} emulated={emulate}"
        );
    }
}

#[test]
fn mismatched_sizes_are_errors_not_panics() {
    let packed = PackedB::new(KernelKind::Scalar, &[1; 6], 2, 3, BLayout::KxN, &[0]).unwrap();
    let epi = Requantize::<u8>::new(3, &[0.1], None, 0, QClamp::none::<u8>()).unwrap();
    let a = [1u8; 4];
    let mut out = [0u8; 6];
    let short = ActMatrix {
        data: &a[..3],
        rows: 2,
        stride: 2,
        zero_point: 0,
    };
    assert!(matches!(
        gemm(
            &short,
            &packed,
            &epi,
            &mut OutMatrix {
                data: &mut out,
                stride: 3
            }
        ),
        Err(Int8Error::BufferSize { .. })
    ));
    let ok = ActMatrix {
        data: &a,
        rows: 2,
        stride: 2,
        zero_point: 0,
    };
    assert!(
        gemm(
            &ok,
            &packed,
            &epi,
            &mut OutMatrix {
                data: &mut out[..5],
                stride: 3
            }
        )
        .is_err()
    );
    assert!(
        gemm(
            &ok,
            &packed,
            &epi,
            &mut OutMatrix {
                data: &mut out,
                stride: 2
            }
        )
        .is_err()
    );
    let bad_stride = ActMatrix {
        data: &a,
        rows: 2,
        stride: 1,
        zero_point: 0,
    };
    assert!(
        gemm(
            &bad_stride,
            &packed,
            &epi,
            &mut OutMatrix {
                data: &mut out,
                stride: 3
            }
        )
        .is_err()
    );
    let epi4 = Requantize::<u8>::new(4, &[0.1], None, 0, QClamp::none::<u8>()).unwrap();
    assert!(
        gemm(
            &ok,
            &packed,
            &epi4,
            &mut OutMatrix {
                data: &mut out,
                stride: 3
            }
        )
        .is_err()
    );
    assert!(
        gemm_channels(
            &ok,
            &packed,
            &epi4,
            2,
            &mut OutMatrix {
                data: &mut out,
                stride: 3
            }
        )
        .is_err()
    );
    assert!(
        gemm_channels(
            &ok,
            &packed,
            &epi4,
            1,
            &mut OutMatrix {
                data: &mut out,
                stride: 3
            }
        )
        .is_ok()
    );
}

#[test]
fn u8_weights_pack_to_the_same_operand() {
    // MatMulInteger with u8 weights: the shifted packing must give the plain Σ (a-za)(b-zb).
    let (k, n) = (5, 3);
    let b: Vec<u8> = (0..15).map(|i| (i * 37 % 256) as u8).collect();
    let zb = [200, 3, 128];
    let a: Vec<u8> = (0..10).map(|i| (i * 91 % 256) as u8).collect();
    let mut want = vec![0i32; 2 * n];
    for i in 0..2 {
        for j in 0..n {
            for kk in 0..k {
                want[i * n + j] += (a[i * k + kk] as i32 - 7) * (b[kk * n + j] as i32 - zb[j]);
            }
        }
    }
    let raw = Int32Out::new(n, None).unwrap();
    for kind in [KernelKind::Scalar]
        .into_iter()
        .chain(simd_kinds("u8 weights"))
    {
        let packed = PackedB::new_u8(kind, &b, k, n, BLayout::KxN, &zb).unwrap();
        let mut out = vec![0i32; 2 * n];
        let act = ActMatrix {
            data: &a,
            rows: 2,
            stride: k,
            zero_point: 7u8,
        };
        gemm(
            &act,
            &packed,
            &raw,
            &mut OutMatrix {
                data: &mut out,
                stride: n,
            },
        )
        .unwrap();
        assert_eq!(out, want, "{kind}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn prop_gemm_simd_equals_scalar(
        m in 1usize..40, k in 1usize..300, n in 1usize..70,
        seed in any::<u64>(), extremes in any::<bool>(), zb in any::<bool>(), signed in any::<bool>(),
    ) {
        let values = if extremes { Values::Extremes } else { Values::Uniform };
        if signed {
            check_all_paths::<i8, i8>(&problem::<i8>(seed, m, k, n, values, zb), "proptest");
        } else {
            check_all_paths::<u8, u8>(&problem::<u8>(seed, m, k, n, values, zb), "proptest");
        }
    }
}
