//! The scalar GEMM: the oracle the SIMD GEMMs are tested against. Deliberately the textbook loop:
//! `acc = bias[n] + Σ_k (a − za)(b − zb[n])` in wrapping i32 (each product fits: |·| <= 255²), then
//! the epilogue's reference conversion. Wrapping addition is associative modulo 2^32, so every
//! kernel agrees with this one bit for bit even when a sum overflows i32 (which the ONNX spec
//! leaves undefined; it needs K > 33025 with extreme values).

use super::epilogue::Epilogue;
use super::gemm::{ActMatrix, OutMatrix};
use super::qtype::QInt;

/// `w` is `k x n` row-major, `zb` has `n` entries; sizes validated by `gemm_channels`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<A: QInt, E: Epilogue>(
    a: &ActMatrix<'_, A>,
    w: &[i8],
    zb: &[i32],
    k: usize,
    n: usize,
    epi: &E,
    ch0: usize,
    out: &mut OutMatrix<'_, E::Out>,
) {
    let za = a.zero_point.to_i32();
    let bias = epi.bias_padded();
    for m in 0..a.rows {
        let row = &a.data[m * a.stride..m * a.stride + k];
        for j in 0..n {
            let mut acc = bias[ch0 + j];
            for (kk, &x) in row.iter().enumerate() {
                let prod = (x.to_i32() - za) * (w[kk * n + j] as i32 - zb[j]);
                acc = acc.wrapping_add(prod);
            }
            out.data[m * out.stride + j] = epi.convert(acc, ch0 + j);
        }
    }
}
