//! Pass infrastructure (DESIGN.md §4), after LLVM's and MLIR's:
//!
//! - [`Pass`]: one transformation of a [`Graph`], run with a [`PassContext`].
//! - [`Registry`]: every pass with its name, one-line summary and typed options
//!   ([`PassInfo`], [`OptionSpec`]), plus aliases that expand to several passes.
//! - [`pipeline`]: the text form `fuse,calib{method=kl},qdq`, parsed in two phases
//!   (structure, then names and options) with errors that point into the string.
//! - [`PassManager`]: runs a pipeline with instrumentation (print before/after,
//!   stop after, per-pass timing, verification after every pass).

pub mod context;
pub mod manager;
pub mod options;
pub mod pipeline;
pub mod registry;

pub use context::{PassContext, Progress};
pub use manager::{Instrumentation, PassManager, PassTiming};
pub use options::{OptKind, OptionSpec, PassOptions};
pub use pipeline::{PipelineError, PipelineSpec};
pub use registry::{AliasInfo, PassInfo, Registry};

use qopt_ir::Graph;

/// Whether a pass changed the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    Yes,
    No,
}

impl Changed {
    pub fn from_bool(b: bool) -> Changed {
        if b { Changed::Yes } else { Changed::No }
    }
    pub fn any(self, other: Changed) -> Changed {
        Changed::from_bool(self == Changed::Yes || other == Changed::Yes)
    }
}

/// An error a pass reports. The pass manager adds the pass name.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The pass cannot run on this graph (a clear message naming the node or value).
    #[error("{0}")]
    Failed(String),
    /// Reading calibration data or another input of the pass failed.
    #[error("{0}")]
    Io(String),
}

impl PassError {
    pub fn msg(m: impl Into<String>) -> PassError {
        PassError::Failed(m.into())
    }
}

/// A graph transformation.
pub trait Pass {
    /// The registered name (kebab-case).
    fn name(&self) -> &str;
    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError>;
}
