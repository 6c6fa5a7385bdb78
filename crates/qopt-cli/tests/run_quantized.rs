//! `qopt run` on quantized models: the INT8 plan by default, the float QDQ simulation with
//! `--reference`.
//!
//! Reference: the float QDQ simulation is the fp32 interpreter executing QuantizeLinear /
//! DequantizeLinear as ONNX defines them (checked against ONNX's backend node tests in
//! qopt-interp); DESIGN.md §7 allows the integer plan 1 LSB of the output scale from it
//! (rounding ties after requantization).

use std::path::Path;
use std::process::{Command, Output};

fn qopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qopt"))
        .args(args)
        .output()
        .expect("run qopt")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

/// Conv -> Relu -> Conv -> GlobalAveragePool -> Flatten -> Gemm on an 8x8 RGB input.
pub const MODEL: &str = "graph g(%x: f32[1,3,8,8]) -> (%y) {
  %w = const f32[4,3,3,3] random(seed=1)
  %w2 = const f32[6,4,1,1] random(seed=2)
  %fw = const f32[5,6] random(seed=3)
  %fb = const f32[5] random(seed=4)
  %c = Conv(%x, %w) {pads=[1,1,1,1]} : f32[1,4,8,8]
  %r = Relu(%c) : f32[1,4,8,8]
  %c2 = Conv(%r, %w2) : f32[1,6,8,8]
  %p = GlobalAveragePool(%c2) : f32[1,6,1,1]
  %f = Flatten(%p) : f32[1,6]
  %y = Gemm(%f, %fw, %fb) {transB=1} : f32[1,5]
}
";

/// Write the model and its quantized form (`qopt quantize`, random calibration data).
pub fn quantized_model(dir: &Path) -> (String, String) {
    let m = dir.join("m.qir");
    std::fs::write(&m, MODEL).unwrap();
    let q = dir.join("q.onnx");
    let o = qopt(&[
        "quantize",
        m.to_str().unwrap(),
        "--calib",
        "random:8{seed=5}",
        "-q",
        "-o",
        q.to_str().unwrap(),
    ]);
    ok(&o);
    (m.to_str().unwrap().into(), q.to_str().unwrap().into())
}

fn write_input(path: &Path, seed: u32) {
    use ndarray::ArrayD;
    use ndarray_npy::WriteNpyExt;
    // A fixed pseudo-random pattern in [-1, 1] (the calibration range of random:N).
    let v: Vec<f32> = (0..192u32)
        .map(|i| {
            let h = (i
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503)))
                >> 8;
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect();
    let a = ArrayD::from_shape_vec(vec![1, 3, 8, 8], v).unwrap();
    let f = std::fs::File::create(path).unwrap();
    a.write_npy(f).unwrap();
}

/// The scale of the DequantizeLinear that produces graph output `name`.
fn output_scale(model: &str, name: &str) -> f32 {
    let g = qopt::load(Path::new(model)).unwrap().graph;
    let v = g.find_value(name).unwrap();
    assert!(matches!(
        g.node(v.node).op,
        qopt::ir::Op::DequantizeLinear(_)
    ));
    let s = g.const_input(v.node, 1).unwrap();
    s.as_f32().unwrap().iter().copied().next().unwrap()
}

#[test]
fn quantized_models_run_on_the_int8_plan_within_one_lsb_of_the_reference() {
    use ndarray::ArrayD;
    use ndarray_npy::read_npy;
    let dir = tempfile::tempdir().unwrap();
    let (_, q) = quantized_model(dir.path());
    let scale = output_scale(&q, "y");
    let (int8_dir, ref_dir) = (dir.path().join("int8"), dir.path().join("ref"));
    std::fs::create_dir(&int8_dir).unwrap();
    std::fs::create_dir(&ref_dir).unwrap();
    let mut max_lsb = 0f32;
    for seed in 0..4 {
        let x = dir.path().join(format!("x{seed}.npy"));
        write_input(&x, seed);
        let input = format!("x={}", x.display());
        let o = qopt(&[
            "run",
            &q,
            "--input",
            &input,
            "--output-dir",
            int8_dir.to_str().unwrap(),
            "-v",
        ]);
        ok(&o);
        assert!(stderr(&o).contains("INT8 plan"), "{}", stderr(&o));
        assert!(stderr(&o).contains("integer steps: {"), "{}", stderr(&o));
        let o = qopt(&[
            "run",
            &q,
            "--reference",
            "--input",
            &input,
            "--output-dir",
            ref_dir.to_str().unwrap(),
        ]);
        ok(&o);
        assert!(!stderr(&o).contains("INT8 plan"), "{}", stderr(&o));
        let a: ArrayD<f32> = read_npy(int8_dir.join("y.npy")).unwrap();
        let b: ArrayD<f32> = read_npy(ref_dir.join("y.npy")).unwrap();
        assert_eq!(a.shape(), &[1, 5]);
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.iter().zip(b.iter()) {
            let lsb = (x - y).abs() / scale;
            assert!(lsb <= 1.0 + 1e-3, "{x} vs {y}: {lsb} LSB (scale {scale})");
            max_lsb = max_lsb.max(lsb);
        }
    }
    eprintln!("max difference int8 plan vs reference: {max_lsb} LSB");
}

/// A per-axis QuantizeLinear whose scale has 3 values for an axis of 4: the error names the
/// node; no panic, exit code 3 (bad input), on both engines.
#[test]
fn mismatched_scale_shape_names_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("bad.qir");
    std::fs::write(
        &m,
        "graph bad(%x: f32[1,4]) -> (%y) {
  %s = const f32[3] [0.1, 0.1, 0.1]
  %z = const i8[3] [0, 0, 0]
  %s4 = const f32[4] [0.1, 0.1, 0.1, 0.1]
  %z4 = const i8[4] [0, 0, 0, 0]
  %q = QuantizeLinear(%x, %s, %z) {axis=1} : i8[1,4] loc(\"the_q\")
  %y = DequantizeLinear(%q, %s4, %z4) {axis=1} : f32[1,4]
}
",
    )
    .unwrap();
    let x = dir.path().join("x.npy");
    {
        use ndarray::ArrayD;
        use ndarray_npy::WriteNpyExt;
        let a = ArrayD::<f32>::zeros(vec![1, 4]);
        a.write_npy(std::fs::File::create(&x).unwrap()).unwrap();
    }
    let input = format!("x={}", x.display());
    for extra in [None, Some("--reference")] {
        let mut args = vec!["run", m.to_str().unwrap(), "--input", &input];
        args.extend(extra);
        let o = qopt(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("the_q"), "{err}");
        assert!(err.contains("scale"), "{err}");
    }
}
