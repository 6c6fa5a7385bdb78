//! Quantized GEMM: `out[m, n] = epilogue(Σ_k (a[m,k] − za)·(b[k,n] − zb[n]) + bias[n])`, with
//! `a` u8 or i8 activations (`M x K`, row-major, any row stride), `b` i8 weights packed by
//! [`PackedB`], and an [`Epilogue`] that requantizes (u8/i8), dequantizes (f32) or stores i32.
//! The requantization formula is documented in `epilogue.rs`.
//!
//! The family is the one `b` was packed for. The SIMD families share one blocked driver
//! ([`run_blocked`]): for each block of `MC` rows, the activations are prepared once into the
//! kernel's operand form (`Scheme::prep_row`), then for each packed panel of columns and each group
//! of `MR` rows a microkernel sums over all of K into a small i32 tile, which the epilogue converts
//! and stores. Row and column tails are handled by the tile store (microkernels are instantiated for
//! every row count up to `MR`), so no input is ever read past its end.
//!
//! Single-threaded by design: the plan parallelises by splitting M (rows are independent; pass
//! sub-slices of `a` and `out`).

use super::epilogue::{CHANNEL_PAD, Epilogue};
use super::error::{Int8Error, check_matrix};
use super::gemm_scalar;
use super::pack::{PackedB, PackedData, Panels};
use super::qtype::QInt;

/// The activation operand: `rows x K` (K = the packed weights' k), row-major with `stride`.
#[derive(Debug, Clone, Copy)]
pub struct ActMatrix<'a, A: QInt> {
    /// Elements; at least `(rows - 1) * stride + K` of them.
    pub data: &'a [A],
    /// Number of rows (M).
    pub rows: usize,
    /// Distance between rows, >= K.
    pub stride: usize,
    /// The activations' zero point.
    pub zero_point: A,
}

/// The output: `rows x N` row-major with `stride` (>= N), so a conv group can write its columns
/// into a wider NHWC tensor.
#[derive(Debug)]
pub struct OutMatrix<'a, T> {
    /// Elements; at least `(rows - 1) * stride + N` of them.
    pub data: &'a mut [T],
    /// Distance between rows, >= N.
    pub stride: usize,
}

/// Runs the GEMM; `epilogue.channels()` must equal `b.n()`.
pub fn gemm<A: QInt, E: Epilogue>(
    a: &ActMatrix<'_, A>,
    b: &PackedB,
    epilogue: &E,
    out: &mut OutMatrix<'_, E::Out>,
) -> Result<(), Int8Error> {
    if epilogue.channels() != b.n() {
        return Err(Int8Error::Shape {
            what: "gemm epilogue",
            detail: format!(
                "built for {} channels, weights have {} columns",
                epilogue.channels(),
                b.n()
            ),
        });
    }
    gemm_channels(a, b, epilogue, 0, out)
}

/// Runs the GEMM writing channels `first_channel..first_channel + b.n()` of `epilogue` (bias,
/// multipliers): grouped convolution runs one GEMM per group with one epilogue for all channels.
pub fn gemm_channels<A: QInt, E: Epilogue>(
    a: &ActMatrix<'_, A>,
    b: &PackedB,
    epilogue: &E,
    first_channel: usize,
    out: &mut OutMatrix<'_, E::Out>,
) -> Result<(), Int8Error> {
    if first_channel
        .checked_add(b.n())
        .is_none_or(|end| end > epilogue.channels())
    {
        return Err(Int8Error::Shape {
            what: "gemm epilogue",
            detail: format!(
                "channels {first_channel}..{} exceed the epilogue's {}",
                first_channel.saturating_add(b.n()),
                epilogue.channels()
            ),
        });
    }
    check_matrix("gemm activations", a.data.len(), a.rows, b.k(), a.stride)?;
    check_matrix("gemm output", out.data.len(), a.rows, b.n(), out.stride)?;
    b.kind().check_supported()?;
    if a.rows == 0 || b.n() == 0 {
        return Ok(());
    }
    let args = GemmArgs {
        a: *a,
        k: b.k(),
        n: b.n(),
        ch0: first_channel,
        out_ptr: out.data.as_mut_ptr(),
        ldc: out.stride,
    };
    match &b.data {
        PackedData::Scalar(w) => {
            gemm_scalar::run(
                a,
                w,
                &b.zero_points,
                b.k(),
                b.n(),
                epilogue,
                first_channel,
                out,
            );
        }
        #[cfg(target_arch = "x86_64")]
        PackedData::I16(panels) => {
            // SAFETY: AVX2 checked above (check_supported); sizes checked above.
            unsafe { run_blocked::<super::gemm_avx2::Avx2I16, A, E>(&args, panels, b, epilogue) }
        }
        #[cfg(target_arch = "x86_64")]
        PackedData::Vnni(panels) => {
            // SAFETY: AVX-512 F/BW/VNNI and AVX2 checked above; sizes checked above.
            unsafe { run_blocked::<super::gemm_avx512::Vnni, A, E>(&args, panels, b, epilogue) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("SIMD packing is refused off x86-64 by check_supported"),
    }
    Ok(())
}

/// Validated GEMM arguments in raw form for the blocked driver.
pub(crate) struct GemmArgs<'a, A: QInt, O> {
    pub a: ActMatrix<'a, A>,
    pub k: usize,
    pub n: usize,
    pub ch0: usize,
    pub out_ptr: *mut O,
    pub ldc: usize,
}

/// Largest rows x columns of a microkernel tile (row stride of the tile is `TILE_NR`).
pub(crate) const TILE_MR: usize = 12;
pub(crate) const TILE_NR: usize = 32;

/// A SIMD GEMM family: how activations are prepared, which microkernel runs, and whether the
/// weight zero points need the correction term (see `gemm_avx512.rs`).
pub(crate) trait Scheme {
    /// Prepared activation element.
    type AElem: Copy + Default;
    /// Packed weight element.
    type BElem: Copy;
    /// k values per lane group (2 for `vpmaddwd`, 4 for `vpdpbusd`).
    const KGROUP: usize;
    /// Whether zero points stay out of the packed data (then the driver adds
    /// `- za'·colsum[n] - zb[n]·rowsum[m] + K·za'·zb[n]`, with za' the prepared zero point).
    const CORRECTS_ZERO_POINTS: bool;
    /// Rows per microkernel call for a panel of `nv` registers (<= TILE_MR).
    fn mr(nv: usize) -> usize;
    /// The zero point in the prepared domain.
    fn prepared_zero_point<A: QInt>(za: A) -> i32;
    /// Writes one prepared row (`dst.len()` = K rounded up to KGROUP, tail zero) and returns the
    /// sum of the prepared values of the real k (used only if CORRECTS_ZERO_POINTS).
    ///
    /// # Safety
    /// The family's CPU features must be available.
    unsafe fn prep_row<A: QInt>(src: &[A], za: A, dst: &mut [Self::AElem]) -> i32;
    /// Sums `rows` (<= mr(nv)) prepared rows against one panel over all k groups into `tile`.
    ///
    /// # Safety
    /// CPU features available; `a` valid for `rows` rows of `lda` >= kgroups*KGROUP elements;
    /// `b` valid for the panel; `tile` valid for `rows * TILE_NR` i32.
    unsafe fn microkernel(
        rows: usize,
        nv: usize,
        kgroups: usize,
        a: *const Self::AElem,
        lda: usize,
        b: *const Self::BElem,
        tile: *mut i32,
    );
}

/// Bytes of prepared activations per row block, chosen to stay in L2 (512 KiB per Zen 3 core)
/// next to the weight panel being streamed.
const A_BLOCK_BYTES: usize = 96 * 1024;

/// The blocked driver shared by the SIMD families.
///
/// # Safety
/// The scheme's CPU features and AVX2 must be available; `args` validated by `gemm_channels`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn run_blocked<S: Scheme, A: QInt, E: Epilogue>(
    args: &GemmArgs<'_, A, E::Out>,
    panels: &Panels<S::BElem>,
    b: &PackedB,
    epi: &E,
) {
    use std::arch::x86_64::*;
    let (k, n, ch0) = (args.k, args.n, args.ch0);
    let lda = panels.kgroups * S::KGROUP;
    let rows_total = args.a.rows;
    let za = args.a.zero_point;

    // Per-column constant: bias, and for correcting families -za'·colsum + K·za'·zb.
    let corrects = S::CORRECTS_ZERO_POINTS;
    let zap = S::prepared_zero_point(za);
    let bias = &epi.bias_padded()[ch0..];
    let mut col_offset = vec![0i32; n + CHANNEL_PAD];
    for j in 0..n {
        col_offset[j] = if corrects {
            bias[j]
                .wrapping_sub(zap.wrapping_mul(b.col_sums[j]))
                .wrapping_add((k as i32).wrapping_mul(zap).wrapping_mul(b.zero_points[j]))
        } else {
            bias[j]
        };
    }
    let row_terms = corrects && b.has_zero_points();
    let mut zb_padded = vec![0i32; n + CHANNEL_PAD];
    zb_padded[..n].copy_from_slice(&b.zero_points);

    let mr_lcm = 12; // every Scheme::mr divides 12
    let mc = ((A_BLOCK_BYTES / (lda.max(1) * size_of::<S::AElem>())) / mr_lcm * mr_lcm)
        .clamp(mr_lcm, rows_total.next_multiple_of(mr_lcm));
    let mut a_block = vec![S::AElem::default(); mc * lda];
    let mut row_sums = vec![0i32; mc];
    let mut tile = [0i32; TILE_MR * TILE_NR];

    let mut m0 = 0;
    while m0 < rows_total {
        let mb = mc.min(rows_total - m0);
        for r in 0..mb {
            let src_start = (m0 + r) * args.a.stride;
            let src = &args.a.data[src_start..src_start + k];
            // SAFETY: the scheme's features are available (caller).
            row_sums[r] = unsafe { S::prep_row(src, za, &mut a_block[r * lda..(r + 1) * lda]) };
        }
        for panel in &panels.panels {
            let mr = S::mr(panel.nv);
            let mut r0 = 0;
            while r0 < mb {
                let rows = mr.min(mb - r0);
                // SAFETY: a_block holds mb rows of lda; the panel lies within panels.data; the tile
                // holds TILE_MR rows of TILE_NR.
                unsafe {
                    S::microkernel(
                        rows,
                        panel.nv,
                        panels.kgroups,
                        a_block.as_ptr().add(r0 * lda),
                        lda,
                        panels.data.as_ptr().add(panel.offset),
                        tile.as_mut_ptr(),
                    );
                }
                for r in 0..rows {
                    let m = m0 + r0 + r;
                    let row_sum = _mm256_set1_epi32(row_sums[r0 + r]);
                    let mut c = 0;
                    while c < panel.cols {
                        let j = panel.n0 + c;
                        // SAFETY: tile row r has TILE_NR entries; col_offset/zb are padded by
                        // CHANNEL_PAD past n; the output row m has n entries from m*ldc.
                        unsafe {
                            let mut acc = _mm256_add_epi32(
                                _mm256_loadu_si256(tile.as_ptr().add(r * TILE_NR + c).cast()),
                                _mm256_loadu_si256(col_offset.as_ptr().add(j).cast()),
                            );
                            if row_terms {
                                let zb = _mm256_loadu_si256(zb_padded.as_ptr().add(j).cast());
                                acc = _mm256_sub_epi32(acc, _mm256_mullo_epi32(row_sum, zb));
                            }
                            epi.convert8_avx2(
                                acc,
                                ch0 + j,
                                args.out_ptr.add(m * args.ldc + j),
                                (panel.cols - c).min(8),
                            );
                        }
                        c += 8;
                    }
                }
                r0 += rows;
            }
        }
        m0 += mb;
    }
}
