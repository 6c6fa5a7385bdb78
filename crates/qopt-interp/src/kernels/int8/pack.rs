//! Weight packing: the `B` operand of every GEMM (`K x N`, i8, per-column zero points) is
//! rearranged once at plan time into the layout its kernel family streams.
//!
//! - `Scalar`: plain `K x N` row-major, as given.
//! - `Avx2` (`gemm_avx2.rs`): panels of 16 columns (8 for a narrow last panel); per pair of k, the
//!   16 columns' `(b[2p][n] - zb[n], b[2p+1][n] - zb[n])` as i16 pairs, so one `vpmaddwd` of a
//!   broadcast activation pair against one register yields 8 columns' partial sums. Zero points are
//!   subtracted here (|b - zb| <= 255 fits i16), so the kernel needs no correction term.
//! - `Avx512` (`gemm_avx512.rs`): panels of 32 columns (16 for a narrow last panel); per group of 4
//!   k, the columns' 4 raw bytes, the `vpdpbusd` operand layout. Zero points are not representable
//!   in i8 after subtraction, so they stay in `zero_points` and the kernel corrects with the column
//!   sums below (see `gemm_avx512.rs`).
//!
//! Out-of-range k and n are padded with zeros, which contribute nothing to any sum.

use super::dispatch::KernelKind;
use super::error::{Int8Error, check_len};

/// How the source weight matrix is stored (row-major either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BLayout {
    /// `K` rows of `N` (MatMul's B).
    KxN,
    /// `N` rows of `K` (Gemm with transB=1, Conv weights `[O, I*KH*KW]`).
    NxK,
}

/// One panel of packed columns.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// First column.
    pub n0: usize,
    /// Real columns (<= nv * lanes).
    pub cols: usize,
    /// Vector registers across the panel (1 or 2).
    pub nv: usize,
    /// Offset of the panel in the packed data.
    pub offset: usize,
}

/// Packed panels for a SIMD kernel.
#[derive(Debug, Clone)]
pub(crate) struct Panels<T> {
    pub data: Vec<T>,
    pub panels: Vec<Panel>,
    /// Number of k groups (K rounded up to the group, divided by it).
    pub kgroups: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum PackedData {
    Scalar(Vec<i8>),
    I16(Panels<i16>),
    Vnni(Panels<i8>),
}

/// Weights packed for one kernel family. Build once per layer, reuse for every inference.
#[derive(Debug, Clone)]
pub struct PackedB {
    kind: KernelKind,
    k: usize,
    n: usize,
    /// Per-column weight zero point (length n).
    pub(crate) zero_points: Vec<i32>,
    /// Per-column Σ_k b[k][n] of the raw weights (length n).
    pub(crate) col_sums: Vec<i32>,
    pub(crate) data: PackedData,
}

impl PackedB {
    /// Packs a `k x n` i8 weight matrix for `kind`. `zero_points`: 1 (per tensor) or `n` values
    /// in [-128, 127]. Errors if the CPU cannot run `kind` or sizes disagree.
    pub fn new(
        kind: KernelKind,
        b: &[i8],
        k: usize,
        n: usize,
        layout: BLayout,
        zero_points: &[i32],
    ) -> Result<PackedB, Int8Error> {
        let len = k.checked_mul(n).ok_or_else(|| Int8Error::Shape {
            what: "weights",
            detail: format!("{k} x {n} overflows usize"),
        })?;
        check_len("weights", b.len(), len)?;
        match layout {
            BLayout::KxN => Self::from_fn(kind, k, n, zero_points, |kk, nn| b[kk * n + nn]),
            BLayout::NxK => Self::from_fn(kind, k, n, zero_points, |kk, nn| b[nn * k + kk]),
        }
    }

    /// Packs u8 weights (QLinearMatMul/MatMulInteger allow them): `b - 128` with zero point
    /// `zb - 128` is the same operand in i8, exactly, since `(b-128) - (zb-128) = b - zb`.
    /// `zero_points` in [0, 255].
    pub fn new_u8(
        kind: KernelKind,
        b: &[u8],
        k: usize,
        n: usize,
        layout: BLayout,
        zero_points: &[i32],
    ) -> Result<PackedB, Int8Error> {
        if let Some(z) = zero_points.iter().find(|z| !(0..=255).contains(*z)) {
            return Err(Int8Error::Param {
                what: "weight zero point",
                detail: format!("{z} is outside the u8 range"),
            });
        }
        let shifted: Vec<i8> = b.iter().map(|&v| (v as i32 - 128) as i8).collect();
        let zps: Vec<i32> = zero_points.iter().map(|z| z - 128).collect();
        Self::new(kind, &shifted, k, n, layout, &zps)
    }

    /// Packs the matrix whose element `(k, n)` is `b(k, n)`: the general constructor the conv
    /// helpers use to reorder weights on the fly. `b` is only called with `k < K`, `n < N`.
    pub fn from_fn(
        kind: KernelKind,
        k: usize,
        n: usize,
        zero_points: &[i32],
        b: impl Fn(usize, usize) -> i8,
    ) -> Result<PackedB, Int8Error> {
        kind.check_supported()?;
        Self::pack_any_cpu(kind, k, n, zero_points, b)
    }

    /// [`PackedB::from_fn`] without the CPU check: packing is plain Rust, so tests can pack for
    /// AVX-512 on any machine and run the emulated VNNI scheme on the result.
    pub(crate) fn pack_any_cpu(
        kind: KernelKind,
        k: usize,
        n: usize,
        zero_points: &[i32],
        b: impl Fn(usize, usize) -> i8,
    ) -> Result<PackedB, Int8Error> {
        let zero_points: Vec<i32> = match zero_points.len() {
            1 => vec![zero_points[0]; n],
            len if len == n => zero_points.to_vec(),
            len => {
                return Err(Int8Error::Param {
                    what: "weight zero points",
                    detail: format!("{len} values for {n} columns (expected 1 or {n})"),
                });
            }
        };
        if let Some(z) = zero_points.iter().find(|z| !(-128..=127).contains(*z)) {
            return Err(Int8Error::Param {
                what: "weight zero point",
                detail: format!("{z} is outside the i8 range"),
            });
        }
        let mut col_sums = vec![0i32; n];
        for kk in 0..k {
            for (nn, s) in col_sums.iter_mut().enumerate() {
                *s = s.wrapping_add(b(kk, nn) as i32);
            }
        }
        let data = match kind {
            KernelKind::Scalar => {
                let mut v = Vec::with_capacity(k * n);
                for kk in 0..k {
                    v.extend((0..n).map(|nn| b(kk, nn)));
                }
                PackedData::Scalar(v)
            }
            KernelKind::Avx2 => PackedData::I16(pack_panels(k, n, 2, 8, |kk, nn| {
                (b(kk, nn) as i32 - zero_points[nn]) as i16
            })),
            KernelKind::Avx512 => PackedData::Vnni(pack_panels(k, n, 4, 16, &b)),
        };
        Ok(PackedB {
            kind,
            k,
            n,
            zero_points,
            col_sums,
            data,
        })
    }

    /// The kernel family the weights are packed for.
    pub fn kind(&self) -> KernelKind {
        self.kind
    }

    /// Rows of B (the reduction length).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of B (output channels).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether any weight zero point is non-zero.
    pub fn has_zero_points(&self) -> bool {
        self.zero_points.iter().any(|&z| z != 0)
    }
}

/// Panels of at most `2 * lanes` columns; per group of `group` k, for each column of the panel,
/// `group` consecutive values. A last panel of at most `lanes` columns uses one register.
pub(crate) fn pack_panels<T: Copy + Default>(
    k: usize,
    n: usize,
    group: usize,
    lanes: usize,
    value: impl Fn(usize, usize) -> T,
) -> Panels<T> {
    let kgroups = k.div_ceil(group);
    let mut panels = Vec::new();
    let mut data = Vec::new();
    let mut n0 = 0;
    while n0 < n {
        let left = n - n0;
        let nv = if left > lanes { 2 } else { 1 };
        let cols = left.min(nv * lanes);
        let offset = data.len();
        data.resize(offset + kgroups * nv * lanes * group, T::default());
        for kg in 0..kgroups {
            for c in 0..cols {
                for g in 0..group {
                    let kk = kg * group + g;
                    if kk < k {
                        data[offset + (kg * nv * lanes + c) * group + g] = value(kk, n0 + c);
                    }
                }
            }
        }
        panels.push(Panel {
            n0,
            cols,
            nv,
            offset,
        });
        n0 += cols;
    }
    Panels {
        data,
        panels,
        kgroups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_cover_every_column_once_and_pad_with_zeros() {
        // 24 columns -> one 16-wide and one 8-wide panel (no wasted lanes for a common conv width).
        let p = pack_panels(3, 24, 2, 8, |k, n| (k * 100 + n) as i16 + 1);
        let shapes: Vec<(usize, usize, usize)> =
            p.panels.iter().map(|q| (q.n0, q.cols, q.nv)).collect();
        assert_eq!(shapes, vec![(0, 16, 2), (16, 8, 1)]);
        assert_eq!(p.kgroups, 2);
        // Panel 1, k-pair 1 holds (k=2, k=3 padded) for columns 16..24.
        let base = p.panels[1].offset + 8 * 2;
        assert_eq!(&p.data[base..base + 4], &[201 + 16, 0, 201 + 17, 0]);
    }

    #[test]
    fn bad_sizes_and_zero_points_are_errors() {
        let k = KernelKind::Scalar;
        assert!(PackedB::new(k, &[0; 5], 2, 3, BLayout::KxN, &[0]).is_err());
        assert!(PackedB::new(k, &[0; 6], 2, 3, BLayout::KxN, &[0, 0]).is_err());
        assert!(PackedB::new(k, &[0; 6], 2, 3, BLayout::KxN, &[200]).is_err());
        assert!(PackedB::new_u8(k, &[0; 6], 2, 3, BLayout::KxN, &[-1]).is_err());
        assert!(PackedB::new(k, &[0; 6], 2, 3, BLayout::NxK, &[1, 2, 3]).is_ok());
    }
}
