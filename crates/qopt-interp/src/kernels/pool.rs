//! Max and average pooling over 1, 2 or 3 spatial axes (ONNX `MaxPool`, `AveragePool`), NCHW.
//!
//! Fewer than three spatial axes are viewed as three with leading size-1 axes. Per output
//! position the window is clipped to the input; for `AveragePool` the divisor counts the window
//! positions inside the input, or (with `count_include_pad`) those inside the padded input,
//! which is what the ONNX reference implementation computes, `ceil_mode` windows included.
//! Planes (image, channel) run in parallel.

use rayon::prelude::*;

#[derive(Clone, Debug, PartialEq)]
pub struct PoolGeometry {
    /// Number of planes: batch * channels.
    pub planes: usize,
    pub in_sp: [usize; 3],
    pub out_sp: [usize; 3],
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub dilations: [usize; 3],
    pub pad_begin: [usize; 3],
    pub pad_end: [usize; 3],
}

impl PoolGeometry {
    fn in_len(&self) -> usize {
        self.in_sp.iter().product()
    }
    fn out_len(&self) -> usize {
        self.out_sp.iter().product()
    }

    /// Valid input coordinates of the window of output `o` on axis `a`: `(first, step, count)`
    /// inside the input, plus the count inside the padded input.
    #[inline]
    fn window(&self, a: usize, o: usize) -> (usize, usize, usize, usize) {
        let (s, d, k) = (
            self.strides[a] as isize,
            self.dilations[a] as isize,
            self.kernel[a] as isize,
        );
        let start = o as isize * s - self.pad_begin[a] as isize;
        let len = self.in_sp[a] as isize;
        let padded_end = len + self.pad_end[a] as isize;
        let mut first = None;
        let mut count = 0;
        let mut padded = 0;
        for j in 0..k {
            let i = start + j * d;
            if i >= -(self.pad_begin[a] as isize) && i < padded_end {
                padded += 1;
            }
            if i >= 0 && i < len {
                first.get_or_insert(i as usize);
                count += 1;
            }
        }
        (first.unwrap_or(0), d as usize, count, padded)
    }
}

/// Window description per output coordinate of every axis, computed once per call.
fn windows(g: &PoolGeometry) -> [Vec<(usize, usize, usize, usize)>; 3] {
    std::array::from_fn(|a| (0..g.out_sp[a]).map(|o| g.window(a, o)).collect())
}

/// Max pooling; `indices` (if given) receives the flat NCHW index of each maximum
/// (`storage_order = 1`: the index with the last two spatial axes swapped, column-major).
pub fn max_pool(
    g: &PoolGeometry,
    x: &[f32],
    y: &mut [f32],
    indices: Option<&mut [i64]>,
    storage_order: i64,
) {
    let (inl, outl) = (g.in_len(), g.out_len());
    assert!(x.len() >= g.planes * inl && y.len() >= g.planes * outl);
    let win = windows(g);
    let [_, ih, iw] = g.in_sp;
    let plane = |p: usize, yp: &mut [f32], mut ip: Option<&mut [i64]>| {
        let xp = &x[p * inl..(p + 1) * inl];
        let mut o = 0;
        for wz in &win[0] {
            for wy in &win[1] {
                for wx in &win[2] {
                    let mut best = f32::NEG_INFINITY;
                    let mut arg = 0usize;
                    let mut found = false;
                    'w: for z in 0..wz.2 {
                        let iz = wz.0 + z * wz.1;
                        for yy in 0..wy.2 {
                            let iy = wy.0 + yy * wy.1;
                            for xx in 0..wx.2 {
                                let ix = wx.0 + xx * wx.1;
                                let at = (iz * ih + iy) * iw + ix;
                                let v = xp[at];
                                if !found || v > best || v.is_nan() {
                                    best = v;
                                    arg = at;
                                    found = true;
                                    if v.is_nan() {
                                        break 'w;
                                    }
                                }
                            }
                        }
                    }
                    yp[o] = best;
                    if let Some(ip) = ip.as_deref_mut() {
                        let flat = if storage_order == 1 {
                            // Swap the last two axes: (z, y, x) -> (z, x, y).
                            let (iz, r) = (arg / (ih * iw), arg % (ih * iw));
                            let (iy, ix) = (r / iw, r % iw);
                            (iz * iw + ix) * ih + iy
                        } else {
                            arg
                        };
                        ip[o] = (p * inl + flat) as i64;
                    }
                    o += 1;
                }
            }
        }
    };
    match indices {
        Some(ind) => y[..g.planes * outl]
            .par_chunks_mut(outl.max(1))
            .zip(ind[..g.planes * outl].par_chunks_mut(outl.max(1)))
            .enumerate()
            .for_each(|(p, (yp, ip))| plane(p, yp, Some(ip))),
        None => y[..g.planes * outl]
            .par_chunks_mut(outl.max(1))
            .enumerate()
            .for_each(|(p, yp)| plane(p, yp, None)),
    }
}

/// Average pooling.
pub fn avg_pool(g: &PoolGeometry, x: &[f32], y: &mut [f32], count_include_pad: bool) {
    let (inl, outl) = (g.in_len(), g.out_len());
    assert!(x.len() >= g.planes * inl && y.len() >= g.planes * outl);
    let win = windows(g);
    let [_, ih, iw] = g.in_sp;
    y[..g.planes * outl]
        .par_chunks_mut(outl.max(1))
        .enumerate()
        .for_each(|(p, yp)| {
            let xp = &x[p * inl..(p + 1) * inl];
            let mut o = 0;
            for wz in &win[0] {
                for wy in &win[1] {
                    for wx in &win[2] {
                        let mut s = 0.0f32;
                        for z in 0..wz.2 {
                            let iz = wz.0 + z * wz.1;
                            for yy in 0..wy.2 {
                                let row = &xp[(iz * ih + wy.0 + yy * wy.1) * iw..];
                                for xx in 0..wx.2 {
                                    s += row[wx.0 + xx * wx.1];
                                }
                            }
                        }
                        let n = if count_include_pad {
                            wz.3 * wy.3 * wx.3
                        } else {
                            wz.2 * wy.2 * wx.2
                        };
                        yp[o] = if n == 0 { f32::NAN } else { s / n as f32 };
                        o += 1;
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g2(h: usize, w: usize, k: usize, s: usize, p: usize) -> PoolGeometry {
        let o = |i: usize| (i + 2 * p - k) / s + 1;
        PoolGeometry {
            planes: 1,
            in_sp: [1, h, w],
            out_sp: [1, o(h), o(w)],
            kernel: [1, k, k],
            strides: [1, s, s],
            dilations: [1; 3],
            pad_begin: [0, p, p],
            pad_end: [0, p, p],
        }
    }

    #[test]
    fn hand_computed_pools() {
        // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], 2x2 windows, stride 1, pad 1 on every side.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let g = g2(3, 3, 2, 1, 1);
        let mut y = vec![0.0; 16];
        let mut idx = vec![0i64; 16];
        max_pool(&g, &x, &mut y, Some(&mut idx), 0);
        assert_eq!(&y[..4], &[1.0, 2.0, 3.0, 3.0]);
        assert_eq!(&idx[..4], &[0, 1, 2, 2]);
        avg_pool(&g, &x, &mut y, false);
        // Top-left window covers only x[0][0]; the next covers 1 and 2.
        assert_eq!(&y[..2], &[1.0, 1.5]);
        avg_pool(&g, &x, &mut y, true);
        assert_eq!(&y[..2], &[0.25, 0.75]);
        let mut y = vec![0.0; 16];
        max_pool(
            &g,
            &[f32::NAN, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            &mut y,
            None,
            0,
        );
        assert!(y[0].is_nan() && y[1].is_nan() && y[2] == 2.0);
    }
}
