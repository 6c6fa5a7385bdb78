//! `observe`: put an Observer node on every activation the target quantizes (DESIGN.md §4, §6).
//!
//! Which values: exactly `target::activations_to_quantize(g, spec)` for the target in the
//! context, minus values matched by `--keep-fp32` (they stay fp32 because they get no range).
//!
//! Observers are side nodes: `x -> Observer` next to x's real consumers, not spliced between
//! x and them. The dataflow every other pass pattern-matches (Conv -> Relu, ...) is unchanged,
//! the interpreter does not run them (nothing reads their output), `dce` keeps them (they
//! exist for their statistics), and a pass that replaces x with `replace_all_uses` moves its
//! observer along with its other uses. `collect` fills their state, `thresholds` turns it into
//! a `@range` on x and deletes them.
//!
//! Each observer's configuration (histogram bins, moving average) is what its value's method
//! needs: the `--override` method matching the value if any, else the pass's `method` option,
//! else the target's default method. `bins` and `ema` set the histogram size and ONNX
//! Runtime's moving-average constant for all of them (`kl-signed{bins=N}` and
//! `minmax{ema=C}` in an override take precedence). Histograms are kept for every method, so
//! the same statistics can be re-thresholded by any method; `bins=0` keeps min/max only
//! (fastest, enough for `minmax`).

use qopt_calib::ObserverConfig;
use qopt_calib::methods::Method;
use qopt_ir::{Graph, Op, TypeInfo, ValueId, ValueInfo};
use qopt_pass::{Changed, OptKind, OptionSpec, Pass, PassContext, PassError, PassOptions};

use crate::calib_inputs::{LayerRules, pass_method, target_spec};
use crate::target::activations_to_quantize;

pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "method",
        kind: OptKind::Str,
        default: None,
        help: "method whose statistics to collect (default: the target's)",
    },
    OptionSpec {
        name: "bins",
        kind: OptKind::Int {
            min: 0,
            max: 1 << 20,
        },
        default: Some("2048"),
        help: "histogram bins, even (0: min/max only)",
    },
    OptionSpec {
        name: "ema",
        kind: OptKind::Float { min: 0.0, max: 1.0 },
        default: None,
        help: "moving-average constant for min/max (ONNX Runtime's averaging_constant)",
    },
];

pub struct Observe {
    method: Option<String>,
    bins: usize,
    ema: Option<f32>,
}

impl Observe {
    pub fn create(o: &PassOptions) -> Result<Box<dyn Pass>, String> {
        let method = o.str("method").map(str::to_string);
        if let Some(m) = &method {
            Method::parse(m).map_err(|e| e.to_string())?;
        }
        let bins = o.int("bins").unwrap_or(2048) as usize;
        let ema = o.float("ema").map(|e| e as f32);
        // Check the configuration once here, not per value.
        ObserverConfig { bins, ema }
            .new_state()
            .map_err(|e| e.to_string())?;
        Ok(Box::new(Observe { method, bins, ema }))
    }

    fn config(&self, method: &Method) -> ObserverConfig {
        let mut c = ObserverConfig {
            bins: self.bins,
            ema: self.ema,
        };
        match method {
            Method::KlSigned { bins: Some(b), .. } => c.bins = *b,
            Method::MinMax { ema: Some(e) } => c.ema = Some(*e),
            _ => {}
        }
        c
    }
}

/// The value an observer watches.
pub fn observed_value(g: &Graph, observer: qopt_ir::NodeId) -> Option<ValueId> {
    g.input(observer, 0)
}

/// Every observer node with the value it watches, in node order.
pub fn observers(g: &Graph) -> Vec<(qopt_ir::NodeId, ValueId)> {
    g.node_ids()
        .into_iter()
        .filter(|&n| matches!(g.node(n).op, Op::Observer(_)))
        .filter_map(|n| observed_value(g, n).map(|v| (n, v)))
        .collect()
}

impl Pass for Observe {
    fn name(&self) -> &str {
        "observe"
    }

    fn run(&mut self, g: &mut Graph, cx: &mut PassContext) -> Result<Changed, PassError> {
        let spec = target_spec(cx);
        let default = pass_method(self.method.as_deref(), cx).map_err(PassError::Failed)?;
        let rules = cx.get::<LayerRules>().cloned().unwrap_or_default();
        let already: std::collections::BTreeSet<ValueId> =
            observers(g).into_iter().map(|(_, v)| v).collect();
        let (mut added, mut kept) = (0usize, Vec::new());
        for v in activations_to_quantize(g, spec) {
            if already.contains(&v) {
                continue;
            }
            if rules.keeps_fp32(g, v) {
                kept.push(g.value_name(v).to_string());
                continue;
            }
            let method = rules
                .override_for(g, v)
                .map_or(&default, |o| &o.method)
                .clone();
            let state = self
                .config(&method)
                .new_state()
                .map_err(|e| PassError::msg(format!("value '{}': {e}", g.value_name(v))))?;
            // Nothing reads an observer's output: it needs a name, not a node name or a type.
            let name = g.fresh_name(&format!("{}.obs", g.value_name(v)));
            g.add_node(
                "",
                Op::Observer(Box::new(state)),
                &[Some(v)],
                vec![ValueInfo::new(name, TypeInfo::unknown())],
            );
            added += 1;
        }
        cx.note(
            "observe",
            format!(
                "{added} values observed for target {}{}",
                spec.target.name(),
                if kept.is_empty() {
                    String::new()
                } else {
                    format!("; kept in fp32: {}", kept.join(", "))
                }
            ),
        );
        Ok(Changed::from_bool(added > 0))
    }
}
