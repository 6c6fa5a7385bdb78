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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuse::analysis::{FuseAnalysis, OpaqueEntry};
    use crate::fuse::lang::{ConstKey, MetaKey, OpaqueKey};
    use egg::{CostFunction, Extractor};
    use qopt_ir::{NodeId, Tensor, TypeInfo};
    use std::sync::Arc;

    /// An e-graph whose side tables hold one opaque input and three constants (the leaves
    /// these tests use); metas are not read by extraction.
    fn egraph() -> FuseGraph {
        let mut a = FuseAnalysis::default();
        a.opaque(OpaqueEntry {
            node: NodeId::new(0),
            outputs: vec![TypeInfo::unknown()],
        });
        for i in 0..3 {
            a.original_const(Arc::new(Tensor::scalar(1f32)), NodeId::new(1 + i), "c");
        }
        FuseGraph::new(a)
    }

    /// egg's tree cost with the same per-node costs, for comparison.
    struct TreeCost;
    impl CostFunction<FuseLang> for TreeCost {
        type Cost = u64;
        fn cost<C: FnMut(Id) -> u64>(&mut self, n: &FuseLang, mut costs: C) -> u64 {
            n.fold(node_cost(n), |sum, id| sum + costs(id))
        }
    }

    #[test]
    fn a_shared_sub_dag_is_counted_once() {
        // Class r holds two equivalent forms:
        //   r1 = add(mul(T, k), mul(T, k2)) with T = conv(x) shared by both Muls:
        //        DAG cost 2 + 2 + 2 + 16 = 22, tree cost 2 + (2 + 16) + (2 + 16) = 38;
        //   r2 = conv(conv(x)): 32 either way.
        // The DAG-aware extraction keeps r1 (one conv); a tree cost picks r2 (two convs).
        let mut eg = egraph();
        let m = |eg: &mut FuseGraph, i: u32| eg.add(FuseLang::Meta(MetaKey(i)));
        let x = eg.add(FuseLang::Opaque(OpaqueKey(0), vec![]));
        let w = eg.add(FuseLang::Const(ConstKey(0)));
        let k = eg.add(FuseLang::Const(ConstKey(1)));
        let k2 = eg.add(FuseLang::Const(ConstKey(2)));
        let none = eg.add(FuseLang::Absent);
        let (m0, m1, m2, m3, m4, m5) = (
            m(&mut eg, 0),
            m(&mut eg, 1),
            m(&mut eg, 2),
            m(&mut eg, 3),
            m(&mut eg, 4),
            m(&mut eg, 5),
        );
        let t = eg.add(FuseLang::Conv([m0, x, w, none]));
        let s1 = eg.add(FuseLang::Mul([m1, t, k]));
        let s2 = eg.add(FuseLang::Mul([m2, t, k2]));
        let r1 = eg.add(FuseLang::Add([m3, s1, s2]));
        let inner = eg.add(FuseLang::Conv([m4, x, w, none]));
        let r2 = eg.add(FuseLang::Conv([m5, inner, w, none]));
        eg.union(r1, r2);
        eg.rebuild();
        let r = eg.find(r1);

        let choice = extract(&eg, &HashSet::new());
        assert!(matches!(choice[&r], FuseLang::Add(_)), "{:?}", choice[&r]);
        let (tree_cost, tree_expr) = Extractor::new(&eg, TreeCost).find_best(r);
        assert_eq!(tree_cost, 32);
        assert!(matches!(tree_expr.as_ref().last(), Some(FuseLang::Conv(_))));
    }

    #[test]
    fn ties_go_to_the_original_e_node() {
        // add(y, k) and add(k, y) cost the same; the graph's own form wins either way round.
        for original_first in [true, false] {
            let mut eg = egraph();
            let y = eg.add(FuseLang::Opaque(OpaqueKey(0), vec![]));
            let k = eg.add(FuseLang::Const(ConstKey(0)));
            let mm = eg.add(FuseLang::Meta(MetaKey(0)));
            let a = FuseLang::Add([mm, y, k]);
            let b = FuseLang::Add([mm, k, y]);
            let (orig, other) = if original_first { (a, b) } else { (b, a) };
            let i = eg.add(orig.clone());
            let j = eg.add(other);
            eg.union(i, j);
            eg.rebuild();
            let choice = extract(&eg, &HashSet::from([orig.clone()]));
            assert_eq!(choice[&eg.find(i)], orig);
        }
    }
}
