//! Quantized 2-D convolution: QLinearConv and ConvInteger (ONNX operator specs), and the QDQ
//! pattern `DQ(x), DQ(w) [, DQ(b)] -> Conv [-> Relu|Clip] -> Q(y)` that the lowering maps onto the
//! same operands (DESIGN.md §7).
//!
//! `acc[c] = Σ (x − x_zp)(w − w_zp[c]) + bias[c]` in i32, then either `y = Q(acc)` with the
//! requantization of `kernels/int8/epilogue.rs` (multiplier `x_scale·w_scale[c] / y_scale`, output
//! zero point, the activation as a clamp) or, for ConvInteger, `acc` itself. Input and output are
//! channels-last (`[N, H, W, C]`); depthwise convs (groups = C = O) run the direct depthwise kernel,
//! every other conv the GEMM kernels (`Conv2d`, implicit im2col).
//!
//! Constant weights are packed once, for the plan's kernel family; the geometry follows the input
//! size at run time (dynamic shapes keep the packed weights). Constant scales and zero points give
//! an epilogue built once; run-time ones (graph inputs, as in the ONNX node tests) are read on
//! every call.

use super::{
    Act, Operand, QOut, Step, StepCx, kerr, out_tensor, per_channel, qdata, scale1, scales,
    zero_point1, zero_points,
};
use crate::error::{OpError, bail};
use crate::kernels::int8::{
    Conv2d, Conv2dGeometry, ConvParams, Depthwise, Epilogue, Int32Out, KernelKind, QInt,
    Requantize, requant_multiplier,
};
use crate::ops::arg;
use qopt_ir::{Element, Tensor};

/// Weights prepared for one kernel family.
enum Prepared {
    Gemm(Conv2d),
    Depthwise(Depthwise),
}

impl Prepared {
    fn set_geometry(&mut self, g: Conv2dGeometry) -> Result<(), OpError> {
        match self {
            Prepared::Gemm(c) => c.set_geometry(g),
            Prepared::Depthwise(d) => d.set_geometry(g),
        }
        .map_err(kerr)
    }
    fn geometry(&self) -> &Conv2dGeometry {
        match self {
            Prepared::Gemm(c) => c.geometry(),
            Prepared::Depthwise(d) => d.geometry(),
        }
    }
}

/// The requantization operands (absent for ConvInteger).
#[derive(Clone, Debug)]
pub struct Requant {
    pub x_scale: Operand,
    pub w_scale: Operand,
    pub y_scale: Operand,
    pub y_zp: Operand,
    pub bias: Operand,
    pub act: Act,
}

/// A built epilogue.
enum Epi {
    U8(Requantize<u8>),
    I8(Requantize<i8>),
    I32(Int32Out),
}

pub struct QConv {
    /// Spatial attributes (QLinearConv and ConvInteger have Conv's).
    pub attrs: qopt_ir::op::Conv,
    pub x_zp: Operand,
    pub w: Operand,
    pub w_zp: Operand,
    /// `None`: ConvInteger (i32 output).
    pub requant: Option<Requant>,
    prepared: Option<Prepared>,
    epi: Option<Epi>,
    scratch_u8: Vec<u8>,
    scratch_i8: Vec<i8>,
}

/// The weights as i8 with their zero points (u8 weights shift by 128, exactly).
fn weights_i8(w: &Tensor, zp: Option<&Tensor>) -> Result<(Vec<i8>, Vec<i32>), OpError> {
    let mut zps = match zp {
        Some(z) => zero_points(z, "w_zero_point")?,
        None => vec![0],
    };
    let data = match w {
        Tensor::I8(a) => crate::ops::contig(a).into_owned(),
        Tensor::U8(a) => {
            if zp.is_some_and(|z| z.dtype() != qopt_ir::DType::U8) {
                bail!("w_zero_point type differs from w (u8)");
            }
            zps.iter_mut().for_each(|z| *z -= 128);
            a.iter().map(|&v| (v as i32 - 128) as i8).collect()
        }
        t => bail!("conv weights must be u8 or i8, got {}", t.dtype()),
    };
    if w.dtype() == qopt_ir::DType::I8 && zp.is_some_and(|z| z.dtype() != qopt_ir::DType::I8) {
        bail!("w_zero_point type differs from w (i8)");
    }
    Ok((data, zps))
}

impl QConv {
    pub fn new(
        attrs: qopt_ir::op::Conv,
        x_zp: Operand,
        w: Operand,
        w_zp: Operand,
        requant: Option<Requant>,
    ) -> QConv {
        QConv {
            attrs,
            x_zp,
            w,
            w_zp,
            requant,
            prepared: None,
            epi: None,
            scratch_u8: vec![],
            scratch_i8: vec![],
        }
    }

    fn clone_attrs_only(&self) -> QConv {
        QConv::new(
            self.attrs.clone(),
            Operand::Absent,
            Operand::Absent,
            Operand::Absent,
            None,
        )
    }

    /// The geometry of this conv for a channels-last input of physical shape `xs`.
    fn geometry(&self, xs: &[usize], ws: &[usize]) -> Result<Conv2dGeometry, OpError> {
        if xs.len() != 4 || ws.len() != 4 {
            bail!("only 2-D convolutions run in integers (X {xs:?}, W {ws:?})");
        }
        let logical = [xs[0], xs[3], xs[1], xs[2]];
        let (g, pad_end) = crate::ops::conv::geometry(&self.attrs, &logical, ws)?;
        let pb: Vec<usize> = g.pad_begin.iter().map(|&p| p.max(0) as usize).collect();
        let params = ConvParams::new([g.kernel[0], g.kernel[1]])
            .stride([g.strides[0], g.strides[1]])
            .dilation([g.dilations[0], g.dilations[1]])
            .pads([pb[0], pb[1], pad_end[0], pad_end[1]])
            .groups(g.group);
        Conv2dGeometry::new(g.batch, xs[1], xs[2], xs[3], g.c_out, params).map_err(kerr)
    }

    fn prepare(
        kind: KernelKind,
        geom: Conv2dGeometry,
        w: &Tensor,
        zp: Option<&Tensor>,
    ) -> Result<Prepared, OpError> {
        let (data, zps) = weights_i8(w, zp)?;
        let zps = per_channel(&zps, geom.out_c, "w_zero_point")?;
        let depthwise = geom.params.groups == geom.in_c && geom.out_c == geom.in_c && geom.in_c > 1;
        Ok(if depthwise {
            Prepared::Depthwise(Depthwise::new(kind, geom, &data, &zps).map_err(kerr)?)
        } else {
            Prepared::Gemm(Conv2d::new(kind, geom, &data, &zps).map_err(kerr)?)
        })
    }

    fn build_epi(&self, ins: &[Option<&Tensor>], channels: usize) -> Result<Epi, OpError> {
        let Some(r) = &self.requant else {
            return Ok(Epi::I32(Int32Out::new(channels, None).map_err(kerr)?));
        };
        let sx = scale1(r.x_scale.req(ins, "x_scale")?, "x_scale")?;
        let sw = per_channel(
            &scales(r.w_scale.req(ins, "w_scale")?, "w_scale")?,
            channels,
            "w_scale",
        )?;
        let sy = scale1(r.y_scale.req(ins, "y_scale")?, "y_scale")?;
        let y_zp = r.y_zp.get(ins);
        let zo = zero_point1(y_zp, "y_zero_point")?;
        let out = match y_zp {
            Some(z) => match QOut::of(z.dtype()) {
                Some(o) => o,
                None => bail!("y_zero_point must be u8 or i8, got {}", z.dtype()),
            },
            None => QOut::U8,
        };
        let bias = match r.bias.get(ins) {
            Some(Tensor::I32(b)) => Some(b.iter().copied().collect::<Vec<i32>>()),
            Some(t) => bail!("the bias must be i32, got {}", t.dtype()),
            None => None,
        };
        let mults: Vec<f32> = sw
            .iter()
            .map(|&w| {
                let m = requant_multiplier(sx, w, sy);
                // A zero weight scale (an all-zero channel) gives 0 = Q(0) - zo whatever the
                // multiplier; the kernels need a positive one.
                if m == 0.0 { f32::MIN_POSITIVE } else { m }
            })
            .collect();
        Ok(match out {
            QOut::U8 => Epi::U8(
                Requantize::new(
                    channels,
                    &mults,
                    bias.as_deref(),
                    zo,
                    r.act.clamp::<u8>(sy, zo),
                )
                .map_err(kerr)?,
            ),
            QOut::I8 => Epi::I8(
                Requantize::new(
                    channels,
                    &mults,
                    bias.as_deref(),
                    zo,
                    r.act.clamp::<i8>(sy, zo),
                )
                .map_err(kerr)?,
            ),
        })
    }

    fn static_epi(&self) -> bool {
        self.requant.as_ref().is_none_or(|r| {
            [&r.x_scale, &r.w_scale, &r.y_scale, &r.y_zp, &r.bias]
                .iter()
                .all(|o| o.is_static())
        })
    }
}

fn run_typed<A: QInt + Element, E: Epilogue>(
    p: &Prepared,
    x: &Tensor,
    za: i32,
    epi: &E,
    scratch: &mut Vec<A>,
) -> Result<Tensor, OpError>
where
    E::Out: Element + Default,
{
    let g = p.geometry();
    let Some(za) = A::checked(za) else {
        bail!("x_zero_point {za} is outside the {} range", A::NAME)
    };
    let xd = qdata::<A>(x)?;
    let mut y = vec![E::Out::default(); g.output_len()];
    match p {
        Prepared::Gemm(c) => c.run(&xd, za, epi, &mut y, scratch),
        Prepared::Depthwise(d) => d.run(&xd, za, epi, &mut y),
    }
    .map_err(kerr)?;
    out_tensor(&[g.batch, g.out_h, g.out_w, g.out_c], y)
}

impl Step for QConv {
    fn prepare(&mut self, kind: KernelKind) -> Result<(), OpError> {
        let (Operand::Const(w), true) = (&self.w, self.w_zp.is_static()) else {
            return Ok(());
        };
        let ws = w.shape();
        if ws.len() != 4 || self.attrs.group < 1 {
            return Ok(()); // reported when it runs
        }
        // Any input size will do: the geometry is replaced at run time.
        let group = self.attrs.group as usize;
        let xs = [1, ws[2], ws[3], ws[1] * group];
        let mut probe = self.clone_attrs_only();
        probe.attrs.pads = vec![];
        probe.attrs.strides = vec![];
        probe.attrs.dilations = vec![];
        probe.attrs.auto_pad = qopt_ir::attr::AutoPad::NotSet;
        let geom = probe.geometry(&xs, ws)?;
        let zp = match &self.w_zp {
            Operand::Const(t) => Some(t.clone()),
            _ => None,
        };
        self.prepared = Some(Self::prepare(kind, geom, w, zp.as_deref())?);
        Ok(())
    }

    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = arg(ins, 0)?;
        let w = self.w.req(ins, "w")?;
        let geom = self.geometry(x.shape(), w.shape())?;
        if !self.w.is_static() || !self.w_zp.is_static() || self.prepared.is_none() {
            self.prepared = Some(Self::prepare(cx.kind, geom, w, self.w_zp.get(ins))?);
        }
        let p = self.prepared.as_mut().expect("prepared above");
        if *p.geometry() != geom {
            p.set_geometry(geom)?;
        }
        if self.epi.is_none() || !self.static_epi() {
            self.epi = Some(self.build_epi(ins, geom.out_c)?);
        }
        let za = zero_point1(self.x_zp.get(ins), "x_zero_point")?;
        let p = self.prepared.as_ref().expect("prepared above");
        let y = match (x.dtype(), self.epi.as_ref().expect("built above")) {
            (qopt_ir::DType::U8, Epi::U8(e)) => {
                run_typed::<u8, _>(p, x, za, e, &mut self.scratch_u8)
            }
            (qopt_ir::DType::U8, Epi::I8(e)) => {
                run_typed::<u8, _>(p, x, za, e, &mut self.scratch_u8)
            }
            (qopt_ir::DType::U8, Epi::I32(e)) => {
                run_typed::<u8, _>(p, x, za, e, &mut self.scratch_u8)
            }
            (qopt_ir::DType::I8, Epi::U8(e)) => {
                run_typed::<i8, _>(p, x, za, e, &mut self.scratch_i8)
            }
            (qopt_ir::DType::I8, Epi::I8(e)) => {
                run_typed::<i8, _>(p, x, za, e, &mut self.scratch_i8)
            }
            (qopt_ir::DType::I8, Epi::I32(e)) => {
                run_typed::<i8, _>(p, x, za, e, &mut self.scratch_i8)
            }
            (d, _) => bail!("conv input must be u8 or i8, got {d}"),
        }?;
        Ok(vec![y])
    }

    fn name(&self) -> String {
        let kind = match &self.prepared {
            Some(Prepared::Depthwise(_)) => "depthwise",
            Some(Prepared::Gemm(c)) if c.geometry().params.kernel == [1, 1] => "1x1",
            _ => "gemm",
        };
        match &self.requant {
            Some(r) => format!("QConv({kind}){}", r.act.suffix()),
            None => format!("ConvInteger({kind})"),
        }
    }
}
