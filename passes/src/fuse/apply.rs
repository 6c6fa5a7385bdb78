//! Custom appliers: the right-hand sides that need numbers, and the conditions the rule
//! tables use.
//!
//! An applier checks everything the fold needs before it adds anything (Tensat's habit:
//! shapes first, then new e-nodes), so a refused match leaves the e-graph untouched. Refusals
//! are recorded with the node names, for `--verbose`.
//!
//! Right-hand sides are never worse than the left (Cranelift's rule): each fold replaces two
//! operators by one, and it only fires when the absorbed layer has exactly one use
//! ([`uses`]): folding a conv that also feeds something else would leave the original conv in
//! place and add a second one.

use super::analysis::{
    FuseAnalysis, FuseGraph, add_computed_const, add_derived_meta, const_name, is_absent, konst,
    meta, meta_key, uses,
};
use super::fold::{ChannelAffine, Layer, Source, fold_into_layer};
use super::lang::FuseLang;
use egg::{Applier, Id, PatternAst, Subst, Symbol, Var};
use qopt_ir::{Op, op};

fn var(s: &str) -> Var {
    s.parse().expect("a pattern variable")
}

/// `?v` holds a constant.
pub fn is_const(v: &str) -> impl Fn(&mut FuseGraph, Id, &Subst) -> bool + use<> {
    let v = var(v);
    move |eg, _, s| eg[s[v]].data.konst.is_some()
}

/// `?v` is not a constant.
pub fn not_const(v: &str) -> impl Fn(&mut FuseGraph, Id, &Subst) -> bool + use<> {
    let v = var(v);
    move |eg, _, s| eg[s[v]].data.konst.is_none()
}

/// `?v` (Dropout's training_mode input) is absent or a constant false: inference mode.
pub fn inference_mode(v: &str) -> impl Fn(&mut FuseGraph, Id, &Subst) -> bool + use<> {
    let v = var(v);
    move |eg, _, s| {
        is_absent(eg, s[v])
            || konst(eg, s[v]).is_some_and(|t| t.len() == 1 && t.to_f64_vec()[0] == 0.0)
    }
}

fn layer_enode(layer: Layer, c: [Id; 4]) -> FuseLang {
    match layer {
        Layer::Conv => FuseLang::Conv(c),
        Layer::ConvTranspose => FuseLang::ConvTranspose(c),
        Layer::Gemm => FuseLang::Gemm(c),
    }
}

fn node_label(eg: &FuseGraph, meta_id: Id) -> String {
    match meta(eg, meta_id) {
        Some(m) if !m.name.is_empty() => format!("{} '{}'", m.op.op_type(), m.name),
        Some(m) => m.op.op_type().to_string(),
        None => "?".into(),
    }
}

fn refuse(eg: &mut FuseGraph, outer: Id, inner: Id, why: &str) -> Vec<Id> {
    let msg = format!(
        "{} not folded into {}: {why}",
        node_label(eg, outer),
        node_label(eg, inner)
    );
    eg.analysis.refusals.insert(msg);
    vec![]
}

/// Folds a per-channel affine map (BatchNormalization, or Mul/Div/Add/Sub by a constant)
/// into the Conv/ConvTranspose/Gemm that feeds it.
///
/// Pattern variables: the layer is `(L ?lm ?x ?w ?b)`; the outer op's meta is `?om`; a
/// BatchNormalization binds `?g ?beta ?mean ?var`, a binary op its constant `?k`.
#[derive(Debug)]
pub struct FoldAffine {
    source: Source,
    layer: Layer,
}

impl FoldAffine {
    pub fn new(source: Source, layer: Layer) -> FoldAffine {
        FoldAffine { source, layer }
    }
}

impl Applier<FuseLang, FuseAnalysis> for FoldAffine {
    fn apply_one(
        &self,
        eg: &mut FuseGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<FuseLang>>,
        rule: Symbol,
    ) -> Vec<Id> {
        let get = |name: &str| subst[var(name)];
        let (lm, x, w, b, om) = (get("?lm"), get("?x"), get("?w"), get("?b"), get("?om"));
        let Some(inner) = eg.lookup(layer_enode(self.layer, [lm, x, w, b])) else {
            return vec![];
        };
        // The match is identified by its variables and the absorbed layer's class, not by
        // `eclass`, whose id changes when the fold is unioned into it.
        let mut key = vec![inner];
        key.extend(self.vars().iter().map(|v| eg.find(subst[*v])));
        if eg.analysis.was_applied(rule, &key) {
            return vec![];
        }
        let n = uses(eg, inner);
        if n != 1 {
            return refuse(eg, om, lm, &format!("its output has {n} uses"));
        }
        let Some(weight) = konst(eg, w) else {
            return refuse(eg, om, lm, "the weight is not a constant");
        };
        let bias = konst(eg, b);
        if bias.is_none() && !is_absent(eg, b) {
            return refuse(eg, om, lm, "the bias is not a constant");
        }
        let Some(layer_op) = meta(eg, lm).map(|m| m.op.clone()) else {
            return vec![];
        };
        let (out_rank, channels) = match self.layer.output_channels(&layer_op, &weight) {
            Ok(rc) => rc,
            Err(e) => return refuse(eg, om, lm, &e),
        };
        let affine = match self.source {
            Source::BatchNorm => {
                let Some(Op::BatchNormalization(bn)) = meta(eg, om).map(|m| m.op.clone()) else {
                    return vec![];
                };
                let params: Option<Vec<_>> = ["?g", "?beta", "?mean", "?var"]
                    .iter()
                    .map(|v| konst(eg, get(v)))
                    .collect();
                let Some(p) = params else {
                    return refuse(eg, om, lm, "its parameters are not constants");
                };
                ChannelAffine::batchnorm(&p[0], &p[1], &p[2], &p[3], bn.epsilon, channels)
            }
            source => match konst(eg, get("?k")) {
                Some(k) if k.dtype() == weight.dtype() => {
                    ChannelAffine::binary(source, &k, out_rank, channels)
                }
                Some(k) => Err(format!(
                    "the constant is {} but the weight is {}",
                    k.dtype(),
                    weight.dtype()
                )),
                None => Err("the other operand is not a constant".into()),
            },
        };
        let folded = match affine
            .and_then(|a| fold_into_layer(self.layer, &layer_op, &weight, bias.as_deref(), &a))
        {
            Ok(f) => f,
            Err(e) => return refuse(eg, om, lm, &e),
        };

        // Names for the new tensors: the weight's own; the bias's own, else the folded
        // BatchNormalization's B or the added constant, else derived from the weight.
        let w_name = const_name(eg, w).unwrap_or_else(|| "weight".into());
        let b_name = const_name(eg, b)
            .or_else(|| match self.source {
                Source::BatchNorm => const_name(eg, get("?beta")),
                Source::Add | Source::Sub | Source::SubFrom => const_name(eg, get("?k")),
                _ => None,
            })
            .unwrap_or_else(|| format!("{w_name}_bias"));
        let new_w = match folded.weight {
            Some(t) => add_computed_const(eg, t, &w_name),
            None => w,
        };
        let new_b = match folded.bias {
            Some(t) => add_computed_const(eg, t, &b_name),
            None => eg.add(FuseLang::Absent),
        };
        let Some(lm_key) = meta_key(eg, lm) else {
            return vec![];
        };
        let new_meta = add_derived_meta(eg, lm_key, folded.op);
        let id = eg.add(layer_enode(self.layer, [new_meta, x, new_w, new_b]));
        eg.analysis.mark_applied(rule, key);
        if eg.union(eclass, id) {
            vec![id]
        } else {
            vec![]
        }
    }

    fn vars(&self) -> Vec<Var> {
        let mut v: Vec<Var> = ["?lm", "?x", "?w", "?b", "?om"]
            .iter()
            .map(|s| var(s))
            .collect();
        match self.source {
            Source::BatchNorm => v.extend(["?g", "?beta", "?mean", "?var"].iter().map(|s| var(s))),
            _ => v.push(var("?k")),
        }
        v
    }
}

/// `MatMul(A, B) + c` -> `Gemm(A, B, c)`: when A is 2-D, B a 2-D constant [K, N] and c a
/// constant that broadcasts as [N] (shape [N], [1, N], [1] or a scalar).
///
/// Pattern: `(add ?am (matmul ?mm ?a ?w) ?c)`.
#[derive(Debug)]
pub struct MatMulAddToGemm;

impl Applier<FuseLang, FuseAnalysis> for MatMulAddToGemm {
    fn apply_one(
        &self,
        eg: &mut FuseGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<FuseLang>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let get = |name: &str| subst[var(name)];
        let (am, mm, a, w, c) = (get("?am"), get("?mm"), get("?a"), get("?w"), get("?c"));
        let Some(inner) = eg.lookup(FuseLang::MatMul([mm, a, w])) else {
            return vec![];
        };
        let n = uses(eg, inner);
        if n != 1 {
            return refuse(eg, am, mm, &format!("its output has {n} uses"));
        }
        if eg[a].data.rank() != Some(2) {
            // N-D MatMuls (batched, transformer-style) have no Gemm form.
            return vec![];
        }
        let (Some(wt), Some(ct)) = (konst(eg, w), konst(eg, c)) else {
            return vec![];
        };
        let (ws, cs) = (wt.shape(), ct.shape());
        let float = matches!(
            wt.dtype(),
            qopt_ir::DType::F32 | qopt_ir::DType::F16 | qopt_ir::DType::F64
        );
        if ws.len() != 2 || !float || ct.dtype() != wt.dtype() {
            return refuse(
                eg,
                am,
                mm,
                "B is not a 2-D float constant of the bias's type",
            );
        }
        let n_cols = ws[1];
        let per_column = cs.len() <= 2
            && cs.iter().rev().skip(1).all(|&d| d == 1)
            && cs.last().is_none_or(|&d| d == 1 || d == n_cols);
        if !per_column {
            return refuse(
                eg,
                am,
                mm,
                &format!("the bias of shape {cs:?} does not broadcast as [{n_cols}]"),
            );
        }
        let Some(mm_key) = meta_key(eg, mm) else {
            return vec![];
        };
        let gm = add_derived_meta(eg, mm_key, Op::Gemm(op::Gemm::default()));
        let id = eg.add(FuseLang::Gemm([gm, a, w, c]));
        if eg.union(eclass, id) {
            vec![id]
        } else {
            vec![]
        }
    }

    fn vars(&self) -> Vec<Var> {
        ["?am", "?mm", "?a", "?w", "?c"]
            .iter()
            .map(|s| var(s))
            .collect()
    }
}
