//! End-to-end tests of calibration from the command line: `--calib` sources, bad input
//! (corrupt or wrongly sized images, empty sets, NaN), determinism across thread counts,
//! sharded statistics, `--override` and `--keep-fp32`.
//!
//! References: the ranges checked by value come from hand-made data whose min/max are known
//! (see each test); the other tests compare qopt with itself under conditions that must not
//! change the result (thread count, sharding), or check errors and exit codes.

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

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(o.status.success(), "stderr: {}", stderr(o));
}

/// A failed run: non-zero exit, an `error:` line holding every needle, no panic.
fn assert_fails(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "unexpected success: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {err}"));
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {line}");
    }
}

/// Conv -> Relu -> GlobalAveragePool on an 8x8 RGB input.
const MODEL: &str = "graph g(%x: f32[1,3,8,8]) -> (%p) {
  %w = const f32[4,3,3,3] random(seed=1)
  %c = Conv(%x, %w) {pads=[1,1,1,1]} : f32[1,4,8,8]
  %r = Relu(%c) : f32[1,4,8,8] loc(\"head.relu\")
  %p = GlobalAveragePool(%r) : f32[1,4,1,1]
}
";

fn model(dir: &Path) -> String {
    let m = dir.join("m.qir");
    std::fs::write(&m, MODEL).unwrap();
    m.to_str().unwrap().to_string()
}

fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 31 + y * 7) as u8 ^ seed,
            (y * 29) as u8,
            seed.wrapping_mul(3),
        ])
    });
    img.save(path).unwrap();
}

/// `n` samples of `x: [1,3,8,8]` stacked as `[n,1,3,8,8]`; sample `nan_at` holds a NaN.
fn write_npy(path: &Path, n: usize, nan_at: Option<usize>) {
    let mut a = ndarray::Array::from_shape_fn((n, 1, 3, 8, 8), |(i, _, c, y, x)| {
        ((i * 7 + c * 5 + y * 3 + x) % 17) as f32 / 8.0 - 1.0
    });
    if let Some(i) = nan_at {
        a[[i, 0, 1, 2, 3]] = f32::NAN;
    }
    ndarray_npy::write_npy(path, &a).unwrap();
}

/// (value name, range) of every `@range` in a printed graph: graph inputs in the signature
/// (`%x: f32[..] @range=[..]`), node outputs at the start of their line.
fn ranges(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for l in text.lines() {
        for (i, _) in l.match_indices("@range=") {
            let name_at = if l.starts_with("graph ") {
                l[..i].rfind('%')
            } else {
                l.find('%')
            };
            let Some(at) = name_at else { continue };
            let name: String = l[at + 1..]
                .chars()
                .take_while(|c| !matches!(c, ':' | ' ' | ','))
                .collect();
            let r = l[i + 7..].split(']').next().unwrap_or("");
            out.push((name, format!("{r}]")));
        }
    }
    out
}

#[test]
fn calib_annotates_every_quantized_value_the_same_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let run = |threads: &str| {
        qopt(&[
            "--passes=calib{method=kl}",
            &m,
            "--calib",
            "random:6{seed=3}",
            "--threads",
            threads,
        ])
    };
    let one = run("1");
    assert_ok(&one);
    let out = stdout(&one);
    // ONNX Runtime quantizes the Conv input, the Relu output (which stands for the Conv output:
    // ORT drops a Relu after a quantized Conv) and the pool output.
    let names: Vec<String> = ranges(&out).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["x", "r", "p"], "{out}");
    assert!(!out.contains("Observer"), "{out}");
    // Plain progress lines on a pipe, with the sample count.
    assert!(
        stderr(&one).contains("calibrating: 6 done"),
        "{}",
        stderr(&one)
    );
    for t in ["2", "3"] {
        let o = run(t);
        assert_ok(&o);
        assert_eq!(stdout(&o), out, "threads {t}");
    }
    // --quiet: no progress lines.
    let q = qopt(&["--passes=calib", &m, "--calib", "random:2", "-q"]);
    assert_ok(&q);
    assert!(!stderr(&q).contains("calibrating"), "{}", stderr(&q));
}

#[test]
fn image_folders_and_bad_images() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for i in 0..3 {
        write_png(&imgs.join(format!("im{i}.png")), 12, 10, i as u8 * 40);
    }
    let imgs_s = imgs.to_str().unwrap();
    // imagenet preset: shorter side to 9, centre crop 8x8.
    let o = qopt(&["--passes=calib", &m, "--calib", imgs_s]);
    assert_ok(&o);
    assert_eq!(ranges(&stdout(&o)).len(), 3);
    // Without resizing, a 12x10 image cannot feed an 8x8 input: the error names the file.
    let o = qopt(&[
        "--passes=calib",
        &m,
        "--calib",
        imgs_s,
        "--preprocess",
        "none",
    ]);
    assert_fails(&o, &["im0.png"]);
    // key=value lists work as well as presets.
    let o = qopt(&[
        "--passes=calib",
        &m,
        "--calib",
        imgs_s,
        "--preprocess",
        "imagenet,order=bgr,mean=0.5,0.5,0.5",
    ]);
    assert_ok(&o);
    let o = qopt(&[
        "--passes=calib",
        &m,
        "--calib",
        imgs_s,
        "--preprocess",
        "nosuch",
    ]);
    assert_fails(&o, &["unknown preset 'nosuch'"]);
    // A corrupt image: named, no panic.
    std::fs::write(imgs.join("im1b.png"), b"this is not a png").unwrap();
    let o = qopt(&["--passes=calib", &m, "--calib", imgs_s]);
    assert_fails(&o, &["im1b.png", "cannot read image"]);
}

#[test]
fn empty_and_missing_sources_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = qopt(&["--passes=calib", &m, "--calib", empty.to_str().unwrap()]);
    assert_fails(&o, &["holds no samples"]);
    let o = qopt(&["--passes=calib", &m, "--calib", "/no/such/folder"]);
    assert_fails(&o, &["/no/such/folder", "no such file or folder"]);
    let o = qopt(&["--passes=calib", &m]);
    assert_fails(&o, &["no calibration data", "--calib"]);
    let o = qopt(&[
        "--passes=calib",
        &m,
        "--calib",
        "random:4",
        "--calib-limit",
        "0",
    ]);
    assert_fails(&o, &["--calib-limit"]);
}

#[test]
fn nan_samples_are_skipped_or_rejected_with_strict() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 3, Some(1));
    let npy_s = npy.to_str().unwrap();
    let o = qopt(&["--passes=calib", &m, "--calib", npy_s]);
    assert_ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("skipped 1 of 3 calibration samples") && err.contains("sample 1"),
        "{err}"
    );
    // Skipping sample 1 equals calibrating on samples 0 and 2 alone.
    let clean = dir.path().join("clean.npy");
    let mut a: ndarray::Array5<f32> = ndarray_npy::read_npy(&npy).unwrap();
    a = ndarray::concatenate(
        ndarray::Axis(0),
        &[
            a.slice(ndarray::s![0..1, .., .., .., ..]),
            a.slice(ndarray::s![2..3, .., .., .., ..]),
        ],
    )
    .unwrap();
    ndarray_npy::write_npy(&clean, &a).unwrap();
    let c = qopt(&["--passes=calib", &m, "--calib", clean.to_str().unwrap()]);
    assert_ok(&c);
    assert_eq!(stdout(&o), stdout(&c));
    let o = qopt(&["--passes=calib", &m, "--calib", npy_s, "--strict"]);
    assert_fails(&o, &["sample 1", "NaN/Inf", "--strict"]);
}

#[test]
fn sharded_statistics_merge_to_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 7, None);
    let npy_s = npy.to_str().unwrap();
    let whole = qopt(&["--passes=calib{method=kl}", &m, "--calib", npy_s]);
    assert_ok(&whole);
    let mut files = vec![];
    for shard in ["0/3", "1/3", "2/3"] {
        let f = dir.path().join(format!("s{}.json", &shard[..1]));
        let o = qopt(&[
            "--passes=observe,collect",
            &m,
            "--calib",
            npy_s,
            "--calib-shard",
            shard,
            "--save-stats",
            f.to_str().unwrap(),
        ]);
        assert_ok(&o);
        files.push(f.to_str().unwrap().to_string());
    }
    // The model after the list of files is taken back from --load-stats.
    let mut args = vec!["--passes=calib{method=kl}", "--load-stats"];
    args.extend(files.iter().map(String::as_str));
    args.push(&m);
    let merged = qopt(&args);
    assert_ok(&merged);
    assert_eq!(stdout(&merged), stdout(&whole));
    // Statistics of another model are refused, naming the file.
    let other = dir.path().join("other.qir");
    std::fs::write(
        &other,
        "graph g(%x: f32[1,3,8,8]) -> (%y) {\n  %y = Mul(%x, %x) : f32[1,3,8,8]\n}\n",
    )
    .unwrap();
    let o = qopt(&[
        "--passes=calib",
        other.to_str().unwrap(),
        "--load-stats",
        &files[0],
    ]);
    assert_fails(&o, &["s0.json", "another model"]);
}

#[test]
fn overrides_and_keep_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    // Hand-made data: x holds the values of write_npy, all in [-1, 1].
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 2, None);
    let o = qopt(&[
        "--passes=calib{method=kl}",
        &m,
        "--calib",
        npy.to_str().unwrap(),
        "--override",
        "x=minmax",
        "--keep-fp32",
        "head\\..*",
    ]);
    assert_ok(&o);
    let out = stdout(&o);
    let r = ranges(&out);
    // x by minmax: exactly the data's range, (k % 17) / 8 - 1 for k in 0..=16: [-1, 1].
    assert_eq!(r[0], ("x".to_string(), "[-1.0, 1.0]".to_string()), "{out}");
    assert!(out.contains("@calib=\"minmax\""), "{out}");
    // head.relu's output stays fp32: no range.
    assert!(!r.iter().any(|(n, _)| n == "r"), "{out}");
    let o = qopt(&[
        "--passes=calib",
        &m,
        "--calib",
        "random:2",
        "--override",
        "x",
    ]);
    assert_fails(&o, &["PATTERN=METHOD"]);
    let o = qopt(&[
        "--passes=calib",
        &m,
        "--calib",
        "random:2",
        "--override",
        "x=nosuch",
    ]);
    assert_fails(&o, &["unknown calibration method 'nosuch'"]);
}

#[test]
fn calibration_options_without_a_calibration_pass_warn() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let o = qopt(&["--passes=dce", &m, "--calib", "random:2"]);
    assert_ok(&o);
    assert!(
        stderr(&o).contains("--calib has no effect"),
        "{}",
        stderr(&o)
    );
}
