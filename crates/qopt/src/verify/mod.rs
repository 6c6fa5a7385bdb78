//! `qopt verify`: how far a quantized model is from its fp32 original, layer by layer
//! (DESIGN.md §7, issue 6).
//!
//! [`verify`] runs the fp32 model on the fp32 interpreter and the quantized model on the INT8
//! plan (or, with [`Engine::Reference`], on the fp32 interpreter executing Q/DQ as ONNX
//! defines them: the float QDQ simulation) over the same samples, and reports for every
//! quantized layer ([`layers`] says how layers are matched) and every graph output: cosine
//! similarity, SQNR (dB), max abs error, and top-1 agreement for classifier outputs
//! ([`metrics`]). With [`VerifyOptions::sensitivity`] it also runs the float QDQ simulation
//! once with only each layer's activation quantized and once with only that one left in fp32
//! ([`bypass`]), and ranks the layers by the output SQNR the first run loses: the layers to
//! keep in fp32 (`--keep-fp32`) or recalibrate (`--override`) when accuracy drops.
//!
//! The CLI (`qopt verify`) is a thin wrapper; a compiler embedding qopt calls [`verify`] with
//! samples from [`load_samples`] (or its own) and reads the [`Report`].

pub mod bypass;
pub mod layers;
pub mod metrics;
pub mod plot;

use metrics::{Accum, Metrics, ser_db};
use qopt_calib::progress::Progress;
use qopt_calib::source::{CalibData, InputSpec, Preprocess, SourceOptions, SourceSpec};
use qopt_interp::{InterpError, Plan, PlanOptions, QPlan, QPlanOptions, int8};
use qopt_ir::{DType, Dim, Graph, Op, Tensor, ValueId};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The two models cannot be compared (different inputs or outputs).
    #[error("the models do not match: {0}")]
    Mismatch(String),
    /// A model failed to compile or run.
    #[error("{model} model: {err}")]
    Run { model: &'static str, err: String },
    /// The data source.
    #[error("{0}")]
    Data(String),
}

/// How the quantized model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// The INT8 plan (integer kernels), the default.
    #[default]
    Int8,
    /// The float QDQ simulation on the fp32 interpreter.
    Reference,
}

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    pub engine: Engine,
    /// Worker threads (`None`: one per core).
    pub threads: Option<usize>,
    /// Also run the per-layer sensitivity analysis.
    pub sensitivity: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    /// The fp32 value's name.
    pub name: String,
    /// The QuantizeLinear output it is compared through.
    pub quantized_value: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    pub name: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

#[derive(Clone, Debug, Serialize)]
pub struct SensitivityEntry {
    pub name: String,
    /// Output SQNR (all outputs together) with only this layer's activation quantized.
    #[serde(serialize_with = "ser_db")]
    pub only_this_quantized_sqnr_db: f64,
    /// Output SQNR with every layer quantized but this one.
    #[serde(serialize_with = "ser_db")]
    pub all_but_this_quantized_sqnr_db: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sensitivity {
    /// Output SQNR of the float QDQ simulation with every layer quantized.
    #[serde(serialize_with = "ser_db")]
    pub all_quantized_sqnr_db: f64,
    /// Output SQNR with no activation quantized (weight quantization only).
    #[serde(serialize_with = "ser_db")]
    pub no_activation_quantized_sqnr_db: f64,
    /// Most damaging first: lowest "only this quantized" SQNR.
    pub layers: Vec<SensitivityEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `int8 (avx2 kernels)`, `reference` (float QDQ simulation) or `fp32` (the second model
    /// is not quantized).
    pub engine: String,
    pub samples: usize,
    pub layers: Vec<LayerReport>,
    pub outputs: Vec<OutputReport>,
    /// Activation QuantizeLinear nodes without an fp32 counterpart (not compared).
    pub unmatched: Vec<String>,
    pub sensitivity: Option<Sensitivity>,
}

/// One sample: a tensor per graph input, by name.
pub type Inputs = Vec<(String, Tensor)>;

/// The inputs of `g` as the data sources need them.
pub fn input_specs(g: &Graph) -> Result<Vec<InputSpec>, VerifyError> {
    g.input_values()
        .into_iter()
        .map(|v| {
            let vi = g.value(v);
            let shape = vi.ty.shape.clone().ok_or_else(|| {
                VerifyError::Data(format!("graph input '{}' has no known shape", vi.name))
            })?;
            Ok(InputSpec {
                name: vi.name.clone(),
                dtype: vi.ty.dtype.unwrap_or(DType::F32),
                shape,
            })
        })
        .collect()
}

/// Read the samples of a `--calib`-style source for `g` (NaN/Inf samples are skipped with a
/// warning through `progress`, or an error under `strict`).
pub fn load_samples(
    g: &Graph,
    source: &str,
    limit: Option<usize>,
    preprocess: Option<Preprocess>,
    strict: bool,
    progress: &dyn Progress,
) -> Result<Vec<Inputs>, VerifyError> {
    let data_err = |e: qopt_calib::source::SourceError| VerifyError::Data(e.to_string());
    let spec = SourceSpec::parse(source).map_err(data_err)?;
    let data = CalibData::open(
        &spec,
        &input_specs(g)?,
        &SourceOptions {
            limit,
            preprocess,
            strict,
        },
    )
    .map_err(data_err)?;
    data.samples(progress)
        .map(|s| s.map(|s| s.inputs).map_err(data_err))
        .collect()
}

/// Check that the two models take the same inputs and give the same outputs (by name), and
/// pair each quantized-model output with the fp32 one.
fn check_models(reference: &Graph, quant: &Graph) -> Result<Vec<usize>, VerifyError> {
    let ins = |g: &Graph| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = g
            .input_values()
            .into_iter()
            .map(|v| (g.value_name(v).to_string(), type_string(&g.value(v).ty)))
            .collect();
        v.sort();
        v
    };
    let (ri, qi) = (ins(reference), ins(quant));
    for (name, ty) in &qi {
        match ri.iter().find(|(n, _)| n == name) {
            None => {
                return Err(VerifyError::Mismatch(format!(
                    "the quantized model's input '{name}' is not an input of the fp32 model (its inputs: {})",
                    ri.iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Some((_, rty)) if !compatible(reference, quant, name) => {
                return Err(VerifyError::Mismatch(format!(
                    "input '{name}' is {rty} in the fp32 model and {ty} in the quantized model"
                )));
            }
            _ => {}
        }
    }
    if ri.len() != qi.len() {
        return Err(VerifyError::Mismatch(format!(
            "the fp32 model has {} inputs, the quantized model {}",
            ri.len(),
            qi.len()
        )));
    }
    let rnames: Vec<&str> = reference
        .outputs()
        .iter()
        .map(|&v| reference.value_name(v))
        .collect();
    quant
        .outputs()
        .iter()
        .map(|&v| {
            let name = quant.value_name(v);
            rnames.iter().position(|r| *r == name).ok_or_else(|| {
                VerifyError::Mismatch(format!(
                    "the quantized model's output '{name}' is not an output of the fp32 model (its outputs: {})",
                    rnames.join(", ")
                ))
            })
        })
        .collect()
}

fn type_string(ty: &qopt_ir::TypeInfo) -> String {
    let d = ty.dtype.map_or("?".to_string(), |d| d.to_string());
    match &ty.shape {
        Some(s) => format!("{d}{s}"),
        None => format!("{d}[...]"),
    }
}

/// Same dtype and no two known dimensions that differ.
fn compatible(reference: &Graph, quant: &Graph, name: &str) -> bool {
    let (Some(a), Some(b)) = (reference.find_value(name), quant.find_value(name)) else {
        return false;
    };
    let (a, b) = (&reference.value(a).ty, &quant.value(b).ty);
    if a.dtype.is_some() && b.dtype.is_some() && a.dtype != b.dtype {
        return false;
    }
    match (&a.shape, &b.shape) {
        (Some(x), Some(y)) => {
            x.rank() == y.rank()
                && x.dims().iter().zip(y.dims()).all(|(p, q)| match (p, q) {
                    (Dim::Known(p), Dim::Known(q)) => p == q,
                    _ => true,
                })
        }
        _ => true,
    }
}

/// A compiled model on either interpreter.
enum Runner {
    Fp32(Box<Plan>),
    Int8(Box<QPlan>),
}

impl Runner {
    fn run_capture(
        &mut self,
        inputs: &[(&str, &Tensor)],
        capture: &[ValueId],
    ) -> Result<(Vec<Tensor>, Vec<Option<Tensor>>), InterpError> {
        let mut got: Vec<Option<Tensor>> = vec![None; capture.len()];
        let hook = |v: ValueId, t: &Tensor| {
            if let Some(i) = capture.iter().position(|&c| c == v) {
                got[i] = Some(t.clone());
            }
        };
        let outs = match self {
            Runner::Fp32(p) => p.run_with(inputs, hook)?,
            Runner::Int8(p) => p.run_with(inputs, hook)?,
        };
        Ok((outs, got))
    }
}

fn fp32_plan(g: &Graph, threads: Option<usize>, keep: &[ValueId]) -> Result<Plan, InterpError> {
    Plan::new(
        g,
        &PlanOptions {
            threads,
            keep: keep.to_vec(),
            ..Default::default()
        },
    )
}

fn as_f32(t: &Tensor) -> Tensor {
    match t {
        Tensor::F32(_) => t.clone(),
        _ => t.cast(DType::F32),
    }
}

/// Dequantize a captured Q output with that Q node's own scale and zero point, through the
/// interpreter's DequantizeLinear (ONNX semantics, per-tensor or per-axis).
fn dequantize(quant: &Graph, layer: &layers::QuantLayer, q: &Tensor) -> Result<Tensor, String> {
    let Op::QuantizeLinear(qop) = &quant.node(layer.q_node).op else {
        return Err("not a QuantizeLinear".into());
    };
    let scale = quant
        .const_input(layer.q_node, 1)
        .ok_or("its scale is not a constant")?;
    let zp = quant.const_input(layer.q_node, 2);
    let op = Op::DequantizeLinear(qopt_ir::op::DequantizeLinear {
        axis: qop.axis,
        block_size: qop.block_size,
    });
    let opset = quant.meta.onnx_opset().unwrap_or(21).max(13);
    let mut out =
        qopt_interp::eval_node(&op, opset, &[Some(q), Some(&**scale), zp.map(|z| &**z)], 1)
            .map_err(|e| e.to_string())?;
    Ok(out.remove(0))
}

/// Compare `quant` with `reference` over `samples` (see the module comment).
pub fn verify(
    reference: &Graph,
    quant: &Graph,
    samples: &[Inputs],
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<Report, VerifyError> {
    if samples.is_empty() {
        return Err(VerifyError::Data("no samples to verify with".into()));
    }
    let out_pairs = check_models(reference, quant)?;
    let matching = layers::match_layers(reference, quant);
    let ls = &matching.layers;
    let ref_keep: Vec<ValueId> = ls.iter().map(|l| l.reference).collect();
    let q_keep: Vec<ValueId> = ls.iter().map(|l| l.q_value).collect();
    let run_err = |model: &'static str| {
        move |e: InterpError| VerifyError::Run {
            model,
            err: e.to_string(),
        }
    };
    let mut ref_plan = fp32_plan(reference, opts.threads, &ref_keep).map_err(run_err("fp32"))?;
    let quantized = int8::is_quantized(quant);
    let (mut q_runner, engine) = if quantized && opts.engine == Engine::Int8 {
        let p = QPlan::new(
            quant,
            &QPlanOptions {
                threads: opts.threads,
                keep: q_keep.clone(),
                ..Default::default()
            },
        )
        .map_err(run_err("quantized"))?;
        let e = format!("int8 ({} kernels)", p.kernel_kind());
        (Runner::Int8(Box::new(p)), e)
    } else {
        let p = fp32_plan(quant, opts.threads, &q_keep).map_err(run_err("quantized"))?;
        let e = if quantized { "reference" } else { "fp32" };
        (Runner::Fp32(Box::new(p)), e.to_string())
    };

    let mut layer_acc = vec![Accum::default(); ls.len()];
    let mut skipped: Vec<Option<String>> = vec![None; ls.len()];
    let mut out_acc = vec![Accum::default(); out_pairs.len()];
    // fp32 outputs per sample, in the quantized model's output order (for sensitivity).
    let mut ref_outputs: Vec<Vec<Tensor>> = vec![];
    progress.start("verifying", Some(samples.len() as u64));
    for s in samples {
        let named: Vec<(&str, &Tensor)> = s.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut ref_got: Vec<Option<Tensor>> = vec![None; ref_keep.len()];
        let ref_outs = ref_plan
            .run_with(&named, |v, t| {
                if let Some(i) = ref_keep.iter().position(|&c| c == v) {
                    ref_got[i] = Some(t.clone());
                }
            })
            .map_err(run_err("fp32"))?;
        let (q_outs, q_got) = q_runner
            .run_capture(&named, &q_keep)
            .map_err(run_err("quantized"))?;
        for (i, l) in ls.iter().enumerate() {
            if skipped[i].is_some() {
                continue;
            }
            let (Some(r), Some(q)) = (&ref_got[i], &q_got[i]) else {
                skipped[i] = Some(format!("{}: not computed", l.name));
                continue;
            };
            let q = match dequantize(quant, l, q) {
                Ok(q) => q,
                Err(e) => {
                    skipped[i] = Some(format!("{}: {e}", l.name));
                    continue;
                }
            };
            let r = as_f32(r);
            if r.shape() != q.shape() {
                skipped[i] = Some(format!(
                    "{}: fp32 shape {:?}, quantized shape {:?}",
                    l.name,
                    r.shape(),
                    q.shape()
                ));
                continue;
            }
            let (r, q) = (r.as_f32().expect("f32"), q.as_f32().expect("f32"));
            layer_acc[i].add(
                r.as_standard_layout().as_slice().expect("standard"),
                q.as_standard_layout().as_slice().expect("standard"),
                r.shape(),
                false,
            );
        }
        let mut mine = Vec::with_capacity(out_pairs.len());
        for (o, (&ri, qt)) in out_pairs.iter().zip(&q_outs).enumerate() {
            let (r, q) = (as_f32(&ref_outs[ri]), as_f32(qt));
            if r.shape() != q.shape() {
                return Err(VerifyError::Mismatch(format!(
                    "output '{}' has shape {:?} in the fp32 model and {:?} in the quantized model",
                    quant.value_name(quant.outputs()[o]),
                    r.shape(),
                    q.shape()
                )));
            }
            {
                let (ra, qa) = (r.as_f32().expect("f32"), q.as_f32().expect("f32"));
                out_acc[o].add(
                    ra.as_standard_layout().as_slice().expect("standard"),
                    qa.as_standard_layout().as_slice().expect("standard"),
                    ra.shape(),
                    true,
                );
            }
            mine.push(r);
        }
        if opts.sensitivity {
            ref_outputs.push(mine);
        }
        progress.advance(1);
    }
    progress.finish();

    let mut unmatched = matching.unmatched.clone();
    let mut layer_reports = vec![];
    for (i, l) in ls.iter().enumerate() {
        match &skipped[i] {
            Some(why) => unmatched.push(format!("{} (not compared: {why})", l.name)),
            None => layer_reports.push(LayerReport {
                name: l.name.clone(),
                quantized_value: quant.value_name(l.q_value).to_string(),
                metrics: layer_acc[i].metrics(),
            }),
        }
    }
    let outputs = out_acc
        .iter()
        .enumerate()
        .map(|(o, a)| OutputReport {
            name: quant.value_name(quant.outputs()[o]).to_string(),
            metrics: a.metrics(),
        })
        .collect();
    let sensitivity = if opts.sensitivity && quantized {
        Some(sensitivity(
            quant,
            ls,
            samples,
            &ref_outputs,
            opts.threads,
            progress,
        )?)
    } else {
        None
    };
    Ok(Report {
        engine,
        samples: samples.len(),
        layers: layer_reports,
        outputs,
        unmatched,
        sensitivity,
    })
}

/// Output SQNR (all outputs, all samples) of the float QDQ simulation of `quant` with the
/// given layers bypassed.
fn output_sqnr(
    quant: &Graph,
    ls: &[layers::QuantLayer],
    bypassed: &[bool],
    samples: &[Inputs],
    ref_outputs: &[Vec<Tensor>],
    threads: Option<usize>,
) -> Result<f64, VerifyError> {
    let g = bypass::bypass(quant, ls, bypassed);
    let err = |e: InterpError| VerifyError::Run {
        model: "quantized (sensitivity)",
        err: e.to_string(),
    };
    let mut plan = fp32_plan(&g, threads, &[]).map_err(err)?;
    let mut acc = Accum::default();
    for (s, refs) in samples.iter().zip(ref_outputs) {
        let named: Vec<(&str, &Tensor)> = s.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let outs = plan.run(&named).map_err(err)?;
        for (r, q) in refs.iter().zip(&outs) {
            let q = as_f32(q);
            let (ra, qa) = (r.as_f32().expect("f32"), q.as_f32().expect("f32"));
            if ra.shape() == qa.shape() {
                acc.add(
                    ra.as_standard_layout().as_slice().expect("standard"),
                    qa.as_standard_layout().as_slice().expect("standard"),
                    ra.shape(),
                    false,
                );
            }
        }
        plan.recycle(outs);
    }
    Ok(acc.metrics().sqnr_db)
}

fn sensitivity(
    quant: &Graph,
    ls: &[layers::QuantLayer],
    samples: &[Inputs],
    ref_outputs: &[Vec<Tensor>],
    threads: Option<usize>,
    progress: &dyn Progress,
) -> Result<Sensitivity, VerifyError> {
    let n = ls.len();
    let run = |bypassed: &[bool]| output_sqnr(quant, ls, bypassed, samples, ref_outputs, threads);
    progress.start("sensitivity", Some(2 * n as u64 + 2));
    let all = run(&vec![false; n])?;
    let none = run(&vec![true; n])?;
    progress.advance(2);
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let mut only = vec![true; n];
        only[i] = false;
        let mut but = vec![false; n];
        but[i] = true;
        entries.push(SensitivityEntry {
            name: ls[i].name.clone(),
            only_this_quantized_sqnr_db: run(&only)?,
            all_but_this_quantized_sqnr_db: run(&but)?,
        });
        progress.advance(2);
    }
    progress.finish();
    // Most damaging first; ties (and infinities) in graph order (the sort is stable).
    entries.sort_by(|a, b| {
        a.only_this_quantized_sqnr_db
            .total_cmp(&b.only_this_quantized_sqnr_db)
    });
    Ok(Sensitivity {
        all_quantized_sqnr_db: all,
        no_activation_quantized_sqnr_db: none,
        layers: entries,
    })
}

/// The report as an aligned text table.
pub fn table(report: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let w = report
        .layers
        .iter()
        .map(|l| l.name.chars().count())
        .chain(report.outputs.iter().map(|o| o.name.chars().count()))
        .chain([5])
        .max()
        .unwrap_or(5)
        .min(60);
    let db = |x: f64| {
        if x.is_finite() {
            format!("{x:.2}")
        } else {
            format!("{x}")
        }
    };
    let row = |s: &mut String, name: &str, m: &Metrics| {
        let top1 = m
            .top1_agreement
            .map_or(String::new(), |t| format!("{:.2}%", 100.0 * t));
        let _ = writeln!(
            s,
            "{name:<w$}  {:>9.6}  {:>9}  {:>12.6}  {top1:>8}",
            m.cosine,
            db(m.sqnr_db),
            m.max_abs_error
        );
    };
    let _ = writeln!(
        s,
        "{} samples, quantized model on the {} engine",
        report.samples, report.engine
    );
    let header = format!(
        "{:<w$}  {:>9}  {:>9}  {:>12}  {:>8}",
        "layer", "cosine", "SQNR dB", "max abs err", "top-1"
    );
    let _ = writeln!(s, "{header}");
    for l in &report.layers {
        row(&mut s, &l.name, &l.metrics);
    }
    let _ = writeln!(s, "{:<w$}", "outputs:");
    for o in &report.outputs {
        row(&mut s, &o.name, &o.metrics);
    }
    if !report.unmatched.is_empty() {
        let _ = writeln!(
            s,
            "{} quantized values not compared (no fp32 value of the same name):",
            report.unmatched.len()
        );
        for u in &report.unmatched {
            let _ = writeln!(s, "  {u}");
        }
    }
    if let Some(sens) = &report.sensitivity {
        let _ = writeln!(
            s,
            "\nsensitivity (float QDQ simulation, output SQNR dB): all layers quantized {}, no activation quantized {}",
            db(sens.all_quantized_sqnr_db),
            db(sens.no_activation_quantized_sqnr_db)
        );
        let head = "layer (most damaging first)";
        let w = w.max(head.len());
        let _ = writeln!(
            s,
            "{head:<w$}  {:>16}  {:>19}",
            "only this quant.", "all but this quant."
        );
        for e in &sens.layers {
            let _ = writeln!(
                s,
                "{:<w$}  {:>16}  {:>19}",
                e.name,
                db(e.only_this_quantized_sqnr_db),
                db(e.all_but_this_quantized_sqnr_db)
            );
        }
    }
    s
}
