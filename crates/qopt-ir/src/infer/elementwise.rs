//! Elementwise operators.
//!
//! - Unary ops (activations, `Identity`, `Not`, `Clip`, observers) keep their
//!   input's type (`propagateShapeAndTypeFromFirstInput` in `onnx/defs/math/defs.cc`);
//!   `IsNaN`/`IsInf` keep the shape with a bool element type.
//! - Binary arithmetic, comparisons, logical ops, `Where` and the variadic
//!   `Min/Max/Sum/Mean` broadcast their inputs multidirectionally
//!   (<https://onnx.ai/onnx/repo-docs/Broadcasting.html>): comparisons and logical
//!   ops give bool, the rest the first input's element type.
//! - `PRelu`'s slope broadcasts unidirectionally to X, the output is X's type.

use super::ctx::{Ctx, Out, ty};
use super::dims::{broadcast, check_unidirectional};
use crate::dim::Shape;
use crate::dtype::DType;

/// Output = input 0's type.
pub(crate) fn unary(cx: &Ctx) -> Out {
    Ok(vec![cx.req(0, "X")?.clone()])
}

/// Input 0's shape with another element type.
pub(crate) fn unary_to(cx: &Ctx, dtype: DType) -> Out {
    Ok(vec![ty(Some(dtype), cx.req(0, "X")?.shape.clone())])
}

/// The broadcast shape of the given inputs (`None` if any has unknown rank).
pub(crate) fn broadcast_inputs(
    cx: &Ctx,
    slots: &[usize],
) -> Result<Option<Shape>, super::InferError> {
    let mut shapes = Vec::with_capacity(slots.len());
    for &s in slots {
        match cx.req(s, "operand")?.shape.as_ref() {
            Some(sh) => shapes.push(sh),
            None => return Ok(None),
        }
    }
    broadcast(&shapes).map(Some).map_err(|m| cx.err(m))
}

/// Two operands; `dtype` overrides the first input's element type (comparisons).
pub(crate) fn binary(cx: &Ctx, dtype: Option<DType>) -> Out {
    if cx.n_inputs() > 2 {
        return Err(cx.err(format!("takes 2 inputs, got {}", cx.n_inputs())));
    }
    let shape = broadcast_inputs(cx, &[0, 1])?;
    let dtype = dtype.or_else(|| cx.dtype(0).or(cx.dtype(1)));
    Ok(vec![ty(dtype, shape)])
}

/// `Min`, `Max`, `Sum`, `Mean`: one or more operands.
pub(crate) fn variadic(cx: &Ctx) -> Out {
    let slots: Vec<usize> = (0..cx.n_inputs().max(1)).collect();
    let shape = broadcast_inputs(cx, &slots)?;
    let dtype = slots.iter().find_map(|&s| cx.dtype(s));
    Ok(vec![ty(dtype, shape)])
}

/// `Where(condition, X, Y)`.
pub(crate) fn where_(cx: &Ctx) -> Out {
    cx.req(0, "condition")?;
    let shape = broadcast_inputs(cx, &[0, 1, 2])?;
    Ok(vec![ty(cx.dtype(1).or(cx.dtype(2)), shape)])
}

/// `PRelu(X, slope)`: slope broadcasts to X (opset 7+), Y has X's type.
pub(crate) fn prelu(cx: &Ctx) -> Out {
    let x = cx.req(0, "X")?;
    let slope = cx.req(1, "slope")?;
    if let (Some(xs), Some(ss)) = (&x.shape, &slope.shape) {
        check_unidirectional(ss, xs).map_err(|m| cx.err(format!("slope: {m}")))?;
    }
    Ok(vec![x.clone()])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dim::Dim;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn unary_keeps_type_and_symbols() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), sym("H"), unk()]);
        let y = t.node(op::Relu {}, &[x]);
        let b = t.node(op::IsNaN {}, &[x]);
        t.run();
        assert_eq!(t.ty(y), "f32[N,3,H,?]");
        assert_eq!(t.ty(b), "bool[N,3,H,?]");
    }

    #[test]
    fn broadcasting_follows_numpy() {
        // Broadcasting.md: [2,3,4,5] + [5] -> [2,3,4,5]; [2,1,4] + [3,1] -> [2,3,4];
        // a symbol against 1 stays the symbol, against itself stays too.
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[n(), k(1), k(4)]);
        let b = t.input("b", DType::F32, &[k(3), k(1)]);
        let c = t.input("c", DType::F32, &[n(), k(3), k(1)]);
        let s = t.node(op::Add {}, &[a, b]);
        let e = t.node(op::Less {}, &[a, c]);
        let m = t.node(op::Max {}, &[a, b, c]);
        let w = t.input("w", DType::Bool, &[k(1)]);
        let wh = t.node(op::Where {}, &[w, a, b]);
        t.run();
        assert_eq!(t.ty(s), "f32[N,3,4]");
        assert_eq!(t.ty(e), "bool[N,3,4]");
        assert_eq!(t.ty(m), "f32[N,3,4]");
        assert_eq!(t.ty(wh), "f32[N,3,4]");
    }

    #[test]
    fn incompatible_broadcast_names_the_node() {
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[k(2), k(3)]);
        let b = t.input("b", DType::F32, &[k(4)]);
        t.named("add1", op::Add {}, &[a, b]);
        let e = t.run_err();
        assert_eq!(
            e,
            "Add node 'add1': shapes [2,3], [4] cannot be broadcast together"
        );
    }

    #[test]
    fn unknown_rank_propagates() {
        let mut t = T::new();
        let a = t.input_unranked("a", DType::F32);
        let b = t.input("b", DType::F32, &[k(4)]);
        let s = t.node(op::Mul {}, &[a, b]);
        t.run();
        assert_eq!(t.ty(s), "f32[*]");
    }

    #[test]
    fn prelu_checks_the_slope() {
        // PRelu-16: slope must be unidirectionally broadcastable to X.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(8), k(4), k(4)]);
        let s = t.konst_f32("s", &[8, 1, 1]);
        let y = t.node(op::PRelu {}, &[x, s]);
        t.run();
        assert_eq!(t.ty(y), "f32[N,8,4,4]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(8), k(4), k(4)]);
        let s = t.konst_f32("s", &[3, 1, 1]);
        t.named("p", op::PRelu {}, &[x, s]);
        assert!(
            t.run_err()
                .contains("slope: shape [3,1,1] cannot be broadcast to [N,8,4,4]")
        );
    }

    #[test]
    fn missing_operand_is_an_error() {
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[k(2)]);
        t.named("sub", op::Sub {}, &[a]);
        assert_eq!(
            t.run_err(),
            "Sub node 'sub': required input 1 (operand) is missing"
        );
        let _ = Dim::Unknown;
    }
}
