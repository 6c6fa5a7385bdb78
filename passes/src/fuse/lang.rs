//! The e-graph language of `fuse`: the operators its rules rewrite, plus leaves and an
//! opaque node that carry the rest of the graph through unchanged.
//!
//! Every rewritable operator takes a *meta* leaf as its first child: a key into
//! [`FuseAnalysis::metas`](super::analysis::FuseAnalysis) holding the original node's name
//! and typed attributes (`Conv` pads, `Gemm` transB, BN epsilon, ...). Patterns bind it like
//! any other child (`(conv ?lm ?x ?w ?b)`), appliers read the attributes from it, and a
//! folded conv reuses its conv's meta so the rebuilt node keeps the conv's name. Because
//! every original node has its own meta (and every opaque node its own key), two distinct
//! nodes never hash-cons into one e-class: the e-graph merges only what a rule proves equal.
//!
//! Optional inputs that are absent (a Conv without bias) are the [`FuseLang::Absent`] leaf.

use egg::{Id, define_language};
use std::fmt;
use std::str::FromStr;

macro_rules! key_type {
    ($(#[doc = $doc:literal])* $name:ident, $prefix:literal) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);

        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!("#", $prefix, "{}"), self.0)
            }
        }

        /// Only the `#<prefix><n>` form parses, so no operator name is mistaken for a key
        /// when egg parses a pattern.
        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                s.strip_prefix(concat!("#", $prefix))
                    .and_then(|n| n.parse().ok())
                    .map($name)
                    .ok_or(())
            }
        }
    };
}

key_type!(
    /// A constant tensor in `FuseAnalysis::consts`.
    ConstKey,
    "c"
);
key_type!(
    /// A node's name and typed op in `FuseAnalysis::metas`.
    MetaKey,
    "m"
);
key_type!(
    /// An original node `fuse` does not rewrite, in `FuseAnalysis::opaque`.
    OpaqueKey,
    "o"
);
key_type!(
    /// Output slot of a multi-output opaque node.
    Slot,
    "s"
);

define_language! {
    /// The operators `fuse` rewrites. Children after the meta leaf are the ONNX inputs
    /// in order.
    pub enum FuseLang {
        // (conv meta X W B)
        "conv" = Conv([Id; 4]),
        // (convt meta X W B); W is [Cin, Cout/group, k...]
        "convt" = ConvTranspose([Id; 4]),
        // (gemm meta A B C)
        "gemm" = Gemm([Id; 4]),
        // (matmul meta A B)
        "matmul" = MatMul([Id; 3]),
        // (batchnorm meta X scale B mean var), inference form with one output
        "batchnorm" = BatchNorm([Id; 6]),
        "add" = Add([Id; 3]),
        "sub" = Sub([Id; 3]),
        "mul" = Mul([Id; 3]),
        "div" = Div([Id; 3]),
        // (identity meta X)
        "identity" = Identity([Id; 2]),
        // (dropout meta X ratio training_mode); only dropouts whose mask is unused
        "dropout" = Dropout([Id; 4]),
        // An optional input that is not connected.
        "absent" = Absent,
        Const(ConstKey),
        Meta(MetaKey),
        // Any other node, with its inputs (absent ones as `absent`). A single-output node's
        // e-class is its value; a multi-output node's e-class is the node, read by `Proj`.
        Opaque(OpaqueKey, Vec<Id>),
        // Output slot of a multi-output opaque node.
        Proj(Slot, [Id; 1]),
    }
}

impl FuseLang {
    /// The meta leaf of a rewritable operator.
    pub fn meta(&self) -> Option<Id> {
        match self {
            FuseLang::Conv(c) | FuseLang::ConvTranspose(c) | FuseLang::Gemm(c) => Some(c[0]),
            FuseLang::Dropout(c) => Some(c[0]),
            FuseLang::MatMul(c)
            | FuseLang::Add(c)
            | FuseLang::Sub(c)
            | FuseLang::Mul(c)
            | FuseLang::Div(c) => Some(c[0]),
            FuseLang::BatchNorm(c) => Some(c[0]),
            FuseLang::Identity(c) => Some(c[0]),
            _ => None,
        }
    }

    /// The ONNX inputs of a rewritable operator (its children after the meta leaf).
    pub fn op_inputs(&self) -> &[Id] {
        use egg::Language;
        match self.meta() {
            Some(_) => &self.children()[1..],
            None => self.children(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_do_not_parse_op_names() {
        assert_eq!("#c12".parse::<ConstKey>(), Ok(ConstKey(12)));
        assert_eq!(MetaKey(3).to_string(), "#m3");
        assert!("conv".parse::<ConstKey>().is_err());
        assert!("#m3".parse::<ConstKey>().is_err());
        let p: egg::Pattern<FuseLang> = "(conv ?m ?x ?w ?b)".parse().unwrap();
        assert_eq!(p.to_string(), "(conv ?m ?x ?w ?b)");
    }
}
