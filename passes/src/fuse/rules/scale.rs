//! Per-channel scaling after a Conv/ConvTranspose/Gemm folded into its weight and bias.
//!
//! `k` is a constant that broadcasts per output channel (`[C,1,1]`, `[1,C,1,1]`, a scalar,
//! `[N]` after a Gemm; checked in the applier), so `layer(x; W, b) * k[c]` scales channel
//! `c`'s weight slice and bias element.

use super::Rewrite;
use crate::fuse::apply::{FoldAffine, is_const, not_const};
use crate::fuse::fold::{Layer, Source};
use egg::rewrite as rw;

#[rustfmt::skip]
pub fn rules() -> Vec<Rewrite> { vec![
    // k * y = y * k: Mul commutes; used only to bring a constant to the right.
    rw!("mul-const-right"; "(mul ?om ?k ?y)" => "(mul ?om ?y ?k)" if is_const("?k") if not_const("?y")),

    // layer(x; W, b) * k = layer(x; W*k, b*k)
    rw!("mul-into-conv";  "(mul ?om (conv ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Mul, Layer::Conv) } if is_const("?k")),
    rw!("mul-into-convt"; "(mul ?om (convt ?lm ?x ?w ?b) ?k)" => { FoldAffine::new(Source::Mul, Layer::ConvTranspose) } if is_const("?k")),
    rw!("mul-into-gemm";  "(mul ?om (gemm ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Mul, Layer::Gemm) } if is_const("?k")),

    // layer(x; W, b) / k = layer(x; W/k, b/k)                          (k != 0)
    rw!("div-into-conv";  "(div ?om (conv ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Div, Layer::Conv) } if is_const("?k")),
    rw!("div-into-convt"; "(div ?om (convt ?lm ?x ?w ?b) ?k)" => { FoldAffine::new(Source::Div, Layer::ConvTranspose) } if is_const("?k")),
    rw!("div-into-gemm";  "(div ?om (gemm ?lm ?x ?w ?b) ?k)"  => { FoldAffine::new(Source::Div, Layer::Gemm) } if is_const("?k")),

    // k - layer(x; W, b) = layer(x; -W, k - b)
    rw!("sub-from-const-into-conv";  "(sub ?om ?k (conv ?lm ?x ?w ?b))"  => { FoldAffine::new(Source::SubFrom, Layer::Conv) } if is_const("?k")),
    rw!("sub-from-const-into-convt"; "(sub ?om ?k (convt ?lm ?x ?w ?b))" => { FoldAffine::new(Source::SubFrom, Layer::ConvTranspose) } if is_const("?k")),
    rw!("sub-from-const-into-gemm";  "(sub ?om ?k (gemm ?lm ?x ?w ?b))"  => { FoldAffine::new(Source::SubFrom, Layer::Gemm) } if is_const("?k")),
]}
