//! E-graph -> graph: write the extracted choice back into the graph, in place.
//!
//! Starting from the roots, every needed e-class is built once (memoised by class) from its
//! chosen e-node, children first:
//! - an e-node the graph already had keeps its node (id, name, attributes, annotations),
//!   rewired if its inputs changed; opaque nodes are always this case;
//! - a new e-node becomes a new node, named after its meta (a folded conv keeps the conv's
//!   node name); a new constant becomes a new Const node;
//! - original nodes that no class uses any more are removed (graph inputs always stay).
//!
//! Value names: a class that a graph output reads takes that output's name, so graph output
//! names never change; otherwise it takes the name of its first original value in
//! topological order (a folded conv's output takes the BatchNormalization output's name, an
//! Identity's consumers read the Identity's input). Opaque nodes, inputs, original constants
//! and kept nodes whose own value is a graph output keep their names; a graph output whose
//! class is named otherwise (an Identity from a graph input to an output, two outputs that
//! are one value) keeps its Identity, or gets a new one, to carry its name. New constants are
//! named after the tensor they replace (`conv1.weight`, or `conv1.weight_1` when that name
//! is still in use).

use super::analysis::FuseGraph;
use super::convert::Lowered;
use super::lang::FuseLang;
use egg::{Id, Language};
use qopt_ir::op::Identity;
use qopt_ir::{Graph, NodeId, Op, TypeInfo, ValueId, ValueInfo};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Copy)]
enum Built {
    /// A value (`None`: an absent optional input).
    Value(Option<ValueId>),
    /// A multi-output node, read through projections.
    Tuple(NodeId),
    /// A meta leaf: not a value.
    Meta,
}

/// Rebuild `g` from the extraction. Returns whether the graph changed.
pub fn rebuild(
    g: &mut Graph,
    low: &Lowered,
    eg: &FuseGraph,
    choice: &BTreeMap<Id, FuseLang>,
) -> Result<bool, String> {
    let orig_lang: HashMap<FuseLang, NodeId> = low
        .lang_nodes
        .iter()
        .map(|(n, e)| (e.clone().map_children(|c| eg.find(c)), *n))
        .collect();
    let pos: HashMap<NodeId, usize> = low.order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let orig_values: BTreeMap<ValueId, ValueInfo> = low
        .value_class
        .keys()
        .map(|&v| (v, g.value(v).clone()))
        .collect();
    let mut class_values: BTreeMap<Id, Vec<ValueId>> = BTreeMap::new();
    for (&v, &c) in &low.value_class {
        class_values.entry(eg.find(c)).or_default().push(v);
    }
    for vs in class_values.values_mut() {
        vs.sort_by_key(|v| (pos[&v.node], v.slot));
    }
    let orig_outputs: Vec<ValueId> = g.outputs().to_vec();

    // ---- build every needed class, children first ------------------------------------
    let mut built: HashMap<Id, Built> = HashMap::new();
    let mut build_order: Vec<Id> = Vec::new();
    let mut kept: HashSet<NodeId> = HashSet::new();
    let mut new_nodes: Vec<NodeId> = Vec::new();
    let mut new_consts: Vec<(ValueId, String)> = Vec::new();
    let mut changed = false;

    let roots: Vec<Id> = eg.analysis.roots.iter().map(|&r| eg.find(r)).collect();
    let mut on_stack: HashSet<Id> = HashSet::new();
    for &root in &roots {
        // Iterative post-order DFS: (class, children pushed?).
        let mut stack: Vec<(Id, bool)> = vec![(root, false)];
        while let Some((c, expanded)) = stack.pop() {
            if built.contains_key(&c) {
                continue;
            }
            let node = choice
                .get(&c)
                .ok_or_else(|| format!("internal error: no extraction for e-class {c}"))?;
            if !expanded {
                if !on_stack.insert(c) {
                    return Err(format!(
                        "internal error: extraction has a cycle at e-class {c}"
                    ));
                }
                stack.push((c, true));
                for &ch in node.children().iter().rev() {
                    if !built.contains_key(&ch) {
                        stack.push((ch, false));
                    }
                }
                continue;
            }
            on_stack.remove(&c);
            let value = |built: &HashMap<Id, Built>, ch: &Id| -> Result<Option<ValueId>, String> {
                match built.get(ch) {
                    Some(Built::Value(v)) => Ok(*v),
                    _ => Err(format!("internal error: e-class {ch} is not a value")),
                }
            };
            let b = match node {
                FuseLang::Absent => Built::Value(None),
                FuseLang::Meta(_) => Built::Meta,
                FuseLang::Const(k) => {
                    let entry = &eg.analysis.consts[k.index()];
                    match entry.origin {
                        Some(n) => {
                            kept.insert(n);
                            Built::Value(Some(ValueId::new(n, 0)))
                        }
                        None => {
                            let v = g.add_const(
                                format!("__fuse_new_const_{}", k.index()),
                                entry.tensor.clone(),
                            );
                            new_consts.push((v, entry.name.clone()));
                            new_nodes.push(v.node);
                            changed = true;
                            Built::Value(Some(v))
                        }
                    }
                }
                FuseLang::Opaque(k, children) => {
                    let n = eg.analysis.opaque[k.index()].node;
                    let ins = children
                        .iter()
                        .map(|ch| value(&built, ch))
                        .collect::<Result<Vec<_>, _>>()?;
                    changed |= rewire(g, n, &ins);
                    kept.insert(n);
                    if g.node(n).outputs.len() == 1 {
                        Built::Value(Some(ValueId::new(n, 0)))
                    } else {
                        Built::Tuple(n)
                    }
                }
                FuseLang::Proj(slot, [t]) => match built.get(t) {
                    Some(Built::Tuple(n)) => Built::Value(Some(ValueId::new(*n, slot.index()))),
                    _ => return Err(format!("internal error: projection of e-class {t}")),
                },
                op_node => {
                    let ins = op_node
                        .op_inputs()
                        .iter()
                        .map(|ch| value(&built, ch))
                        .collect::<Result<Vec<_>, _>>()?;
                    match orig_lang.get(op_node) {
                        Some(&n) => {
                            changed |= rewire(g, n, &ins);
                            kept.insert(n);
                            Built::Value(Some(ValueId::new(n, 0)))
                        }
                        None => {
                            let meta_id = op_node.meta().expect("operators have a meta");
                            let m = super::analysis::meta(eg, meta_id).ok_or_else(|| {
                                format!("internal error: e-class {meta_id} is not a meta")
                            })?;
                            let ins = trim_absent(ins);
                            let n = g.add_node(
                                m.name.clone(),
                                m.op.clone(),
                                &ins,
                                vec![ValueInfo::new(
                                    format!("__fuse_new_value_{c}"),
                                    TypeInfo::unknown(),
                                )],
                            );
                            g.node_mut(n).doc = m.doc.clone();
                            new_nodes.push(n);
                            changed = true;
                            Built::Value(Some(ValueId::new(n, 0)))
                        }
                    }
                }
            };
            built.insert(c, b);
            build_order.push(c);
        }
    }

    // ---- value names ------------------------------------------------------------------------
    let output_class_name: BTreeMap<Id, ValueId> = {
        let mut m = BTreeMap::new();
        for (&o, &c) in orig_outputs.iter().zip(&low.outputs) {
            m.entry(eg.find(c)).or_insert(o);
        }
        m
    };
    let new_const_nodes: HashSet<NodeId> = new_consts.iter().map(|(v, _)| v.node).collect();
    let mut unnamed: Vec<(ValueId, String)> = Vec::new();
    for &c in &build_order {
        let Some(Built::Value(Some(v))) = built.get(&c).copied() else {
            continue;
        };
        let fixed = matches!(choice[&c], FuseLang::Opaque(..) | FuseLang::Proj(..))
            || (matches!(choice[&c], FuseLang::Const(_)) && !new_const_nodes.contains(&v.node));
        if fixed || new_const_nodes.contains(&v.node) {
            continue;
        }
        // A kept node whose own value is a graph output keeps its name (other outputs of the
        // class get an Identity); otherwise the class takes its first graph output's name,
        // or its first original value's.
        let own = orig_lang.get(&choice[&c]).map(|&n| ValueId::new(n, 0));
        let source = own
            .filter(|o| orig_outputs.contains(o))
            .or_else(|| output_class_name.get(&c).copied())
            .or_else(|| class_values.get(&c).and_then(|vs| vs.first().copied()));
        match source {
            Some(src) => {
                let info = &orig_values[&src];
                if g.value(v) != info {
                    *g.value_mut(v) = info.clone();
                    changed = true;
                }
            }
            None => unnamed.push((v, format!("{}_out", g.node(v.node).name))),
        }
    }
    // New constants (and values no original name fits) get fresh names after every kept name
    // is settled, so a folded weight can take its original's name once that is free.
    // Taken: the names of every node that stays, and every graph output name (an output's
    // Identity may be kept below to carry it).
    let mut used: HashSet<String> = g
        .node_ids()
        .into_iter()
        .filter(|n| kept.contains(n) || matches!(g.node(*n).op, Op::Input))
        .flat_map(|n| {
            g.node(n)
                .outputs
                .iter()
                .map(|v| v.name.clone())
                .collect::<Vec<_>>()
        })
        .chain(orig_outputs.iter().map(|o| orig_values[o].name.clone()))
        .collect();
    for (v, hint) in new_consts.iter().chain(&unnamed) {
        let name = fresh(&used, if hint.is_empty() { "fused" } else { hint });
        used.insert(name.clone());
        let node_is_const = g.node(v.node).op.is_const();
        g.value_mut(*v).name = name.clone();
        if node_is_const {
            g.node_mut(v.node).name = name;
        }
    }

    // ---- graph outputs ---------------------------------------------------------------------
    let mut outputs = Vec::with_capacity(orig_outputs.len());
    for (&o, &c) in orig_outputs.iter().zip(&low.outputs) {
        let v = match built.get(&eg.find(c)) {
            Some(Built::Value(Some(v))) => *v,
            _ => {
                return Err(format!(
                    "internal error: graph output '{}' was not rebuilt",
                    orig_values[&o].name
                ));
            }
        };
        let want = &orig_values[&o];
        if g.value(v).name == want.name {
            outputs.push(v);
        } else if matches!(g.node(o.node).op, Op::Identity(_)) && !kept.contains(&o.node) {
            // The class's value is named otherwise (a graph input, or another output), and
            // the output was an Identity's: keep that node to carry the output's name.
            changed |= rewire(g, o.node, &[Some(v)]);
            kept.insert(o.node);
            outputs.push(o);
        } else {
            // Otherwise a new Identity carries the output's name.
            let n = g.add_node(
                want.name.clone(),
                Identity {},
                &[Some(v)],
                vec![want.clone()],
            );
            new_nodes.push(n);
            changed = true;
            outputs.push(ValueId::new(n, 0));
        }
    }
    if outputs != orig_outputs {
        changed = true;
    }
    g.set_outputs(outputs);

    // ---- remove what is no longer used ----------------------------------------------------
    for &n in &low.order {
        if !kept.contains(&n) && !matches!(g.node(n).op, Op::Input) {
            g.remove_node(n);
            changed = true;
        }
    }

    // ---- node names: new nodes must not collide with kept ones ------------------------------
    let new_set: HashSet<NodeId> = new_nodes.iter().copied().collect();
    let mut node_names: HashSet<String> = g
        .node_ids()
        .into_iter()
        .filter(|n| !new_set.contains(n))
        .map(|n| g.node(n).name.clone())
        .collect();
    for &n in &new_nodes {
        let name = g.node(n).name.clone();
        if name.is_empty() || g.node(n).op.is_const() {
            continue;
        }
        let name = fresh(&node_names, &name);
        node_names.insert(name.clone());
        g.node_mut(n).name = name;
    }
    Ok(changed)
}

/// `base`, or `base_1`, `base_2`, ... whichever is not in `used`.
fn fresh(used: &HashSet<String>, base: &str) -> String {
    if !used.contains(base) {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}_{i}"))
        .find(|n| !used.contains(n))
        .expect("unbounded")
}

/// Drop trailing absent inputs (an absent optional input is a slot without an edge).
fn trim_absent(mut ins: Vec<Option<ValueId>>) -> Vec<Option<ValueId>> {
    while ins.last().is_some_and(|v| v.is_none()) {
        ins.pop();
    }
    ins
}

/// Point `n`'s inputs at `ins` if they differ; returns whether they did.
fn rewire(g: &mut Graph, n: NodeId, ins: &[Option<ValueId>]) -> bool {
    let want = trim_absent(ins.to_vec());
    let have = trim_absent(g.inputs(n));
    if want == have {
        return false;
    }
    g.set_inputs(n, &want);
    true
}
