//! DAG-aware extraction: choose one e-node per e-class so that the graph computes as little
//! as possible, counting a shared sub-graph once.
//!
//! egg's `Extractor` costs an e-node as its own cost plus its children's costs, so a value
//! used twice is paid twice, and a choice that duplicates a shared conv can look cheaper than
//! one that reuses it. Here, as in extraction-gym's greedy-DAG extractor, the cost of an
//! e-class is the sum of the costs of the *distinct* e-classes its chosen e-node needs
//! (itself included): each candidate's cost set is the union of its children's cost sets.
//! A candidate whose children's sets contain its own class would form a cycle and is skipped.
//!
//! Classes are re-evaluated from a worklist (lowest id first, which is close to topological
//! order because the e-graph was built in topological order) until nothing improves. Costs
//! are integers, so totals do not depend on summation order, and ties go to the e-node the
//! graph had (then to the smaller e-node): an equivalent rewrite that gains nothing, like a
//! commuted Add, never changes the output.

use super::analysis::FuseGraph;
use super::lang::FuseLang;
use egg::{Id, Language};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// Relative cost of computing an e-node; constants and leaves are free.
fn node_cost(n: &FuseLang) -> u64 {
    match n {
        FuseLang::Conv(_)
        | FuseLang::ConvTranspose(_)
        | FuseLang::Gemm(_)
        | FuseLang::MatMul(_) => 16,
        FuseLang::BatchNorm(_) => 4,
        FuseLang::Add(_) | FuseLang::Sub(_) | FuseLang::Mul(_) | FuseLang::Div(_) => 2,
        FuseLang::Identity(_) | FuseLang::Dropout(_) => 1,
        FuseLang::Opaque(_, c) if !c.is_empty() => 1,
        FuseLang::Opaque(..) | FuseLang::Proj(..) => 0,
        FuseLang::Absent | FuseLang::Const(_) | FuseLang::Meta(_) => 0,
    }
}

struct Best {
    total: u64,
    original: bool,
    node: FuseLang,
    /// The distinct classes the choice needs, with their costs (empty for leaves).
    set: Rc<HashMap<Id, u64>>,
}

impl Best {
    /// Lower is better: cost, then the graph's own e-node, then e-node order.
    fn key(&self) -> (u64, bool, &FuseLang) {
        (self.total, !self.original, &self.node)
    }
}

/// The chosen e-node of every e-class that has an acyclic choice, with canonical children.
/// `original` holds the graph's own e-nodes (canonical).
pub fn extract(eg: &FuseGraph, original: &HashSet<FuseLang>) -> BTreeMap<Id, FuseLang> {
    let mut classes: Vec<Id> = eg.classes().map(|c| c.id).collect();
    classes.sort();
    let mut parents: HashMap<Id, BTreeSet<Id>> = HashMap::new();
    for &c in &classes {
        for n in &eg[c].nodes {
            for &ch in n.children() {
                parents.entry(eg.find(ch)).or_default().insert(c);
            }
        }
    }

    let mut best: HashMap<Id, Best> = HashMap::new();
    let mut pending: BTreeSet<Id> = classes.iter().copied().collect();
    // Each improvement lowers a (cost, rank) key, so this terminates; the cap only guards
    // against a pathological e-graph.
    let mut budget = classes.len().saturating_mul(64).max(1024);
    while let Some(c) = pending.pop_first() {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let mut cand: Option<Best> = None;
        'nodes: for n in &eg[c].nodes {
            let n = n.clone().map_children(|ch| eg.find(ch));
            let mut child_sets: Vec<&Rc<HashMap<Id, u64>>> = Vec::new();
            for ch in n.children() {
                match best.get(ch) {
                    Some(b) => child_sets.push(&b.set),
                    None => continue 'nodes,
                }
            }
            let set = if n.is_leaf() {
                Rc::new(HashMap::new())
            } else {
                child_sets.sort_by_key(|s| std::cmp::Reverse(s.len()));
                let mut set: HashMap<Id, u64> = child_sets
                    .first()
                    .map(|s| (***s).clone())
                    .unwrap_or_default();
                for s in child_sets.iter().skip(1) {
                    for (k, v) in s.iter() {
                        set.insert(*k, *v);
                    }
                }
                if set.contains_key(&c) {
                    continue 'nodes;
                }
                set.insert(c, node_cost(&n));
                Rc::new(set)
            };
            let total = set.values().sum();
            let b = Best {
                total,
                original: original.contains(&n),
                node: n,
                set,
            };
            if cand.as_ref().is_none_or(|x| b.key() < x.key()) {
                cand = Some(b);
            }
        }
        let Some(cand) = cand else { continue };
        let changed = match best.get(&c) {
            None => true,
            Some(old) => old.key() != cand.key() || old.set != cand.set,
        };
        if changed {
            best.insert(c, cand);
            if let Some(ps) = parents.get(&c) {
                pending.extend(ps.iter().copied());
            }
        }
    }
    best.into_iter().map(|(c, b)| (c, b.node)).collect()
}
