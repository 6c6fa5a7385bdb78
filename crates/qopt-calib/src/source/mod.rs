//! Calibration data sources (`--calib SOURCE`): per-sample input tensors for a model.
//!
//! A source is one of
//! - a folder of images (PNG, JPEG; [`images`]) with a [`Preprocess`] spec;
//! - a folder of `.npy` files (one sample each, single-input models) or of `.npz` files
//!   (one sample each, array names = input names);
//! - one `.npy` or `.npz` file whose first axis indexes the samples ([`arrays`]): an array of
//!   the input's full rank, `[128, 3, 224, 224]` for an input `[N, 3, 224, 224]`, is 128
//!   samples of batch 1; an array of one more rank is split along its first axis as is;
//! - `random:N{seed=S dim=D}` ([`random`]), for smoke tests.
//!
//! Files are taken in sorted file-name order and `limit` keeps the first N samples, so a run
//! sees the same samples in the same order everywhere. [`CalibData::load`] gives random
//! access (parallel collection loads samples on many threads); [`CalibData::samples`]
//! iterates in order applying the NaN/Inf policy: a sample with non-finite values is skipped
//! with a warning through [`Progress`], or with `strict` is an error naming it. Every error
//! names the file and sample.

pub mod arrays;
pub mod images;
pub mod random;

use std::path::{Path, PathBuf};

use qopt_ir::{DType, Dim, Shape, Tensor};

pub use images::Preprocess;

use crate::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("calibration source '{spec}': {reason}")]
    Spec { spec: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("calibration source {0} holds no samples")]
    Empty(String),
    #[error("{path}: cannot read image: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}: cannot read array: {reason}")]
    Array { path: PathBuf, reason: String },
    #[error("{origin}: input '{input}' expects shape {expected}, got {found:?}")]
    Shape {
        origin: String,
        input: String,
        expected: String,
        found: Vec<usize>,
    },
    #[error("{origin}: input '{input}' expects {expected}, got {found}")]
    DType {
        origin: String,
        input: String,
        expected: DType,
        found: DType,
    },
    #[error("{origin}: {count} NaN/Inf values (rejected by --strict)")]
    NonFinite { origin: String, count: u64 },
    #[error("{0}")]
    Inputs(String),
    #[error("preprocessing '{spec}': {reason}")]
    Preprocess { spec: String, reason: String },
}

/// A graph input the samples are for.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Shape,
}

/// A parsed `--calib` argument.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// A folder of images, `.npy` or `.npz` files.
    Dir(PathBuf),
    /// One `.npy` or `.npz` file, samples along the first axis.
    File(PathBuf),
    /// `random:N{seed=S dim=D}`: `dim` is used for unknown dimensions other than the first.
    Random { count: usize, seed: u64, dim: usize },
}

impl SourceSpec {
    /// Parse a `--calib` argument (a path, or `random:N{seed=S dim=D}`).
    pub fn parse(s: &str) -> Result<SourceSpec, SourceError> {
        let err = |reason: &str| SourceError::Spec {
            spec: s.into(),
            reason: reason.into(),
        };
        if let Some(rest) = s.strip_prefix("random:") {
            let (n, opts) = match rest.find('{') {
                Some(i) => (
                    &rest[..i],
                    rest[i + 1..]
                        .strip_suffix('}')
                        .ok_or_else(|| err("unclosed '{'"))?,
                ),
                None => (rest, ""),
            };
            let count: usize = n.trim().parse().map_err(|_| err("expected random:N"))?;
            let (mut seed, mut dim) = (0u64, 32usize);
            for tok in opts.split_whitespace() {
                match tok.split_once('=') {
                    Some(("seed", v)) => {
                        seed = v.parse().map_err(|_| err("seed is not a number"))?
                    }
                    Some(("dim", v)) => dim = v.parse().map_err(|_| err("dim is not a number"))?,
                    _ => return Err(err(&format!("unknown option '{tok}' (seed, dim)"))),
                }
            }
            return Ok(SourceSpec::Random { count, seed, dim });
        }
        let p = PathBuf::from(s);
        if p.is_dir() {
            Ok(SourceSpec::Dir(p))
        } else if p.is_file() {
            Ok(SourceSpec::File(p))
        } else {
            Err(err("no such file or folder"))
        }
    }
}

/// How to read a source.
#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    /// Keep only the first N samples.
    pub limit: Option<usize>,
    /// Image preprocessing (default: `imagenet`).
    pub preprocess: Option<Preprocess>,
    /// Fail on a sample with NaN/Inf instead of skipping it.
    pub strict: bool,
}

/// One calibration sample: a tensor for every graph input.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub index: usize,
    /// Where it came from (`photos/cat.jpg`, `calib.npz sample 3`), for messages.
    pub origin: String,
    pub inputs: Vec<(String, Tensor)>,
    /// NaN/Inf elements over all float inputs.
    pub nonfinite: u64,
}

enum Kind {
    Images(Vec<PathBuf>, Preprocess),
    NpyFiles(Vec<PathBuf>),
    NpzFiles(Vec<PathBuf>),
    Arrays(arrays::Stacked),
    Random { seed: u64, dim: usize },
}

/// An opened calibration source.
pub struct CalibData {
    kind: Kind,
    inputs: Vec<InputSpec>,
    len: usize,
    strict: bool,
    name: String,
}

fn lower_ext(p: &Path) -> String {
    p.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io = |source| SourceError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        if p.is_file() {
            files.push(p);
        }
    }
    // Deterministic order: sorted by file name.
    files.sort();
    Ok(files)
}

impl CalibData {
    /// Open a source for a model with these graph inputs.
    pub fn open(
        spec: &SourceSpec,
        inputs: &[InputSpec],
        opts: &SourceOptions,
    ) -> Result<CalibData, SourceError> {
        if inputs.is_empty() {
            return Err(SourceError::Inputs(
                "the model has no inputs to calibrate".into(),
            ));
        }
        let single = |what: &str| {
            if inputs.len() == 1 {
                Ok(())
            } else {
                Err(SourceError::Inputs(format!(
                    "{what} feeds one input, but the model has {} ({}); use .npz files named after the inputs",
                    inputs.len(),
                    inputs
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let (kind, len, name) = match spec {
            SourceSpec::Random { count, seed, dim } => (
                Kind::Random {
                    seed: *seed,
                    dim: *dim,
                },
                *count,
                format!("random:{count}"),
            ),
            SourceSpec::File(p) => {
                let stacked = arrays::Stacked::open(p, inputs)?;
                let n = stacked.len();
                (Kind::Arrays(stacked), n, p.display().to_string())
            }
            SourceSpec::Dir(d) => {
                let files = list_dir(d)?;
                let by = |exts: &[&str]| -> Vec<PathBuf> {
                    files
                        .iter()
                        .filter(|f| exts.contains(&lower_ext(f).as_str()))
                        .cloned()
                        .collect()
                };
                let (imgs, npy, npz) = (by(&["png", "jpg", "jpeg"]), by(&["npy"]), by(&["npz"]));
                let kinds = [!imgs.is_empty(), !npy.is_empty(), !npz.is_empty()];
                if kinds.iter().filter(|&&k| k).count() > 1 {
                    return Err(SourceError::Spec {
                        spec: d.display().to_string(),
                        reason: "mixes images, .npy and .npz files; use one kind per folder".into(),
                    });
                }
                let name = d.display().to_string();
                if !imgs.is_empty() {
                    single("an image folder")?;
                    let pre = opts.preprocess.clone().unwrap_or_else(Preprocess::imagenet);
                    pre.check_input(&inputs[0])?;
                    let n = imgs.len();
                    (Kind::Images(imgs, pre), n, name)
                } else if !npy.is_empty() {
                    single("a folder of .npy files")?;
                    let n = npy.len();
                    (Kind::NpyFiles(npy), n, name)
                } else {
                    let n = npz.len();
                    (Kind::NpzFiles(npz), n, name)
                }
            }
        };
        let len = opts.limit.map_or(len, |l| l.min(len));
        if len == 0 {
            return Err(SourceError::Empty(name));
        }
        Ok(CalibData {
            kind,
            inputs: inputs.to_vec(),
            len,
            strict: opts.strict,
            name,
        })
    }

    /// Number of samples (after the limit).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: an empty source is an error at [`CalibData::open`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The source as the user named it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Load sample `i` (0-based, `< len()`), checked against the inputs' dtypes and shapes.
    pub fn load(&self, i: usize) -> Result<Sample, SourceError> {
        let (origin, tensors) = match &self.kind {
            Kind::Images(files, pre) => {
                let t = pre.load(&files[i], &self.inputs[0])?;
                (files[i].display().to_string(), vec![t])
            }
            Kind::NpyFiles(files) => {
                let t = arrays::read_npy(&files[i])?;
                let t = arrays::add_batch_axis(t, &self.inputs[0]);
                (files[i].display().to_string(), vec![t])
            }
            Kind::NpzFiles(files) => {
                let ts = arrays::read_npz_inputs(&files[i], &self.inputs)?;
                let ts = ts
                    .into_iter()
                    .zip(&self.inputs)
                    .map(|(t, inp)| arrays::add_batch_axis(t, inp))
                    .collect();
                (files[i].display().to_string(), ts)
            }
            Kind::Arrays(s) => (format!("{} sample {i}", s.path().display()), s.sample(i)),
            Kind::Random { seed, dim } => (
                format!("random sample {i}"),
                random::sample(&self.inputs, *seed, *dim, i)?,
            ),
        };
        let mut inputs = Vec::with_capacity(tensors.len());
        let mut nonfinite = 0;
        for (t, spec) in tensors.into_iter().zip(&self.inputs) {
            let t = conform(t, spec, &origin)?;
            if let Some(a) = t.as_f32() {
                nonfinite += a.iter().filter(|x| !x.is_finite()).count() as u64;
            }
            inputs.push((spec.name.clone(), t));
        }
        Ok(Sample {
            index: i,
            origin,
            inputs,
            nonfinite,
        })
    }

    /// Apply the NaN/Inf policy to a loaded sample: `Ok(true)` to use it, `Ok(false)` to skip
    /// it (reported through `progress`), an error under `strict`.
    pub fn accept(&self, s: &Sample, progress: &dyn Progress) -> Result<bool, SourceError> {
        if s.nonfinite == 0 {
            return Ok(true);
        }
        if self.strict {
            return Err(SourceError::NonFinite {
                origin: s.origin.clone(),
                count: s.nonfinite,
            });
        }
        progress.warn(&format!(
            "{}: skipped, {} NaN/Inf values",
            s.origin, s.nonfinite
        ));
        Ok(false)
    }

    /// The samples in order, skipped ones left out (see [`CalibData::accept`]).
    pub fn samples<'a>(
        &'a self,
        progress: &'a dyn Progress,
    ) -> impl Iterator<Item = Result<Sample, SourceError>> + 'a {
        (0..self.len).filter_map(move |i| match self.load(i) {
            Ok(s) => match self.accept(&s, progress) {
                Ok(true) => Some(Ok(s)),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            },
            Err(e) => Some(Err(e)),
        })
    }
}

/// Cast to the input's dtype where that is lossless in intent (f64 data for an f32 input,
/// integer widths), and check the shape against the input's known dimensions.
fn conform(t: Tensor, spec: &InputSpec, origin: &str) -> Result<Tensor, SourceError> {
    let t = if t.dtype() == spec.dtype {
        t
    } else if (t.dtype().is_float() && spec.dtype.is_float())
        || (t.dtype().is_int() && spec.dtype.is_int())
    {
        t.cast(spec.dtype)
    } else {
        return Err(SourceError::DType {
            origin: origin.into(),
            input: spec.name.clone(),
            expected: spec.dtype,
            found: t.dtype(),
        });
    };
    let dims = spec.shape.dims();
    let ok = t.rank() == dims.len()
        && t.shape().iter().zip(dims).all(|(&n, d)| match d {
            Dim::Known(k) => *k == n as u64,
            _ => true,
        });
    if !ok {
        return Err(SourceError::Shape {
            origin: origin.into(),
            input: spec.name.clone(),
            expected: spec.shape.to_string(),
            found: t.shape().to_vec(),
        });
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn input(name: &str, dims: &[Dim]) -> InputSpec {
        InputSpec {
            name: name.into(),
            dtype: DType::F32,
            shape: Shape(dims.to_vec()),
        }
    }

    #[test]
    fn parse_specs() {
        assert_eq!(
            SourceSpec::parse("random:8{seed=3 dim=16}").unwrap(),
            SourceSpec::Random {
                count: 8,
                seed: 3,
                dim: 16
            }
        );
        assert_eq!(
            SourceSpec::parse("random:2").unwrap(),
            SourceSpec::Random {
                count: 2,
                seed: 0,
                dim: 32
            }
        );
        assert!(SourceSpec::parse("random:x").is_err());
        assert!(SourceSpec::parse("random:2{foo=1}").is_err());
        let e = SourceSpec::parse("/no/such/dir").unwrap_err();
        assert!(e.to_string().contains("/no/such/dir"), "{e}");
    }

    #[test]
    fn limit_empty_and_nan_policy() {
        let inp = [input("x", &[Dim::Sym("N".into()), Dim::Known(4)])];
        let spec = SourceSpec::Random {
            count: 5,
            seed: 1,
            dim: 32,
        };
        let d = CalibData::open(
            &spec,
            &inp,
            &SourceOptions {
                limit: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.samples(&crate::NoProgress).count(), 3);
        let e = CalibData::open(
            &SourceSpec::Random {
                count: 0,
                seed: 1,
                dim: 1,
            },
            &inp,
            &SourceOptions::default(),
        );
        assert!(matches!(e, Err(SourceError::Empty(_))));
        // A sample with NaN: skipped with a warning, or an error naming it under strict.
        let mut s = d.load(0).unwrap();
        s.nonfinite = 2;
        struct Rec(std::sync::Mutex<Vec<String>>);
        impl Progress for Rec {
            fn warn(&self, m: &str) {
                self.0.lock().unwrap().push(m.into());
            }
        }
        let rec = Rec(Default::default());
        assert!(!d.accept(&s, &rec).unwrap());
        assert_eq!(rec.0.lock().unwrap().len(), 1);
        let strict = CalibData::open(
            &spec,
            &inp,
            &SourceOptions {
                strict: true,
                ..Default::default()
            },
        )
        .unwrap();
        let e = strict.accept(&s, &rec).unwrap_err();
        assert!(e.to_string().contains("random sample 0"), "{e}");
    }
}
