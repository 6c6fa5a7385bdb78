//! Calibration (DESIGN.md §6): streaming statistics, threshold methods and data sources.
//!
//! - [`stats`]: observer statistics ([`qopt_ir::ObserverState`]) that stream and merge exactly,
//!   on power-of-two [`histogram`]s.
//! - [`methods`]: threshold methods (minmax, percentile, kl, kl-signed, mse, admm, auto).
//! - [`qparams`]: scale/zero-point from a range and ONNX QuantizeLinear/DequantizeLinear numerics.
//! - [`source`]: calibration data (image folders, .npy/.npz, random) as per-sample input tensors.
//! - [`statsfile`]: saving, loading and merging observer statistics.
//! - [`progress`]: the progress-reporting interface (the library never prints).

pub mod histogram;
pub mod methods;
pub mod progress;
pub mod qparams;
pub mod source;
pub mod stats;
pub mod statsfile;

pub use progress::{NoProgress, Progress};
pub use stats::{ObserverConfig, Statistics, StatsError};
