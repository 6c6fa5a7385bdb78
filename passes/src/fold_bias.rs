//! `fold-bias`: a constant Add/Sub after a Conv, ConvTranspose, Gemm or MatMul folds into
//! the layer's bias input.
//!
//! - `Conv(x, W, b) + k` -> `Conv(x, W, b + k)` when `k` broadcasts per output channel
//!   (`[C,1,1]`, `[1,C,1,1]`, a scalar); `b` is created when absent. Likewise ConvTranspose,
//!   and Sub (`b - k`).
//! - `Gemm(A, B, C) + k` -> `Gemm(A, B, beta*C + k)` with beta = 1, `k` broadcasting as [N].
//! - `MatMul(A, B) + c` -> `Gemm(A, B, c)` when A is 2-D, B a 2-D constant and `c` broadcasts
//!   as [N]; an N-D MatMul (batched, transformer-style) is left as it is, since Gemm is 2-D.
//!
//! A fold happens only when the layer's output has no other use.
//!
//! Shared code: this pass *is* `fuse` restricted to its `bias` rule table
//! (`fuse/rules/bias.rs`), run by the same e-graph engine. One implementation of the
//! broadcast checks, the bias arithmetic, the naming and the DAG-aware rebuild serves both, so
//! the two passes cannot disagree about when a fold is valid; `fuse` runs these rules too.

use crate::fuse::{self, rules::Topics};
use qopt_ir::Graph;
use qopt_pass::{Changed, Pass, PassContext, PassError};

pub struct FoldBias;

/// Only the bias table.
pub const TOPICS: Topics = Topics {
    batchnorm: false,
    scale: false,
    bias: true,
    identity: false,
};

impl Pass for FoldBias {
    fn name(&self) -> &str {
        "fold-bias"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        fuse::run_as_pass("fold-bias", g, cx, TOPICS, false, fuse::DEFAULT_ITERS)
    }
}
