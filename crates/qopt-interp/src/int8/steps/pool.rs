//! Pooling on quantized channels-last tensors (ONNX MaxPool, AveragePool, GlobalAveragePool;
//! com.microsoft QLinearGlobalAveragePool / QLinearAveragePool), 2-D.
//!
//! MaxPool: the maximum of quantized values is the quantized maximum (Q and DQ are monotone), so
//! `Q_y(max DQ_x(q)) = T(max q)` with `T` the requantization table `Q_y ∘ DQ_x` (the identity when
//! x and y share scale and zero point, as they do in QDQ models). Padding never wins (ONNX pads
//! MaxPool with -inf).
//!
//! Average pools: `acc = Σ q − count·x_zp` exactly in i32 over the window, then
//! `y = Q_y(acc · x_scale / count)` with the product in f64 rounded once to f32: within float
//! rounding of the reference's f32 mean, i.e. equal except within ~1e-6 LSB of a rounding tie.
//! `count` is the number of window taps inside the input, or inside the padded input with
//! `count_include_pad`, as in the fp32 kernel.

use super::lut::Table;
use super::{Operand, QOut, Step, StepCx, out_tensor, qdata, scale1, zero_point1};
use crate::error::{OpError, bail};
use crate::kernels::int8::{QInt, quantize_value};
use crate::ops::conv::{axis_geometry, spatial_attr};
use qopt_ir::attr::AutoPad;
use qopt_ir::{DType, Element, Tensor};

/// Window attributes of a 2-D pool.
#[derive(Clone, Debug)]
pub struct Window {
    pub kernel: Vec<i64>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    pub pads: Vec<i64>,
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
    /// Global pooling: the window is the whole image.
    pub global: bool,
}

/// Per output coordinate of one axis: (first input index, count inside the input, count inside
/// the padded input); the dilation is the step.
type AxisWindows = Vec<(usize, usize, usize)>;

struct Geometry {
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
    dil: [usize; 2],
    win: [AxisWindows; 2],
}

impl Window {
    fn geometry(&self, s: &[usize]) -> Result<Geometry, OpError> {
        if s.len() != 4 {
            bail!("quantized pooling needs a 4-D input, got {s:?}");
        }
        let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
        if self.global {
            return Ok(Geometry {
                n,
                h,
                w,
                c,
                oh: 1,
                ow: 1,
                dil: [1, 1],
                win: [vec![(0, h, h)], vec![(0, w, w)]],
            });
        }
        let kernel = spatial_attr(&self.kernel, 2, 1, "kernel_shape")?;
        if self.kernel.len() != 2 {
            bail!("kernel_shape {:?} is not 2-D", self.kernel);
        }
        let strides = spatial_attr(&self.strides, 2, 1, "strides")?;
        let dil = spatial_attr(&self.dilations, 2, 1, "dilations")?;
        let pads = spatial_attr(&self.pads, 4, 0, "pads")?;
        let mut out = [0usize; 2];
        let mut win: [AxisWindows; 2] = [vec![], vec![]];
        for a in 0..2 {
            let size = [h, w][a];
            let (o, pb, pe) = axis_geometry(
                size,
                kernel[a],
                strides[a],
                dil[a],
                (pads[a], pads[a + 2]),
                self.auto_pad,
                self.ceil_mode,
            )?;
            out[a] = o;
            for oi in 0..o {
                let start = (oi * strides[a]) as isize - pb as isize;
                let (mut first, mut count, mut padded) = (None, 0, 0);
                for j in 0..kernel[a] {
                    let i = start + (j * dil[a]) as isize;
                    if i >= -(pb as isize) && i < (size + pe) as isize {
                        padded += 1;
                    }
                    if i >= 0 && i < size as isize {
                        first.get_or_insert(i as usize);
                        count += 1;
                    }
                }
                win[a].push((first.unwrap_or(0), count, padded));
            }
        }
        Ok(Geometry {
            n,
            h,
            w,
            c,
            oh: out[0],
            ow: out[1],
            dil: [dil[0], dil[1]],
            win,
        })
    }
}

/// Quantized MaxPool, with a requantization table when x and y differ in parameters.
pub struct QMaxPool {
    pub window: Window,
    pub requant: Option<Table>,
}

fn max_pool<T: QInt + Element + Ord>(g: &Geometry, x: &[T]) -> Vec<T> {
    let c = g.c;
    let mut y = vec![T::default(); g.n * g.oh * g.ow * c];
    let mut o = 0;
    for b in 0..g.n {
        for wy in &g.win[0] {
            for wx in &g.win[1] {
                let out = &mut y[o * c..(o + 1) * c];
                let mut first = true;
                for ky in 0..wy.1 {
                    let iy = wy.0 + ky * g.dil[0];
                    for kx in 0..wx.1 {
                        let ix = wx.0 + kx * g.dil[1];
                        let at = ((b * g.h + iy) * g.w + ix) * c;
                        let row = &x[at..at + c];
                        if first {
                            out.copy_from_slice(row);
                            first = false;
                        } else {
                            for (o, &v) in out.iter_mut().zip(row) {
                                *o = (*o).max(v);
                            }
                        }
                    }
                }
                o += 1;
            }
        }
    }
    y
}

impl Step for QMaxPool {
    fn run(&mut self, _cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = crate::ops::arg(ins, 0)?;
        let g = self.window.geometry(x.shape())?;
        if g.win.iter().flatten().any(|w| w.1 == 0) {
            bail!("a pooling window lies entirely in the padding");
        }
        let shape = [g.n, g.oh, g.ow, g.c];
        let y = match x.dtype() {
            DType::U8 => out_tensor(&shape, max_pool(&g, &qdata::<u8>(x)?))?,
            DType::I8 => out_tensor(&shape, max_pool(&g, &qdata::<i8>(x)?))?,
            d => bail!("quantized MaxPool needs u8 or i8, got {d}"),
        };
        Ok(vec![match &self.requant {
            Some(t) => t.apply(&y)?,
            None => y,
        }])
    }
    fn name(&self) -> String {
        "QMaxPool".into()
    }
}

/// Quantized average pooling (windowed or global).
pub struct QAvgPool {
    pub window: Window,
    pub count_include_pad: bool,
    pub x_scale: Operand,
    pub x_zp: Operand,
    pub y_scale: Operand,
    pub y_zp: Operand,
}

fn avg_pool<I: QInt + Element, O: QInt + Element>(
    g: &Geometry,
    x: &[I],
    include_pad: bool,
    (sx, zx): (f32, i32),
    (sy, zy): (f32, i32),
) -> Vec<O> {
    let c = g.c;
    let mut y = vec![O::default(); g.n * g.oh * g.ow * c];
    let mut acc = vec![0i32; c];
    let mut o = 0;
    for b in 0..g.n {
        for wy in &g.win[0] {
            for wx in &g.win[1] {
                acc.fill(0);
                for ky in 0..wy.1 {
                    let iy = wy.0 + ky * g.dil[0];
                    for kx in 0..wx.1 {
                        let ix = wx.0 + kx * g.dil[1];
                        let at = ((b * g.h + iy) * g.w + ix) * c;
                        for (a, &v) in acc.iter_mut().zip(&x[at..at + c]) {
                            *a += v.to_i32();
                        }
                    }
                }
                let inside = (wy.1 * wx.1) as i64;
                let count = if include_pad {
                    wy.2 * wx.2
                } else {
                    wy.1 * wx.1
                } as f64;
                let out = &mut y[o * c..(o + 1) * c];
                for (q, &a) in out.iter_mut().zip(&acc) {
                    // Padding taps are real zeros: they add nothing but count with include_pad.
                    let centered = a as i64 - inside * zx as i64;
                    let real = (centered as f64 * sx as f64 / count) as f32;
                    *q = quantize_value::<O>(real, sy, zy);
                }
                o += 1;
            }
        }
    }
    y
}

impl Step for QAvgPool {
    fn run(&mut self, _cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = crate::ops::arg(ins, 0)?;
        let g = self.window.geometry(x.shape())?;
        if g.win.iter().flatten().any(|w| w.1 == 0) {
            bail!("a pooling window lies entirely in the padding");
        }
        let px = (
            scale1(self.x_scale.req(ins, "x_scale")?, "x_scale")?,
            zero_point1(self.x_zp.get(ins), "x_zero_point")?,
        );
        let y_zp = self.y_zp.get(ins);
        let py = (
            scale1(self.y_scale.req(ins, "y_scale")?, "y_scale")?,
            zero_point1(y_zp, "y_zero_point")?,
        );
        let out = match y_zp.map(|z| z.dtype()) {
            None => QOut::of(x.dtype()).unwrap_or(QOut::U8),
            Some(d) => match QOut::of(d) {
                Some(o) => o,
                None => bail!("y_zero_point must be u8 or i8, got {d}"),
            },
        };
        let shape = [g.n, g.oh, g.ow, g.c];
        let inc = self.count_include_pad;
        let y = match (x.dtype(), out) {
            (DType::U8, QOut::U8) => {
                out_tensor(&shape, avg_pool::<u8, u8>(&g, &qdata(x)?, inc, px, py))?
            }
            (DType::U8, QOut::I8) => {
                out_tensor(&shape, avg_pool::<u8, i8>(&g, &qdata(x)?, inc, px, py))?
            }
            (DType::I8, QOut::U8) => {
                out_tensor(&shape, avg_pool::<i8, u8>(&g, &qdata(x)?, inc, px, py))?
            }
            (DType::I8, QOut::I8) => {
                out_tensor(&shape, avg_pool::<i8, i8>(&g, &qdata(x)?, inc, px, py))?
            }
            (d, _) => bail!("quantized average pooling needs u8 or i8, got {d}"),
        };
        Ok(vec![y])
    }
    fn name(&self) -> String {
        if self.window.global {
            "QGlobalAveragePool"
        } else {
            "QAveragePool"
        }
        .into()
    }
}
