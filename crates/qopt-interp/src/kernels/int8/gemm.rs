//! Quantized GEMM: `out[m, n] = epilogue(Σ_k (a[m,k] − za)·(b[k,n] − zb[n]) + bias[n])`, with
//! `a` u8 or i8 activations (`M x K`, row-major, any row stride), `b` i8 weights packed by
//! [`PackedB`], and an [`Epilogue`] that requantizes (u8/i8), dequantizes (f32) or stores i32.
//! The requantization formula is documented in `epilogue.rs`.
//!
//! The family is the one `b` was packed for. The SIMD families share one blocked driver
//! (`run_blocked`): for each block of `MC` rows, the activations are prepared once into the
//! kernel's operand form (`Scheme::prep_row`), then for each packed panel of columns and each group
//! of `MR` rows a microkernel sums over all of K into a small i32 tile, which the epilogue converts
//! and stores. Row and column tails are handled by the tile store (microkernels are instantiated for
//! every row count up to `MR`), so no input is ever read past its end. Schemes without a row term
//! (AVX2 i16) skip the tile: their accumulators start from the bias and go to the epilogue straight
//! from registers, two or four rows at a time (`Scheme::microkernel_epilogue`).
//!
//! Single-threaded by design: the plan parallelises by splitting M (rows are independent; pass
//! sub-slices of `a` and `out`).

use super::epilogue::{CHANNEL_PAD, Epilogue};
use super::error::{Int8Error, check_matrix};
use super::gemm_scalar;
use super::pack::{PackedB, PackedData, Panels};
use super::qtype::QInt;
use super::rows::{MatrixRows, Piece, RowSource};

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
        _ => {
            let rows = MatrixRows { a: *a, k: b.k() };
            let args = GemmArgs {
                za: a.zero_point,
                ch0: first_channel,
                out_ptr: out.data.as_mut_ptr(),
                ldc: out.stride,
            };
            // SAFETY: the family is supported (checked above) and sizes are validated.
            unsafe { run_simd(&rows, &args, b, epilogue) };
        }
    }
    Ok(())
}

/// Output and per-call parameters of a SIMD GEMM (validated by the caller).
pub(crate) struct GemmArgs<A: QInt, O> {
    /// Activation zero point.
    pub za: A,
    /// First epilogue channel.
    pub ch0: usize,
    /// Output row 0, column 0.
    pub out_ptr: *mut O,
    /// Output row stride.
    pub ldc: usize,
}

/// Runs a SIMD-packed GEMM over any row source.
///
/// # Safety
/// `b.kind()` supported by this CPU; `src` rows have `b.k()` elements; the output holds
/// `src.rows()` rows of `b.n()` at `ldc`; `args.ch0 + b.n() <= epi.channels()`.
pub(crate) unsafe fn run_simd<A: QInt, R: RowSource<A>, E: Epilogue>(
    src: &R,
    args: &GemmArgs<A, E::Out>,
    b: &PackedB,
    epi: &E,
) {
    if src.rows() == 0 || b.n() == 0 {
        return;
    }
    match &b.data {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded.
        PackedData::I16(p) => unsafe {
            run_blocked::<super::gemm_avx2::Avx2I16, A, R, E>(src, args, p, b, epi)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: forwarded.
        PackedData::Vnni(p) => unsafe {
            run_blocked::<super::gemm_avx512::Vnni, A, R, E>(src, args, p, b, epi)
        },
        _ => unreachable!("run_simd is only called with SIMD-packed weights"),
    }
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
    /// Prepares a piece of a row (`dst.len() == src.len()`) and returns the sum of the prepared
    /// values (used only if CORRECTS_ZERO_POINTS).
    ///
    /// # Safety
    /// The family's CPU features must be available.
    unsafe fn prep_piece<A: QInt>(src: &[A], za: A, dst: &mut [Self::AElem]) -> i32;
    /// Prepares `dst.len()` padding elements (the zero point) and returns their sum.
    fn prep_fill<A: QInt>(za: A, dst: &mut [Self::AElem]) -> i32;
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
    /// Whether the scheme has [`Scheme::microkernel_epilogue`] (used when no row term is needed).
    const FUSED_EPILOGUE: bool = false;
    /// As `microkernel`, but the accumulators start from `init` (the panel's per-column constant)
    /// and leave through `epi` straight from registers: row `r` writes `cols` outputs of channels
    /// `ch..` at `out + r·ldc`. No tile round trip through memory.
    ///
    /// # Safety
    /// As for `microkernel`; `init` valid for `8·nv` i32; `ch + 8·nv <= epi.channels() +
    /// CHANNEL_PAD`, `ch < epi.channels()`; `out` valid for `rows` rows of `cols` (<= 8·nv) at `ldc`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn microkernel_epilogue<E: Epilogue>(
        _rows: usize,
        _nv: usize,
        _kgroups: usize,
        _a: *const Self::AElem,
        _lda: usize,
        _b: *const Self::BElem,
        _init: *const i32,
        _epi: &E,
        _ch: usize,
        _out: *mut E::Out,
        _ldc: usize,
        _cols: usize,
    ) {
        unreachable!("FUSED_EPILOGUE is false")
    }
}

/// Bytes of prepared activations per row block, chosen to stay in L2 (512 KiB per Zen 3 core)
/// next to the weight panel being streamed.
const A_BLOCK_BYTES: usize = 96 * 1024;

thread_local! {
    /// Prepared-activation blocks, reused across calls (u64 storage: aligned for any AElem).
    static A_BLOCK: std::cell::Cell<Vec<u64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The blocked driver shared by the SIMD families.
///
/// # Safety
/// The scheme's CPU features and AVX2 must be available; arguments as for `run_simd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn run_blocked<S: Scheme, A: QInt, R: RowSource<A>, E: Epilogue>(
    src: &R,
    args: &GemmArgs<A, E::Out>,
    panels: &Panels<S::BElem>,
    b: &PackedB,
    epi: &E,
) {
    use std::arch::x86_64::*;
    let (k, n, ch0) = (b.k(), b.n(), args.ch0);
    let lda = panels.kgroups * S::KGROUP;
    let rows_total = src.rows();
    let za = args.za;

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
    let elems = mc * lda;
    let mut storage = A_BLOCK.take();
    storage.resize((elems * size_of::<S::AElem>()).div_ceil(8), 0);
    // SAFETY: AElem is a plain integer type (i16/u8) with alignment <= 8, and the storage holds
    // at least `elems` of them; any bit pattern is valid.
    let a_block: &mut [S::AElem] =
        unsafe { std::slice::from_raw_parts_mut(storage.as_mut_ptr().cast(), elems) };
    let mut row_sums = vec![0i32; mc];
    let mut tile = [0i32; TILE_MR * TILE_NR];

    let mut m0 = 0;
    while m0 < rows_total {
        let mb = mc.min(rows_total - m0);
        for r in 0..mb {
            let dst = &mut a_block[r * lda..(r + 1) * lda];
            let mut off = 0;
            let mut sum = 0i32;
            src.visit_row(m0 + r, &mut |piece| {
                let (len, s) = match piece {
                    // SAFETY: the scheme's features are available (caller).
                    Piece::Data(d) => (d.len(), unsafe {
                        S::prep_piece(d, za, &mut dst[off..off + d.len()])
                    }),
                    Piece::ZeroPoint(len) => (len, S::prep_fill(za, &mut dst[off..off + len])),
                };
                off += len;
                sum = sum.wrapping_add(s);
            });
            debug_assert_eq!(off, k, "row source pieces must total K");
            dst[off..].fill(S::AElem::default());
            row_sums[r] = sum;
        }
        for panel in &panels.panels {
            let mr = S::mr(panel.nv);
            let mut r0 = 0;
            if S::FUSED_EPILOGUE && !row_terms {
                while r0 < mb {
                    let rows = mr.min(mb - r0);
                    // SAFETY: a_block holds mb rows of lda; the panel lies within panels.data;
                    // col_offset is padded by CHANNEL_PAD past n; output rows m0+r0.. exist
                    // with n columns at ldc.
                    unsafe {
                        S::microkernel_epilogue(
                            rows,
                            panel.nv,
                            panels.kgroups,
                            a_block.as_ptr().add(r0 * lda),
                            lda,
                            panels.data.as_ptr().add(panel.offset),
                            col_offset.as_ptr().add(panel.n0),
                            epi,
                            ch0 + panel.n0,
                            args.out_ptr.add((m0 + r0) * args.ldc + panel.n0),
                            args.ldc,
                            panel.cols,
                        );
                    }
                    r0 += rows;
                }
                continue;
            }
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
                            let load = |p: *const i32| _mm256_loadu_si256(p.cast());
                            let t = tile.as_ptr().add(r * TILE_NR + c);
                            let o = col_offset.as_ptr().add(j);
                            let mut acc0 = _mm256_add_epi32(load(t), load(o));
                            let mut acc1 = _mm256_add_epi32(load(t.add(8)), load(o.add(8)));
                            if row_terms {
                                let zb = zb_padded.as_ptr().add(j);
                                acc0 =
                                    _mm256_sub_epi32(acc0, _mm256_mullo_epi32(row_sum, load(zb)));
                                acc1 = _mm256_sub_epi32(
                                    acc1,
                                    _mm256_mullo_epi32(row_sum, load(zb.add(8))),
                                );
                            }
                            epi.convert16_avx2(
                                acc0,
                                acc1,
                                ch0 + j,
                                args.out_ptr.add(m * args.ldc + j),
                                (panel.cols - c).min(16),
                            );
                        }
                        c += 16;
                    }
                }
                r0 += rows;
            }
        }
        m0 += mb;
    }
    A_BLOCK.set(storage);
}
