//! Quantized matrix products: QLinearMatMul, MatMulInteger (ONNX), QGemm (com.microsoft, as ONNX
//! Runtime's QOperator models use it), and the QDQ patterns `DQ(a), DQ(b) [, DQ(c)] -> MatMul|Gemm
//! [-> Relu|Clip] -> Q(y)`, all on the GEMM kernels of `kernels/int8/gemm.rs`:
//! `acc[m, n] = Σ_k (a[m,k] − a_zp)(b[k,n] − b_zp[n]) + bias[n]`, then requantized to y
//! (multiplier `alpha·a_scale·b_scale[n] / y_scale`), or stored as i32 (MatMulInteger), or scaled
//! to f32 (QGemm without y_scale).
//!
//! A is `[..., M, K]` (its leading axes are rows too when B is 2-D); B is `[K, N]` (`[N, K]` with
//! transB), constant B packed once; a B with batch axes (`[..., K, N]`, the same leading axes as
//! A) is packed per batch at run time. Per-row A scales or zero points are refused with an error
//! (the epilogue is per column).

use super::{
    Act, Operand, QOut, Step, StepCx, kerr, out_tensor, per_channel, qdata, scale1, scales,
    zero_point1, zero_points,
};
use crate::error::{OpError, bail};
use crate::kernels::int8::{
    ActMatrix, BLayout, DequantizeOut, Epilogue, Int32Out, KernelKind, OutMatrix, PackedB, QInt,
    Requantize, gemm, requant_multiplier,
};
use crate::ops::arg;
use qopt_ir::{DType, Element, Tensor};

/// What the accumulators become.
#[derive(Clone, Debug)]
pub enum GemmOut {
    /// Requantized to y (QLinearMatMul, QGemm with y, the QDQ patterns).
    Requant {
        a_scale: Operand,
        b_scale: Operand,
        y_scale: Operand,
        y_zp: Operand,
        bias: Operand,
        alpha: f32,
        act: Act,
    },
    /// f32 `alpha·a_scale·b_scale[n]·acc` (QGemm without y_scale).
    Float {
        a_scale: Operand,
        b_scale: Operand,
        bias: Operand,
        alpha: f32,
    },
    /// The i32 accumulators (MatMulInteger).
    Int32,
}

pub struct QGemm {
    pub a_zp: Operand,
    pub b: Operand,
    pub b_zp: Operand,
    /// B is `[N, K]` (Gemm transB=1).
    pub trans_b: bool,
    /// A is `[K, M]` (Gemm transA=1; 2-D only).
    pub trans_a: bool,
    pub out: GemmOut,
    /// Constant B, packed: (packed, k, n).
    packed: Option<PackedB>,
    epi: Option<Epi>,
    label: &'static str,
}

enum Epi {
    U8(Requantize<u8>),
    I8(Requantize<i8>),
    I32(Int32Out),
    F32(DequantizeOut),
}

fn pack(
    kind: KernelKind,
    b: &[&Tensor],
    zp: Option<&Tensor>,
    trans_b: bool,
) -> Result<PackedB, OpError> {
    // `b` is one 2-D matrix (of a batch): its data as a tensor view and shape.
    let t = b[0];
    let s = t.shape();
    if s.len() != 2 {
        bail!("B must be a matrix here, got shape {s:?}");
    }
    let (k, n, layout) = if trans_b {
        (s[1], s[0], BLayout::NxK)
    } else {
        (s[0], s[1], BLayout::KxN)
    };
    let zps = match zp {
        Some(z) => per_channel(&zero_points(z, "b_zero_point")?, n, "b_zero_point")?,
        None => vec![0; n],
    };
    match t {
        Tensor::I8(_) => PackedB::new(kind, &qdata::<i8>(t)?, k, n, layout, &zps),
        Tensor::U8(_) => PackedB::new_u8(kind, &qdata::<u8>(t)?, k, n, layout, &zps),
        t => bail!("B must be u8 or i8, got {}", t.dtype()),
    }
    .map_err(kerr)
}

impl QGemm {
    pub fn new(
        a_zp: Operand,
        b: Operand,
        b_zp: Operand,
        trans_a: bool,
        trans_b: bool,
        out: GemmOut,
        label: &'static str,
    ) -> QGemm {
        QGemm {
            a_zp,
            b,
            b_zp,
            trans_a,
            trans_b,
            out,
            packed: None,
            epi: None,
            label,
        }
    }

    fn static_epi(&self) -> bool {
        match &self.out {
            GemmOut::Requant {
                a_scale,
                b_scale,
                y_scale,
                y_zp,
                bias,
                ..
            } => [a_scale, b_scale, y_scale, y_zp, bias]
                .iter()
                .all(|o| o.is_static()),
            GemmOut::Float {
                a_scale,
                b_scale,
                bias,
                ..
            } => [a_scale, b_scale, bias].iter().all(|o| o.is_static()),
            GemmOut::Int32 => true,
        }
    }

    fn build_epi(&self, ins: &[Option<&Tensor>], n: usize) -> Result<Epi, OpError> {
        let bias_of = |b: &Operand| -> Result<Option<Vec<i32>>, OpError> {
            match b.get(ins) {
                None => Ok(None),
                Some(Tensor::I32(a)) => Ok(Some(per_channel(
                    &a.iter().copied().collect::<Vec<_>>(),
                    n,
                    "bias",
                )?)),
                Some(t) => bail!("the bias must be i32, got {}", t.dtype()),
            }
        };
        let a_scale1 = |a: &Operand| -> Result<f32, OpError> {
            let s = scales(a.req(ins, "a_scale")?, "a_scale")?;
            if s.len() != 1 {
                bail!("per-row a_scale ({} values) is not supported", s.len());
            }
            Ok(s[0])
        };
        match &self.out {
            GemmOut::Int32 => Ok(Epi::I32(Int32Out::new(n, None).map_err(kerr)?)),
            GemmOut::Float {
                a_scale,
                b_scale,
                bias,
                alpha,
            } => {
                let sa = a_scale1(a_scale)?;
                let sb = per_channel(
                    &scales(b_scale.req(ins, "b_scale")?, "b_scale")?,
                    n,
                    "b_scale",
                )?;
                let s: Vec<f32> = sb
                    .iter()
                    .map(|&b| ((*alpha as f64) * sa as f64 * b as f64) as f32)
                    .collect();
                Ok(Epi::F32(
                    DequantizeOut::new(n, &s, bias_of(bias)?.as_deref()).map_err(kerr)?,
                ))
            }
            GemmOut::Requant {
                a_scale,
                b_scale,
                y_scale,
                y_zp,
                bias,
                alpha,
                act,
            } => {
                let sa = a_scale1(a_scale)?;
                let sb = per_channel(
                    &scales(b_scale.req(ins, "b_scale")?, "b_scale")?,
                    n,
                    "b_scale",
                )?;
                let sy = scale1(y_scale.req(ins, "y_scale")?, "y_scale")?;
                let zo_t = y_zp.get(ins);
                let zo = zero_point1(zo_t, "y_zero_point")?;
                let mults: Vec<f32> = sb
                    .iter()
                    .map(|&b| {
                        let m = requant_multiplier(sa * *alpha, b, sy);
                        if m == 0.0 { f32::MIN_POSITIVE } else { m }
                    })
                    .collect();
                let bias = bias_of(bias)?;
                let out = match zo_t {
                    Some(z) => match QOut::of(z.dtype()) {
                        Some(o) => o,
                        None => bail!("y_zero_point must be u8 or i8, got {}", z.dtype()),
                    },
                    None => QOut::U8,
                };
                Ok(match out {
                    QOut::U8 => Epi::U8(
                        Requantize::new(n, &mults, bias.as_deref(), zo, act.clamp::<u8>(sy, zo))
                            .map_err(kerr)?,
                    ),
                    QOut::I8 => Epi::I8(
                        Requantize::new(n, &mults, bias.as_deref(), zo, act.clamp::<i8>(sy, zo))
                            .map_err(kerr)?,
                    ),
                })
            }
        }
    }
}

/// Runs `rows x K` activations against one packed B into `out` (`rows x N`).
fn run_rows<A: QInt + Element, E: Epilogue>(
    a: &[A],
    rows: usize,
    za: A,
    b: &PackedB,
    epi: &E,
    out: &mut [E::Out],
) -> Result<(), OpError> {
    let am = ActMatrix {
        data: a,
        rows,
        stride: b.k(),
        zero_point: za,
    };
    let mut om = OutMatrix {
        data: out,
        stride: b.n(),
    };
    gemm(&am, b, epi, &mut om).map_err(kerr)
}

/// The whole product for one activation type and epilogue.
fn run_typed<A: QInt + Element, E: Epilogue>(
    a: &Tensor,
    za: i32,
    bs: &[PackedB],
    epi: &E,
    out_shape: &[usize],
) -> Result<Tensor, OpError>
where
    E::Out: Element,
{
    let Some(za) = A::checked(za) else {
        bail!("a_zero_point {za} is outside the {} range", A::NAME)
    };
    let ad = qdata::<A>(a)?;
    let total: usize = out_shape.iter().product();
    let mut y = vec![E::Out::default(); total];
    let (k, n) = (bs[0].k(), bs[0].n());
    let rows_total = ad.len() / k.max(1);
    let per = rows_total / bs.len();
    for (i, b) in bs.iter().enumerate() {
        run_rows(
            &ad[i * per * k..(i + 1) * per * k],
            per,
            za,
            b,
            epi,
            &mut y[i * per * n..(i + 1) * per * n],
        )?;
    }
    out_tensor(out_shape, y)
}

/// Splits a batched B `[..., K, N]` into matrices.
fn matrices(t: &Tensor) -> Result<Vec<Tensor>, OpError> {
    let s = t.shape();
    let (k, n) = (s[s.len() - 2], s[s.len() - 1]);
    let batches: usize = s[..s.len() - 2].iter().product();
    let flat = crate::ops::shape::with_shape(t, &[batches, k, n])?;
    (0..batches)
        .map(|i| {
            Ok(qopt_ir::dispatch_tensor!(&flat, a => {
                Element::wrap(a.index_axis(ndarray::Axis(0), i).to_owned().into_dyn())
            }))
        })
        .collect()
}

impl Step for QGemm {
    fn prepare(&mut self, kind: KernelKind) -> Result<(), OpError> {
        if let (Operand::Const(b), true) = (&self.b, self.b_zp.is_static())
            && b.rank() == 2
        {
            let zp = match &self.b_zp {
                Operand::Const(t) => Some(t.clone()),
                _ => None,
            };
            self.packed = Some(pack(kind, &[b], zp.as_deref(), self.trans_b)?);
        }
        Ok(())
    }

    fn run(&mut self, cx: &mut StepCx, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let mut a = arg(ins, 0)?;
        let transposed;
        if self.trans_a {
            if a.rank() != 2 {
                bail!("transA needs a matrix, got shape {:?}", a.shape());
            }
            transposed = crate::ops::transpose::run(&[1, 0], a)?.remove(0);
            a = &transposed;
        }
        let b = self.b.req(ins, "B")?;
        let b_zp = self.b_zp.get(ins);
        if b.rank() < 2 || a.rank() < 1 {
            bail!(
                "A {:?} and B {:?} do not form a matrix product",
                a.shape(),
                b.shape()
            );
        }
        let a_shape: Vec<usize> = if a.rank() == 1 {
            vec![1, a.shape()[0]]
        } else {
            a.shape().to_vec()
        };
        let bs = b.shape();
        let (k, n) = if self.trans_b {
            (bs[bs.len() - 1], bs[bs.len() - 2])
        } else {
            (bs[bs.len() - 2], bs[bs.len() - 1])
        };
        if a_shape[a_shape.len() - 1] != k {
            bail!("A {:?} and B {:?} differ in K", a.shape(), b.shape());
        }
        let packed: Vec<PackedB>;
        let b_batches = bs[..bs.len() - 2].to_vec();
        if !b_batches.is_empty() {
            if self.trans_b {
                bail!("transB with a batched B is not supported");
            }
            if a_shape.len() != bs.len() || a_shape[..a_shape.len() - 2] != b_batches[..] {
                bail!(
                    "batched A {:?} and B {:?} must have the same leading axes",
                    a.shape(),
                    b.shape()
                );
            }
            packed = matrices(b)?
                .iter()
                .map(|m| pack(cx.kind, &[m], b_zp, false))
                .collect::<Result<_, _>>()?;
        } else if self.b.is_static() && self.b_zp.is_static() {
            if self.packed.is_none() {
                self.packed = Some(pack(cx.kind, &[b], b_zp, self.trans_b)?);
            }
            packed = vec![];
        } else {
            packed = vec![pack(cx.kind, &[b], b_zp, self.trans_b)?];
        }
        let bs_ref: &[PackedB] = if packed.is_empty() {
            std::slice::from_ref(self.packed.as_ref().expect("packed above"))
        } else {
            &packed
        };
        if self.epi.is_none() || !self.static_epi() {
            self.epi = Some(self.build_epi(ins, n)?);
        }
        let za_t = self.a_zp.get(ins);
        if za_t.is_some_and(|z| z.len() != 1) {
            bail!("per-row a_zero_point is not supported");
        }
        let za = zero_point1(za_t, "a_zero_point")?;
        let mut out_shape = a_shape.clone();
        *out_shape.last_mut().expect("rank >= 2") = n;
        let a_view;
        let a = if a.rank() == 1 {
            a_view = crate::ops::shape::with_shape(a, &a_shape)?;
            &a_view
        } else {
            a
        };
        let y = match (a.dtype(), self.epi.as_ref().expect("built above")) {
            (DType::U8, Epi::U8(e)) => run_typed::<u8, _>(a, za, bs_ref, e, &out_shape),
            (DType::U8, Epi::I8(e)) => run_typed::<u8, _>(a, za, bs_ref, e, &out_shape),
            (DType::U8, Epi::I32(e)) => run_typed::<u8, _>(a, za, bs_ref, e, &out_shape),
            (DType::U8, Epi::F32(e)) => run_typed::<u8, _>(a, za, bs_ref, e, &out_shape),
            (DType::I8, Epi::U8(e)) => run_typed::<i8, _>(a, za, bs_ref, e, &out_shape),
            (DType::I8, Epi::I8(e)) => run_typed::<i8, _>(a, za, bs_ref, e, &out_shape),
            (DType::I8, Epi::I32(e)) => run_typed::<i8, _>(a, za, bs_ref, e, &out_shape),
            (DType::I8, Epi::F32(e)) => run_typed::<i8, _>(a, za, bs_ref, e, &out_shape),
            (d, _) => bail!("A must be u8 or i8, got {d}"),
        }?;
        // A 1-D A drops its row axis again, as MatMul does.
        let y = if arg(ins, 0)?.rank() == 1 && !self.trans_a {
            crate::ops::shape::with_shape(&y, &out_shape[1..])?
        } else {
            y
        };
        Ok(vec![y])
    }

    fn name(&self) -> String {
        let act = match &self.out {
            GemmOut::Requant { act, .. } => act.suffix(),
            _ => "",
        };
        format!("{}{act}", self.label)
    }
}
