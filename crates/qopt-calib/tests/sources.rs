//! Calibration sources on files NumPy wrote (`tools/calib_testdata.py`, committed under
//! `testdata/calib/arrays/`): expected values are NumPy's arrays as the script builds them.

use std::path::PathBuf;

use qopt_calib::NoProgress;
use qopt_calib::source::{CalibData, InputSpec, SourceError, SourceOptions, SourceSpec};
use qopt_ir::{DType, Dim, Shape, Tensor};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/calib/arrays")
        .join(name)
}

fn input(name: &str, dtype: DType, dims: &[u64]) -> InputSpec {
    let mut d = vec![Dim::Sym("N".into())];
    d.extend(dims.iter().map(|&k| Dim::Known(k)));
    InputSpec {
        name: name.into(),
        dtype,
        shape: Shape(d),
    }
}

fn open(p: PathBuf, inputs: &[InputSpec], opts: SourceOptions) -> Result<CalibData, SourceError> {
    CalibData::open(
        &SourceSpec::parse(p.to_str().unwrap()).unwrap(),
        inputs,
        &opts,
    )
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.as_f32().unwrap().iter().copied().collect()
}

#[test]
fn stacked_npy_first_axis_is_samples() {
    let inp = [input("x", DType::F32, &[3, 2, 2])];
    let d = open(data("stacked.npy"), &inp, SourceOptions::default()).unwrap();
    assert_eq!(d.len(), 4);
    let s = d.load(2).unwrap();
    assert_eq!(s.inputs[0].1.shape(), &[1, 3, 2, 2]);
    // np.arange(48).reshape(4, 3, 2, 2)[2] is 24..36.
    assert_eq!(
        f32s(&s.inputs[0].1),
        (24..36).map(|v| v as f32).collect::<Vec<_>>()
    );
    assert!(s.origin.contains("stacked.npy sample 2"));
    // One rank more, float64 cast to f32: sample 1 is arange(12, 24) / 8.
    let d = open(
        data("stacked_rank5.npy"),
        &inp,
        SourceOptions {
            limit: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(d.len(), 2);
    let s = d.load(1).unwrap();
    assert_eq!(s.inputs[0].1.dtype(), DType::F32);
    assert_eq!(
        f32s(&s.inputs[0].1),
        (12..24).map(|v| v as f32 / 8.0).collect::<Vec<_>>()
    );
}

#[test]
fn npz_maps_names_to_inputs() {
    let inp = [input("a", DType::F32, &[4]), input("b", DType::I64, &[2])];
    for file in ["multi.npz", "multi_compressed.npz"] {
        let d = open(data(file), &inp, SourceOptions::default()).unwrap();
        let s = d.load(1).unwrap();
        assert_eq!(s.inputs[0].0, "a");
        assert_eq!(s.inputs[0].1.shape(), &[1, 4]);
        assert_eq!(s.inputs[1].1.shape(), &[1, 2]);
        if file == "multi.npz" {
            assert_eq!(f32s(&s.inputs[0].1), vec![4.0, 5.0, 6.0, 7.0]);
            assert_eq!(s.inputs[1].1.to_i64_vec().unwrap(), vec![2, 3]);
        }
    }
    let missing = [input("a", DType::F32, &[4]), input("c", DType::F32, &[2])];
    let e = open(data("multi.npz"), &missing, SourceOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("no array named 'c'"), "{e}");
    // A .npy cannot feed two inputs.
    assert!(matches!(
        open(data("stacked.npy"), &inp, SourceOptions::default()),
        Err(SourceError::Inputs(_))
    ));
}

#[test]
fn npy_folder_one_sample_per_file_with_nan_policy() {
    let inp = [input("x", DType::F32, &[3, 2, 2])];
    let d = open(data("npy_dir"), &inp, SourceOptions::default()).unwrap();
    assert_eq!(d.len(), 3);
    let s0 = d.load(0).unwrap();
    assert_eq!(s0.inputs[0].1.shape(), &[1, 3, 2, 2], "batch axis added");
    assert_eq!(f32s(&s0.inputs[0].1), vec![0.5; 12]);
    assert_eq!(d.load(2).unwrap().nonfinite, 2);
    // Skipped by default, an error naming the file with strict.
    let used: Vec<_> = d.samples(&NoProgress).collect::<Result<_, _>>().unwrap();
    assert_eq!(used.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1]);
    let strict = open(
        data("npy_dir"),
        &inp,
        SourceOptions {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap();
    let e = strict.samples(&NoProgress).find_map(Result::err).unwrap();
    assert!(
        e.to_string().contains("s2.npy") && e.to_string().contains("2 NaN/Inf"),
        "{e}"
    );
}

#[test]
fn bad_files_are_clear_errors() {
    let inp = [input("x", DType::F32, &[3, 2, 2])];
    let d = open(data("wrong_shape.npy"), &inp, SourceOptions::default()).unwrap();
    let e = d.load(0).unwrap_err();
    assert!(
        e.to_string().contains("wrong_shape.npy sample 0")
            && e.to_string().contains("[1, 5, 2, 2]"),
        "{e}"
    );
    let e = open(data("truncated.npy"), &inp, SourceOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("truncated.npy"), "{e}");
    let e = open(
        data("stacked.npy"),
        &[input("x", DType::F32, &[2])],
        SourceOptions::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("expected rank"), "{e}");
}

#[test]
fn image_folder_sorted_and_empty_folder_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for (name, shade) in [("b.png", 20u8), ("a.jpg", 200), ("c.JPEG", 90)] {
        let img = image::RgbImage::from_pixel(20, 20, image::Rgb([shade, shade, shade]));
        img.save_with_format(
            dir.path().join(name),
            if name.ends_with("png") {
                image::ImageFormat::Png
            } else {
                image::ImageFormat::Jpeg
            },
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let inp = [input("x", DType::F32, &[3, 16, 16])];
    let d = open(dir.path().to_path_buf(), &inp, SourceOptions::default()).unwrap();
    assert_eq!(d.len(), 3);
    let names: Vec<String> = (0..3).map(|i| d.load(i).unwrap().origin).collect();
    assert!(
        names[0].ends_with("a.jpg") && names[1].ends_with("b.png") && names[2].ends_with("c.JPEG"),
        "{names:?}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        open(empty.path().to_path_buf(), &inp, SourceOptions::default()),
        Err(SourceError::Empty(_))
    ));
}
