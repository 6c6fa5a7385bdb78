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
//! Cost sets are bitsets over a dense numbering of the e-classes, so a union is a few
//! hundred word ORs even on a model with thousands of nodes. Classes are evaluated in the
//! order they become computable from the leaves (a breadth-first sweep up from constants and
//! inputs), so nearly every class is evaluated once, after everything it needs; a class
//! whose choice changes later re-queues its parents until nothing changes. Costs are
//! integers (totals do not depend on summation order) and ties go to the e-node the graph
//! had, then to the smaller e-node: an equivalent rewrite that gains nothing, like a commuted
//! Add, never changes the output.

use super::analysis::FuseGraph;
use super::lang::FuseLang;
use egg::{Id, Language};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
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

/// A set of dense class indices.
#[derive(Clone, PartialEq, Eq)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn new(n: usize) -> BitSet {
        BitSet(vec![0; n.div_ceil(64)])
    }
    fn contains(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn union_with(&mut self, o: &BitSet) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                (w != 0).then(|| {
                    let b = w.trailing_zeros() as usize;
                    w &= w - 1;
                    wi * 64 + b
                })
            })
        })
    }
}

struct Best {
    total: u64,
    original: bool,
    node: FuseLang,
    /// The distinct classes the choice needs (dense indices), its own included.
    set: Rc<BitSet>,
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
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let n = ids.len();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    // Canonical e-nodes per class, and their children as dense indices (deduplicated).
    let nodes: Vec<Vec<(FuseLang, Vec<usize>)>> = ids
        .iter()
        .map(|&c| {
            eg[c]
                .nodes
                .iter()
                .map(|e| {
                    let e = e.clone().map_children(|ch| eg.find(ch));
                    let mut ch: Vec<usize> = e.children().iter().map(|c| index[c]).collect();
                    ch.sort_unstable();
                    ch.dedup();
                    (e, ch)
                })
                .collect()
        })
        .collect();
    let mut users: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (c, ns) in nodes.iter().enumerate() {
        for (k, (_, ch)) in ns.iter().enumerate() {
            for &d in ch {
                users[d].push((c, k));
            }
        }
    }

    // Evaluation order: classes as they become computable from the leaves up.
    let mut waiting: Vec<Vec<usize>> = nodes
        .iter()
        .map(|ns| ns.iter().map(|(_, ch)| ch.len()).collect())
        .collect();
    let mut rank: Vec<Option<usize>> = vec![None; n];
    let mut queue: VecDeque<usize> = (0..n).filter(|&c| waiting[c].contains(&0)).collect();
    let mut next_rank = 0;
    while let Some(c) = queue.pop_front() {
        if rank[c].is_some() {
            continue;
        }
        rank[c] = Some(next_rank);
        next_rank += 1;
        for &(p, k) in &users[c] {
            waiting[p][k] -= 1;
            if waiting[p][k] == 0 && rank[p].is_none() {
                queue.push_back(p);
            }
        }
    }

    let mut best: Vec<Option<Best>> = (0..n).map(|_| None).collect();
    let mut pending: BTreeSet<(usize, usize)> =
        (0..n).filter_map(|c| rank[c].map(|r| (r, c))).collect();
    // Each change lowers a (cost, rank) key or refreshes a stale set, so this settles; the
    // cap only guards against a pathological e-graph.
    let mut budget = n.saturating_mul(64).max(1024);
    while let Some((_, c)) = pending.pop_first() {
        if budget == 0 {
            break;
        }
        budget -= 1;
        let mut cand: Option<Best> = None;
        'nodes: for (e, ch) in &nodes[c] {
            let mut child_sets: Vec<(&Rc<BitSet>, u64)> = Vec::with_capacity(ch.len());
            for &d in ch {
                match &best[d] {
                    Some(b) => {
                        if !b.set.is_empty() {
                            child_sets.push((&b.set, b.total));
                        }
                    }
                    None => continue 'nodes,
                }
            }
            let cost = node_cost(e);
            let (set, total) = match child_sets.as_slice() {
                // Leaves need nothing; they are never part of a cycle, so their set is empty.
                _ if ch.is_empty() => (Rc::new(BitSet::new(n)), cost),
                [] => {
                    let mut s = BitSet::new(n);
                    s.insert(c);
                    (Rc::new(s), cost)
                }
                [(s, t)] => {
                    if s.contains(c) {
                        continue 'nodes;
                    }
                    let mut s = (***s).clone();
                    s.insert(c);
                    (Rc::new(s), t + cost)
                }
                many => {
                    let mut s = (**many[0].0).clone();
                    for (o, _) in &many[1..] {
                        s.union_with(o);
                    }
                    if s.contains(c) {
                        continue 'nodes;
                    }
                    s.insert(c);
                    let total = s
                        .iter()
                        .map(|i| {
                            if i == c {
                                cost
                            } else {
                                best[i].as_ref().map_or(0, |b| node_cost(&b.node))
                            }
                        })
                        .sum();
                    (Rc::new(s), total)
                }
            };
            let b = Best {
                total,
                original: original.contains(e),
                node: e.clone(),
                set,
            };
            if cand.as_ref().is_none_or(|x| b.key() < x.key()) {
                cand = Some(b);
            }
        }
        let Some(cand) = cand else { continue };
        let changed = match &best[c] {
            None => true,
            Some(old) => old.key() != cand.key() || old.set != cand.set,
        };
        if changed {
            best[c] = Some(cand);
            for &(p, _) in &users[c] {
                if let Some(r) = rank[p] {
                    pending.insert((r, p));
                }
            }
        }
    }
    best.into_iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|b| (ids[i], b.node)))
        .collect()
}
