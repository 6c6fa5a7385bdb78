//! `dynamic`: post-training dynamic quantization, for models (transformers, LSTMs) whose
//! activation ranges vary too much per input for fixed scales, and which need no
//! calibration data.
//!
//! Weights are quantized ahead of time (int8 symmetric, [-127, 127], zero point 0, per
//! output column or channel by default, per tensor with `per-channel=false`); activations
//! are quantized at run time by DynamicQuantizeLinear (uint8, the input's own min/max).
//! The form is ONNX Runtime's `quantize_dynamic` (`onnxruntime/quantization/operators/
//! matmul.py` `MatMulInteger`, `conv.py` `ConvInteger`):
//!
//! ```text
//! x_q, x_s, x_zp = DynamicQuantizeLinear(x)          one per activation, shared by its users
//! acc  = MatMulInteger(x_q, W_q, x_zp, W_zp)          int32 (ConvInteger for Conv)
//! y    = Cast<float>(acc) * (x_s * W_s)               W_s a scalar or one per column/channel
//! y    = y + bias                                      Gemm C (times beta), Conv B
//! ```
//!
//! Weights are per tensor by default, as `quantize_dynamic`'s default: ONNX Runtime's
//! u8 x s8 integer kernels on x86 CPUs without VNNI multiply with `pmaddubsw`, whose
//! 16-bit pair sums saturate when weights use the full [-127, 127] grid against large
//! activations; per-channel scales put every channel at full range and saturate often
//! (on the transformer test, 8% output error against 2% per tensor). `per-channel=true`
//! with `reduce-range=true` (7-bit weights, ONNX Runtime's own advice for such CPUs)
//! avoids that and beats per tensor slightly.
//!
//! Symmetric weights have zero point 0 everywhere, so a per-channel scale needs only the
//! float multiply: the integer op gets a scalar zero point, which ONNX Runtime's ConvInteger
//! requires. MatMul with a constant B, Gemm with a constant B (transposed ahead of time
//! when `transB`, alpha folded into the scale) and, with `conv=true`, Conv are rewritten;
//! activation x activation MatMuls stay float.

use crate::qdq::Names;
use crate::target::is_quantized_already;
use ndarray::{Array2, Ix2};
use qopt_calib::qparams::{QScheme, quantize_tensor};
use qopt_ir::op::{Add, Cast, ConvInteger, DynamicQuantizeLinear, MatMulInteger, Mul};
use qopt_ir::{DType, Graph, NodeId, Op, Range, Shape, Tensor, TypeInfo, ValueId, ValueInfo};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "conv",
        kind: OptKind::Bool,
        default: Some("false"),
        help: "also quantize Conv (ConvInteger)",
    },
    OptionSpec {
        name: "per-channel",
        kind: OptKind::Bool,
        default: Some("false"),
        help: "one weight scale per output column/channel instead of one per tensor",
    },
    OptionSpec {
        name: "reduce-range",
        kind: OptKind::Bool,
        default: Some("false"),
        help: "7-bit weights [-63, 63], for x86 CPUs without VNNI (see the pass description)",
    },
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub conv: bool,
    pub per_channel: bool,
    pub reduce_range: bool,
}

impl Dynamic {
    pub fn from_options(o: &PassOptions) -> Dynamic {
        Dynamic {
            conv: o.bool("conv"),
            per_channel: o.bool("per-channel"),
            reduce_range: o.bool("reduce-range"),
        }
    }
}

impl Pass for Dynamic {
    fn name(&self) -> &str {
        "dynamic"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let n = quantize_dynamic(g, *self);
        cx.note("dynamic", format!("{n} weighted ops quantized dynamically"));
        Ok(Changed::from_bool(n > 0))
    }
}

/// A weighted node to rewrite: its activation, its weight as [K, N] (MatMul/Gemm) or as
/// the Conv kernel, the scale multiplier and the bias to add.
struct Job {
    x: ValueId,
    weight: Tensor,
    /// Channel axis of `weight` for per-channel scales.
    axis: usize,
    alpha: f32,
    bias: Option<Tensor>,
    conv: bool,
}

fn float_activation(g: &Graph, v: ValueId) -> bool {
    g.const_value(v).is_none()
        && g.value(v).ty.dtype.is_none_or(|d| d == DType::F32)
        && !is_quantized_already(g, v)
}

fn f32_const(g: &Graph, n: NodeId, slot: usize) -> Option<Arc<Tensor>> {
    g.const_input(n, slot)
        .filter(|t| t.dtype() == DType::F32)
        .cloned()
}

fn job(g: &Graph, n: NodeId, conv: bool) -> Option<Job> {
    let x = g.input(n, 0)?;
    if !float_activation(g, x) {
        return None;
    }
    match &g.node(n).op {
        Op::MatMul(_) => {
            let w = f32_const(g, n, 1).filter(|w| w.rank() >= 2)?;
            Some(Job {
                x,
                axis: w.rank() - 1,
                weight: (*w).clone(),
                alpha: 1.0,
                bias: None,
                conv: false,
            })
        }
        Op::Gemm(gm) if gm.trans_a == 0 => {
            let w = f32_const(g, n, 1).filter(|w| w.rank() == 2)?;
            let w2 = w.as_f32()?.view().into_dimensionality::<Ix2>().ok()?;
            let kn: Array2<f32> = if gm.trans_b != 0 {
                w2.t().to_owned()
            } else {
                w2.to_owned()
            };
            let bias = match g.input(n, 2) {
                None => None,
                Some(_) => {
                    let c = f32_const(g, n, 2)?;
                    Some(Tensor::F32(c.as_f32()?.mapv(|v| v * gm.beta)))
                }
            };
            Some(Job {
                x,
                weight: Tensor::F32(kn.into_dyn()),
                axis: 1,
                alpha: gm.alpha,
                bias,
                conv: false,
            })
        }
        Op::Conv(_) if conv => {
            let w = f32_const(g, n, 1)?;
            let bias = match g.input(n, 2) {
                None => None,
                Some(_) => {
                    let b = f32_const(g, n, 2)?;
                    // [C] -> [1, C, 1, ...] to broadcast over the NC... output.
                    let mut shape = vec![1usize; w.rank()];
                    shape[1] = b.len();
                    Some(Tensor::from_vec(
                        &shape,
                        b.as_f32()?.iter().copied().collect(),
                    ))
                }
            };
            Some(Job {
                x,
                axis: 0,
                weight: (*w).clone(),
                alpha: 1.0,
                bias,
                conv: true,
            })
        }
        _ => None,
    }
}

fn value(name: String, dtype: DType, shape: Option<Shape>) -> ValueInfo {
    ValueInfo::new(
        name,
        TypeInfo {
            dtype: Some(dtype),
            shape,
        },
    )
}

/// Rewrite every eligible weighted op; returns how many.
pub fn quantize_dynamic(g: &mut Graph, opts: Dynamic) -> usize {
    let scheme = if opts.reduce_range {
        QScheme {
            bits: 7,
            ..QScheme::WEIGHTS
        }
    } else {
        QScheme::WEIGHTS
    };
    let Ok(order) = g.topo_order() else {
        return 0;
    };
    let mut names = Names::new(g);
    // One DynamicQuantizeLinear per activation: (x_q, x_scale, x_zp).
    let mut dql: BTreeMap<ValueId, (ValueId, ValueId, ValueId)> = BTreeMap::new();
    let mut count = 0;
    for n in order {
        let Some(job) = job(g, n, opts.conv) else {
            continue;
        };
        let out = ValueId::new(n, 0);
        let info = g.value(out).clone();
        let node_name = g.node(n).name.clone();
        let base = if node_name.is_empty() {
            info.name.clone()
        } else {
            node_name.clone()
        };
        let wv = g.input(n, 1).expect("weight input");
        let wname = g.value_name(wv).to_string();

        // Weight parameters, int8 weight and the scale constant (alpha folded in).
        let w = job.weight.as_f32().expect("f32 weight");
        let p = if opts.per_channel {
            scheme.per_channel(&w.view(), job.axis)
        } else {
            let (lo, hi) = w
                .iter()
                .filter(|v| v.is_finite())
                .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
            scheme.qparams(Range::new(lo, hi))
        };
        let Ok(p) = p else { continue };
        let Ok(wq) = quantize_tensor(&job.weight, &p, true) else {
            continue;
        };
        let scales: Vec<f32> = p.scale.iter().map(|s| s * job.alpha).collect();
        let scale_t = if p.axis.is_some() {
            if job.conv {
                let mut shape = vec![1usize; job.weight.rank()];
                shape[1] = scales.len();
                Tensor::from_vec(&shape, scales)
            } else {
                Tensor::from_vec(&[scales.len()], scales)
            }
        } else {
            Tensor::scalar(scales[0])
        };

        let (xq, xs, xz) = *dql.entry(job.x).or_insert_with(|| {
            let xname = g.value_name(job.x).to_string();
            let shape = g.value(job.x).ty.shape.clone();
            let outs = vec![
                value(names.fresh(&format!("{xname}_quantized")), DType::U8, shape),
                value(
                    names.fresh(&format!("{xname}_scale")),
                    DType::F32,
                    Some(Shape::scalar()),
                ),
                value(
                    names.fresh(&format!("{xname}_zero_point")),
                    DType::U8,
                    Some(Shape::scalar()),
                ),
            ];
            let d = g.add_node(
                format!("{xname}_QuantizeLinear"),
                DynamicQuantizeLinear {},
                &[Some(job.x)],
                outs,
            );
            (ValueId::new(d, 0), ValueId::new(d, 1), ValueId::new(d, 2))
        });
        let wq_v = g.add_const(names.fresh(&format!("{wname}_quantized")), wq);
        g.value_mut(wq_v).ann.qparams = Some(p.clone());
        let wz = g.add_const(
            names.fresh(&format!("{wname}_zero_point")),
            Tensor::scalar(0i8),
        );
        let ws = g.add_const(names.fresh(&format!("{wname}_scale")), scale_t);

        let int_op: Op = match &g.node(n).op {
            Op::Conv(c) => ConvInteger {
                auto_pad: c.auto_pad,
                dilations: c.dilations.clone(),
                group: c.group,
                kernel_shape: c.kernel_shape.clone(),
                pads: c.pads.clone(),
                strides: c.strides.clone(),
            }
            .into(),
            _ => MatMulInteger {}.into(),
        };
        let acc = g.add_node(
            format!("{base}_quant"),
            int_op,
            &[Some(xq), Some(wq_v), Some(xz), Some(wz)],
            vec![value(
                names.fresh(&format!("{}_output_quantized", info.name)),
                DType::I32,
                info.ty.shape.clone(),
            )],
        );
        let cast = g.add_node(
            format!("{base}_cast"),
            Cast {
                to: DType::F32,
                ..Default::default()
            },
            &[Some(ValueId::new(acc, 0))],
            vec![value(
                names.fresh(&format!("{}_cast_output", info.name)),
                DType::F32,
                info.ty.shape.clone(),
            )],
        );
        let scale_shape = g.value(ws).ty.shape.clone();
        let smul = g.add_node(
            format!("{base}_scales_mul"),
            Mul {},
            &[Some(xs), Some(ws)],
            vec![value(
                names.fresh(&format!("{base}_scales_mul_output")),
                DType::F32,
                scale_shape,
            )],
        );
        let scaled_info = if job.bias.is_some() {
            value(
                names.fresh(&format!("{}_scaled", info.name)),
                DType::F32,
                info.ty.shape.clone(),
            )
        } else {
            info.clone()
        };
        // The last node takes over the original output (name, type, annotations).
        let consumers = g.consumers(out);
        let was_output = g.is_graph_output(out);
        let old_inputs: Vec<ValueId> = g.inputs(n).into_iter().flatten().collect();
        g.remove_node(n);
        let scaled = g.add_node(
            format!("{base}_output_scale_mul"),
            Mul {},
            &[Some(ValueId::new(cast, 0)), Some(ValueId::new(smul, 0))],
            vec![scaled_info],
        );
        let mut result = ValueId::new(scaled, 0);
        if let Some(b) = job.bias {
            let bv = g.add_const(names.fresh(&format!("{base}_bias")), b);
            let add = g.add_node(
                format!("{base}_bias_add"),
                Add {},
                &[Some(result), Some(bv)],
                vec![info.clone()],
            );
            result = ValueId::new(add, 0);
        }
        for (c, slot) in consumers {
            g.connect(result, c, slot);
        }
        if was_output {
            let outs = g
                .outputs()
                .iter()
                .map(|&o| if o == out { result } else { o })
                .collect();
            g.set_outputs(outs);
        }
        // The float weight and bias constants, unless something else still reads them.
        for v in old_inputs {
            if g.const_value(v).is_some() && g.use_count(v) == 0 {
                g.remove_node(v.node);
            }
        }
        count += 1;
    }
    count
}
