//! Constant inputs of quantized ops: weights, biases and float operands.
//!
//! - Weights: int8 symmetric on the narrow grid [-127, 127] (`QScheme::WEIGHTS`), one
//!   scale per output channel along the op's axis where the target wants it, one per tensor
//!   otherwise. Stored as an int8 constant + DequantizeLinear, or with `fake=true` as the
//!   float constant + QuantizeLinear + DequantizeLinear. A weight that several nodes share
//!   is quantized once per distinct set of parameters.
//! - Biases (targets with int32 bias): `q = round_half_even(b / (s_in * s_w[c]))` saturated
//!   to int32, zero point 0, the scale product in f32 as ONNX Runtime computes it
//!   (`quantize_bias_static_impl`). As ONNX Runtime does
//!   (`_adjust_weight_scale_for_int32_bias`), a weight scale so small that the bias would
//!   overflow int32 is raised first. With `fake=true` biases stay float, as QAT
//!   frameworks train them.
//! - Float operands of other quantized ops (the constant of a Mul or Add): int8 per tensor
//!   with the activation scheme over the tensor's own min/max, as ONNX Runtime quantizes
//!   initializer inputs of QDQ ops.

use super::insert::{add_dq, add_param_consts, add_q};
use super::params::activation_scheme;
use super::rounding::quantize_weight;
use super::{Names, QdqError, QdqOptions, Rounding};
use crate::target::{BiasRule, ConstInput, InputRole, TargetSpec};
use qopt_calib::qparams::{QScheme, dequantize_tensor, quantize_tensor};
use qopt_ir::{DType, Graph, NodeId, Op, QParams, Range, Tensor, TypeInfo, ValueId};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct ConstReport {
    pub weights: usize,
    pub biases: usize,
    /// Whether a per-axis QuantizeLinear/DequantizeLinear was written (opset 13+).
    pub per_axis: bool,
    pub warnings: Vec<String>,
}

/// The min/max of a tensor's finite values, widened to hold 0.
fn finite_range(t: &Tensor) -> Range {
    let (lo, hi) = t
        .to_f64_vec()
        .into_iter()
        .filter(|x| x.is_finite())
        .fold((0.0f64, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    Range::new(lo as f32, hi as f32)
}

/// The scale of the activation that feeds input 0 of `n`: from the plan's parameters, or
/// from the DequantizeLinear that produces it in an already quantized model.
fn input_scale(g: &Graph, n: NodeId, params: &BTreeMap<ValueId, QParams>) -> Option<f32> {
    let v = g.input(n, 0)?;
    if let Some(p) = params.get(&v) {
        return (p.scale.len() == 1).then(|| p.scale[0]);
    }
    dq_params(g, v).and_then(|p| (p.scale.len() == 1).then(|| p.scale[0]))
}

/// The parameters of the DequantizeLinear producing `v`, when its scale is constant.
fn dq_params(g: &Graph, v: ValueId) -> Option<QParams> {
    let Op::DequantizeLinear(dq) = &g.node(v.node).op else {
        return None;
    };
    let scale = g.const_input(v.node, 1)?.to_f64_vec();
    let zp_t = g.const_input(v.node, 2);
    let dtype = zp_t.map_or(DType::U8, |t| t.dtype());
    let zero_point = zp_t.map_or(vec![0; scale.len()], |t| {
        t.to_f64_vec().iter().map(|&z| z as i32).collect()
    });
    let per_axis = scale.len() > 1 || zp_t.is_some_and(|t| t.rank() == 1);
    Some(QParams {
        dtype,
        scale: scale.iter().map(|&s| s as f32).collect(),
        zero_point,
        axis: per_axis.then_some(dq.axis.max(0) as usize),
    })
}

/// ONNX Runtime's `_adjust_weight_scale_for_int32_bias`: raise a weight scale whose
/// product with the input scale would put the bias outside int32.
fn adjust_for_bias(p: &mut QParams, s_in: f32, bias: &Tensor) {
    let b = bias.to_f64_vec();
    let qrange = i32::MAX as f64 - (i32::MIN as f64 + 1.0);
    let fix = |scale: &mut f32, absmax: f64| {
        let smallest = 1.0001 * 2.0 * absmax / qrange;
        let candidate = s_in as f64 * *scale as f64;
        if candidate < smallest && candidate > 0.0 {
            *scale = (*scale as f64 * (smallest / candidate)) as f32;
        }
    };
    if p.axis.is_none() {
        let absmax = b.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        fix(&mut p.scale[0], absmax);
    } else if p.scale.len() == b.len() {
        for (s, x) in p.scale.iter_mut().zip(&b) {
            fix(s, x.abs());
        }
    }
}

/// The weight scheme on a `bits`-bit grid (int8 symmetric, narrow).
pub(crate) fn weight_scheme(bits: u32) -> QScheme {
    QScheme {
        bits,
        ..QScheme::WEIGHTS
    }
}

/// A weight's default parameters: per channel along `axis`, else per tensor over its range.
pub(crate) fn weight_params(
    scheme: QScheme,
    w: &ndarray::ArrayViewD<f32>,
    axis: Option<usize>,
    t: &Tensor,
) -> Result<QParams, qopt_calib::qparams::QParamsError> {
    match axis {
        Some(a) => scheme.per_channel(w, a),
        None => scheme.qparams(finite_range(t)),
    }
}

/// Whether parameters found on a weight (`@q`) can quantize it: symmetric int8, and one
/// scale per channel along `axis` (or one scale where the weight is per tensor).
pub(crate) fn fits_weight(q: &QParams, shape: &[usize], axis: Option<usize>) -> bool {
    let n = match axis {
        Some(a) if q.axis == Some(a) => shape[a],
        None if q.axis.is_none() => 1,
        _ => return false,
    };
    q.dtype == DType::I8
        && q.scale.len() == n
        && q.zero_point.iter().all(|&z| z == 0)
        && q.scale.iter().all(|s| s.is_finite() && *s > 0.0)
}

struct Quantizer<'a> {
    spec: &'a TargetSpec,
    opts: QdqOptions,
    params: &'a BTreeMap<ValueId, QParams>,
    names: &'a mut Names,
    report: ConstReport,
    /// (constant, scale bits) -> the dequantized value already made for it.
    cache: BTreeMap<(ValueId, Vec<u32>), ValueId>,
    /// The weight parameters each node got, for its bias.
    weight_params: BTreeMap<NodeId, QParams>,
    /// Constants that lost a use, removed at the end if unused.
    replaced: Vec<ValueId>,
}

fn cache_key(v: ValueId, p: &QParams) -> (ValueId, Vec<u32>) {
    let mut bits: Vec<u32> = p.scale.iter().map(|s| s.to_bits()).collect();
    bits.extend(p.zero_point.iter().map(|&z| z as u32));
    bits.push(p.axis.map_or(u32::MAX, |a| a as u32));
    (v, bits)
}

impl Quantizer<'_> {
    /// Quantize constant `c` with `p` (weights: narrow grid and the rounding option) and
    /// return the value to read in its place.
    fn emit(&mut self, g: &mut Graph, c: ValueId, p: &QParams, weight: bool) -> ValueId {
        let key = cache_key(c, p);
        if let Some(&v) = self.cache.get(&key) {
            return v;
        }
        let t: Arc<Tensor> = g.const_value(c).expect("a constant").clone();
        let base = g.value_name(c).to_string();
        let ty = TypeInfo::of_tensor(&t);
        let rounding = if weight {
            self.opts.rounding
        } else {
            Rounding::Nearest
        };
        let q = if weight {
            quantize_weight(&t, p, rounding, &base)
        } else {
            quantize_tensor(&t, p, false)
        }
        .expect("parameters made for this tensor");
        let (s, z) = add_param_consts(g, self.names, &base, p);
        let dq_in = if self.opts.fake {
            // Float weights + Q + DQ. Stochastic rounding is baked into the float values
            // (each one on its chosen grid point), so the Q node reproduces it exactly.
            let src = if rounding == Rounding::Nearest {
                c
            } else {
                let snapped = dequantize_tensor(&q, p).expect("same parameters");
                g.add_const(self.names.fresh(&format!("{base}_rounded")), snapped)
            };
            add_q(g, self.names.fresh(&format!("{base}_q")), src, s, z, p)
        } else {
            let qc = g.add_const(self.names.fresh(&format!("{base}_q")), q);
            g.value_mut(qc).ann.qparams = Some(p.clone());
            qc
        };
        let dq = add_dq(
            g,
            self.names.fresh(&format!("{base}_dq")),
            dq_in,
            s,
            z,
            p.axis,
            &ty,
        );
        self.report.per_axis |= p.axis.is_some();
        self.cache.insert(key, dq);
        dq
    }

    fn weight(&mut self, g: &mut Graph, n: NodeId, slot: usize, axis: Option<usize>) {
        let c = g.input(n, slot).expect("planned input");
        let t = g.const_value(c).expect("planned constant").clone();
        let op_type = g.node(n).op.op_type().to_string();
        let Some(w) = t.as_f32() else {
            self.report.warnings.push(format!(
                "weight '{}' of {} is {}, not f32: left unquantized",
                g.value_name(c),
                g.describe(n),
                t.dtype()
            ));
            return;
        };
        let axis = axis.filter(|_| self.spec.weights.is_per_channel(&op_type));
        let scheme = weight_scheme(self.opts.bits);
        let chosen = g.value(c).ann.qparams.clone();
        let p = match (chosen, axis) {
            // Scales chosen for this weight (by `eq`): used as they are when they fit.
            (Some(q), _) if fits_weight(&q, w.shape(), axis) => Ok(q),
            (Some(_), _) => {
                self.report.warnings.push(format!(
                    "weight '{}' of {}: its @q does not fit the weight (int8, one scale per channel along the target's axis): recomputed",
                    g.value_name(c),
                    g.describe(n)
                ));
                weight_params(scheme, &w.view(), axis, &t)
            }
            (None, _) => weight_params(scheme, &w.view(), axis, &t),
        };
        let mut p = match p {
            Ok(p) => p,
            Err(e) => {
                self.report.warnings.push(format!(
                    "weight '{}' of {}: {e}: left unquantized",
                    g.value_name(c),
                    g.describe(n)
                ));
                return;
            }
        };
        if self.wants_int_bias(g, n)
            && let (Some(s_in), Some(b)) = (input_scale(g, n, self.params), g.const_input(n, 2))
        {
            adjust_for_bias(&mut p, s_in, &b.clone());
        }
        let dq = self.emit(g, c, &p, true);
        g.connect(dq, n, slot);
        self.replaced.push(c);
        self.weight_params.insert(n, p);
        self.report.weights += 1;
    }

    fn wants_int_bias(&self, g: &Graph, n: NodeId) -> bool {
        self.spec.bias == BiasRule::Int32
            && !self.opts.fake
            && crate::target::input_role(g, n, 2) == Some(InputRole::Bias)
            && g.const_input(n, 2).is_some_and(|t| t.dtype() == DType::F32)
    }

    fn bias(&mut self, g: &mut Graph, n: NodeId, slot: usize) {
        if !self.wants_int_bias(g, n) {
            return;
        }
        let c = g.input(n, slot).expect("planned input");
        let b = g.const_value(c).expect("planned constant").clone();
        let warn = |why: &str| {
            format!(
                "bias '{}' of {} stays float: {why}",
                g.value_name(c),
                g.describe(n)
            )
        };
        let Some(s_in) = input_scale(g, n, self.params) else {
            let w = warn("its input has no per-tensor quantization parameters");
            self.report.warnings.push(w);
            return;
        };
        let pw = match self.weight_params.get(&n).cloned() {
            Some(p) => p,
            None => match g.input(n, 1).and_then(|w| dq_params(g, w)) {
                Some(p) => p,
                None => {
                    let w = warn("its weight is not quantized");
                    self.report.warnings.push(w);
                    return;
                }
            },
        };
        let values = b.to_f64_vec();
        if pw.scale.len() > 1 && !values.len().is_multiple_of(pw.scale.len()) {
            let w = warn("its length does not match the weight's channels");
            self.report.warnings.push(w);
            return;
        }
        // Per output channel c: the weight scale of c (ConvTranspose with groups repeats
        // the axis-1 scales once per group).
        let scales: Vec<f32> = (0..values.len())
            .map(|i| s_in * pw.scale[i % pw.scale.len()])
            .collect();
        let q: Vec<i32> = values
            .iter()
            .zip(&scales)
            .map(|(&x, &s)| {
                (x / s as f64)
                    .round_ties_even()
                    .clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
            .collect();
        let per_axis = pw.scale.len() > 1;
        let p = QParams {
            dtype: DType::I32,
            scale: if per_axis { scales } else { vec![scales[0]] },
            zero_point: vec![0; if per_axis { values.len() } else { 1 }],
            axis: per_axis.then(|| b.rank().saturating_sub(1)),
        };
        let key = cache_key(c, &p);
        let dq = match self.cache.get(&key) {
            Some(&v) => v,
            None => {
                let base = g.value_name(c).to_string();
                let ty = TypeInfo::of_tensor(&b);
                let qc = g.add_const(
                    self.names.fresh(&format!("{base}_q")),
                    Tensor::from_vec(b.shape(), q),
                );
                g.value_mut(qc).ann.qparams = Some(p.clone());
                let (s, z) = add_param_consts(g, self.names, &base, &p);
                let dq = add_dq(
                    g,
                    self.names.fresh(&format!("{base}_dq")),
                    qc,
                    s,
                    z,
                    p.axis,
                    &ty,
                );
                self.report.per_axis |= per_axis;
                self.cache.insert(key, dq);
                dq
            }
        };
        g.connect(dq, n, slot);
        self.replaced.push(c);
        self.report.biases += 1;
    }

    fn operand(&mut self, g: &mut Graph, n: NodeId, slot: usize) {
        let c = g.input(n, slot).expect("planned input");
        let t = g.const_value(c).expect("planned constant").clone();
        if t.dtype() != DType::F32 || t.is_empty() {
            return;
        }
        let scheme = activation_scheme(self.spec, self.opts.bits);
        let Ok(p) = scheme.qparams(finite_range(&t)) else {
            return;
        };
        let dq = self.emit(g, c, &p, false);
        g.connect(dq, n, slot);
        self.replaced.push(c);
    }
}

/// Quantize the planned constant inputs.
pub(crate) fn quantize(
    g: &mut Graph,
    spec: &TargetSpec,
    constants: &[ConstInput],
    params: &BTreeMap<ValueId, QParams>,
    opts: QdqOptions,
    names: &mut Names,
) -> Result<ConstReport, QdqError> {
    let mut q = Quantizer {
        spec,
        opts,
        params,
        names,
        report: ConstReport::default(),
        cache: BTreeMap::new(),
        weight_params: BTreeMap::new(),
        replaced: vec![],
    };
    // Weights before biases: a bias needs its node's weight scales.
    for ci in constants {
        if let InputRole::Weight { axis } = ci.role {
            q.weight(g, ci.node, ci.slot, axis);
        }
    }
    for ci in constants {
        match ci.role {
            InputRole::Bias => q.bias(g, ci.node, ci.slot),
            InputRole::Data => q.operand(g, ci.node, ci.slot),
            InputRole::Weight { .. } => {}
        }
    }
    let mut replaced = std::mem::take(&mut q.replaced);
    replaced.sort();
    replaced.dedup();
    for c in replaced {
        if g.contains(c.node) && g.consumers(c).is_empty() && !g.is_graph_output(c) {
            g.remove_node(c.node);
        }
    }
    Ok(q.report)
}
