//! Calibration (DESIGN.md §6): streaming statistics, threshold methods and data sources.
//!
//! - [`stats`]: observer statistics ([`qopt_ir::ObserverState`]) that stream and merge exactly,
//!   on power-of-two [`histogram`]s.
//! - [`methods`]: threshold methods (minmax, percentile, kl, kl-signed, mse, admm, auto).
//! - [`qparams`]: scale/zero-point from a range and ONNX QuantizeLinear/DequantizeLinear numerics.
//! - [`source`]: calibration data (image folders, .npy/.npz, random) as per-sample input tensors.
//! - [`statsfile`]: saving, loading and merging observer statistics.
//! - [`progress`]: the progress-reporting interface (the library never prints).
//!
//! How the passes use it:
//! - `observe`: `Method::parse(..)?.observer_config().new_state()?` gives the state an
//!   `Op::Observer` carries (`auto` needs the default config, which serves every method).
//! - `collect`: `CalibData::open(&SourceSpec::parse(arg)?, &inputs, &opts)?`; over
//!   `0..data.len()` in parallel, `data.load(i)?`, `data.accept(&sample, progress)?` (NaN/Inf
//!   policy), run the fp32 interpreter and `state.update(values)` on per-thread copies of
//!   each observer's state, then `merge` the copies: the result does not depend on the
//!   thread count. `--load-stats` is `statsfile::load(paths, Some(&fingerprint))`.
//! - `thresholds`: `methods::threshold(&method, state, &ThresholdOptions { symmetric, bits })`
//!   gives the `Range` annotation; for `auto`, `methods::auto::candidates` and
//!   `methods::auto::select` with a scorer that runs the layer on held-back samples.
//! - `qdq`: `QScheme::{WEIGHTS, ACTIVATIONS_*}` `.qparams(range)` / `.per_channel(w, axis)`.

pub mod histogram;
pub mod methods;
pub mod progress;
pub mod qparams;
pub mod source;
pub mod stats;
pub mod statsfile;

pub use progress::{NoProgress, Progress};
pub use stats::{ObserverConfig, Statistics, StatsError};
