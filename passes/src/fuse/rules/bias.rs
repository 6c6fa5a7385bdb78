//! A per-channel constant added after a layer folded into its bias; MatMul + Add -> Gemm.
//!
//! These rules alone are the `fold-bias` pass. The weight is unchanged by an Add or Sub, so
//! it stays the same constant (shared weights stay shared); only the bias is new.

use super::Rewrite;
use crate::fuse::apply::{FoldAffine, MatMulAddToGemm, is_const, not_const};
use crate::fuse::fold::{Layer, Source};
use egg::rewrite as rw;

#[rustfmt::skip]
pub fn rules() -> Vec<Rewrite> { vec![
    // k + y = y + k: Add commutes; used only to bring a constant to the right.
    rw!("add-const-right"; "(add ?om ?k ?y)" => "(add ?om ?y ?k)" if is_const("?k") if not_const("?y")),

    // layer(x; W, b) + k = layer(x; W, b + k)                          (b = 0 when absent)
    rw!("add-into-conv";  "(add ?om (conv ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Add, Layer::Conv) } if is_const("?k")),
    rw!("add-into-convt"; "(add ?om (convt ?lm ?x ?w ?b) ?k)" => { FoldAffine::new(Source::Add, Layer::ConvTranspose) } if is_const("?k")),
    // gemm(A, B, C) + k = gemm(A, B, beta*C + k) with beta := 1
    rw!("add-into-gemm";  "(add ?om (gemm ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Add, Layer::Gemm) } if is_const("?k")),

    // layer(x; W, b) - k = layer(x; W, b - k)
    rw!("sub-into-conv";  "(sub ?om (conv ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Sub, Layer::Conv) } if is_const("?k")),
    rw!("sub-into-convt"; "(sub ?om (convt ?lm ?x ?w ?b) ?k)" => { FoldAffine::new(Source::Sub, Layer::ConvTranspose) } if is_const("?k")),
    rw!("sub-into-gemm";  "(sub ?om (gemm ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Sub, Layer::Gemm) } if is_const("?k")),

    // matmul(A, B) + c = gemm(A, B, c)      A 2-D, B a constant [K, N], c broadcasts as [N]
    rw!("matmul-add-to-gemm"; "(add ?am (matmul ?mm ?a ?w) ?c)" => { MatMulAddToGemm }),
]}
