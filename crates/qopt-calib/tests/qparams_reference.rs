//! qparams against ONNX Runtime's `compute_scale_zp` and ONNX's reference QuantizeLinear /
//! DequantizeLinear (`testdata/calib/qparams.json`, written by `tools/qparams_reference.py`).

use qopt_calib::qparams::{QScheme, dequantize_tensor, quantize_tensor};
use qopt_ir::{DType, QParams, Range, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/calib/qparams.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[test]
fn scale_and_zero_point_match_onnxruntime() {
    let fx = fixture();
    let cases = fx["scale_zp"].as_array().unwrap();
    for c in cases {
        let scheme = match c["scheme"].as_str().unwrap() {
            "i8" => QScheme::ACTIVATIONS_ASYMMETRIC,
            "u8" => QScheme::U8_ASYMMETRIC,
            "i8_sym_narrow" => QScheme::WEIGHTS,
            "u8_sym" => QScheme {
                symmetric: true,
                ..QScheme::U8_ASYMMETRIC
            },
            s => panic!("scheme {s}"),
        };
        let r = Range::new(
            c["min"].as_f64().unwrap() as f32,
            c["max"].as_f64().unwrap() as f32,
        );
        let (s, zp) = scheme.scale_zero_point(r).unwrap();
        assert_eq!(s, c["scale"].as_f64().unwrap() as f32, "{c}");
        assert_eq!(zp as i64, c["zp"].as_i64().unwrap(), "{c}");
    }
    assert!(cases.len() >= 100);
}

#[test]
fn quantize_dequantize_match_onnx_reference() {
    let fx = fixture();
    for c in fx["quantize"].as_array().unwrap() {
        let x = floats(&c["x"]);
        let shape: Vec<usize> = c
            .get("shape")
            .map(|s| {
                s.as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect()
            })
            .unwrap_or(vec![x.len()]);
        let dtype = if c["dtype"] == "i8" {
            DType::I8
        } else {
            DType::U8
        };
        let p = QParams {
            dtype,
            scale: floats(&c["scale"]),
            zero_point: c["zp"]
                .as_array()
                .unwrap()
                .iter()
                .map(|z| z.as_i64().unwrap() as i32)
                .collect(),
            axis: c["axis"].as_u64().map(|a| a as usize),
        };
        let q = quantize_tensor(&Tensor::from_vec(&shape, x), &p, false).unwrap();
        let got: Vec<i64> = match &q {
            Tensor::I8(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U8(a) => a.iter().map(|&v| v as i64).collect(),
            _ => unreachable!(),
        };
        let want: Vec<i64> = c["q"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(got, want, "scale {} zp {}", c["scale"], c["zp"]);
        let dq = dequantize_tensor(&q, &p).unwrap();
        assert_eq!(
            dq.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
            floats(&c["dq"])
        );
    }
}
