//! Graph -> e-graph: the whole graph becomes one e-graph whose roots are the graph outputs.
//!
//! Nodes are added in the graph's deterministic topological order. Operators the rules
//! rewrite become [`FuseLang`] e-nodes with a meta leaf; constants become `Const` leaves;
//! everything else (graph inputs included) becomes an `Opaque` e-node that keeps its
//! original node in a side table, with `Proj` e-nodes for the outputs of multi-output nodes.
//! Each e-class starts with the recorded type of the value it stands for.

use super::analysis::{ClassData, FuseAnalysis, FuseGraph, MetaEntry, OpaqueEntry};
use super::lang::{FuseLang, Slot};
use egg::Id;
use qopt_ir::{Graph, NodeId, Op, ValueId};
use std::collections::BTreeMap;

/// The graph as an e-graph, with the maps back to the graph that the rebuild needs.
pub struct Lowered {
    pub egraph: FuseGraph,
    /// The e-class of every original value (for a multi-output dropout, only its output 0).
    pub value_class: BTreeMap<ValueId, Id>,
    /// Rewritable original nodes and the e-node each was added as.
    pub lang_nodes: Vec<(NodeId, FuseLang)>,
    /// Original nodes in topological order.
    pub order: Vec<NodeId>,
    /// E-classes of the graph outputs, in order.
    pub outputs: Vec<Id>,
}

pub fn lower(g: &Graph) -> Result<Lowered, String> {
    let order = g
        .topo_order()
        .map_err(|n| format!("the graph has a cycle through {}", g.describe(n)))?;
    let mut egraph = FuseGraph::new(FuseAnalysis::default());
    let absent = egraph.add(FuseLang::Absent);
    let mut value_class: BTreeMap<ValueId, Id> = BTreeMap::new();
    let mut lang_nodes = Vec::new();

    for &n in &order {
        let node = g.node(n);
        let ins = g.inputs(n);
        let child = |slot: usize| -> Id {
            ins.get(slot)
                .copied()
                .flatten()
                .map_or(absent, |v| value_class[&v])
        };
        let connected = |slots: std::ops::Range<usize>| {
            slots
                .into_iter()
                .all(|s| ins.get(s).copied().flatten().is_some())
        };
        let single = node.outputs.len() == 1;
        let nin = ins.len();

        if let Op::Const(t) = &node.op {
            let k = egraph
                .analysis
                .original_const(t.clone(), n, &node.outputs[0].name);
            let id = egraph.add(FuseLang::Const(k));
            value_class.insert(ValueId::new(n, 0), id);
            continue;
        }

        // Rewritable operators, in the forms the rules understand; anything else is opaque.
        let mask_unused = node.outputs.len() == 2 && g.use_count(ValueId::new(n, 1)) == 0;
        let make_meta = |egraph: &mut FuseGraph| -> Id {
            let k = egraph.analysis.meta(MetaEntry {
                op: node.op.clone(),
                name: node.name.clone(),
                doc: node.doc.clone(),
            });
            egraph.add(FuseLang::Meta(k))
        };
        let lang: Option<FuseLang> = match &node.op {
            Op::Conv(_) | Op::ConvTranspose(_) | Op::Gemm(_)
                if single && (2..=3).contains(&nin) && connected(0..2) =>
            {
                let m = make_meta(&mut egraph);
                let c = [m, child(0), child(1), child(2)];
                Some(match &node.op {
                    Op::Conv(_) => FuseLang::Conv(c),
                    Op::ConvTranspose(_) => FuseLang::ConvTranspose(c),
                    _ => FuseLang::Gemm(c),
                })
            }
            Op::MatMul(_) if single && nin == 2 && connected(0..2) => {
                let m = make_meta(&mut egraph);
                Some(FuseLang::MatMul([m, child(0), child(1)]))
            }
            Op::BatchNormalization(b)
                if single && nin == 5 && connected(0..5) && b.training_mode == 0 =>
            {
                let m = make_meta(&mut egraph);
                Some(FuseLang::BatchNorm([
                    m,
                    child(0),
                    child(1),
                    child(2),
                    child(3),
                    child(4),
                ]))
            }
            Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_)
                if single && nin == 2 && connected(0..2) =>
            {
                let m = make_meta(&mut egraph);
                let c = [m, child(0), child(1)];
                Some(match &node.op {
                    Op::Add(_) => FuseLang::Add(c),
                    Op::Sub(_) => FuseLang::Sub(c),
                    Op::Mul(_) => FuseLang::Mul(c),
                    _ => FuseLang::Div(c),
                })
            }
            Op::Identity(_) if single && nin == 1 && connected(0..1) => {
                let m = make_meta(&mut egraph);
                Some(FuseLang::Identity([m, child(0)]))
            }
            Op::Dropout(_)
                if (single || mask_unused) && (1..=3).contains(&nin) && connected(0..1) =>
            {
                let m = make_meta(&mut egraph);
                Some(FuseLang::Dropout([m, child(0), child(1), child(2)]))
            }
            _ => None,
        };

        match lang {
            Some(e) => {
                let id = egraph.add(e.clone());
                record_type(&mut egraph, id, &ClassData::of_type(&node.outputs[0].ty));
                value_class.insert(ValueId::new(n, 0), id);
                lang_nodes.push((n, e));
            }
            None => {
                let children: Vec<Id> = (0..nin).map(child).collect();
                let k = egraph.analysis.opaque(OpaqueEntry {
                    node: n,
                    outputs: node.outputs.iter().map(|v| v.ty.clone()).collect(),
                });
                let id = egraph.add(FuseLang::Opaque(k, children));
                if single {
                    value_class.insert(ValueId::new(n, 0), id);
                } else {
                    for slot in 0..node.outputs.len() {
                        let p = egraph.add(FuseLang::Proj(Slot(slot as u32), [id]));
                        value_class.insert(ValueId::new(n, slot), p);
                    }
                }
            }
        }
    }

    let outputs: Vec<Id> = g.outputs().iter().map(|v| value_class[v]).collect();
    // Roots: the graph outputs, and nodes nothing uses (dead code is `dce`'s business, not
    // ours: they stay as they are). Graph inputs always stay.
    let mut roots = outputs.clone();
    for &n in &order {
        let node = g.node(n);
        if matches!(node.op, Op::Input) {
            continue;
        }
        let unused = (0..node.outputs.len()).all(|s| g.use_count(ValueId::new(n, s)) == 0);
        if unused {
            let v = ValueId::new(n, 0);
            // The node's own class: its value, or the opaque node behind its projections.
            let id = value_class[&v];
            let id = match &egraph[id].nodes[..] {
                [FuseLang::Proj(_, [o])] => *o,
                _ => id,
            };
            roots.push(id);
        }
    }
    egraph.analysis.roots = roots;
    egraph.rebuild();
    Ok(Lowered {
        egraph,
        value_class,
        lang_nodes,
        order,
        outputs,
    })
}

/// Merge a recorded type into an e-class's data, keeping what the analysis already knows.
fn record_type(egraph: &mut FuseGraph, id: Id, ty: &ClassData) {
    let d = &mut egraph[id].data;
    if d.dtype.is_none() {
        d.dtype = ty.dtype;
    }
    if d.shape.is_none() {
        d.shape = ty.shape.clone();
    }
}
