//! The graph: nodes on a petgraph `StableDiGraph`, values as (node, output slot).
//!
//! - A [`Node`] owns its op, its ONNX node name and one [`ValueInfo`] per output.
//! - A [`ValueId`] names one output slot of one node, like tract's `OutletId`.
//! - An edge carries `(from_slot, to_slot)`: which output of the producer feeds
//!   which input of the consumer. Edges are the only record of a node's inputs,
//!   so there is nothing to keep in sync; a missing optional input is a slot
//!   without an edge.
//! - Graph inputs and constants are nodes ([`Op::Input`], [`Op::Const`]).
//!
//! Node indices stay valid while other nodes are removed (`StableDiGraph`), so a
//! pass can collect ids first and mutate afterwards.

use crate::annot::Annotations;
use crate::dim::Shape;
use crate::dtype::DType;
use crate::op::Op;
use crate::tensor::Tensor;
use petgraph::Direction;
use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

pub type NodeId = NodeIndex<u32>;

/// One output slot of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    pub node: NodeId,
    pub slot: usize,
}

impl ValueId {
    pub fn new(node: NodeId, slot: usize) -> ValueId {
        ValueId { node, slot }
    }
}

/// An edge: output `from_slot` of the source feeds input `to_slot` of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from_slot: usize,
    pub to_slot: usize,
}

/// Element type and shape of a value; either may be unknown.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TypeInfo {
    pub dtype: Option<DType>,
    /// `None`: unknown rank.
    pub shape: Option<Shape>,
}

impl TypeInfo {
    pub fn new(dtype: DType, shape: Shape) -> TypeInfo {
        TypeInfo {
            dtype: Some(dtype),
            shape: Some(shape),
        }
    }

    pub fn of_tensor(t: &Tensor) -> TypeInfo {
        TypeInfo::new(t.dtype(), Shape::known(t.shape()))
    }

    pub fn unknown() -> TypeInfo {
        TypeInfo::default()
    }
}

/// A value: its ONNX name, its type and what passes decided about it.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub ty: TypeInfo,
    pub ann: Annotations,
    /// ONNX `ValueInfoProto.doc_string` for graph inputs and outputs.
    pub doc: String,
}

impl ValueInfo {
    pub fn new(name: impl Into<String>, ty: TypeInfo) -> ValueInfo {
        ValueInfo {
            name: name.into(),
            ty,
            ann: Annotations::default(),
            doc: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The ONNX node name (may be empty; for inputs and constants, the value's name).
    pub name: String,
    pub op: Op,
    pub outputs: Vec<ValueInfo>,
    /// ONNX `NodeProto.doc_string`.
    pub doc: String,
}

/// Model-level facts carried from import to export unchanged.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ModelMeta {
    pub ir_version: i64,
    /// (domain, version); "" is the default ONNX domain.
    pub opset_imports: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub graph_doc_string: String,
    pub metadata_props: Vec<(String, String)>,
}

impl ModelMeta {
    /// Version of the default ONNX domain (`""`/`ai.onnx`), if imported.
    pub fn onnx_opset(&self) -> Option<i64> {
        self.opset_imports
            .iter()
            .find(|(d, _)| d.is_empty() || d == "ai.onnx")
            .map(|(_, v)| *v)
    }

    pub fn set_opset(&mut self, domain: &str, version: i64) {
        match self.opset_imports.iter_mut().find(|(d, _)| d == domain) {
            Some(e) => e.1 = version,
            None => self.opset_imports.push((domain.to_string(), version)),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    pub meta: ModelMeta,
    g: StableDiGraph<Node, Edge>,
    /// Input nodes, in the model's input order.
    inputs: Vec<NodeId>,
    /// Graph outputs, in order.
    outputs: Vec<ValueId>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    // ---- construction ------------------------------------------------------------------

    /// Add a graph input with the given name and type.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TypeInfo) -> ValueId {
        let name = name.into();
        let id = self.g.add_node(Node {
            name: name.clone(),
            op: Op::Input,
            outputs: vec![ValueInfo::new(name, ty)],
            doc: String::new(),
        });
        self.inputs.push(id);
        ValueId::new(id, 0)
    }

    /// Add a constant value.
    pub fn add_const(&mut self, name: impl Into<String>, t: impl Into<Arc<Tensor>>) -> ValueId {
        let t: Arc<Tensor> = t.into();
        let name = name.into();
        let ty = TypeInfo::of_tensor(&t);
        let id = self.g.add_node(Node {
            name: name.clone(),
            op: Op::Const(t),
            outputs: vec![ValueInfo::new(name, ty)],
            doc: String::new(),
        });
        ValueId::new(id, 0)
    }

    /// Add an operator node. `inputs[i]` feeds input slot `i` (`None`: optional input absent).
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: impl Into<Op>,
        inputs: &[Option<ValueId>],
        outputs: Vec<ValueInfo>,
    ) -> NodeId {
        let id = self.g.add_node(Node {
            name: name.into(),
            op: op.into(),
            outputs,
            doc: String::new(),
        });
        for (slot, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.connect(*v, id, slot);
            }
        }
        id
    }

    /// Add a one-output node whose output value is named `out_name`, with unknown type.
    pub fn add_simple(
        &mut self,
        name: impl Into<String>,
        op: impl Into<Op>,
        inputs: &[ValueId],
        out_name: impl Into<String>,
    ) -> ValueId {
        let ins: Vec<Option<ValueId>> = inputs.iter().copied().map(Some).collect();
        let id = self.add_node(
            name,
            op,
            &ins,
            vec![ValueInfo::new(out_name, TypeInfo::unknown())],
        );
        ValueId::new(id, 0)
    }

    pub fn set_outputs(&mut self, outputs: Vec<ValueId>) {
        self.outputs = outputs;
    }

    /// Connect `value` to input `slot` of `node`, replacing whatever fed that slot.
    pub fn connect(&mut self, value: ValueId, node: NodeId, slot: usize) {
        self.disconnect(node, slot);
        self.g.add_edge(
            value.node,
            node,
            Edge {
                from_slot: value.slot,
                to_slot: slot,
            },
        );
    }

    /// Remove whatever feeds input `slot` of `node`.
    pub fn disconnect(&mut self, node: NodeId, slot: usize) {
        let e: Vec<EdgeIndex<u32>> = self
            .g
            .edges_directed(node, Direction::Incoming)
            .filter(|e| e.weight().to_slot == slot)
            .map(|e| e.id())
            .collect();
        for e in e {
            self.g.remove_edge(e);
        }
    }

    /// Set a node's inputs, replacing all existing input edges.
    pub fn set_inputs(&mut self, node: NodeId, inputs: &[Option<ValueId>]) {
        let old: Vec<EdgeIndex<u32>> = self
            .g
            .edges_directed(node, Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        for (slot, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.connect(*v, node, slot);
            }
        }
    }

    /// Make every consumer of `old` (and the graph outputs) use `new` instead.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) {
        if old == new {
            return;
        }
        for (node, slot) in self.consumers(old) {
            self.connect(new, node, slot);
        }
        for o in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Remove a node and its edges. Graph outputs must not refer to it any more.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.inputs.retain(|&i| i != id);
        self.g.remove_node(id)
    }

    // ---- queries -------------------------------------------------------------------------

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn try_node(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    pub fn value(&self, v: ValueId) -> &ValueInfo {
        &self.g[v.node].outputs[v.slot]
    }

    pub fn value_mut(&mut self, v: ValueId) -> &mut ValueInfo {
        &mut self.g[v.node].outputs[v.slot]
    }

    pub fn value_name(&self, v: ValueId) -> &str {
        &self.value(v).name
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// All node ids in index order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.g.node_indices().collect()
    }

    pub fn input_nodes(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn input_values(&self) -> Vec<ValueId> {
        self.inputs.iter().map(|&n| ValueId::new(n, 0)).collect()
    }

    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// Reorder the graph inputs (each id must already be an input node).
    pub fn set_input_order(&mut self, order: Vec<NodeId>) {
        debug_assert!(order.iter().all(|n| self.inputs.contains(n)));
        self.inputs = order;
    }

    /// The node's inputs by slot; `None` where an optional input is absent.
    pub fn inputs(&self, node: NodeId) -> Vec<Option<ValueId>> {
        let mut v: Vec<Option<ValueId>> = Vec::new();
        for e in self.g.edges_directed(node, Direction::Incoming) {
            let w = e.weight();
            if v.len() <= w.to_slot {
                v.resize(w.to_slot + 1, None);
            }
            v[w.to_slot] = Some(ValueId::new(e.source(), w.from_slot));
        }
        v
    }

    /// The value feeding input `slot`, if connected.
    pub fn input(&self, node: NodeId, slot: usize) -> Option<ValueId> {
        self.g
            .edges_directed(node, Direction::Incoming)
            .find(|e| e.weight().to_slot == slot)
            .map(|e| ValueId::new(e.source(), e.weight().from_slot))
    }

    /// The constant feeding input `slot`, if that input is a constant.
    pub fn const_input(&self, node: NodeId, slot: usize) -> Option<&Arc<Tensor>> {
        self.input(node, slot).and_then(|v| self.const_value(v))
    }

    /// The tensor of a value produced by a `Const` node.
    pub fn const_value(&self, v: ValueId) -> Option<&Arc<Tensor>> {
        self.g[v.node].op.as_const()
    }

    /// Consumers of a value as (node, input slot), sorted for determinism.
    pub fn consumers(&self, v: ValueId) -> Vec<(NodeId, usize)> {
        let mut c: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().from_slot == v.slot)
            .map(|e| (e.target(), e.weight().to_slot))
            .collect();
        c.sort();
        c
    }

    /// Number of uses of a value, counting graph outputs.
    pub fn use_count(&self, v: ValueId) -> usize {
        self.consumers(v).len() + self.outputs.iter().filter(|&&o| o == v).count()
    }

    pub fn is_graph_output(&self, v: ValueId) -> bool {
        self.outputs.contains(&v)
    }

    /// Distinct nodes consuming any output of `node`, sorted.
    pub fn successors(&self, node: NodeId) -> Vec<NodeId> {
        let mut s: Vec<NodeId> = self
            .g
            .neighbors_directed(node, Direction::Outgoing)
            .collect();
        s.sort();
        s.dedup();
        s
    }

    /// Find a value by its name (linear scan; build [`Graph::value_names`] for many lookups).
    pub fn find_value(&self, name: &str) -> Option<ValueId> {
        self.g.node_indices().find_map(|n| {
            self.g[n]
                .outputs
                .iter()
                .position(|v| v.name == name)
                .map(|slot| ValueId::new(n, slot))
        })
    }

    /// Map from value name to value id.
    pub fn value_names(&self) -> HashMap<String, ValueId> {
        let mut m = HashMap::new();
        for n in self.g.node_indices() {
            for (slot, v) in self.g[n].outputs.iter().enumerate() {
                m.insert(v.name.clone(), ValueId::new(n, slot));
            }
        }
        m
    }

    /// A value name not used yet, derived from `base` (`base`, `base_1`, `base_2`, ...).
    pub fn fresh_name(&self, base: &str) -> String {
        let used: HashSet<&str> = self
            .g
            .node_weights()
            .flat_map(|n| n.outputs.iter().map(|v| v.name.as_str()))
            .collect();
        if !used.contains(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !used.contains(n.as_str()))
            .expect("unbounded")
    }

    /// Nodes in a deterministic topological order: Kahn's algorithm taking the smallest
    /// node index among the ready nodes. `Err` names a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        let mut indeg: BTreeMap<NodeId, usize> = BTreeMap::new();
        for n in self.g.node_indices() {
            let preds: HashSet<NodeId> =
                self.g.neighbors_directed(n, Direction::Incoming).collect();
            indeg.insert(n, preds.len());
        }
        let mut ready: BinaryHeap<std::cmp::Reverse<NodeId>> = indeg
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| std::cmp::Reverse(*n))
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(std::cmp::Reverse(n)) = ready.pop() {
            order.push(n);
            for s in self.successors(n) {
                let d = indeg.get_mut(&s).expect("node");
                *d -= 1;
                if *d == 0 {
                    ready.push(std::cmp::Reverse(s));
                }
            }
        }
        if order.len() != indeg.len() {
            let done: HashSet<NodeId> = order.iter().copied().collect();
            let stuck = *indeg
                .keys()
                .find(|n| !done.contains(n))
                .expect("a stuck node");
            return Err(stuck);
        }
        Ok(order)
    }

    /// Nodes from which some graph output is reachable (everything else is dead code).
    pub fn live_nodes(&self) -> HashSet<NodeId> {
        let mut live = HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|v| v.node).collect();
        stack.extend(self.inputs.iter().copied());
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g.neighbors_directed(n, Direction::Incoming));
            }
        }
        live
    }

    /// Raw access for algorithms that need petgraph directly.
    pub fn petgraph(&self) -> &StableDiGraph<Node, Edge> {
        &self.g
    }

    /// A compact description of a node for error messages: `Conv "conv1" (-> %y)`.
    pub fn describe(&self, id: NodeId) -> String {
        let n = &self.g[id];
        let outs: Vec<&str> = n.outputs.iter().map(|v| v.name.as_str()).collect();
        if n.name.is_empty() {
            format!("{} (output {})", n.op.qualified_name(), outs.join(", "))
        } else {
            format!("{} node '{}'", n.op.qualified_name(), n.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Identity, Mul, Relu, Resize};

    fn small() -> (Graph, ValueId, ValueId, ValueId) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::new(DType::F32, Shape::known(&[1, 4])));
        let w = g.add_const("w", Tensor::from_vec(&[4], vec![1f32, 2.0, 3.0, 4.0]));
        let m = g.add_simple("mul", Mul {}, &[x, w], "m");
        let r = g.add_simple("relu", Relu {}, &[m], "r");
        g.set_outputs(vec![r]);
        (g, x, w, r)
    }

    #[test]
    fn inputs_and_consumers() {
        let (g, x, w, r) = small();
        let mul = g.consumers(x)[0].0;
        assert_eq!(g.inputs(mul), vec![Some(x), Some(w)]);
        assert_eq!(g.const_input(mul, 1).unwrap().len(), 4);
        assert!(g.const_input(mul, 0).is_none());
        assert_eq!(g.use_count(r), 1);
        assert_eq!(g.find_value("m"), Some(ValueId::new(mul, 0)));
    }

    #[test]
    fn topo_order_is_deterministic_and_detects_cycles() {
        let (mut g, x, _, r) = small();
        let order = g.topo_order().unwrap();
        assert_eq!(order.len(), 4);
        assert_eq!(order[0], x.node);
        assert_eq!(*order.last().unwrap(), r.node);
        // Close a cycle: relu feeds mul.
        let mul = g.consumers(x)[0].0;
        g.connect(r, mul, 0);
        assert!(g.topo_order().is_err());
    }

    #[test]
    fn replace_all_uses_updates_outputs() {
        let (mut g, x, _, r) = small();
        let id = g.add_simple("id", Identity {}, &[x], "x2");
        g.replace_all_uses(r, id);
        assert_eq!(g.outputs(), &[id]);
        assert!(!g.live_nodes().contains(&r.node));
    }

    #[test]
    fn fresh_names_avoid_collisions() {
        let (g, ..) = small();
        assert_eq!(g.fresh_name("q"), "q");
        assert_eq!(g.fresh_name("m"), "m_1");
    }

    #[test]
    fn optional_inputs_leave_gaps() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", TypeInfo::unknown());
        let s = g.add_const("scales", Tensor::from_vec(&[4], vec![1f32, 1.0, 2.0, 2.0]));
        let n = g.add_node(
            "resize",
            Resize::default(),
            &[Some(x), None, Some(s)],
            vec![ValueInfo::new("y", TypeInfo::unknown())],
        );
        assert_eq!(g.inputs(n), vec![Some(x), None, Some(s)]);
        assert_eq!(g.input(n, 1), None);
    }
}
