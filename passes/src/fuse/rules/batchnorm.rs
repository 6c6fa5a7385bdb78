//! BatchNormalization (inference) folded into the layer that feeds it.
//!
//! ONNX BatchNormalization in inference mode is a per-channel affine map on axis 1:
//! `BN(y) = y * s + t` with `s = scale / sqrt(var + epsilon)` and `t = B - mean * s`.
//! The layer computes channel `c` from one weight slice and one bias element, so the map
//! folds into them (`super::super::fold` has the per-layer layouts). The folded node keeps
//! the layer's name; its output takes the BatchNormalization's output name.

use super::Rewrite;
use crate::fuse::apply::FoldAffine;
use crate::fuse::fold::{Layer, Source};
use egg::rewrite as rw;

#[rustfmt::skip]
pub fn rules() -> Vec<Rewrite> { vec![
    // BN(conv(x; W, b)) = conv(x; W[c]*s[c], b[c]*s[c] + t[c])        (b = 0 when absent)
    rw!("bn-into-conv";  "(batchnorm ?om (conv ?lm ?x ?w ?b) ?g ?beta ?mean ?var)"
        => { FoldAffine::new(Source::BatchNorm, Layer::Conv) }),
    // BN(convT(x; W, b)) = convT(x; W[i,j]*s[c(i,j)], b*s + t), c(i,j) = (i/(Cin/g))*(Cout/g) + j
    rw!("bn-into-convt"; "(batchnorm ?om (convt ?lm ?x ?w ?b) ?g ?beta ?mean ?var)"
        => { FoldAffine::new(Source::BatchNorm, Layer::ConvTranspose) }),
    // BN(gemm(A, B, C)) = gemm(A, op(B)[:,n]*s[n], beta*C*s + t) with beta := 1 (BN axis 1 = N)
    rw!("bn-into-gemm";  "(batchnorm ?om (gemm ?lm ?x ?w ?b) ?g ?beta ?mean ?var)"
        => { FoldAffine::new(Source::BatchNorm, Layer::Gemm) }),
]}
