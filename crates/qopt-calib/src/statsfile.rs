//! Statistics files (`--save-stats FILE`, `--load-stats FILE...`): every observer's state keyed
//! by the observed value's name, as JSON with a format name, a version and a model
//! fingerprint. Loading several files merges them exactly (see [`crate::stats`]), so a large
//! calibration set can be split across processes or machines and the shards' files merged:
//! the result is the same state as one run over all samples.
//!
//! The fingerprint is an FNV-1a hash of the observed values' names and shapes (sorted by
//! name): a file from another model, or from the same model observed at other values, is
//! refused with a clear error rather than merged into nonsense. A file with a newer format
//! version is refused too. Counts are u64 and floats are written by serde_json's shortest
//! round-trip form, so save then load gives back the identical state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qopt_ir::tensor::Fnv64;
use qopt_ir::{EmaSums, ExactSum, Histogram, ObserverState, Shape};
use serde::{Deserialize, Serialize};

use crate::stats::{Statistics, StatsError};

/// The `format` field of every statistics file.
pub const FORMAT: &str = "qopt-calib-stats";
/// The newest format version this build reads and the one it writes.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StatsFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid statistics file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: statistics format version {found} is newer than this qopt reads ({VERSION})")]
    Version { path: PathBuf, found: u64 },
    #[error(
        "{path}: statistics were collected on another model (fingerprint {found}, this model {expected})"
    )]
    Fingerprint {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: value '{value}': {reason}")]
    Invalid {
        path: PathBuf,
        value: String,
        reason: String,
    },
    #[error("{path}: cannot merge value '{value}': {source}")]
    Merge {
        path: PathBuf,
        value: String,
        source: StatsError,
    },
    #[error("no statistics file given")]
    NoFiles,
}

/// All observers' statistics of one model.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StatsSet {
    pub fingerprint: String,
    pub values: BTreeMap<String, ObserverState>,
}

/// Fingerprint of a model's observed values: their names and shapes, order-independent.
pub fn fingerprint<'a>(values: impl IntoIterator<Item = (&'a str, &'a Shape)>) -> String {
    let mut v: Vec<(&str, String)> = values
        .into_iter()
        .map(|(n, s)| (n, s.to_string()))
        .collect();
    v.sort();
    let mut h = Fnv64::new();
    for (name, shape) in v {
        h.write(name.as_bytes());
        h.write(&[0]);
        h.write(shape.as_bytes());
        h.write(b"\n");
    }
    format!("{:016x}", h.finish())
}

#[derive(Serialize, Deserialize)]
struct FileRepr {
    format: String,
    version: u32,
    fingerprint: String,
    values: Vec<ValueRepr>,
}

#[derive(Serialize, Deserialize)]
struct ValueRepr {
    name: String,
    bins: usize,
    ema: Option<f32>,
    samples: u64,
    min_max: Option<[f32; 2]>,
    nonfinite: u64,
    zeros: u64,
    ema_sums: Option<EmaRepr>,
    abs_hist: Option<HistRepr>,
    hist: Option<HistRepr>,
}

#[derive(Serialize, Deserialize)]
struct EmaRepr {
    samples: u64,
    min_sum: [u64; 6],
    max_sum: [u64; 6],
}

#[derive(Serialize, Deserialize)]
struct HistRepr {
    lo: f32,
    hi: f32,
    counts: Vec<u64>,
}

impl From<&Histogram> for HistRepr {
    fn from(h: &Histogram) -> Self {
        HistRepr {
            lo: h.lo,
            hi: h.hi,
            counts: h.counts.clone(),
        }
    }
}

fn to_repr(name: &str, s: &ObserverState) -> ValueRepr {
    ValueRepr {
        name: name.to_string(),
        bins: s.bins,
        ema: s.ema,
        samples: s.samples,
        min_max: s.min_max.map(|(a, b)| [a, b]),
        nonfinite: s.nonfinite,
        zeros: s.zeros,
        ema_sums: s.ema_sums.map(|e| EmaRepr {
            samples: e.samples,
            min_sum: e.min_sum.limbs,
            max_sum: e.max_sum.limbs,
        }),
        abs_hist: s.abs_hist.as_ref().map(HistRepr::from),
        hist: s.hist.as_ref().map(HistRepr::from),
    }
}

fn from_repr(v: ValueRepr) -> ObserverState {
    let h = |r: HistRepr| Histogram {
        lo: r.lo,
        hi: r.hi,
        counts: r.counts,
    };
    ObserverState {
        bins: v.bins,
        ema: v.ema,
        samples: v.samples,
        min_max: v.min_max.map(|[a, b]| (a, b)),
        nonfinite: v.nonfinite,
        zeros: v.zeros,
        ema_sums: v.ema_sums.map(|e| EmaSums {
            samples: e.samples,
            min_sum: ExactSum { limbs: e.min_sum },
            max_sum: ExactSum { limbs: e.max_sum },
        }),
        abs_hist: v.abs_hist.map(h),
        hist: v.hist.map(h),
    }
}

/// Write a statistics file (atomically: a failed write leaves no partial file).
pub fn save(path: &Path, set: &StatsSet) -> Result<(), StatsFileError> {
    let repr = FileRepr {
        format: FORMAT.into(),
        version: VERSION,
        fingerprint: set.fingerprint.clone(),
        values: set.values.iter().map(|(n, s)| to_repr(n, s)).collect(),
    };
    qopt_ir::fsutil::write_atomic(path, |w| {
        serde_json::to_writer(&mut *w, &repr).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|source| StatsFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Read one statistics file.
pub fn read(path: &Path) -> Result<StatsSet, StatsFileError> {
    let parse = |reason: String| StatsFileError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| StatsFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Check format and version before the schema, so a newer file says so.
    let head: serde_json::Value = serde_json::from_str(&text).map_err(|e| parse(e.to_string()))?;
    if head.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(parse(format!("no \"format\": \"{FORMAT}\" field")));
    }
    match head.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v > VERSION as u64 => {
            return Err(StatsFileError::Version {
                path: path.to_path_buf(),
                found: v,
            });
        }
        Some(_) => {}
        None => return Err(parse("no \"version\" field".into())),
    }
    let repr: FileRepr = serde_json::from_value(head).map_err(|e| parse(e.to_string()))?;
    let mut values = BTreeMap::new();
    for v in repr.values {
        let name = v.name.clone();
        let state = from_repr(v);
        validate(&state).map_err(|reason| StatsFileError::Invalid {
            path: path.to_path_buf(),
            value: name.clone(),
            reason,
        })?;
        if values.insert(name.clone(), state).is_some() {
            return Err(StatsFileError::Invalid {
                path: path.to_path_buf(),
                value: name,
                reason: "listed twice".into(),
            });
        }
    }
    Ok(StatsSet {
        fingerprint: repr.fingerprint,
        values,
    })
}

/// A loaded state must be one our statistics could have produced.
fn validate(s: &ObserverState) -> Result<(), String> {
    // Merging into an empty state of the same configuration runs every layout check.
    let mut empty = crate::stats::ObserverConfig {
        bins: s.bins,
        ema: s.ema,
    }
    .new_state()
    .map_err(|e| e.to_string())?;
    empty.merge(s).map_err(|e| e.to_string())?;
    if let Some((a, b)) = s.min_max
        && !(a.is_finite() && b.is_finite() && a <= b)
    {
        return Err(format!("min/max [{a}, {b}] is not a finite range"));
    }
    if s.ema.is_some() != s.ema_sums.is_some() {
        return Err("moving-average setting and sums disagree".into());
    }
    for h in [&s.abs_hist, &s.hist].into_iter().flatten() {
        if h.counts.len() != s.bins {
            return Err(format!(
                "histogram has {} bins, expected {}",
                h.counts.len(),
                s.bins
            ));
        }
    }
    Ok(())
}

/// Load and merge several statistics files. With `expected`, every file must carry that
/// model fingerprint; without, they must agree with each other.
pub fn load(paths: &[PathBuf], expected: Option<&str>) -> Result<StatsSet, StatsFileError> {
    let mut merged: Option<StatsSet> = None;
    for path in paths {
        let set = read(path)?;
        let want = expected
            .map(str::to_string)
            .or_else(|| merged.as_ref().map(|m| m.fingerprint.clone()));
        if let Some(want) = want
            && want != set.fingerprint
        {
            return Err(StatsFileError::Fingerprint {
                path: path.clone(),
                found: set.fingerprint,
                expected: want,
            });
        }
        match &mut merged {
            None => merged = Some(set),
            Some(m) => {
                for (name, state) in set.values {
                    match m.values.get_mut(&name) {
                        Some(into) => {
                            into.merge(&state).map_err(|source| StatsFileError::Merge {
                                path: path.clone(),
                                value: name.clone(),
                                source,
                            })?
                        }
                        None => {
                            m.values.insert(name, state);
                        }
                    }
                }
            }
        }
    }
    merged.ok_or(StatsFileError::NoFiles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::ObserverConfig;

    fn shard(seed: u32, n: usize) -> BTreeMap<String, ObserverState> {
        let mut m = BTreeMap::new();
        for (k, name) in ["conv1", "relu2"].iter().enumerate() {
            let mut s = ObserverConfig {
                bins: 256,
                ema: Some(0.01),
            }
            .new_state()
            .unwrap();
            for i in 0..n {
                let xs: Vec<f32> = (0..500)
                    .map(|j| {
                        (((j * 31 + i * 7 + k) as f32) * 0.37 + seed as f32).sin()
                            * (1.0 + i as f32)
                    })
                    .collect();
                s.update(&xs);
            }
            m.insert(name.to_string(), s);
        }
        m
    }

    fn fp() -> String {
        let s = Shape::known(&[1, 8]);
        fingerprint([("conv1", &s), ("relu2", &s)])
    }

    #[test]
    fn save_load_round_trip_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        let sa = StatsSet {
            fingerprint: fp(),
            values: shard(1, 3),
        };
        let sb = StatsSet {
            fingerprint: fp(),
            values: shard(2, 4),
        };
        save(&a, &sa).unwrap();
        save(&b, &sb).unwrap();
        assert_eq!(read(&a).unwrap(), sa);
        let merged = load(&[a.clone(), b.clone()], Some(&fp())).unwrap();
        let reversed = load(&[b, a], None).unwrap();
        assert_eq!(merged, reversed);
        let mut expect = sa.values.clone();
        for (k, v) in &sb.values {
            expect.get_mut(k).unwrap().merge(v).unwrap();
        }
        assert_eq!(merged.values, expect);
        assert_eq!(merged.values["conv1"].samples, 7);
    }

    #[test]
    fn fingerprint_is_order_free_and_shape_sensitive() {
        let s = Shape::known(&[1, 8]);
        let t = Shape::known(&[1, 9]);
        assert_eq!(
            fingerprint([("a", &s), ("b", &t)]),
            fingerprint([("b", &t), ("a", &s)])
        );
        assert_ne!(
            fingerprint([("a", &s), ("b", &t)]),
            fingerprint([("a", &t), ("b", &s)])
        );
    }

    #[test]
    fn clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        save(
            &p,
            &StatsSet {
                fingerprint: fp(),
                values: shard(1, 1),
            },
        )
        .unwrap();
        let e = load(std::slice::from_ref(&p), Some("0123456789abcdef")).unwrap_err();
        assert!(matches!(e, StatsFileError::Fingerprint { .. }), "{e}");
        assert!(e.to_string().contains("another model"), "{e}");
        // A newer version.
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"version\":1", "\"version\":7");
        std::fs::write(&p, text).unwrap();
        let e = read(&p).unwrap_err();
        assert!(matches!(e, StatsFileError::Version { found: 7, .. }), "{e}");
        // Not a stats file, truncated, missing.
        std::fs::write(&p, "{\"hello\": 1}").unwrap();
        assert!(matches!(read(&p), Err(StatsFileError::Parse { .. })));
        std::fs::write(&p, "{\"format\": \"qopt-calib-stats\", \"vers").unwrap();
        assert!(matches!(read(&p), Err(StatsFileError::Parse { .. })));
        assert!(matches!(
            read(&dir.path().join("nope.json")),
            Err(StatsFileError::Io { .. })
        ));
        assert!(matches!(load(&[], None), Err(StatsFileError::NoFiles)));
        // A histogram whose layout was tampered with.
        let mut bad = shard(1, 1);
        bad.get_mut("conv1").unwrap().hist.as_mut().unwrap().hi = 3.0;
        save(
            &p,
            &StatsSet {
                fingerprint: fp(),
                values: bad,
            },
        )
        .unwrap();
        let e = read(&p).unwrap_err();
        assert!(
            matches!(e, StatsFileError::Invalid { ref value, .. } if value == "conv1"),
            "{e}"
        );
        // Different bins across files.
        let q = dir.path().join("q.json");
        save(
            &p,
            &StatsSet {
                fingerprint: fp(),
                values: shard(1, 1),
            },
        )
        .unwrap();
        let mut other = shard(2, 1);
        for s in other.values_mut() {
            *s = ObserverConfig {
                bins: 128,
                ema: Some(0.01),
            }
            .new_state()
            .unwrap();
        }
        save(
            &q,
            &StatsSet {
                fingerprint: fp(),
                values: other,
            },
        )
        .unwrap();
        assert!(matches!(
            load(&[p, q], None),
            Err(StatsFileError::Merge { .. })
        ));
    }
}
