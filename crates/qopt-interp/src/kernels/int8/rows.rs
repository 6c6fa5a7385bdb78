//! Where a SIMD GEMM's activation rows come from. The blocked driver (`gemm.rs`) prepares each row
//! into its kernel's operand form piece by piece, so a conv can feed it im2col rows straight from
//! the NHWC input ("implicit im2col"): no im2col matrix is written and read back, and contiguous
//! taps (same image row, all channels) arrive as one piece.

use super::gemm::ActMatrix;
use super::geometry::Conv2dGeometry;
use super::qtype::QInt;

/// A run of a row: input elements, or `n` copies of the zero point (padding).
pub(crate) enum Piece<'a, A> {
    Data(&'a [A]),
    ZeroPoint(usize),
}

/// A source of `rows()` activation rows of K elements each.
pub(crate) trait RowSource<A: QInt> {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Calls `f` with the pieces of row `m` in order; they total K elements.
    fn visit_row<F: FnMut(Piece<'_, A>)>(&self, m: usize, f: &mut F);
}

/// The rows of a validated activation matrix.
pub(crate) struct MatrixRows<'a, A: QInt> {
    pub a: ActMatrix<'a, A>,
    pub k: usize,
}

impl<A: QInt> RowSource<A> for MatrixRows<'_, A> {
    fn rows(&self) -> usize {
        self.a.rows
    }
    #[inline]
    fn visit_row<F: FnMut(Piece<'_, A>)>(&self, m: usize, f: &mut F) {
        let start = m * self.a.stride;
        f(Piece::Data(&self.a.data[start..start + self.k]));
    }
}

/// The im2col rows of one image and group (validated geometry and input length).
pub(crate) struct Im2colRows<'a, A: QInt> {
    pub input: &'a [A],
    pub geom: &'a Conv2dGeometry,
    pub image: usize,
    pub group: usize,
}

impl<A: QInt> RowSource<A> for Im2colRows<'_, A> {
    fn rows(&self) -> usize {
        self.geom.out_h * self.geom.out_w
    }

    #[inline]
    fn visit_row<F: FnMut(Piece<'_, A>)>(&self, m: usize, f: &mut F) {
        let g = self.geom;
        let cg = g.in_c_per_group();
        let [kh, kw] = g.params.kernel;
        let (oy, ox) = (m / g.out_w, m % g.out_w);
        let base = self.image * g.in_h * g.in_w * g.in_c + self.group * cg;
        let p = &g.params;
        // Interior pixels of a one-group conv with unit x dilation (most rows of every such
        // conv): each kernel row is one contiguous run of KW·C inputs, no tap is padding.
        if cg == g.in_c && p.dilation[1] == 1 {
            let (y0, x0) = (oy * p.stride[0], ox * p.stride[1]);
            let (y_end, x_end) = (y0 + (kh - 1) * p.dilation[0], x0 + kw - 1);
            if y0 >= p.pads[0]
                && x0 >= p.pads[1]
                && y_end < g.in_h + p.pads[0]
                && x_end < g.in_w + p.pads[1]
            {
                let (iy0, ix0) = (y0 - p.pads[0], x0 - p.pads[1]);
                for ky in 0..kh {
                    let start = base + ((iy0 + ky * p.dilation[0]) * g.in_w + ix0) * g.in_c;
                    f(Piece::Data(&self.input[start..start + kw * cg]));
                }
                return;
            }
        }
        // Pending run: Ok((start, len)) of input data, or Err(len) of zero points.
        let mut pending: Option<Result<(usize, usize), usize>> = None;
        let flush = |p: Option<Result<(usize, usize), usize>>, f: &mut F| match p {
            Some(Ok((s, l))) => f(Piece::Data(&self.input[s..s + l])),
            Some(Err(l)) => f(Piece::ZeroPoint(l)),
            None => {}
        };
        for ky in 0..kh {
            let iy = g.input_pos(0, oy, ky);
            for kx in 0..kw {
                let next = match (iy, g.input_pos(1, ox, kx)) {
                    (Some(iy), Some(ix)) => Ok((base + (iy * g.in_w + ix) * g.in_c, cg)),
                    _ => Err(cg),
                };
                pending = match (pending, next) {
                    (Some(Ok((s, l))), Ok((s2, l2))) if s + l == s2 => Some(Ok((s, l + l2))),
                    (Some(Err(l)), Err(l2)) => Some(Err(l + l2)),
                    (p, next) => {
                        flush(p, f);
                        Some(next)
                    }
                };
            }
        }
        flush(pending, f);
    }
}
