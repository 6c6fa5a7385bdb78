//! The QDQ patterns the integer plan recognises (ONNX Runtime's QDQ node groups, DESIGN.md §7).
//! Each rule returns `Ok(Ok(()))` when it emitted the step (and absorbed the QuantizeLinear, and
//! a fused Relu/Clip), `Ok(Err(Skip::No))` when the node is not its shape, and
//! `Ok(Err(Skip::Because(..)))` with the reason when the node looks quantized but cannot run in
//! integers as written (it then runs in fp32: slower, never wrong).
//!
//! - `DQ(x), DQ(w) [, b] -> Conv|Gemm|MatMul [-> Relu|Clip] -> Q`: one integer kernel, the
//!   activation as a clamp. Weights per tensor or per output channel; the bias is used as is when
//!   it is int32 with scale `x_scale·w_scale` (ONNX Runtime, TFLite), else rounded to that scale.
//! - `DQ(a), DQ(b) -> Add|Mul -> Q`: the rescaling kernel (bit-exact).
//! - `DQ(x) [, constant scalars] -> element-wise op -> Q`: a lookup table (bit-exact).
//! - `DQ(x) -> MaxPool|AveragePool|GlobalAveragePool -> Q`, `DQ(..) -> Concat -> Q`, and ops that
//!   only move elements (`DQ(x) -> Reshape -> Q`): on the quantized data.

use super::qdq::{QParams, rank_of};
use super::{DONE, Lower, NO, StepSpec, Tried, because};
use crate::error::InterpError;
use crate::int8::steps::binary::QBinaryStep;
use crate::int8::steps::concat::QConcat;
use crate::int8::steps::conv::{QConv, Requant};
use crate::int8::steps::gemm::{GemmOut, QGemm};
use crate::int8::steps::lut::{LutStep, Table, dequantized_domain};
use crate::int8::steps::movement::Movement;
use crate::int8::steps::pool::{QAvgPool, QMaxPool, Window};
use crate::int8::steps::{Act, Operand, QOut};
use crate::kernels::int8::BinaryOp;
use qopt_ir::{DType, NodeId, Op, Tensor, ValueId};
use std::sync::Arc;

/// A quantized operand: its run-time value or constant, scale, zero point and dtype.
type QOperand = (Option<ValueId>, Option<Arc<Tensor>>, f32, i32, DType);

/// The quantized end of a pattern: an optional fused activation, then the QuantizeLinear.
pub(crate) struct QTail {
    pub act: Act,
    pub act_node: Option<NodeId>,
    pub q: NodeId,
    pub p: QParams,
}

impl QTail {
    pub fn scale(&self) -> f32 {
        self.p.scales[0]
    }
    pub fn zp(&self) -> i32 {
        self.p.zero_points[0]
    }
    pub fn out(&self) -> QOut {
        self.p.out().expect("q_params is u8/i8")
    }
    /// The output zero point as a tensor of the output type.
    pub fn zp_tensor(&self) -> Tensor {
        match self.out() {
            QOut::U8 => Tensor::scalar(self.zp() as u8),
            QOut::I8 => Tensor::scalar(self.zp() as i8),
        }
    }
    pub fn value(&self) -> ValueId {
        ValueId::new(self.q, 0)
    }
}

fn scalar_f32(v: f32) -> Operand {
    Operand::Const(Arc::new(Tensor::scalar(v)))
}

fn const_scalar(t: Option<&Arc<Tensor>>) -> Option<f32> {
    t.filter(|t| t.len() == 1)
        .and_then(|t| t.scalar_f64())
        .map(|v| v as f32)
}

impl Lower<'_> {
    /// The QuantizeLinear after float value `f`, through a Relu or constant Clip if `act`.
    pub(crate) fn q_tail(&self, f: ValueId, act: bool) -> Result<Option<QTail>, InterpError> {
        let g = self.g;
        if let Some((q, p)) = self.sole_q(f)? {
            return Ok(Some(QTail {
                act: Act::None,
                act_node: None,
                q,
                p,
            }));
        }
        if !act || g.is_graph_output(f) || self.keep.contains(&f) {
            return Ok(None);
        }
        let cons = g.consumers(f);
        if cons.len() != 1 || cons[0].1 != 0 {
            return Ok(None);
        }
        let r = cons[0].0;
        let a = match &g.node(r).op {
            Op::Relu(_) => Act::Relu,
            Op::Clip(_) => {
                let bound = |s: usize, inf: f32| -> Option<f32> {
                    match g.input(r, s) {
                        None => Some(inf),
                        Some(v) => const_scalar(g.const_value(v)),
                    }
                };
                match (bound(1, f32::NEG_INFINITY), bound(2, f32::INFINITY)) {
                    (Some(lo), Some(hi)) if lo <= hi => Act::Clip(lo, hi),
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        Ok(self.sole_q(ValueId::new(r, 0))?.map(|(q, p)| QTail {
            act: a,
            act_node: Some(r),
            q,
            p,
        }))
    }

    fn absorb(&mut self, t: &QTail) {
        self.absorbed.insert(t.q);
        if let Some(a) = t.act_node {
            self.absorbed.insert(a);
        }
    }

    /// Any input of `n` is a DequantizeLinear output.
    fn has_dq_input(&self, n: NodeId) -> bool {
        self.g
            .inputs(n)
            .into_iter()
            .flatten()
            .any(|v| matches!(self.g.node(v.node).op, Op::DequantizeLinear(_)))
    }

    /// The bias of a conv/GEMM in accumulator units `unit[c]` (= x_scale·w_scale[c]·alpha),
    /// as i32: used as is when it is an int32 DequantizeLinear with exactly that scale and zero
    /// point 0, else rounded from its real value times `beta`. `Err(reason)` if unusable.
    fn bias_i32(
        &mut self,
        b: ValueId,
        unit: &[f64],
        beta: f32,
        n: NodeId,
    ) -> Result<Result<Vec<i32>, String>, InterpError> {
        let channels = unit.len();
        if let Some((data, p)) = self.const_dq(Some(b))?
            && data.dtype() == DType::I32
            && beta == 1.0
            && p.zero_points.iter().all(|&z| z == 0)
            && data.len() == channels
        {
            let sc = if p.scales.len() == 1 {
                vec![p.scales[0]; channels]
            } else {
                p.scales.clone()
            };
            let matches = sc.len() == channels
                && sc
                    .iter()
                    .zip(unit)
                    .all(|(&s, &u)| ((s as f64) - u).abs() <= 1e-6 * u.abs());
            if matches {
                return Ok(Ok(data
                    .to_i64_vec()
                    .unwrap_or_default()
                    .iter()
                    .map(|&v| v as i32)
                    .collect()));
            }
        }
        // Real values (a float bias, or one with another scale), rounded to the accumulator.
        let s = self.float_of(b)?;
        let Some(t) = self.slots[s].cst.clone() else {
            return Ok(Err("its bias is not a constant".into()));
        };
        if t.len() != channels && t.len() != 1 {
            return Ok(Err(format!(
                "its bias has shape {:?} for {channels} output channels",
                t.shape()
            )));
        }
        let vals = t.to_f64_vec();
        let mut out = Vec::with_capacity(channels);
        for (c, &u) in unit.iter().enumerate() {
            let v = vals[if vals.len() == 1 { 0 } else { c }] * beta as f64;
            let q = if u > 0.0 {
                (v / u).round_ties_even()
            } else {
                0.0
            };
            if !q.is_finite() || q.abs() > i32::MAX as f64 {
                return Ok(Err(format!("its bias {v} does not fit int32 at scale {u}")));
            }
            out.push(q as i32);
        }
        self.notes.push(format!(
            "{}: bias rounded to int32 at scale x_scale·w_scale",
            self.desc(n)
        ));
        Ok(Ok(out))
    }

    /// Weight parameters along `axis` (per tensor, or per channel along it) as (scales, zps).
    fn weight_params(
        p: &QParams,
        axis: usize,
        channels: usize,
    ) -> Result<(Vec<f32>, Vec<i32>), String> {
        match p.axis {
            None => Ok((vec![p.scales[0]], vec![p.zero_points[0]])),
            Some(a) if a == axis && p.scales.len() == channels => {
                Ok((p.scales.clone(), p.zero_points.clone()))
            }
            Some(a) => Err(format!(
                "its weights are quantized along axis {a}, not along the output channels"
            )),
        }
    }

    fn conv(&mut self, n: NodeId, o: &qopt_ir::op::Conv) -> Tried {
        let g = self.g;
        if !self.has_dq_input(n) {
            return NO;
        }
        let Some((xsrc, xp)) = self.runtime_dq(g.input(n, 0))? else {
            return because("its input is not a per-tensor quantized tensor");
        };
        let Some((w, wp)) = self.const_dq(g.input(n, 1))? else {
            return because("its weights are not a constant DequantizeLinear");
        };
        if w.rank() != 4 || !matches!(w.dtype(), DType::U8 | DType::I8) {
            return because("only 2-D convolutions with u8/i8 weights have an integer kernel");
        }
        let oc = w.shape()[0];
        let (sw, zw) = match Self::weight_params(&wp, 0, oc) {
            Ok(v) => v,
            Err(e) => return because(e),
        };
        let Some(tail) = self.q_tail(ValueId::new(n, 0), true)? else {
            return because("its output is not quantized by a QuantizeLinear");
        };
        let (sx, zx) = xp.per_tensor().expect("runtime DQ is per tensor");
        let unit: Vec<f64> = (0..oc)
            .map(|c| sx as f64 * sw[if sw.len() == 1 { 0 } else { c }] as f64)
            .collect();
        let bias = match g.input(n, 2) {
            None => None,
            Some(b) => match self.bias_i32(b, &unit, 1.0, n)? {
                Ok(v) => Some(v),
                Err(e) => return because(e),
            },
        };
        let w_zp = match &wp.zp_tensor {
            Some(_) => Operand::Const(Arc::new(match w.dtype() {
                DType::U8 => Tensor::from_vec(&[zw.len()], zw.iter().map(|&z| z as u8).collect()),
                _ => Tensor::from_vec(&[zw.len()], zw.iter().map(|&z| z as i8).collect()),
            })),
            None => Operand::Absent,
        };
        let step = QConv::new(
            o.clone(),
            Operand::Const(Arc::new(Tensor::scalar(zx))),
            Operand::Const(w.clone()),
            w_zp,
            Some(Requant {
                x_scale: scalar_f32(sx),
                w_scale: Operand::Const(Arc::new(Tensor::from_vec(&[sw.len()], sw))),
                y_scale: scalar_f32(tail.scale()),
                y_zp: Operand::Const(Arc::new(tail.zp_tensor())),
                bias: bias.map_or(Operand::Absent, |b| {
                    Operand::Const(Arc::new(Tensor::from_vec(&[b.len()], b)))
                }),
                act: tail.act,
            }),
        );
        let xs = self.slot(xsrc)?;
        let xs = self.in_layout(xs, true);
        let out = self.out_slot(tail.value(), true);
        self.absorb(&tail);
        self.steps.push(StepSpec {
            step: Box::new(step),
            ins: vec![Some(xs)],
            outs: vec![Some(out)],
            desc: self.desc(n),
        });
        DONE
    }

    /// Gemm (`trans_b`, `alpha`, `beta`, bias C) and MatMul with a constant or run-time B.
    #[allow(clippy::too_many_arguments)]
    fn matmul_like(
        &mut self,
        n: NodeId,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
        bias: Option<ValueId>,
        label: &'static str,
    ) -> Tried {
        let g = self.g;
        if !self.has_dq_input(n) {
            return NO;
        }
        if trans_a {
            return because("transA has no integer kernel");
        }
        let Some((asrc, ap)) = self.runtime_dq(g.input(n, 0))? else {
            return because("its input A is not a per-tensor quantized tensor");
        };
        let (sa, za) = ap.per_tensor().expect("runtime DQ is per tensor");
        let bv = g.input(n, 1);
        let mut ins = vec![];
        let (b, b_scale, b_zp, nout) = if let Some((w, wp)) = self.const_dq(bv)? {
            if w.rank() != 2 || !matches!(w.dtype(), DType::U8 | DType::I8) {
                return because("its constant B is not a u8/i8 matrix");
            }
            let nout = if trans_b { w.shape()[0] } else { w.shape()[1] };
            let (sw, zw) = match Self::weight_params(&wp, if trans_b { 0 } else { 1 }, nout) {
                Ok(v) => v,
                Err(e) => return because(e),
            };
            let zp = match w.dtype() {
                DType::U8 => Tensor::from_vec(&[zw.len()], zw.iter().map(|&z| z as u8).collect()),
                _ => Tensor::from_vec(&[zw.len()], zw.iter().map(|&z| z as i8).collect()),
            };
            (
                Operand::Const(w.clone()),
                sw,
                Operand::Const(Arc::new(zp)),
                Some(nout),
            )
        } else if let Some((bsrc, bp)) = self.runtime_dq(bv)? {
            if trans_b || bias.is_some() {
                return because("a run-time B with transB or a bias has no integer kernel");
            }
            let (sb, zb) = bp.per_tensor().expect("runtime DQ is per tensor");
            let bs = self.plain(bsrc)?;
            ins.push(Some(bs));
            let zp = match bp.dtype {
                DType::U8 => Tensor::scalar(zb as u8),
                _ => Tensor::scalar(zb as i8),
            };
            (
                Operand::Input(1),
                vec![sb],
                Operand::Const(Arc::new(zp)),
                None,
            )
        } else {
            return because("its input B is neither a constant nor a per-tensor quantized tensor");
        };
        let Some(tail) = self.q_tail(ValueId::new(n, 0), true)? else {
            return because("its output is not quantized by a QuantizeLinear");
        };
        let bias_op = match (bias, nout) {
            (None, _) => Operand::Absent,
            (Some(bv), Some(nout)) => {
                let unit: Vec<f64> = (0..nout)
                    .map(|c| {
                        alpha as f64
                            * sa as f64
                            * b_scale[if b_scale.len() == 1 { 0 } else { c }] as f64
                    })
                    .collect();
                match self.bias_i32(bv, &unit, beta, n)? {
                    Ok(v) => Operand::Const(Arc::new(Tensor::from_vec(&[v.len()], v))),
                    Err(e) => return because(e),
                }
            }
            (Some(_), None) => return because("a bias with a run-time B"),
        };
        let step = QGemm::new(
            Operand::Const(Arc::new(Tensor::scalar(za))),
            b,
            b_zp,
            false,
            trans_b,
            GemmOut::Requant {
                a_scale: scalar_f32(sa),
                b_scale: Operand::Const(Arc::new(Tensor::from_vec(&[b_scale.len()], b_scale))),
                y_scale: scalar_f32(tail.scale()),
                y_zp: Operand::Const(Arc::new(tail.zp_tensor())),
                bias: bias_op,
                alpha,
                act: tail.act,
            },
            label,
        );
        let a_slot = self.plain(asrc)?;
        ins.insert(0, Some(a_slot));
        let out = self.out_slot(tail.value(), false);
        self.absorb(&tail);
        self.steps.push(StepSpec {
            step: Box::new(step),
            ins,
            outs: vec![Some(out)],
            desc: self.desc(n),
        });
        DONE
    }

    /// Operand `v` of a quantized binary op / concat: a run-time quantized tensor or a quantized
    /// constant, with per-tensor parameters.
    fn qoperand(&mut self, v: Option<ValueId>) -> Result<Option<QOperand>, InterpError> {
        if let Some((src, p)) = self.runtime_dq(v)? {
            let (s, z) = p.per_tensor().expect("runtime DQ is per tensor");
            return Ok(Some((Some(src), None, s, z, p.dtype)));
        }
        if let Some((data, p)) = self.const_dq(v)?
            && let Some((s, z)) = p.per_tensor()
            && matches!(data.dtype(), DType::U8 | DType::I8)
        {
            return Ok(Some((None, Some(data), s, z, p.dtype)));
        }
        Ok(None)
    }

    fn binary(&mut self, n: NodeId, op: BinaryOp) -> Tried {
        let g = self.g;
        if !self.has_dq_input(n) {
            return NO;
        }
        let (Some(a), Some(b)) = (self.qoperand(g.input(n, 0))?, self.qoperand(g.input(n, 1))?)
        else {
            return because("an operand is not a per-tensor quantized tensor");
        };
        if a.0.is_none() && b.0.is_none() {
            return NO;
        }
        let Some(tail) = self.q_tail(ValueId::new(n, 0), false)? else {
            return because("its output is not quantized by a QuantizeLinear");
        };
        // Layout: channels-last if a run-time operand is, and the other can follow.
        let mut slots = [None, None];
        for (i, o) in [&a, &b].iter().enumerate() {
            if let Some(v) = o.0 {
                slots[i] = Some(self.slot(v)?);
            }
        }
        let any_nhwc = slots.iter().flatten().any(|&s| self.slots[s].nhwc);
        let follows =
            |lw: &Self, o: &(Option<ValueId>, Option<Arc<Tensor>>, f32, i32, DType)| match (
                &o.0, &o.1,
            ) {
                (Some(v), _) => lw.slots[lw.vslot[v]].nhwc || rank_of(g, *v) == Some(4),
                (None, Some(c)) => c.rank() <= 4,
                _ => false,
            };
        let nhwc = any_nhwc && follows(self, &a) && follows(self, &b);
        let mut ins = vec![];
        let mut operand = |lw: &mut Self,
                           o: &(Option<ValueId>, Option<Arc<Tensor>>, f32, i32, DType)|
         -> Result<Operand, InterpError> {
            Ok(match (&o.0, &o.1) {
                (Some(v), _) => {
                    let s = lw.slot(*v)?;
                    ins.push(Some(lw.in_layout(s, nhwc)));
                    Operand::Input(ins.len() - 1)
                }
                (None, Some(c)) => {
                    if nhwc {
                        let t = super::pad_rank4(c)
                            .and_then(|t| crate::int8::steps::layout::to_nhwc(&t))
                            .map_err(|e| e.at(lw.desc(n)))?;
                        Operand::Const(Arc::new(t))
                    } else {
                        Operand::Const(c.clone())
                    }
                }
                _ => unreachable!("qoperand returns a source or a constant"),
            })
        };
        let ao = operand(self, &a)?;
        let bo = operand(self, &b)?;
        let zp = |z: i32, d: DType| -> Operand {
            Operand::Const(Arc::new(match d {
                DType::I8 => Tensor::scalar(z as i8),
                _ => Tensor::scalar(z as u8),
            }))
        };
        let step = QBinaryStep {
            op,
            a: ao,
            a_scale: scalar_f32(a.2),
            a_zp: zp(a.3, a.4),
            b: bo,
            b_scale: scalar_f32(b.2),
            b_zp: zp(b.3, b.4),
            y_scale: scalar_f32(tail.scale()),
            y_zp: Operand::Const(Arc::new(tail.zp_tensor())),
        };
        let out = self.out_slot(tail.value(), nhwc);
        self.absorb(&tail);
        self.steps.push(StepSpec {
            step: Box::new(step),
            ins,
            outs: vec![Some(out)],
            desc: self.desc(n),
        });
        DONE
    }

    /// An element-wise op of one quantized tensor and constant scalars, as a lookup table.
    fn lut(&mut self, n: NodeId) -> Tried {
        let g = self.g;
        let node = g.node(n);
        if !is_elementwise(&node.op) || node.outputs.len() != 1 {
            return NO;
        }
        let ins = g.inputs(n);
        let mut quantized = None;
        for (k, v) in ins.iter().enumerate() {
            if let Some((src, p)) = self.runtime_dq(*v)? {
                if quantized.is_some() {
                    return NO;
                }
                quantized = Some((k, src, p));
            }
        }
        let Some((k, src, p)) = quantized else {
            return NO;
        };
        let x_rank = rank_of(g, src);
        let mut consts: Vec<Option<Tensor>> = vec![];
        for (i, v) in ins.iter().enumerate() {
            if i == k {
                consts.push(None);
                continue;
            }
            let Some(v) = v else {
                consts.push(None);
                continue;
            };
            let t = if self.dq(*v)?.is_some() || g.const_value(*v).is_some() {
                let s = self.float_of(*v)?;
                self.slots[s].cst.clone()
            } else {
                None
            };
            let Some(t) = t else { return NO };
            if t.len() != 1 || t.rank() > x_rank.unwrap_or(1).max(1) {
                return NO;
            }
            consts.push(Some((*t).clone()));
        }
        let Some((q, qp)) = self.sole_q(ValueId::new(n, 0))? else {
            return because("its output is not quantized by a QuantizeLinear");
        };
        let (s_out, z_out) = qp.per_tensor().expect("q_params is per tensor");
        let out = qp.out().expect("q_params is u8/i8");
        let (s_in, z_in) = p.per_tensor().expect("runtime DQ is per tensor");
        let opset = g.meta.onnx_opset().unwrap_or(21);
        let mut tables = vec![];
        for dt in [DType::U8, DType::I8] {
            let in_range = match dt {
                DType::U8 => (0..=255).contains(&z_in),
                _ => (-128..=127).contains(&z_in),
            };
            if !in_range || (p.zp_tensor.is_some() && p.dtype != dt) {
                continue;
            }
            let domain = Tensor::from_vec(
                &[256],
                dequantized_domain(dt, s_in, z_in).map_err(|e| e.at(self.desc(n)))?,
            );
            let mut args: Vec<Option<&Tensor>> = consts.iter().map(Option::as_ref).collect();
            args[k] = Some(&domain);
            let y = crate::eval::eval_node(&node.op, opset, &args, 1)
                .map_err(|e| InterpError::Node {
                    node: self.desc(n),
                    msg: e.to_string(),
                })?
                .remove(0);
            let Some(yv) = y.as_f32() else {
                return NO;
            };
            let vals: Vec<f32> = yv.iter().copied().collect();
            tables.push(
                Table::from_values(dt, &vals, out, s_out, z_out).map_err(|e| e.at(self.desc(n)))?,
            );
        }
        if tables.is_empty() {
            return because("its input zero point fits neither u8 nor i8");
        }
        let xs = self.slot(src)?;
        let nhwc = self.slots[xs].nhwc;
        let o = self.out_slot(ValueId::new(q, 0), nhwc);
        self.absorbed.insert(q);
        let label = node.op.op_type().to_string();
        self.steps.push(StepSpec {
            step: Box::new(LutStep::new(tables, label)),
            ins: vec![Some(xs)],
            outs: vec![Some(o)],
            desc: self.desc(n),
        });
        DONE
    }

    fn pool(&mut self, n: NodeId) -> Tried {
        let g = self.g;
        let node = g.node(n);
        let Some((src, p)) = self.runtime_dq(g.input(n, 0))? else {
            return NO;
        };
        if (1..node.outputs.len()).any(|s| g.use_count(ValueId::new(n, s)) > 0) {
            return because("its Indices output is used");
        }
        let Some(window) = window_of(&node.op) else {
            return NO;
        };
        if window.global {
            if rank_of(g, src) != Some(4) && rank_of(g, ValueId::new(n, 0)) != Some(4) {
                return because("the input's rank is not known to be 4");
            }
        } else if window.kernel.len() != 2 {
            return because("only 2-D pooling has an integer kernel");
        }
        let Some(tail) = self.q_tail(ValueId::new(n, 0), false)? else {
            return because("its output is not quantized by a QuantizeLinear");
        };
        let (sx, zx) = p.per_tensor().expect("runtime DQ is per tensor");
        let step: Box<dyn crate::int8::steps::Step> = match &node.op {
            Op::MaxPool(_) => {
                let same = (sx, zx, p.dtype) == (tail.scale(), tail.zp(), tail.out().dtype());
                let requant = if same {
                    None
                } else {
                    Some(
                        Table::requantize(p.dtype, sx, zx, tail.out(), tail.scale(), tail.zp())
                            .map_err(|e| e.at(self.desc(n)))?,
                    )
                };
                Box::new(QMaxPool { window, requant })
            }
            op => Box::new(QAvgPool {
                window,
                count_include_pad: matches!(op, Op::AveragePool(o) if o.count_include_pad != 0),
                x_scale: scalar_f32(sx),
                x_zp: Operand::Const(Arc::new(Tensor::scalar(zx))),
                y_scale: scalar_f32(tail.scale()),
                y_zp: Operand::Const(Arc::new(tail.zp_tensor())),
            }),
        };
        let xs = self.slot(src)?;
        let xs = self.in_layout(xs, true);
        let out = self.out_slot(tail.value(), true);
        self.absorb(&tail);
        self.steps.push(StepSpec {
            step,
            ins: vec![Some(xs)],
            outs: vec![Some(out)],
            desc: self.desc(n),
        });
        DONE
    }

    fn concat(&mut self, n: NodeId, axis: i64) -> Tried {
        let g = self.g;
        if !self.has_dq_input(n) {
            return NO;
        }
        let mut ops = vec![];
        for v in g.inputs(n) {
            match self.qoperand(v)? {
                Some(o) => ops.push(o),
                None => return because("an input is not a per-tensor quantized tensor"),
            }
        }
        let Some(tail) = self.q_tail(ValueId::new(n, 0), false)? else {
            return because("its output is not quantized by a QuantizeLinear");
        };
        let mut slots = vec![];
        for o in &ops {
            slots.push(match (&o.0, &o.1) {
                (Some(v), _) => self.slot(*v)?,
                (None, Some(_)) => usize::MAX,
                _ => unreachable!("qoperand returns a source or a constant"),
            });
        }
        let rank = ops.iter().find_map(|o| o.0.and_then(|v| rank_of(g, v)));
        let channel_axis = rank == Some(4) && qopt_ir::normalize_axis(axis, 4) == Some(1);
        let nhwc = channel_axis && slots.iter().all(|&s| s != usize::MAX && self.slots[s].nhwc);
        let mut ins = vec![];
        for (o, &s) in ops.iter().zip(&slots) {
            ins.push(Some(if s == usize::MAX {
                let c = o.1.clone().expect("a constant operand");
                let cs = self.new_slot("concat constant", false);
                self.slots[cs].cst = Some(c);
                cs
            } else {
                self.in_layout(s, nhwc)
            }));
        }
        let phys_axis = if nhwc { 3 } else { axis };
        let step = QConcat::new(
            phys_axis,
            ops.iter().map(|o| (o.2, o.3)).collect(),
            (tail.scale(), tail.zp(), tail.out()),
        );
        let out = self.out_slot(tail.value(), nhwc);
        self.absorb(&tail);
        self.steps.push(StepSpec {
            step: Box::new(step),
            ins,
            outs: vec![Some(out)],
            desc: self.desc(n),
        });
        DONE
    }

    /// Ops that only move elements, on the quantized tensor.
    fn movement(&mut self, n: NodeId) -> Tried {
        let g = self.g;
        let node = g.node(n);
        let Some((src, p)) = self.runtime_dq(g.input(n, 0))? else {
            return NO;
        };
        let ins = g.inputs(n);
        for v in ins.iter().skip(1).flatten() {
            if self.dq(*v)?.is_some() {
                return because("a shape or index input is dequantized");
            }
        }
        let mut tails = vec![];
        for s in 0..node.outputs.len() {
            let v = ValueId::new(n, s);
            if g.use_count(v) == 0 && !g.is_graph_output(v) && !self.keep.contains(&v) {
                tails.push(None);
                continue;
            }
            match self.sole_q(v)? {
                Some(t) => tails.push(Some(t)),
                None => return because("an output is not quantized by a QuantizeLinear"),
            }
        }
        let used: Vec<&(NodeId, QParams)> = tails.iter().flatten().collect();
        let Some(first) = used.first() else { return NO };
        if used.iter().any(|t| t.1 != first.1) {
            return because("its outputs are quantized with different parameters");
        }
        let (sx, zx) = p.per_tensor().expect("runtime DQ is per tensor");
        let qp = &first.1;
        let (sy, zy) = qp.per_tensor().expect("q_params is per tensor");
        let out = qp.out().expect("q_params is u8/i8");
        let requant = if (sx, zx, p.dtype) == (sy, zy, out.dtype()) {
            None
        } else {
            Some(Table::requantize(p.dtype, sx, zx, out, sy, zy).map_err(|e| e.at(self.desc(n)))?)
        };
        let mut step_ins = vec![Some(self.plain(src)?)];
        for v in ins.iter().skip(1) {
            step_ins.push(match v {
                Some(v) => Some(self.plain(*v)?),
                None => None,
            });
        }
        let mut outs = vec![];
        for t in &tails {
            outs.push(match t {
                Some((q, _)) => {
                    self.absorbed.insert(*q);
                    Some(self.out_slot(ValueId::new(*q, 0), false))
                }
                None => None,
            });
        }
        self.steps.push(StepSpec {
            step: Box::new(Movement {
                op: node.op.clone(),
                num_outputs: node.outputs.len(),
                requant,
            }),
            ins: step_ins,
            outs,
            desc: self.desc(n),
        });
        DONE
    }
}

/// The window of a 2-D pool (`None`: not a pool).
pub(crate) fn window_of(op: &Op) -> Option<Window> {
    Some(match op {
        Op::MaxPool(o) => Window {
            kernel: o.kernel_shape.clone(),
            strides: o.strides.clone(),
            dilations: o.dilations.clone(),
            pads: o.pads.clone(),
            auto_pad: o.auto_pad,
            ceil_mode: o.ceil_mode != 0,
            global: false,
        },
        Op::AveragePool(o) => Window {
            kernel: o.kernel_shape.clone(),
            strides: o.strides.clone(),
            dilations: o.dilations.clone(),
            pads: o.pads.clone(),
            auto_pad: o.auto_pad,
            ceil_mode: o.ceil_mode != 0,
            global: false,
        },
        Op::GlobalAveragePool(_) => Window {
            kernel: vec![],
            strides: vec![],
            dilations: vec![],
            pads: vec![],
            auto_pad: qopt_ir::attr::AutoPad::NotSet,
            ceil_mode: false,
            global: true,
        },
        _ => return None,
    })
}

/// Element-wise ops with f32 results that a lookup table can stand for.
pub(crate) fn is_elementwise(op: &Op) -> bool {
    use Op::*;
    matches!(
        op,
        Abs(_)
            | Neg(_)
            | Sqrt(_)
            | Exp(_)
            | Log(_)
            | Reciprocal(_)
            | Floor(_)
            | Ceil(_)
            | Round(_)
            | Sign(_)
            | Sin(_)
            | Cos(_)
            | Tan(_)
            | Atan(_)
            | Erf(_)
            | Sigmoid(_)
            | Tanh(_)
            | Relu(_)
            | Softplus(_)
            | Softsign(_)
            | HardSwish(_)
            | Mish(_)
            | LeakyRelu(_)
            | Elu(_)
            | Celu(_)
            | Selu(_)
            | ThresholdedRelu(_)
            | HardSigmoid(_)
            | Gelu(_)
            | PRelu(_)
            | Clip(_)
            | Add(_)
            | Sub(_)
            | Mul(_)
            | Div(_)
            | Pow(_)
            | Min(_)
            | Max(_)
    )
}

fn is_movement(op: &Op) -> bool {
    use Op::*;
    matches!(
        op,
        Reshape(_)
            | Flatten(_)
            | Squeeze(_)
            | Unsqueeze(_)
            | Transpose(_)
            | Slice(_)
            | Gather(_)
            | Split(_)
            | Expand(_)
            | Tile(_)
            | DepthToSpace(_)
            | SpaceToDepth(_)
            | Identity(_)
            | Dropout(_)
    )
}

/// Tries the QDQ patterns for node `n`.
pub(crate) fn lower(lw: &mut Lower, n: NodeId) -> Tried {
    let op = lw.g.node(n).op.clone();
    match &op {
        Op::Conv(o) => lw.conv(n, o),
        Op::Gemm(o) => {
            let bias = lw.g.input(n, 2);
            lw.matmul_like(
                n,
                o.trans_a != 0,
                o.trans_b != 0,
                o.alpha,
                o.beta,
                bias,
                "QGemm",
            )
        }
        Op::MatMul(_) => lw.matmul_like(n, false, false, 1.0, 1.0, None, "QMatMul"),
        Op::Add(_) | Op::Mul(_) => match lw.lut(n)? {
            Err(super::Skip::No) => lw.binary(
                n,
                if matches!(op, Op::Add(_)) {
                    BinaryOp::Add
                } else {
                    BinaryOp::Mul
                },
            ),
            r => Ok(r),
        },
        Op::MaxPool(_) | Op::AveragePool(_) | Op::GlobalAveragePool(_) => lw.pool(n),
        Op::Concat(o) => lw.concat(n, o.axis),
        Op::Shape(_) | Op::Size(_) => lw.shape_query(n),
        op if is_movement(op) => lw.movement(n),
        op if is_elementwise(op) => lw.lut(n),
        _ => NO,
    }
}
