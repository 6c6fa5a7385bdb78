//! A small graph builder for the inference unit tests.

use super::{infer_node, infer_shapes, type_string};
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::graph::{Graph, NodeId, TypeInfo, ValueId, ValueInfo};
use crate::op::Op;
use crate::tensor::Tensor;

pub(crate) fn k(n: u64) -> Dim {
    Dim::Known(n)
}
pub(crate) fn n() -> Dim {
    Dim::Sym("N".into())
}
pub(crate) fn sym(s: &str) -> Dim {
    Dim::Sym(s.into())
}
pub(crate) fn unk() -> Dim {
    Dim::Unknown
}

pub(crate) struct T {
    pub g: Graph,
    count: usize,
}

impl T {
    pub fn new() -> T {
        T {
            g: Graph::new("t"),
            count: 0,
        }
    }

    pub fn with_opset(v: i64) -> T {
        let mut t = T::new();
        t.g.meta.set_opset("", v);
        t
    }

    pub fn input(&mut self, name: &str, dtype: DType, dims: &[Dim]) -> ValueId {
        self.g
            .add_input(name, TypeInfo::new(dtype, Shape(dims.to_vec())))
    }

    pub fn input_unranked(&mut self, name: &str, dtype: DType) -> ValueId {
        self.g.add_input(
            name,
            TypeInfo {
                dtype: Some(dtype),
                shape: None,
            },
        )
    }

    pub fn konst(&mut self, name: &str, t: Tensor) -> ValueId {
        self.g.add_const(name, t)
    }

    pub fn konst_f32(&mut self, name: &str, shape: &[usize]) -> ValueId {
        let n: usize = shape.iter().product();
        self.g
            .add_const(name, Tensor::from_vec(shape, vec![0.5f32; n]))
    }

    pub fn ints(&mut self, name: &str, v: &[i64]) -> ValueId {
        self.g
            .add_const(name, Tensor::from_vec(&[v.len()], v.to_vec()))
    }

    pub fn floats(&mut self, name: &str, v: &[f32]) -> ValueId {
        self.g
            .add_const(name, Tensor::from_vec(&[v.len()], v.to_vec()))
    }

    pub fn scalar_i64(&mut self, name: &str, v: i64) -> ValueId {
        self.g.add_const(name, Tensor::scalar(v))
    }

    fn fresh(&mut self) -> String {
        self.count += 1;
        format!("n{}", self.count)
    }

    /// A one-output node with an automatic name.
    pub fn node(&mut self, op: impl Into<Op>, inputs: &[ValueId]) -> ValueId {
        let name = self.fresh();
        self.named(&name, op, inputs)
    }

    pub fn named(&mut self, name: &str, op: impl Into<Op>, inputs: &[ValueId]) -> ValueId {
        self.g.add_simple(name, op, inputs, format!("{name}_out"))
    }

    /// A node with optional inputs and `n_out` outputs named `<name>_out<i>`.
    pub fn multi(
        &mut self,
        op: impl Into<Op>,
        inputs: &[Option<ValueId>],
        n_out: usize,
    ) -> Vec<ValueId> {
        let name = self.fresh();
        let outs = (0..n_out)
            .map(|i| ValueInfo::new(format!("{name}_out{i}"), TypeInfo::unknown()))
            .collect();
        let id = self.g.add_node(&name, op, inputs, outs);
        (0..n_out).map(|i| ValueId::new(id, i)).collect()
    }

    pub fn run(&mut self) {
        if let Err(e) = infer_shapes(&mut self.g) {
            panic!("inference failed: {e}");
        }
    }

    pub fn run_err(&mut self) -> String {
        match infer_shapes(&mut self.g) {
            Ok(_) => panic!("inference succeeded"),
            Err(e) => e.to_string(),
        }
    }

    pub fn ty(&self, v: ValueId) -> String {
        type_string(&self.g.value(v).ty)
    }

    /// Infer one node alone, through `infer_node`.
    pub fn infer_one(&self, n: NodeId) -> Vec<String> {
        match infer_node(&self.g, n) {
            Ok(v) => v.iter().map(type_string).collect(),
            Err(e) => panic!("inference failed: {e}"),
        }
    }
}
