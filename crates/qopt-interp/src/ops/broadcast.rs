//! Numpy multidirectional broadcasting (ONNX "Broadcasting in ONNX", docs/Broadcasting.md).
//!
//! An element-wise op over broadcast operands is run as rows: the output shape is collapsed
//! (adjacent axes merged where every operand is contiguous across them, size-1 axes dropped)
//! and the last collapsed axis is the inner loop, where each operand advances by 1 or by 0
//! (broadcast). Inner loops specialised on those strides vectorise; a per-channel operand
//! (`[C, 1, 1]` against `[N, C, H, W]`) becomes rows of H*W with a stride-0 scalar.

use crate::error::{OpError, bail};
use crate::kernels::simd::multiversion;
use rayon::prelude::*;

/// The broadcast shape of several shapes.
pub fn shape_of(shapes: &[&[usize]]) -> Result<Vec<usize>, OpError> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                bail!("shapes {:?} cannot be broadcast together", shapes);
            }
        }
    }
    Ok(out)
}

/// A row decomposition of an output shape for `K` operands.
#[derive(Clone, Debug)]
pub struct Rows<const K: usize> {
    /// Collapsed output dims (the last one is the inner loop); never empty.
    dims: Vec<usize>,
    /// Per operand, element strides over `dims` (0 = broadcast).
    strides: [Vec<usize>; K],
}

impl<const K: usize> Rows<K> {
    /// `ins[k]` must broadcast to `out` (checked by [`shape_of`]).
    pub fn new(out: &[usize], ins: [&[usize]; K]) -> Rows<K> {
        let rank = out.len();
        // Strides in the output's index space.
        let full: [Vec<usize>; K] = std::array::from_fn(|k| {
            let s = ins[k];
            let off = rank - s.len();
            let mut st = vec![0usize; rank];
            let mut acc = 1usize;
            for i in (0..s.len()).rev() {
                st[off + i] = if s[i] == 1 { 0 } else { acc };
                acc *= s[i];
            }
            st
        });
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: [Vec<usize>; K] = std::array::from_fn(|_| Vec::new());
        for i in 0..rank {
            if out[i] == 1 {
                continue;
            }
            let merge = !dims.is_empty()
                && (0..K).all(|k| {
                    let last = *strides[k].last().unwrap_or(&0);
                    last == full[k][i] * out[i]
                });
            if merge {
                let n = dims.len() - 1;
                dims[n] *= out[i];
                for k in 0..K {
                    strides[k][n] = full[k][i];
                }
            } else {
                dims.push(out[i]);
                for k in 0..K {
                    strides[k].push(full[k][i]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for s in strides.iter_mut() {
                s.push(0);
            }
        }
        Rows { dims, strides }
    }

    pub fn inner(&self) -> usize {
        *self.dims.last().expect("non-empty")
    }

    pub fn rows(&self) -> usize {
        self.dims[..self.dims.len() - 1].iter().product()
    }

    pub fn inner_strides(&self) -> [usize; K] {
        std::array::from_fn(|k| *self.strides[k].last().expect("non-empty"))
    }

    /// Offset of row `r`'s first element in each operand.
    #[inline]
    pub fn offsets(&self, mut r: usize) -> [usize; K] {
        let mut off = [0usize; K];
        for i in (0..self.dims.len() - 1).rev() {
            let idx = r % self.dims[i];
            r /= self.dims[i];
            for (o, s) in off.iter_mut().zip(&self.strides) {
                *o += idx * s[i];
            }
        }
        off
    }
}

/// Output elements per parallel task.
const CHUNK: usize = 1 << 15;

multiversion! {
    /// `out = f(a, b)` with broadcasting; `out` has the broadcast shape `osh`.
    pub fn binary_map[A: Copy + Sync, B: Copy + Sync, O: Copy + Send, F: Fn(A, B) -> O + Sync](a: &[A], ash: &[usize], b: &[B], bsh: &[usize], out: &mut [O], osh: &[usize], f: F) {
        let rows = Rows::new(osh, [ash, bsh]);
        let inner = rows.inner();
        let [sa, sb] = rows.inner_strides();
        let row = |r: usize, o: &mut [O]| {
            let [oa, ob] = rows.offsets(r);
            match (sa, sb) {
                (1, 1) => {
                    for ((o, &x), &y) in o.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in o.iter_mut().zip(&a[oa..oa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (i, o) in o.iter_mut().enumerate() {
                        *o = f(a[oa + i * sa], b[ob + i * sb]);
                    }
                }
            }
        };
        run_rows(out, inner, &row);
    }
}

multiversion! {
    /// `out = f(c, a, b)` with broadcasting over three operands (Where).
    #[allow(clippy::too_many_arguments)]
    pub fn ternary_map[C: Copy + Sync, A: Copy + Sync, B: Copy + Sync, O: Copy + Send, F: Fn(C, A, B) -> O + Sync](c: &[C], csh: &[usize], a: &[A], ash: &[usize], b: &[B], bsh: &[usize], out: &mut [O], osh: &[usize], f: F) {
        let rows = Rows::new(osh, [csh, ash, bsh]);
        let inner = rows.inner();
        let [sc, sa, sb] = rows.inner_strides();
        let row = |r: usize, o: &mut [O]| {
            let [oc, oa, ob] = rows.offsets(r);
            for (i, o) in o.iter_mut().enumerate() {
                *o = f(c[oc + i * sc], a[oa + i * sa], b[ob + i * sb]);
            }
        };
        run_rows(out, inner, &row);
    }
}

multiversion! {
    /// In place: `a = f(a, b)` where `a` already has the output shape.
    pub fn binary_inplace[B: Copy + Sync, O: Copy + Send + Sync, F: Fn(O, B) -> O + Sync](a: &mut [O], osh: &[usize], b: &[B], bsh: &[usize], f: F) {
        let rows = Rows::new(osh, [osh, bsh]);
        let inner = rows.inner();
        let [_, sb] = rows.inner_strides();
        let row = |r: usize, o: &mut [O]| {
            let [_, ob] = rows.offsets(r);
            match sb {
                1 => {
                    for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                        *o = f(*o, y);
                    }
                }
                0 => {
                    let y = b[ob];
                    for o in o.iter_mut() {
                        *o = f(*o, y);
                    }
                }
                _ => {
                    for (i, o) in o.iter_mut().enumerate() {
                        *o = f(*o, b[ob + i * sb]);
                    }
                }
            }
        };
        run_rows(a, inner, &row);
    }
}

/// Run `row(r, out_row)` for every row of `out`, in parallel chunks of whole rows.
fn run_rows<O: Send>(out: &mut [O], inner: usize, row: &(dyn Fn(usize, &mut [O]) + Sync)) {
    if out.is_empty() || inner == 0 {
        return;
    }
    let rows_per = (CHUNK / inner).max(1);
    let chunk = rows_per * inner;
    let work = |(ci, part): (usize, &mut [O])| {
        for (j, o) in part.chunks_mut(inner).enumerate() {
            row(ci * rows_per + j, o);
        }
    };
    if out.len() <= chunk {
        work((0, out));
    } else {
        out.par_chunks_mut(chunk).enumerate().for_each(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shapes() {
        assert_eq!(shape_of(&[&[2, 3, 4], &[3, 1]]).unwrap(), vec![2, 3, 4]);
        assert_eq!(shape_of(&[&[], &[5]]).unwrap(), vec![5]);
        assert!(shape_of(&[&[2], &[3]]).is_err());
    }

    #[test]
    fn per_channel_and_outer_broadcasts() {
        // Reference: numpy, `np.arange(24).reshape(2,3,4) + np.array([[10],[20],[30]])`.
        let a: Vec<i64> = (0..24).collect();
        let b = vec![10i64, 20, 30];
        let mut o = vec![0i64; 24];
        binary_map(&a, &[2, 3, 4], &b, &[3, 1], &mut o, &[2, 3, 4], |x, y| {
            x + y
        });
        assert_eq!(&o[..8], &[10, 11, 12, 13, 24, 25, 26, 27]);
        assert_eq!(o[23], 53);
        // Outer product: [3,1] * [1,4].
        let mut o = vec![0i64; 12];
        binary_map(
            &[1i64, 2, 3],
            &[3, 1],
            &[1i64, 10, 100, 1000],
            &[1, 4],
            &mut o,
            &[3, 4],
            |x, y| x * y,
        );
        assert_eq!(
            o,
            vec![1, 10, 100, 1000, 2, 20, 200, 2000, 3, 30, 300, 3000]
        );
    }

    #[test]
    fn large_outputs_run_in_chunks() {
        let n = 3 * CHUNK + 7;
        let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut o = vec![0.0; n];
        binary_map(&a, &[n], &[2.0f32], &[], &mut o, &[n], |x, y| x * y);
        assert!(o.iter().enumerate().all(|(i, &v)| v == 2.0 * i as f32));
    }
}
