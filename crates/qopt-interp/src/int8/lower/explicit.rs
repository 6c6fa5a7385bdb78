//! The explicit integer operators (ONNX QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger,
//! DynamicQuantizeLinear; com.microsoft QLinearAdd, QLinearMul, QLinearGlobalAveragePool, QGemm,
//! QLinearConcat, QLinearAveragePool, QLinearSoftmax, QLinearSigmoid, QLinearLeakyRelu as ONNX
//! Runtime's QOperator models and `dynamic` models use them). Each maps its inputs onto the
//! operands of the matching integer step: constants stay constants (packed weights, an epilogue
//! built once), other inputs are read at run time (the ONNX node tests pass even the scales as
//! graph inputs). These ops have no fp32 fallback, so malformed ones are errors naming the node.

use super::{DONE, Lower, NO, StepSpec, Tried};
use crate::error::InterpError;
use crate::int8::steps::binary::QBinaryStep;
use crate::int8::steps::concat::QConcat;
use crate::int8::steps::conv::{QConv, Requant};
use crate::int8::steps::gemm::{GemmOut, QGemm};
use crate::int8::steps::island::Island;
use crate::int8::steps::pool::{QAvgPool, Window};
use crate::int8::steps::quantize::DynamicQuantize;
use crate::int8::steps::{Act, Operand, QOut, Step, scale1, zero_point1};
use crate::kernels::int8::BinaryOp;
use qopt_ir::attr::{Attr, AutoPad};
use qopt_ir::op::Custom;
use qopt_ir::{NodeId, Op, ValueId};

/// Step inputs being collected for one node.
struct Wiring {
    ins: Vec<Option<usize>>,
}

impl Wiring {
    /// Operand for input `slot` of `n`: a constant, absent, or the next step input.
    fn operand(&mut self, lw: &mut Lower, n: NodeId, slot: usize) -> Result<Operand, InterpError> {
        let g = lw.g;
        Ok(match g.input(n, slot) {
            None => Operand::Absent,
            Some(v) => match g.const_value(v) {
                Some(t) => Operand::Const(t.clone()),
                None => {
                    self.ins.push(Some(lw.float_of(v)?));
                    Operand::Input(self.ins.len() - 1)
                }
            },
        })
    }
}

fn int_attr(c: &Custom, name: &str, default: i64) -> i64 {
    c.attrs
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, a)| match a {
            Attr::Int(v) => Some(*v),
            _ => None,
        })
        .unwrap_or(default)
}

fn float_attr(c: &Custom, name: &str, default: f32) -> f32 {
    c.attrs
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, a)| match a {
            Attr::Float(v) => Some(*v),
            _ => None,
        })
        .unwrap_or(default)
}

fn ints_attr(c: &Custom, name: &str) -> Vec<i64> {
    c.attrs
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, a)| match a {
            Attr::Ints(v) => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn auto_pad_attr(c: &Custom) -> AutoPad {
    match c
        .attrs
        .iter()
        .find(|(k, _)| k == "auto_pad")
        .map(|(_, a)| a)
    {
        Some(Attr::String(s)) => match s.as_str() {
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            _ => AutoPad::NotSet,
        },
        _ => AutoPad::NotSet,
    }
}

impl Lower<'_> {
    fn push(&mut self, n: NodeId, step: Box<dyn Step>, w: Wiring, nhwc_out: bool, outputs: usize) {
        let outs = (0..outputs)
            .map(|s| {
                let v = ValueId::new(n, s);
                let g = self.g;
                (g.use_count(v) > 0 || g.is_graph_output(v) || self.keep.contains(&v))
                    .then(|| self.out_slot(v, nhwc_out))
            })
            .collect();
        self.steps.push(StepSpec {
            step,
            ins: w.ins,
            outs,
            desc: self.desc(n),
        });
    }

    /// The first input of `n` as a step input in the given layout.
    fn first(&mut self, n: NodeId, nhwc: bool) -> Result<Wiring, InterpError> {
        let v = self.g.input(n, 0).ok_or_else(|| InterpError::Node {
            node: self.desc(n),
            msg: "missing input 0".into(),
        })?;
        let s = self.float_of(v)?;
        Ok(Wiring {
            ins: vec![Some(self.in_layout(s, nhwc))],
        })
    }

    fn conv_attrs(o: &qopt_ir::op::QLinearConv) -> qopt_ir::op::Conv {
        qopt_ir::op::Conv {
            auto_pad: o.auto_pad,
            dilations: o.dilations.clone(),
            group: o.group,
            kernel_shape: o.kernel_shape.clone(),
            pads: o.pads.clone(),
            strides: o.strides.clone(),
        }
    }

    /// Layout for an element-wise op of two operands: channels-last when a stored operand is
    /// and the other is rank 4 too.
    fn pair_layout(&mut self, n: NodeId, a: usize, b: usize) -> Result<bool, InterpError> {
        let g = self.g;
        let mut nhwc = false;
        let mut all4 = true;
        for s in [a, b] {
            let Some(v) = g.input(n, s) else { continue };
            if g.const_value(v).is_some() {
                continue;
            }
            let sl = self.float_of(v)?;
            nhwc |= self.slots[sl].nhwc;
            all4 &= self.slots[sl].nhwc || super::qdq::rank_of(g, v) == Some(4);
        }
        Ok(nhwc && all4)
    }
}

/// Tries the explicit integer operators for node `n`.
pub(crate) fn lower(lw: &mut Lower, n: NodeId) -> Tried {
    let g = lw.g;
    let op = g.node(n).op.clone();
    let outputs = g.node(n).outputs.len();
    match &op {
        Op::QLinearConv(o) => {
            let mut w = lw.first(n, true)?;
            let x_scale = w.operand(lw, n, 1)?;
            let x_zp = w.operand(lw, n, 2)?;
            let wt = w.operand(lw, n, 3)?;
            let w_scale = w.operand(lw, n, 4)?;
            let w_zp = w.operand(lw, n, 5)?;
            let y_scale = w.operand(lw, n, 6)?;
            let y_zp = w.operand(lw, n, 7)?;
            let bias = w.operand(lw, n, 8)?;
            let step = QConv::new(
                Lower::conv_attrs(o),
                x_zp,
                wt,
                w_zp,
                Some(Requant {
                    x_scale,
                    w_scale,
                    y_scale,
                    y_zp,
                    bias,
                    act: Act::None,
                }),
            );
            lw.push(n, Box::new(step), w, true, outputs);
            DONE
        }
        Op::ConvInteger(o) => {
            let mut w = lw.first(n, true)?;
            let wt = w.operand(lw, n, 1)?;
            let x_zp = w.operand(lw, n, 2)?;
            let w_zp = w.operand(lw, n, 3)?;
            let attrs = qopt_ir::op::Conv {
                auto_pad: o.auto_pad,
                dilations: o.dilations.clone(),
                group: o.group,
                kernel_shape: o.kernel_shape.clone(),
                pads: o.pads.clone(),
                strides: o.strides.clone(),
            };
            lw.push(
                n,
                Box::new(QConv::new(attrs, x_zp, wt, w_zp, None)),
                w,
                true,
                outputs,
            );
            DONE
        }
        Op::QLinearMatMul(_) => {
            let mut w = lw.first(n, false)?;
            let a_scale = w.operand(lw, n, 1)?;
            let a_zp = w.operand(lw, n, 2)?;
            let b = w.operand(lw, n, 3)?;
            let b_scale = w.operand(lw, n, 4)?;
            let b_zp = w.operand(lw, n, 5)?;
            let y_scale = w.operand(lw, n, 6)?;
            let y_zp = w.operand(lw, n, 7)?;
            let out = GemmOut::Requant {
                a_scale,
                b_scale,
                y_scale,
                y_zp,
                bias: Operand::Absent,
                alpha: 1.0,
                act: Act::None,
            };
            let step = QGemm::new(a_zp, b, b_zp, false, false, out, "QLinearMatMul");
            lw.push(n, Box::new(step), w, false, outputs);
            DONE
        }
        Op::MatMulInteger(_) => {
            let mut w = lw.first(n, false)?;
            let b = w.operand(lw, n, 1)?;
            let a_zp = w.operand(lw, n, 2)?;
            let b_zp = w.operand(lw, n, 3)?;
            let step = QGemm::new(a_zp, b, b_zp, false, false, GemmOut::Int32, "MatMulInteger");
            lw.push(n, Box::new(step), w, false, outputs);
            DONE
        }
        Op::QLinearAdd(_) | Op::QLinearMul(_) => {
            let nhwc = lw.pair_layout(n, 0, 3)?;
            let mut w = Wiring { ins: vec![] };
            let operand = |lw: &mut Lower,
                           w: &mut Wiring,
                           slot: usize,
                           data: bool|
             -> Result<Operand, InterpError> {
                let Some(v) = g.input(n, slot) else {
                    return Ok(Operand::Absent);
                };
                if let Some(t) = g.const_value(v) {
                    if data && nhwc {
                        let t = super::pad_rank4(t)
                            .and_then(|t| crate::int8::steps::layout::to_nhwc(&t))
                            .map_err(|e| e.at(lw.desc(n)))?;
                        return Ok(Operand::Const(std::sync::Arc::new(t)));
                    }
                    return Ok(Operand::Const(t.clone()));
                }
                let s = lw.float_of(v)?;
                w.ins
                    .push(Some(if data { lw.in_layout(s, nhwc) } else { s }));
                Ok(Operand::Input(w.ins.len() - 1))
            };
            let step = QBinaryStep {
                op: if matches!(op, Op::QLinearAdd(_)) {
                    BinaryOp::Add
                } else {
                    BinaryOp::Mul
                },
                a: operand(lw, &mut w, 0, true)?,
                a_scale: operand(lw, &mut w, 1, false)?,
                a_zp: operand(lw, &mut w, 2, false)?,
                b: operand(lw, &mut w, 3, true)?,
                b_scale: operand(lw, &mut w, 4, false)?,
                b_zp: operand(lw, &mut w, 5, false)?,
                y_scale: operand(lw, &mut w, 6, false)?,
                y_zp: operand(lw, &mut w, 7, false)?,
            };
            lw.push(n, Box::new(step), w, nhwc, outputs);
            DONE
        }
        Op::QLinearGlobalAveragePool(o) => {
            // channels_last=1: the tensor is stored [N, H, W, C] already.
            let nhwc = o.channels_last == 0;
            let mut w = lw.first(n, nhwc)?;
            let step = QAvgPool {
                window: Window {
                    kernel: vec![],
                    strides: vec![],
                    dilations: vec![],
                    pads: vec![],
                    auto_pad: AutoPad::NotSet,
                    ceil_mode: false,
                    global: true,
                },
                count_include_pad: false,
                x_scale: w.operand(lw, n, 1)?,
                x_zp: w.operand(lw, n, 2)?,
                y_scale: w.operand(lw, n, 3)?,
                y_zp: w.operand(lw, n, 4)?,
            };
            lw.push(n, Box::new(step), w, nhwc, outputs);
            DONE
        }
        Op::DynamicQuantizeLinear(_) => {
            let w = lw.first(n, false)?;
            lw.push(n, Box::new(DynamicQuantize), w, false, outputs);
            DONE
        }
        Op::Custom(c) if c.domain == "com.microsoft" => custom(lw, n, c, outputs),
        _ => NO,
    }
}

fn custom(lw: &mut Lower, n: NodeId, c: &Custom, outputs: usize) -> Tried {
    let g = lw.g;
    match c.op_type.as_str() {
        "QGemm" => {
            let mut w = lw.first(n, false)?;
            let a_scale = w.operand(lw, n, 1)?;
            let a_zp = w.operand(lw, n, 2)?;
            let b = w.operand(lw, n, 3)?;
            let b_scale = w.operand(lw, n, 4)?;
            let b_zp = w.operand(lw, n, 5)?;
            let bias = w.operand(lw, n, 6)?;
            let alpha = float_attr(c, "alpha", 1.0);
            let out = if g.input(n, 7).is_some() {
                GemmOut::Requant {
                    a_scale,
                    b_scale,
                    y_scale: w.operand(lw, n, 7)?,
                    y_zp: w.operand(lw, n, 8)?,
                    bias,
                    alpha,
                    act: Act::None,
                }
            } else {
                GemmOut::Float {
                    a_scale,
                    b_scale,
                    bias,
                    alpha,
                }
            };
            let step = QGemm::new(
                a_zp,
                b,
                b_zp,
                int_attr(c, "transA", 0) != 0,
                int_attr(c, "transB", 0) != 0,
                out,
                "QGemm",
            );
            lw.push(n, Box::new(step), w, false, outputs);
            DONE
        }
        "QLinearAveragePool" => {
            let nhwc = int_attr(c, "channels_last", 0) == 0;
            let mut w = lw.first(n, nhwc)?;
            let step = QAvgPool {
                window: Window {
                    kernel: ints_attr(c, "kernel_shape"),
                    strides: ints_attr(c, "strides"),
                    dilations: vec![],
                    pads: ints_attr(c, "pads"),
                    auto_pad: auto_pad_attr(c),
                    ceil_mode: int_attr(c, "ceil_mode", 0) != 0,
                    global: false,
                },
                count_include_pad: int_attr(c, "count_include_pad", 0) != 0,
                x_scale: w.operand(lw, n, 1)?,
                x_zp: w.operand(lw, n, 2)?,
                y_scale: w.operand(lw, n, 3)?,
                y_zp: w.operand(lw, n, 4)?,
            };
            lw.push(n, Box::new(step), w, nhwc, outputs);
            DONE
        }
        "QLinearConcat" => {
            // Inputs: Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input.
            let desc = lw.desc(n);
            let err = |msg: &str| InterpError::Node {
                node: desc.clone(),
                msg: msg.to_string(),
            };
            let cst = |s: usize| g.input(n, s).and_then(|v| g.const_value(v)).cloned();
            let (Some(ys), yz) = (cst(0), cst(1)) else {
                return Err(err("QLinearConcat needs constant output parameters"));
            };
            let sy = scale1(&ys, "Y_scale").map_err(|e| err(&e.0))?;
            let zy = zero_point1(yz.as_deref(), "Y_zero_point").map_err(|e| err(&e.0))?;
            let out = yz
                .as_ref()
                .and_then(|t| QOut::of(t.dtype()))
                .unwrap_or(QOut::U8);
            let count = g.inputs(n).len().saturating_sub(2) / 3;
            let mut params = vec![];
            let mut ins = vec![];
            for i in 0..count {
                let (Some(v), Some(s)) = (g.input(n, 2 + 3 * i), cst(3 + 3 * i)) else {
                    return Err(err("QLinearConcat needs constant input scales"));
                };
                let z = cst(4 + 3 * i);
                params.push((
                    scale1(&s, "X_scale").map_err(|e| err(&e.0))?,
                    zero_point1(z.as_deref(), "X_zero_point").map_err(|e| err(&e.0))?,
                ));
                ins.push(Some(lw.plain(v)?));
            }
            let axis = int_attr(c, "axis", 0);
            lw.push(
                n,
                Box::new(QConcat::new(axis, params, (sy, zy, out))),
                Wiring { ins },
                false,
                outputs,
            );
            DONE
        }
        "QLinearSoftmax" | "QLinearSigmoid" | "QLinearLeakyRelu" => {
            let op = match c.op_type.as_str() {
                "QLinearSoftmax" => {
                    // The `opset` attribute says which Softmax semantics the model was exported
                    // with (coerced to 2-D before opset 13).
                    let axis = int_attr(c, "axis", -1);
                    Op::Softmax(qopt_ir::op::Softmax { axis })
                }
                "QLinearSigmoid" => Op::Sigmoid(Default::default()),
                _ => Op::LeakyRelu(qopt_ir::op::LeakyRelu {
                    alpha: float_attr(c, "alpha", 0.01),
                }),
            };
            let mut w = lw.first(n, false)?;
            let step = Island {
                op,
                x_scale: w.operand(lw, n, 1)?,
                x_zp: w.operand(lw, n, 2)?,
                y_scale: w.operand(lw, n, 3)?,
                y_zp: w.operand(lw, n, 4)?,
            };
            lw.push(n, Box::new(step), w, false, outputs);
            DONE
        }
        _ => NO,
    }
}
