//! The e-class analysis of `fuse` and the side tables its leaves point into.
//!
//! Each e-class carries [`ClassData`]: element type and shape (from the graph's recorded
//! value types, or a constant's tensor), and the constant value when the class is one
//! (`Arc<Tensor>`, so folding reads weights without copying them). Constness flows through
//! `Identity`/`Dropout` in [`FuseAnalysis::make`], so a weight behind an Identity (as some
//! exporters write Constant nodes) folds like an initializer.
//!
//! The side tables hold what an e-node cannot: tensors ([`ConstEntry`]), node names and typed
//! attributes ([`MetaEntry`]), and the original nodes that `fuse` leaves alone
//! ([`OpaqueEntry`]). Tensors that appliers create are interned by content, so a rule that
//! matches again in a later iteration adds nothing new and the e-graph saturates.

use super::lang::{ConstKey, FuseLang, MetaKey, OpaqueKey};
use egg::{Analysis, DidMerge, EGraph, Id, Symbol};
use qopt_ir::{DType, NodeId, Op, Shape, Tensor, TypeInfo};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

pub type FuseGraph = EGraph<FuseLang, FuseAnalysis>;

/// A constant: an original Const node, or a tensor an applier computed.
#[derive(Clone, Debug)]
pub struct ConstEntry {
    pub tensor: Arc<Tensor>,
    /// The Const node it came from; `None` for computed tensors.
    pub origin: Option<NodeId>,
    /// The value name (original) or the name to derive a fresh one from (computed).
    pub name: String,
}

/// The name and typed attributes of a rewritable node.
#[derive(Clone, Debug)]
pub struct MetaEntry {
    pub op: Op,
    /// The ONNX node name the rebuilt node takes.
    pub name: String,
    pub doc: String,
}

/// An original node that no rule rewrites.
#[derive(Clone, Debug)]
pub struct OpaqueEntry {
    pub node: NodeId,
    /// Recorded types of its outputs.
    pub outputs: Vec<TypeInfo>,
}

#[derive(Default)]
pub struct FuseAnalysis {
    pub consts: Vec<ConstEntry>,
    /// Computed constants by content hash, for interning.
    computed: HashMap<u64, Vec<ConstKey>>,
    pub metas: Vec<MetaEntry>,
    /// Metas derived from another one with changed attributes (a Gemm made from a MatMul,
    /// a Gemm whose beta became 1), interned so repeated matches reuse them.
    derived: HashMap<(MetaKey, String), MetaKey>,
    pub opaque: Vec<OpaqueEntry>,
    /// E-classes the graph needs whatever the rules do: graph outputs and kept sinks.
    /// A root counts as a use in [`uses`].
    pub roots: Vec<Id>,
    /// (rule, matched classes) an applier already folded; skips recomputing its tensors.
    applied: HashSet<(Symbol, Vec<Id>)>,
    /// Why matches were not folded (node names and reason), for `--verbose`.
    pub refusals: BTreeSet<String>,
}

/// What the analysis knows about an e-class.
#[derive(Clone, Debug, Default)]
pub struct ClassData {
    pub dtype: Option<DType>,
    pub shape: Option<Shape>,
    pub konst: Option<Arc<Tensor>>,
    /// The class is the `absent` leaf (an optional input that is not connected).
    pub absent: bool,
}

impl ClassData {
    pub fn of_type(ty: &TypeInfo) -> ClassData {
        ClassData {
            dtype: ty.dtype,
            shape: ty.shape.clone(),
            ..ClassData::default()
        }
    }

    /// The rank, when known.
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.0.len())
    }
}

fn merge_field<T>(to: &mut Option<T>, from: Option<T>) -> DidMerge {
    match (to.is_some(), from) {
        (false, Some(v)) => {
            *to = Some(v);
            DidMerge(true, false)
        }
        (true, None) => DidMerge(false, true),
        _ => DidMerge(false, false),
    }
}

impl Analysis<FuseLang> for FuseAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut FuseGraph, enode: &FuseLang, _id: Id) -> ClassData {
        match enode {
            FuseLang::Const(k) => {
                let t = &egraph.analysis.consts[k.index()].tensor;
                ClassData {
                    dtype: Some(t.dtype()),
                    shape: Some(Shape::known(t.shape())),
                    konst: Some(t.clone()),
                    absent: false,
                }
            }
            FuseLang::Absent => ClassData {
                absent: true,
                ..ClassData::default()
            },
            FuseLang::Opaque(k, _) => match egraph.analysis.opaque[k.index()].outputs.as_slice() {
                [ty] => ClassData::of_type(ty),
                _ => ClassData::default(),
            },
            FuseLang::Proj(slot, [node]) => opaque_key(egraph, *node)
                .and_then(|k| egraph.analysis.opaque[k.index()].outputs.get(slot.index()))
                .map(ClassData::of_type)
                .unwrap_or_default(),
            // Identity and inference Dropout pass their input through, constness included.
            FuseLang::Identity([_, x]) | FuseLang::Dropout([_, x, _, _]) => {
                let d = &egraph[*x].data;
                ClassData {
                    absent: false,
                    ..d.clone()
                }
            }
            _ => ClassData::default(),
        }
    }

    fn merge(&mut self, to: &mut ClassData, from: ClassData) -> DidMerge {
        merge_field(&mut to.dtype, from.dtype)
            | merge_field(&mut to.shape, from.shape)
            | merge_field(&mut to.konst, from.konst)
            | {
                let changed = from.absent && !to.absent;
                to.absent |= from.absent;
                DidMerge(changed, !from.absent && to.absent)
            }
    }
}

/// The opaque node an e-class holds, if any.
pub fn opaque_key(egraph: &FuseGraph, id: Id) -> Option<OpaqueKey> {
    egraph[id].nodes.iter().find_map(|n| match n {
        FuseLang::Opaque(k, _) => Some(*k),
        _ => None,
    })
}

/// The meta leaf of a meta e-class.
pub fn meta_key(egraph: &FuseGraph, id: Id) -> Option<MetaKey> {
    egraph[id].nodes.iter().find_map(|n| match n {
        FuseLang::Meta(k) => Some(*k),
        _ => None,
    })
}

/// The entry of a meta e-class.
pub fn meta(egraph: &FuseGraph, id: Id) -> Option<&MetaEntry> {
    meta_key(egraph, id).map(|k| &egraph.analysis.metas[k.index()])
}

/// The constant value of an e-class, if it is one.
pub fn konst(egraph: &FuseGraph, id: Id) -> Option<Arc<Tensor>> {
    egraph[id].data.konst.clone()
}

pub fn is_absent(egraph: &FuseGraph, id: Id) -> bool {
    egraph[id].data.absent
}

/// The name of the constant an e-class holds (the original's name, or a computed one's
/// hint), to derive names of folded tensors from.
pub fn const_name(egraph: &FuseGraph, id: Id) -> Option<String> {
    egraph[id].nodes.iter().find_map(|n| match n {
        FuseLang::Const(k) => Some(egraph.analysis.consts[k.index()].name.clone()),
        _ => None,
    })
}

/// How many distinct consumers the value of e-class `id` has: parent e-classes other than
/// itself (an `identity(x)` merged into `x`'s class is not a use), plus graph roots.
///
/// Rules that fold a producer into its consumer require exactly one use, so a conv whose
/// output also feeds something else is never duplicated. The rules never add an e-node that
/// consumes the class they absorb (a folded conv reads the conv's *inputs*), so parents only
/// grow by equivalent forms of existing consumers, which share the consumer's class.
pub fn uses(egraph: &FuseGraph, id: Id) -> usize {
    let id = egraph.find(id);
    let mut parents: Vec<Id> = egraph[id]
        .parents()
        .map(|p| egraph.find(p))
        .filter(|&p| p != id)
        .collect();
    parents.sort();
    parents.dedup();
    let roots = egraph
        .analysis
        .roots
        .iter()
        .filter(|&&r| egraph.find(r) == id)
        .count();
    parents.len() + roots
}

impl FuseAnalysis {
    /// Register an original constant (one entry per Const node: equal tensors stay distinct
    /// values, as the graph had them).
    pub fn original_const(&mut self, tensor: Arc<Tensor>, node: NodeId, name: &str) -> ConstKey {
        self.consts.push(ConstEntry {
            tensor,
            origin: Some(node),
            name: name.to_string(),
        });
        ConstKey(self.consts.len() as u32 - 1)
    }

    pub fn meta(&mut self, entry: MetaEntry) -> MetaKey {
        self.metas.push(entry);
        MetaKey(self.metas.len() as u32 - 1)
    }

    pub fn opaque(&mut self, entry: OpaqueEntry) -> OpaqueKey {
        self.opaque.push(entry);
        OpaqueKey(self.opaque.len() as u32 - 1)
    }

    /// Whether `rule` already folded the match `ids` (canonical e-class ids).
    pub fn was_applied(&self, rule: Symbol, ids: &[Id]) -> bool {
        self.applied.contains(&(rule, ids.to_vec()))
    }

    pub fn mark_applied(&mut self, rule: Symbol, ids: Vec<Id>) {
        self.applied.insert((rule, ids));
    }
}

/// A hash of a tensor's type, shape and element bits for interning (equal tensors are then
/// compared bit for bit). Word-at-a-time multiply-rotate, as rustc's FxHash: several times
/// faster than the byte-wise FNV of `Tensor::content_hash` on megabytes of folded weights.
fn intern_hash(t: &Tensor) -> u64 {
    fn mix(h: u64, w: u64) -> u64 {
        (h.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
    }
    let mut h = mix(0, t.dtype() as u64);
    for &d in t.shape() {
        h = mix(h, d as u64);
    }
    match t {
        Tensor::F32(a) => a.iter().fold(h, |h, x| mix(h, x.to_bits() as u64)),
        Tensor::F64(a) => a.iter().fold(h, |h, x| mix(h, x.to_bits())),
        Tensor::F16(a) => a.iter().fold(h, |h, x| mix(h, x.to_bits() as u64)),
        other => mix(h, other.content_hash()),
    }
}

/// Add a computed constant (interned by content) and return its e-class.
pub fn add_computed_const(egraph: &mut FuseGraph, tensor: Tensor, name_hint: &str) -> Id {
    let hash = intern_hash(&tensor);
    let a = &mut egraph.analysis;
    let existing = a.computed.get(&hash).and_then(|keys| {
        keys.iter()
            .copied()
            .find(|k| a.consts[k.index()].tensor.bit_eq(&tensor))
    });
    let key = match existing {
        Some(k) => k,
        None => {
            a.consts.push(ConstEntry {
                tensor: Arc::new(tensor),
                origin: None,
                name: name_hint.to_string(),
            });
            let k = ConstKey(a.consts.len() as u32 - 1);
            a.computed.entry(hash).or_default().push(k);
            k
        }
    };
    egraph.add(FuseLang::Const(key))
}

/// A meta for `base`'s node with a different op (interned), and its e-class.
pub fn add_derived_meta(egraph: &mut FuseGraph, base: MetaKey, op: Op) -> Id {
    let a = &mut egraph.analysis;
    if op == a.metas[base.index()].op {
        return egraph.add(FuseLang::Meta(base));
    }
    let key = (base, format!("{op:?}"));
    let k = match a.derived.get(&key) {
        Some(k) => *k,
        None => {
            let entry = MetaEntry {
                op,
                name: a.metas[base.index()].name.clone(),
                doc: a.metas[base.index()].doc.clone(),
            };
            let k = a.meta(entry);
            a.derived.insert(key, k);
            k
        }
    };
    egraph.add(FuseLang::Meta(k))
}
