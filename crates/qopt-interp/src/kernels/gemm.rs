//! f32 matrix multiplication `C = alpha * A * B (+ C)` with a fused epilogue
//! (per-row or per-column bias, then an activation), on the `gemm` crate.
//!
//! The output is cut into tiles whose size depends only on the matrix shape, never on the
//! thread count; each tile is one single-threaded `gemm` call followed by its epilogue while the
//! tile is still in cache. Every output element is therefore computed by the same sequence of
//! floating-point operations whatever the number of threads (DESIGN.md §9), and rayon spreads
//! the tiles over the plan's pool.

use super::SendPtr;
use super::activation::{Activation, bias_act_row};
use super::simd::multiversion;
use rayon::prelude::*;

/// A strided read-only matrix: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major matrix with `cols` columns.
    pub fn row_major(data: &'a [f32], cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> MatRef<'a> {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    }

    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// What to add before the activation.
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// One value per output row (a convolution's output channel).
    Row(&'a [f32]),
    /// One value per output column (Gemm's `C` of shape `[N]`).
    Col(&'a [f32]),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    pub bias: Bias<'a>,
    pub act: Activation,
}

impl Epilogue<'_> {
    pub fn is_identity(&self) -> bool {
        matches!(self.bias, Bias::None) && self.act == Activation::None
    }

    /// Apply to one output row segment: output row `i`, columns `j0..j0 + row.len()`.
    #[inline(always)]
    fn apply_row(&self, row: &mut [f32], i: usize, j0: usize) {
        match self.bias {
            Bias::None => bias_act_row(row, 0.0, self.act),
            Bias::Row(b) => bias_act_row(row, b[i], self.act),
            Bias::Col(b) => {
                let n = row.len();
                for (v, &bj) in row.iter_mut().zip(&b[j0..j0 + n]) {
                    *v = self.act.apply(*v + bj);
                }
            }
        }
    }
}

/// One single-threaded GEMM call on a block: `c[0..m, 0..n] (row stride ldc) = alpha * a * b`,
/// plus `c` when `accumulate`, then the epilogue for output offset (`i0`, `j0`).
#[allow(clippy::too_many_arguments)]
pub fn sgemm_block(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
    at: (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len(), "gemm output out of bounds");
    // SAFETY: the output block lies inside `c`, which is borrowed mutably.
    unsafe {
        block_raw(
            m,
            n,
            k,
            alpha,
            a,
            b,
            accumulate,
            c.as_mut_ptr(),
            ldc,
            epi,
            at,
        )
    }
}

/// [`sgemm_block`] on a raw output pointer, for kernels that tile an output across threads.
///
/// # Safety
/// Rows `0..m`, columns `0..n` of the output at `c` (row stride `ldc`) must be valid for writes
/// and not accessed by anyone else during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn block_raw(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    c: *mut f32,
    ldc: usize,
    epi: &Epilogue,
    (i0, j0): (usize, usize),
) {
    assert!(
        a.covers(m, k) && b.covers(k, n),
        "gemm operand out of bounds"
    );
    // SAFETY (rows): each row segment is inside the block the caller vouches for.
    let row = |r: usize| unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), n) };
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|r| row(r).fill(0.0));
        }
    } else {
        // SAFETY: operands are in bounds (assert above), the output block is the caller's.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c,
                1,
                ldc as isize,
                accumulate,
                a.data.as_ptr(),
                a.cs as isize,
                a.rs as isize,
                b.data.as_ptr(),
                b.cs as isize,
                b.rs as isize,
                1.0,
                alpha,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
    if !epi.is_identity() {
        (0..m).for_each(|r| epilogue_row(epi, row(r), i0 + r, j0));
    }
}

multiversion! {
    fn epilogue_row(epi: &Epilogue, row: &mut [f32], i: usize, j0: usize) {
        epi.apply_row(row, i, j0);
    }
}

/// Tile sizes for an `m x n` output: a function of the shape only.
pub fn tile_sizes(m: usize, n: usize) -> (usize, usize) {
    const TILE_ELEMS: usize = 1 << 16;
    let mb = m.clamp(1, 256);
    let nb = (TILE_ELEMS / mb).max(64) / 16 * 16;
    (mb, nb.min(n.max(1)))
}

/// `c (m x n, row stride ldc) = alpha * a * b (+ c)`, then the epilogue, over tiles in parallel.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    c: &mut [f32],
    ldc: usize,
    epi: &Epilogue,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * ldc + n <= c.len(), "gemm output out of bounds");
    let (mb, nb) = tile_sizes(m, n);
    let (tm, tn) = (m.div_ceil(mb), n.div_ceil(nb));
    let cp = SendPtr(c.as_mut_ptr());
    let tile = |t: usize| {
        let (ti, tj) = (t / tn, t % tn);
        let (i0, j0) = (ti * mb, tj * nb);
        let (rows, cols) = (mb.min(m - i0), nb.min(n - j0));
        let a_t = MatRef {
            data: &a.data[i0 * a.rs..],
            ..a
        };
        let b_t = MatRef {
            data: &b.data[j0 * b.cs..],
            ..b
        };
        // SAFETY: tile (ti, tj) is rows i0..i0+rows, columns j0..j0+cols of `c` (bounds asserted
        // above); tiles are disjoint, so no two calls write the same element.
        unsafe {
            block_raw(
                rows,
                cols,
                k,
                alpha,
                a_t,
                b_t,
                accumulate,
                cp.get().add(i0 * ldc + j0),
                ldc,
                epi,
                (i0, j0),
            )
        };
    };
    if tm * tn == 1 {
        tile(0);
    } else {
        (0..tm * tn).into_par_iter().for_each(tile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop, in f64: the reference for the tiled kernel.
    fn naive(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum();
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn tiled_matches_naive_with_epilogue() {
        for &(m, n, k) in &[(1, 1, 1), (3, 5, 7), (300, 70, 9), (17, 4100, 3), (5, 3, 0)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 3) % 13) as f32 * 0.5 - 3.0)
                .collect();
            let bias: Vec<f32> = (0..m).map(|i| i as f32 - 2.0).collect();
            let mut c = vec![f32::NAN; m * n];
            let epi = Epilogue {
                bias: Bias::Row(&bias),
                act: Activation::Relu,
            };
            sgemm(
                m,
                n,
                k,
                1.0,
                MatRef::row_major(&a, k),
                MatRef::row_major(&b, n),
                false,
                &mut c,
                n,
                &epi,
            );
            let r = naive(m, n, k, &a, &b);
            for i in 0..m {
                for j in 0..n {
                    let want = (r[i * n + j] + bias[i]).max(0.0);
                    assert!(
                        (c[i * n + j] - want).abs() <= 1e-3 * want.abs().max(1.0),
                        "{m}x{n}x{k} at {i},{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn transposed_operands_and_accumulate() {
        let (m, n, k) = (4, 3, 2);
        let at: Vec<f32> = (0..k * m).map(|i| i as f32).collect(); // k x m
        let b: Vec<f32> = (0..k * n).map(|i| i as f32 - 1.0).collect();
        let a: Vec<f32> = (0..m * k).map(|x| at[(x % k) * m + x / k]).collect();
        let mut c = vec![1.0; m * n];
        sgemm(
            m,
            n,
            k,
            2.0,
            MatRef::transposed(&at, m),
            MatRef::row_major(&b, n),
            true,
            &mut c,
            n,
            &Epilogue::default(),
        );
        let r = naive(m, n, k, &a, &b);
        for x in 0..m * n {
            assert_eq!(c[x], 1.0 + 2.0 * r[x]);
        }
    }
}
