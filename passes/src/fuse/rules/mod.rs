//! The rewrite rules of `fuse`, one table per topic (Cranelift's `src/opts/*.isle` habit):
//!
//! - [`batchnorm`]: BatchNormalization folded into the Conv/ConvTranspose/Gemm before it;
//! - [`scale`]: Mul/Div by a per-channel constant, and `k - y`, folded into weights and bias;
//! - [`bias`]: Add/Sub of a per-channel constant folded into the bias; MatMul + Add -> Gemm
//!   (this table alone is the `fold-bias` pass);
//! - [`identity`]: Identity and inference Dropout removed.
//!
//! Each rule is preceded by the algebra it relies on. The rules for rules (Cranelift's
//! `src/opts/README.md`): the right-hand side is never worse than the left (every fold turns
//! two operators into one, and only when the absorbed one has no other use); no blanket
//! commutativity or associativity (Mul and Add commute only to bring a constant to the right,
//! in one rule each); numbers are computed in appliers ([`super::apply`]).

pub mod batchnorm;
pub mod bias;
pub mod identity;
pub mod scale;

use super::analysis::FuseAnalysis;
use super::lang::FuseLang;

pub type Rewrite = egg::Rewrite<FuseLang, FuseAnalysis>;

/// Which rule tables to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topics {
    pub batchnorm: bool,
    pub scale: bool,
    pub bias: bool,
    pub identity: bool,
}

impl Topics {
    pub const ALL: Topics = Topics {
        batchnorm: true,
        scale: true,
        bias: true,
        identity: true,
    };

    /// The rules of the selected tables.
    pub fn rules(self) -> Vec<Rewrite> {
        let mut r = Vec::new();
        if self.identity {
            r.extend(identity::rules());
        }
        if self.bias {
            r.extend(bias::rules());
        }
        if self.scale {
            r.extend(scale::rules());
        }
        if self.batchnorm {
            r.extend(batchnorm::rules());
        }
        r
    }
}
