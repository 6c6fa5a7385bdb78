//! Contents of small integer values, tracked during inference.
//!
//! paddle2onnx and PyTorch exports compute shapes at run time:
//! `Shape -> Cast -> Slice -> Cast -> Concat(with constants) -> Reshape`. To give
//! the Reshape an output shape, inference follows the *contents* of such 0-D and
//! 1-D integer values, element by element, as known integers or symbols taken
//! from the dims they were read from ([`SymInt`]). This mirrors ONNX's "data
//! propagation" (`onnx.shape_inference.infer_shapes(..., data_prop=True)`,
//! `onnx/defs/shape_inference.h` `PartialDataPropagationFunction`) for Shape,
//! Gather, Slice, Concat, Unsqueeze, Squeeze, Cast, Reshape, Add/Sub/Mul/Div,
//! Equal, Where, Max/Min, Neg, Range, ConstantOfShape and Size.
//!
//! The contents live in a side table for the duration of one inference walk
//! ([`EagerTable`]), or are computed on demand for a single node
//! ([`LazyTable`], bounded in depth so a pathological graph cannot exhaust the
//! stack). They are never written to the graph.

use super::ctx::Ctx;
use super::dims::Product;
use crate::dim::{Dim, normalize_axis};
use crate::dtype::DType;
use crate::graph::{Graph, TypeInfo, ValueId};
use crate::op::Op;
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::collections::HashMap;

/// Values with more elements than this are not tracked (shape vectors are short).
pub(crate) const MAX_ELEMS: usize = 64;

/// How deep [`LazyTable`] follows producers before giving up.
const MAX_DEPTH: usize = 48;

/// One element of a tracked value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SymInt {
    Int(i64),
    /// Equal to the size of a dimension named by this symbol.
    Sym(String),
    Unknown,
}

impl SymInt {
    pub fn from_dim(d: &Dim) -> SymInt {
        match d {
            Dim::Known(n) => i64::try_from(*n).map_or(SymInt::Unknown, SymInt::Int),
            Dim::Sym(s) => SymInt::Sym(s.clone()),
            Dim::Unknown => SymInt::Unknown,
        }
    }

    /// As a dimension size; `None` for a negative number.
    pub fn to_dim(&self) -> Option<Dim> {
        match self {
            SymInt::Int(n) => u64::try_from(*n).ok().map(Dim::Known),
            SymInt::Sym(s) => Some(Dim::Sym(s.clone())),
            SymInt::Unknown => Some(Dim::Unknown),
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            SymInt::Int(n) => Some(*n),
            _ => None,
        }
    }
}

/// The tracked contents of a 0-D (`scalar`) or 1-D value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShapeValue {
    pub scalar: bool,
    pub elems: Vec<SymInt>,
}

impl ShapeValue {
    pub fn vector(elems: Vec<SymInt>) -> ShapeValue {
        ShapeValue {
            scalar: false,
            elems,
        }
    }

    pub fn scalar(e: SymInt) -> ShapeValue {
        ShapeValue {
            scalar: true,
            elems: vec![e],
        }
    }

    /// All elements as integers, when every one is known.
    pub fn ints(&self) -> Option<Vec<i64>> {
        self.elems.iter().map(SymInt::int).collect()
    }

    /// The contents of a small constant tensor of integers (or of integral floats).
    pub fn of_tensor(t: &Tensor) -> Option<ShapeValue> {
        if t.rank() > 1 || t.len() > MAX_ELEMS {
            return None;
        }
        let elems: Vec<SymInt> = match t.to_i64_vec() {
            Some(v) => v.into_iter().map(SymInt::Int).collect(),
            None => t
                .to_f64_vec()
                .into_iter()
                .map(|x| {
                    if x.fract() == 0.0 && x.abs() < 9.0e15 {
                        SymInt::Int(x as i64)
                    } else {
                        SymInt::Unknown
                    }
                })
                .collect(),
        };
        Some(ShapeValue {
            scalar: t.rank() == 0,
            elems,
        })
    }
}

/// Where inference looks up tracked values.
pub(crate) trait ValueTable {
    fn get(&self, g: &Graph, v: ValueId) -> Option<ShapeValue>;
}

/// The table filled in topological order by `infer_shapes`.
#[derive(Default)]
pub(crate) struct EagerTable {
    map: HashMap<ValueId, ShapeValue>,
}

impl EagerTable {
    pub fn insert(&mut self, v: ValueId, s: ShapeValue) {
        self.map.insert(v, s);
    }
}

impl ValueTable for EagerTable {
    fn get(&self, g: &Graph, v: ValueId) -> Option<ShapeValue> {
        match g.const_value(v) {
            Some(t) => ShapeValue::of_tensor(t),
            None => self.map.get(&v).cloned(),
        }
    }
}

/// Values computed on demand from the producers' recorded types (`infer_node`).
pub(crate) struct LazyTable {
    cache: RefCell<HashMap<ValueId, Option<ShapeValue>>>,
    depth: RefCell<usize>,
}

impl LazyTable {
    pub fn new() -> LazyTable {
        LazyTable {
            cache: RefCell::new(HashMap::new()),
            depth: RefCell::new(0),
        }
    }
}

impl ValueTable for LazyTable {
    fn get(&self, g: &Graph, v: ValueId) -> Option<ShapeValue> {
        if let Some(t) = g.const_value(v) {
            return ShapeValue::of_tensor(t);
        }
        if let Some(c) = self.cache.borrow().get(&v) {
            return c.clone();
        }
        if *self.depth.borrow() >= MAX_DEPTH {
            return None;
        }
        *self.depth.borrow_mut() += 1;
        let cx = Ctx::new(g, v.node, self);
        let outs: Vec<TypeInfo> = g
            .node(v.node)
            .outputs
            .iter()
            .map(|o| o.ty.clone())
            .collect();
        let vals = eval(&cx, &outs);
        *self.depth.borrow_mut() -= 1;
        let r = vals.get(v.slot).cloned().flatten();
        self.cache.borrow_mut().insert(v, r.clone());
        r
    }
}

/// The tracked contents of the node's outputs, given their (inferred) types.
pub(crate) fn eval(cx: &Ctx, outs: &[TypeInfo]) -> Vec<Option<ShapeValue>> {
    let mut r = vec![None; outs.len()];
    if outs.is_empty() {
        return r;
    }
    let small = |t: &TypeInfo| match &t.shape {
        Some(s) => s.rank() <= 1 && s.numel().is_none_or(|n| n <= MAX_ELEMS),
        None => true,
    };
    if !small(&outs[0]) {
        return r;
    }
    let out_dtype = outs[0].dtype;
    r[0] = eval0(cx, &outs[0], out_dtype).filter(|v| v.elems.len() <= MAX_ELEMS);
    r
}

fn eval0(cx: &Ctx, out: &TypeInfo, out_dtype: Option<DType>) -> Option<ShapeValue> {
    let node = cx.g.node(cx.node);
    match &node.op {
        Op::Shape(o) => {
            let s = cx.shape(0)?;
            let r = s.rank() as i64;
            let clamp = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) };
            let start = clamp(o.start) as usize;
            let end = clamp(o.end.unwrap_or(r)) as usize;
            let dims = if start < end { &s.0[start..end] } else { &[] };
            Some(ShapeValue::vector(
                dims.iter().map(SymInt::from_dim).collect(),
            ))
        }
        Op::Size(_) => {
            let s = cx.shape(0)?;
            let d = Product::of(&s.0).map_or(Dim::Unknown, |p| p.to_dim());
            Some(ShapeValue::scalar(SymInt::from_dim(&d)))
        }
        Op::Identity(_) | Op::Observer(_) | Op::Dropout(_) => cx.value(0),
        Op::Cast(o) => cast(cx.value(0)?, o.to),
        Op::CastLike(_) => cast(cx.value(0)?, cx.dtype(1)?),
        Op::Reshape(_) | Op::Flatten(_) | Op::Squeeze(_) | Op::Unsqueeze(_) => {
            // Moving between 0-D and 1-D keeps the contents.
            let v = cx.value(0)?;
            let rank = out.shape.as_ref()?.rank();
            match rank {
                0 if v.elems.len() == 1 => Some(ShapeValue::scalar(v.elems[0].clone())),
                1 => Some(ShapeValue::vector(v.elems)),
                _ => None,
            }
        }
        Op::Gather(o) => {
            let data = cx.value(0)?;
            let idx = cx.value(1)?;
            if data.scalar || normalize_axis(o.axis, 1) != Some(0) {
                return None;
            }
            let n = data.elems.len() as i64;
            let mut elems = Vec::with_capacity(idx.elems.len());
            for i in &idx.elems {
                let i = i.int()?;
                let i = if i < 0 { i + n } else { i };
                elems.push(data.elems.get(usize::try_from(i).ok()?)?.clone());
            }
            Some(ShapeValue {
                scalar: idx.scalar,
                elems,
            })
        }
        Op::Slice(_) => {
            let data = cx.value(0)?;
            if data.scalar {
                return None;
            }
            let one = |slot: usize| -> Option<Option<i64>> {
                if !cx.has(slot) {
                    return Some(None);
                }
                match cx.ints(slot)?.as_slice() {
                    [x] => Some(Some(*x)),
                    _ => None,
                }
            };
            let start = one(1)??;
            let end = one(2)??;
            if let Some(a) = one(3)?
                && normalize_axis(a, 1) != Some(0)
            {
                return None;
            }
            let step = one(4)?.unwrap_or(1);
            let idx = super::slice::slice_indices(data.elems.len() as i64, start, end, step)?;
            Some(ShapeValue::vector(
                idx.into_iter().map(|i| data.elems[i].clone()).collect(),
            ))
        }
        Op::Concat(_) => {
            let mut elems = Vec::new();
            for slot in 0..cx.n_inputs() {
                let v = cx.value(slot)?;
                if v.scalar {
                    return None;
                }
                elems.extend(v.elems);
            }
            Some(ShapeValue::vector(elems))
        }
        Op::Add(_) | Op::Sub(_) | Op::Mul(_) | Op::Div(_) | Op::Max(_) | Op::Min(_) => {
            let float = out_dtype.is_some_and(DType::is_float);
            let f: fn(&SymInt, &SymInt, bool) -> SymInt = match &node.op {
                Op::Add(_) => add,
                Op::Sub(_) => sub,
                Op::Mul(_) => mul,
                Op::Div(_) => div,
                Op::Max(_) => max,
                _ => min,
            };
            if cx.n_inputs() != 2 {
                return None;
            }
            zip(&cx.value(0)?, &cx.value(1)?, |a, b| f(a, b, float))
        }
        Op::Equal(_) => zip(&cx.value(0)?, &cx.value(1)?, |a, b| match (a, b) {
            (SymInt::Int(x), SymInt::Int(y)) => SymInt::Int((x == y) as i64),
            (SymInt::Sym(x), SymInt::Sym(y)) if x == y => SymInt::Int(1),
            // A dimension is never negative: `Equal(shape, -1)` (PyTorch's Expand export) is
            // false for every symbol.
            (SymInt::Sym(_), SymInt::Int(v)) | (SymInt::Int(v), SymInt::Sym(_)) if *v < 0 => {
                SymInt::Int(0)
            }
            _ => SymInt::Unknown,
        }),
        Op::Neg(_) => {
            let v = cx.value(0)?;
            Some(ShapeValue {
                scalar: v.scalar,
                elems: v
                    .elems
                    .iter()
                    .map(|e| match e {
                        SymInt::Int(x) => x.checked_neg().map_or(SymInt::Unknown, SymInt::Int),
                        _ => SymInt::Unknown,
                    })
                    .collect(),
            })
        }
        Op::Where(_) => {
            let (c, x, y) = (cx.value(0)?, cx.value(1)?, cx.value(2)?);
            zip_n(&[&c, &x, &y], |e| match &e[0] {
                SymInt::Int(0) => e[2].clone(),
                SymInt::Int(_) => e[1].clone(),
                _ if e[1] == e[2] => e[1].clone(),
                _ => SymInt::Unknown,
            })
        }
        Op::Range(_) => {
            let (s, l, d) = (scalar_int(cx, 0)?, scalar_int(cx, 1)?, scalar_int(cx, 2)?);
            let n = super::generator::range_len(s as f64, l as f64, d as f64)?;
            if n > MAX_ELEMS as u64 {
                return None;
            }
            Some(ShapeValue::vector(
                (0..n as i64)
                    .map(|i| s.checked_add(i.checked_mul(d)?))
                    .map(|x| x.map_or(SymInt::Unknown, SymInt::Int))
                    .collect(),
            ))
        }
        Op::ConstantOfShape(o) => {
            let shape = out.shape.as_ref()?;
            let n = shape.numel()?;
            let fill = match &o.value {
                Some(t) => ShapeValue::of_tensor(t)?.elems.first()?.clone(),
                None => SymInt::Int(0),
            };
            Some(ShapeValue {
                scalar: shape.rank() == 0,
                elems: vec![fill; n],
            })
        }
        _ => None,
    }
}

fn scalar_int(cx: &Ctx, slot: usize) -> Option<i64> {
    match cx.ints(slot)?.as_slice() {
        [x] => Some(*x),
        _ => None,
    }
}

/// Apply `f` elementwise with numpy broadcasting between 0-D/1-D values.
fn zip(
    a: &ShapeValue,
    b: &ShapeValue,
    f: impl Fn(&SymInt, &SymInt) -> SymInt,
) -> Option<ShapeValue> {
    zip_n(&[a, b], |e| f(&e[0], &e[1]))
}

fn zip_n(vals: &[&ShapeValue], f: impl Fn(&[SymInt]) -> SymInt) -> Option<ShapeValue> {
    let n = vals.iter().map(|v| v.elems.len()).max()?;
    if vals
        .iter()
        .any(|v| v.elems.len() != n && v.elems.len() != 1)
    {
        return None;
    }
    let elems = (0..n)
        .map(|i| {
            let row: Vec<SymInt> = vals
                .iter()
                .map(|v| v.elems[if v.elems.len() == 1 { 0 } else { i }].clone())
                .collect();
            f(&row)
        })
        .collect();
    Some(ShapeValue {
        scalar: vals.iter().all(|v| v.scalar),
        elems,
    })
}

fn cast(v: ShapeValue, to: DType) -> Option<ShapeValue> {
    let elems = v
        .elems
        .into_iter()
        .map(|e| match (to, e) {
            (DType::Bool, SymInt::Int(x)) => SymInt::Int((x != 0) as i64),
            // A symbol may be 0; its truth value is unknown.
            (DType::Bool, _) => SymInt::Unknown,
            (to, SymInt::Int(x)) => match to.int_range() {
                Some((lo, hi)) if x < lo || x > hi => SymInt::Unknown,
                _ => SymInt::Int(x),
            },
            (_, e) => e,
        })
        .collect();
    Some(ShapeValue {
        scalar: v.scalar,
        elems,
    })
}

fn add(a: &SymInt, b: &SymInt, _float: bool) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => x.checked_add(*y).map_or(SymInt::Unknown, SymInt::Int),
        (s, SymInt::Int(0)) | (SymInt::Int(0), s) => s.clone(),
        _ => SymInt::Unknown,
    }
}

fn sub(a: &SymInt, b: &SymInt, _float: bool) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => x.checked_sub(*y).map_or(SymInt::Unknown, SymInt::Int),
        (s, SymInt::Int(0)) => s.clone(),
        (SymInt::Sym(x), SymInt::Sym(y)) if x == y => SymInt::Int(0),
        _ => SymInt::Unknown,
    }
}

fn mul(a: &SymInt, b: &SymInt, _float: bool) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => x.checked_mul(*y).map_or(SymInt::Unknown, SymInt::Int),
        (SymInt::Int(0), _) | (_, SymInt::Int(0)) => SymInt::Int(0),
        (s, SymInt::Int(1)) | (SymInt::Int(1), s) => s.clone(),
        _ => SymInt::Unknown,
    }
}

/// Integer Div truncates toward zero (ONNX Div on integers, as C++ and ONNX Runtime do);
/// a float Div is tracked only when it is exact.
fn div(a: &SymInt, b: &SymInt, float: bool) -> SymInt {
    match (a, b) {
        (_, SymInt::Int(0)) => SymInt::Unknown,
        (SymInt::Int(x), SymInt::Int(y)) => {
            if float && x % y != 0 {
                SymInt::Unknown
            } else {
                x.checked_div(*y).map_or(SymInt::Unknown, SymInt::Int)
            }
        }
        (s, SymInt::Int(1)) => s.clone(),
        _ => SymInt::Unknown,
    }
}

fn max(a: &SymInt, b: &SymInt, _float: bool) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => SymInt::Int(*x.max(y)),
        // Dimension sizes are never negative.
        (SymInt::Sym(s), SymInt::Int(x)) | (SymInt::Int(x), SymInt::Sym(s)) if *x <= 0 => {
            SymInt::Sym(s.clone())
        }
        (SymInt::Sym(x), SymInt::Sym(y)) if x == y => a.clone(),
        _ => SymInt::Unknown,
    }
}

fn min(a: &SymInt, b: &SymInt, _float: bool) -> SymInt {
    match (a, b) {
        (SymInt::Int(x), SymInt::Int(y)) => SymInt::Int(*x.min(y)),
        (SymInt::Sym(x), SymInt::Sym(y)) if x == y => a.clone(),
        _ => SymInt::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;
    use crate::tensor::Tensor;

    /// paddle2onnx's PP-OCRv4 rec head: Reshape(x, Concat(Cast(i32 [0]),
    /// Cast(Slice(Cast(Shape(x), i32), [1], [2], [0], [1])), Cast([3]), Cast([8]), Cast([15]))).
    /// Expected shape from the Reshape spec: 0 copies N, the slice is Shape(x)[1:2] = [T].
    #[test]
    fn paddle_reshape_chain() {
        let mut t = T::with_opset(12);
        let x = t.input("x", DType::F32, &[n(), sym("T"), k(360)]);
        let sh = t.node(op::Shape::default(), &[x]);
        let sh32 = t.node(
            op::Cast {
                to: DType::I32,
                ..Default::default()
            },
            &[sh],
        );
        let (s, e, a, st) = (
            t.ints("s", &[1]),
            t.ints("e", &[2]),
            t.ints("a", &[0]),
            t.ints("st", &[1]),
        );
        let sl = t.node(op::Slice {}, &[sh32, s, e, a, st]);
        let sl64 = t.node(
            op::Cast {
                to: DType::I64,
                ..Default::default()
            },
            &[sl],
        );
        let mut parts = vec![];
        for (i, v) in [0i32, 3, 8, 15].iter().enumerate() {
            let c = t.konst(&format!("c{i}"), Tensor::from_vec(&[1], vec![*v]));
            parts.push(t.node(
                op::Cast {
                    to: DType::I64,
                    ..Default::default()
                },
                &[c],
            ));
        }
        let target = t.node(
            op::Concat { axis: 0 },
            &[parts[0], sl64, parts[1], parts[2], parts[3]],
        );
        let y = t.node(op::Reshape::default(), &[x, target]);
        t.run();
        assert_eq!(t.ty(target), "i64[5]");
        assert_eq!(t.ty(y), "f32[N,T,3,8,15]");
        // The same node inferred alone, from the recorded types only (what a pass sees).
        assert_eq!(t.infer_one(y.node), ["f32[N,T,3,8,15]"]);
    }

    /// PyTorch's Flatten/Expand exports: Gather a scalar dim, Unsqueeze, Concat with -1;
    /// Where(Equal(shape, -1), ones, shape) for Expand.
    #[test]
    fn pytorch_chains() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), k(4), k(4)]);
        let sh = t.node(op::Shape::default(), &[x]);
        let zero = t.scalar_i64("zero", 0);
        let nn = t.node(op::Gather { axis: 0 }, &[sh, zero]);
        let un = t.node(
            op::Unsqueeze {
                axes: Some(vec![0]),
            },
            &[nn],
        );
        let m1 = t.ints("m1", &[-1]);
        let tgt = t.node(op::Concat { axis: 0 }, &[un, m1]);
        let flat = t.node(op::Reshape::default(), &[x, tgt]);
        // Expand to [N, 3, 4, 4] through Where(Equal(target, -1), 1, target).
        let full = t.node(op::Concat { axis: 0 }, &[un, m1, m1, m1]);
        let (s0, e1) = (t.ints("s0", &[0]), t.ints("e1", &[1]));
        let first = t.node(op::Slice {}, &[full, s0, e1]);
        let rest = t.ints("rest", &[3, 4, 4]);
        let full = t.node(op::Concat { axis: 0 }, &[first, rest]);
        let neg = t.ints("neg", &[-1, -1, -1, -1]);
        let eq = t.node(op::Equal {}, &[full, neg]);
        let ones = t.ints("ones", &[1, 1, 1, 1]);
        let wh = t.node(op::Where {}, &[eq, ones, full]);
        let b = t.input("b", DType::F32, &[k(1), k(3), k(1), k(1)]);
        let ex = t.node(op::Expand {}, &[b, wh]);
        t.run();
        assert_eq!(t.ty(flat), "f32[N,48]");
        assert_eq!(t.ty(ex), "f32[N,3,4,4]");
    }

    /// Arithmetic on tracked values: H/2 and W*2 on known dims, symbols only through
    /// identities (x*1, x+0, x/1).
    #[test]
    fn arithmetic_and_generators() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(8), k(20), sym("W")]);
        let sh = t.node(op::Shape::default(), &[x]);
        let hw = {
            let (s, e) = (t.ints("s", &[2]), t.ints("e", &[4]));
            t.node(op::Slice {}, &[sh, s, e])
        };
        let half = t.ints("two", &[2, 1]);
        let div = t.node(op::Div {}, &[hw, half]);
        let nc = {
            let (s, e) = (t.ints("s0", &[0]), t.ints("e2", &[2]));
            t.node(op::Slice {}, &[sh, s, e])
        };
        let tgt = t.node(op::Concat { axis: 0 }, &[nc, div]);
        let r = t.multi(op::Resize::default(), &[Some(x), None, None, Some(tgt)], 1)[0];
        let c = t.node(op::ConstantOfShape { value: None }, &[tgt]);
        let one = t.ints("one", &[1]);
        let plus = t.node(op::Mul {}, &[tgt, one]);
        let ones = t.ints("ones", &[1, 1, 1, 1]);
        let zeros = t.ints("zeros", &[0, 0, 0, 0]);
        let tile_r = t.node(op::Add {}, &[ones, zeros]);
        let tl = t.node(op::Tile {}, &[x, tile_r]);
        let sz = t.node(op::Size {}, &[x]);
        let b = t.input("b", DType::F32, &[k(1), k(1), k(1), k(1)]);
        let ex = t.node(op::Expand {}, &[b, plus]);
        t.run();
        assert_eq!(t.ty(r), "f32[N,8,10,W]");
        assert_eq!(t.ty(c), "f32[N,8,10,W]");
        assert_eq!(t.ty(tl), "f32[N,8,20,W]");
        assert_eq!(t.ty(sz), "i64[]");
        assert_eq!(t.ty(ex), "f32[N,8,10,W]");
    }
}
