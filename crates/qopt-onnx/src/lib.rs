//! ONNX import and export for the qopt graph IR (DESIGN.md §1-3).
//!
//! ```no_run
//! let m = qopt_onnx::load("model.onnx")?;
//! for w in &m.warnings {
//!     eprintln!("warning: {w}");
//! }
//! qopt_onnx::save(&m.graph, "copy.onnx")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`import`]/[`load`]: opsets 11 through 21 and later of the default domain (other domains
//!   are kept as custom ops), weights in initializers and in `Constant` nodes, external data,
//!   symbolic dims, opset-dependent forms canonicalised (`src/opset.rs`).
//! - [`export`]/[`save`]: the form of the graph's opset, only non-default attributes, names,
//!   metadata and doc strings kept; external data above 2 GiB.
//!
//! Import followed by export with no passes in between gives a model whose ONNX Runtime
//! outputs are bit-identical to the original's (tested on the real models of
//! [`testing::real_models`] by `tests/ort_roundtrip.rs`).
//!
//! Built on `onnx-protobuf` (rust-protobuf 3.4). Its `AttributeProto::as_value` panics on
//! attributes whose type and payload disagree, so attributes are decoded here (DESIGN.md §11).

mod error;
mod export;
mod import;
mod opset;
pub mod testing;

pub use error::{ExportError, ImportError};
pub use export::{ExportOptions, export, export_bytes, save, save_with};
pub use import::{ABSENT_OUTPUT_NOTE, ImportOptions, Imported, import, import_model, load};
/// The ONNX protobuf messages, for callers that build or inspect models directly.
pub use onnx_protobuf as proto;
pub use opset::DEFAULT_OPSET;
