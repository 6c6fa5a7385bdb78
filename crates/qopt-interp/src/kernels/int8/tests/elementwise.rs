//! Elementwise kernel tests. References: values from the ONNX backend node tests
//! (test_quantizelinear, test_dequantizelinear), an independent round-half-even written with an
//! explicit tie rule, and for requantize/Add/Mul the composition of the ONNX ops themselves
//! (DequantizeLinear, the float op, QuantizeLinear).

use super::super::*;
use super::{Rng, simd_kinds};
use proptest::prelude::*;

fn all_kinds(test: &str) -> Vec<KernelKind> {
    let mut v = vec![KernelKind::Scalar];
    v.extend(simd_kinds(test));
    v
}

/// QuantizeLinear with an explicit tie rule (independent of `round_ties_even`).
fn quantize_ref(x: f32, scale: f32, zp: i32, lo: i32, hi: i32) -> i32 {
    let q = x / scale; // f32 division, as the spec (numpy float32) computes it
    if q.is_nan() {
        return lo;
    }
    let q = q as f64;
    let floor = q.floor();
    let frac = q - floor;
    let r = if frac > 0.5 || (frac == 0.5 && (floor as i64).rem_euclid(2) == 1) {
        floor + 1.0
    } else {
        floor
    };
    (r + zp as f64).clamp(lo as f64, hi as f64) as i32
}

#[test]
fn onnx_node_test_values() {
    // onnx/backend/test/case/node/quantizelinear.py, test_quantizelinear.
    let x = [0.0f32, 2.0, 3.0, 1000.0, -254.0, -1000.0];
    // onnx/backend/test/case/node/dequantizelinear.py, test_dequantizelinear.
    let q = [0u8, 3, 128, 255];
    for kind in all_kinds("onnx node values") {
        let mut y = [0u8; 6];
        quantize(kind, &x, 2.0, 128, &mut y).unwrap();
        assert_eq!(y, [128, 129, 130, 255, 1, 0], "{kind}");
        let mut d = [0f32; 4];
        dequantize(kind, &q, 2.0, 128, &mut d).unwrap();
        assert_eq!(d, [-256.0, -250.0, 0.0, 254.0], "{kind}");
    }
}

#[test]
fn quantize_matches_reference_on_ties_and_specials() {
    // Scale 0.5 makes x / scale exact, so (k + 0.5) * 0.5 lands exactly on ties; 0.37 exercises
    // the f32 division's rounding.
    for scale in [0.37f32, 0.5] {
        let mut rng = Rng::new(7);
        let mut x: Vec<f32> = (0..1000).map(|_| (rng.unit() - 0.5) * 200.0).collect();
        x.extend((-300..300).map(|k| (k as f32 + 0.5) * scale));
        x.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e30,
            -1e30,
            0.0,
            -0.0,
        ]);
        for kind in all_kinds("quantize") {
            let mut q8 = vec![0i8; x.len()];
            quantize(kind, &x, scale, -3, &mut q8).unwrap();
            let mut qu = vec![0u8; x.len()];
            quantize(kind, &x, scale, 200, &mut qu).unwrap();
            for (i, &v) in x.iter().enumerate() {
                assert_eq!(
                    q8[i] as i32,
                    quantize_ref(v, scale, -3, -128, 127),
                    "{kind} i8 x={v}"
                );
                assert_eq!(
                    qu[i] as i32,
                    quantize_ref(v, scale, 200, 0, 255),
                    "{kind} u8 x={v}"
                );
            }
            let mut d = vec![0f32; x.len()];
            dequantize(kind, &q8, scale, -3, &mut d).unwrap();
            for (i, &q) in q8.iter().enumerate() {
                assert_eq!(d[i].to_bits(), ((q as i32 + 3) as f32 * scale).to_bits());
            }
        }
    }
}

#[test]
fn elementwise_bad_parameters_are_errors() {
    let mut out = [0u8; 3];
    assert!(quantize(KernelKind::Scalar, &[1.0; 4], 1.0, 0, &mut out).is_err());
    assert!(quantize(KernelKind::Scalar, &[1.0; 3], 0.0, 0, &mut out).is_err());
    assert!(quantize(KernelKind::Scalar, &[1.0; 3], 1.0, 256, &mut out).is_err());
    assert!(dequantize(KernelKind::Scalar, &[1u8; 3], f32::NAN, 0, &mut [0.0; 3]).is_err());
    assert!(Lut8::<u8, i8>::requantize(1.0, 0, 0.0, 0).is_err());
    assert!(Lut8::<u8, i8>::requantize(1.0, 0, 1.0, 200).is_err());
    let add = QBinary::new(BinaryOp::Add, (1.0, 0), (1.0, 0), (1.0, 0)).unwrap();
    assert!(
        add.run(KernelKind::Scalar, &[1u8; 6], &[1u8; 4], &mut [0u8; 6])
            .is_err()
    );
    assert!(
        add.run(KernelKind::Scalar, &[1u8; 6], &[], &mut [0u8; 6])
            .is_err()
    );
    assert!(
        add.run(KernelKind::Scalar, &[1u8; 6], &[1u8; 3], &mut [0u8; 5])
            .is_err()
    );
    let bad_zp = QBinary::new(BinaryOp::Add, (1.0, -1), (1.0, 0), (1.0, 0)).unwrap();
    assert!(
        bad_zp
            .run(KernelKind::Scalar, &[1u8; 6], &[1u8; 3], &mut [0u8; 6])
            .is_err()
    );
    assert!(QBinary::new(BinaryOp::Mul, (1.0, 0), (1.0, 0), (0.0, 0)).is_err());
}

#[test]
fn requantize_table_is_dequantize_then_quantize() {
    let (s_in, z_in, s_out, z_out) = (0.043f32, 17, 0.031f32, -5);
    let lut = Lut8::<u8, i8>::requantize(s_in, z_in, s_out, z_out).unwrap();
    let all: Vec<u8> = (0..=255).collect();
    let mut deq = vec![0f32; 256];
    dequantize(KernelKind::Scalar, &all, s_in, z_in, &mut deq).unwrap();
    let mut want = vec![0i8; 256];
    quantize(KernelKind::Scalar, &deq, s_out, z_out, &mut want).unwrap();
    let mut got = vec![0i8; 256];
    lut.apply(&all, &mut got).unwrap();
    assert_eq!(got, want);
    // And within 1 LSB of exact math.
    for (q, &g) in all.iter().zip(&got) {
        let exact = ((*q as f64 - z_in as f64) * s_in as f64 / s_out as f64).round() + z_out as f64;
        assert!((g as f64 - exact.clamp(-128.0, 127.0)).abs() <= 1.0);
    }
}

fn binary_reference<I: QInt, O: QInt>(
    op: BinaryOp,
    a: &[I],
    b: &[I],
    s: [(f32, i32); 3],
) -> Vec<O> {
    // The QDQ graph: DequantizeLinear(a), DequantizeLinear(b), the f32 op, QuantizeLinear.
    let mut fa = vec![0f32; a.len()];
    dequantize(KernelKind::Scalar, a, s[0].0, s[0].1, &mut fa).unwrap();
    let mut fb = vec![0f32; b.len()];
    dequantize(KernelKind::Scalar, b, s[1].0, s[1].1, &mut fb).unwrap();
    let y: Vec<f32> = fa
        .iter()
        .enumerate()
        .map(|(i, &x)| match op {
            BinaryOp::Add => x + fb[i % fb.len()],
            BinaryOp::Mul => x * fb[i % fb.len()],
        })
        .collect();
    let mut q = vec![O::default(); y.len()];
    quantize(KernelKind::Scalar, &y, s[2].0, s[2].1, &mut q).unwrap();
    q
}

fn check_binary<I: QInt, O: QInt>(seed: u64, len: usize, b_len: usize, op: BinaryOp) {
    let mut rng = Rng::new(seed);
    let a: Vec<I> = (0..len)
        .map(|_| I::checked(rng.range(I::MIN, I::MAX)).unwrap())
        .collect();
    let b: Vec<I> = (0..b_len)
        .map(|_| I::checked(rng.range(I::MIN, I::MAX)).unwrap())
        .collect();
    let s = [
        (0.01 + rng.unit() * 0.1, rng.range(I::MIN, I::MAX)),
        (0.01 + rng.unit() * 0.1, rng.range(I::MIN, I::MAX)),
        (0.02 + rng.unit() * 0.1, rng.range(O::MIN, O::MAX)),
    ];
    let want = binary_reference::<I, O>(op, &a, &b, s);
    let q = QBinary::new(op, s[0], s[1], s[2]).unwrap();
    for kind in all_kinds("binary") {
        let mut got = vec![O::default(); len];
        q.run(kind, &a, &b, &mut got).unwrap();
        assert_eq!(got, want, "{kind} {op:?} len {len} b_len {b_len}");
    }
}

#[test]
fn quantized_add_and_mul_equal_the_qdq_reference() {
    let mut seed = 0;
    for (len, b_len) in [
        (1, 1),
        (7, 7),
        (8, 8),
        (100, 100),
        (37, 1),
        (96, 32),
        (120, 24),
        (99, 33),
        (0, 0),
    ] {
        for op in [BinaryOp::Add, BinaryOp::Mul] {
            seed += 1;
            check_binary::<u8, u8>(seed, len, b_len, op);
            check_binary::<i8, i8>(seed, len, b_len, op);
            check_binary::<u8, i8>(seed, len, b_len, op);
        }
    }
}

proptest! {
    #[test]
    fn prop_quantize_simd_equals_scalar(xs in prop::collection::vec(any::<f32>(), 0..100), scale in 1e-3f32..10.0, zp in -128i32..128) {
        let mut s = vec![0i8; xs.len()];
        quantize(KernelKind::Scalar, &xs, scale, zp, &mut s).unwrap();
        for kind in simd_kinds("prop quantize") {
            let mut v = vec![0i8; xs.len()];
            quantize(kind, &xs, scale, zp, &mut v).unwrap();
            prop_assert_eq!(&v, &s);
        }
    }

    #[test]
    fn prop_binary_simd_equals_reference(seed in any::<u64>(), len in 1usize..80, mode in 0usize..3) {
        let b_len = match mode { 0 => len, 1 => 1, _ => if len % 2 == 0 { len / 2 } else { len } };
        check_binary::<u8, u8>(seed, len, b_len, if seed % 2 == 0 { BinaryOp::Add } else { BinaryOp::Mul });
    }
}

/// The vector lookup against the scalar loop (the oracle): random tables of every input/output
/// type pair, inputs covering all 256 codes (extremes -128, 127, 255 included) and lengths with
/// every tail size past the 32-byte blocks.
#[test]
fn vector_lookup_equals_scalar() {
    fn case<I: QInt, O: QInt>(seed: u64) {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as i32
        };
        let table: Vec<i32> = (0..256).map(|_| O::MIN + next().rem_euclid(256)).collect();
        let lut =
            Lut8::<I, O>::from_fn(|v| O::checked(table[(v.to_i32() - I::MIN) as usize]).unwrap());
        for len in (0..70).chain([256, 1000, 1031]) {
            let input: Vec<I> = (0..len)
                .map(|i| {
                    let v = if i < 256 {
                        i as i32
                    } else {
                        next().rem_euclid(256)
                    };
                    I::checked(I::MIN + v).unwrap()
                })
                .collect();
            let mut want = vec![O::default(); len];
            lut.apply(&input, &mut want).unwrap();
            for kind in KernelKind::ALL {
                if kind.check_supported().is_err() {
                    eprintln!("SKIP: {kind:?} lookup: not supported on this CPU");
                    continue;
                }
                let mut got = vec![O::default(); len];
                lut.apply_kind(kind, &input, &mut got).unwrap();
                assert_eq!(got, want, "{kind:?} {}->{} len {len}", I::NAME, O::NAME);
            }
        }
        assert!(
            lut.apply_kind(
                KernelKind::Scalar,
                &[I::default(); 3],
                &mut [O::default(); 2]
            )
            .is_err()
        );
    }
    case::<u8, u8>(1);
    case::<u8, i8>(2);
    case::<i8, u8>(3);
    case::<i8, i8>(4);
}
