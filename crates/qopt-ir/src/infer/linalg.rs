//! Matrix products: `MatMul`, `Gemm`, `MatMulInteger`, `QLinearMatMul`.
//!
//! `MatMul` follows `numpy.matmul` (`matmulShapeInference` in math/defs.cc): a 1-D
//! first operand gets a 1 prepended and a 1-D second operand a 1 appended, both
//! removed again from the result; the batch dims broadcast; the inner dims must
//! agree. `Gemm` takes 2-D A and B, transposed per `transA`/`transB`, giving
//! `[M, N]`, and C must broadcast to `[M, N]` unidirectionally.

use super::InferError;
use super::ctx::{Ctx, Out, ty};
use super::dims::{broadcast, check_unidirectional, compatible};
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::op;

/// numpy matmul of two shapes.
pub(crate) fn matmul_shape(cx: &Ctx, a: &Shape, b: &Shape) -> Result<Shape, InferError> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err(cx.err(format!(
            "operands have shapes {a} and {b}; MatMul needs at least 1-D operands"
        )));
    }
    let mut a2 = a.0.clone();
    let mut b2 = b.0.clone();
    if a.rank() == 1 {
        a2.insert(0, Dim::Known(1));
    }
    if b.rank() == 1 {
        b2.push(Dim::Known(1));
    }
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if !compatible(ka, kb) {
        return Err(cx.err(format!("inner dimensions differ: {a} x {b} ({ka} vs {kb})")));
    }
    let batch_a = Shape(a2[..a2.len() - 2].to_vec());
    let batch_b = Shape(b2[..b2.len() - 2].to_vec());
    let mut out = broadcast(&[&batch_a, &batch_b])
        .map_err(|m| cx.err(format!("batch dims: {m}")))?
        .0;
    if a.rank() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.rank() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(Shape(out))
}

fn matmul_of(cx: &Ctx, a_slot: usize, b_slot: usize, dtype: Option<DType>) -> Out {
    let a = cx.req(a_slot, "A")?;
    let b = cx.req(b_slot, "B")?;
    let shape = match (&a.shape, &b.shape) {
        (Some(x), Some(y)) => Some(matmul_shape(cx, x, y)?),
        _ => None,
    };
    Ok(vec![ty(dtype, shape)])
}

pub(crate) fn matmul(cx: &Ctx) -> Out {
    matmul_of(cx, 0, 1, cx.dtype(0).or(cx.dtype(1)))
}

/// `MatMulInteger(A, B, a_zero_point?, b_zero_point?)`: int32 output.
pub(crate) fn matmul_integer(cx: &Ctx) -> Out {
    matmul_of(cx, 0, 1, Some(DType::I32))
}

/// `QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp)`: y_zp's element type.
pub(crate) fn qlinear_matmul(cx: &Ctx) -> Out {
    let zp = cx.req(7, "y_zero_point")?;
    matmul_of(cx, 0, 3, zp.dtype)
}

pub(crate) fn gemm(cx: &Ctx, o: &op::Gemm) -> Out {
    let a = cx.req(0, "A")?;
    let b = cx.req(1, "B")?;
    let dtype = a.dtype.or(b.dtype);
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else {
        return Ok(vec![ty(dtype, Some(Shape(vec![Dim::Unknown; 2])))]);
    };
    for (s, name) in [(sa, "A"), (sb, "B")] {
        if s.rank() != 2 {
            return Err(cx.err(format!("{name} has shape {s}; Gemm needs 2-D operands")));
        }
    }
    let (m, ka) = if o.trans_a != 0 {
        (&sa.0[1], &sa.0[0])
    } else {
        (&sa.0[0], &sa.0[1])
    };
    let (kb, n) = if o.trans_b != 0 {
        (&sb.0[1], &sb.0[0])
    } else {
        (&sb.0[0], &sb.0[1])
    };
    if !compatible(ka, kb) {
        return Err(cx.err(format!(
            "inner dimensions differ: A {sa} (transA {}) x B {sb} (transB {}) ({ka} vs {kb})",
            o.trans_a, o.trans_b
        )));
    }
    let out = Shape(vec![m.clone(), n.clone()]);
    if let Some(c) = cx.shape(2) {
        check_unidirectional(c, &out).map_err(|e| cx.err(format!("C: {e}")))?;
    }
    Ok(vec![ty(dtype, Some(out))])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn matmul_follows_numpy() {
        // numpy.matmul shape rules (ONNX MatMul spec points to them):
        // [N,40,120] x [120,360] -> [N,40,360]; [3] x [3,4] -> [4]; [2,3,4] x [4] -> [2,3];
        // [5,1,2,3] x [4,3,6] -> [5,4,2,6].
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[n(), k(40), k(120)]);
        let w = t.konst_f32("w", &[120, 360]);
        let y = t.node(op::MatMul {}, &[a, w]);
        let v = t.input("v", DType::F32, &[k(3)]);
        let m34 = t.konst_f32("m", &[3, 4]);
        let y2 = t.node(op::MatMul {}, &[v, m34]);
        let b = t.input("b", DType::F32, &[k(2), k(3), k(4)]);
        let v4 = t.konst_f32("v4", &[4]);
        let y3 = t.node(op::MatMul {}, &[b, v4]);
        let c = t.input("c", DType::F32, &[k(5), k(1), k(2), k(3)]);
        let d = t.input("d", DType::F32, &[k(4), k(3), k(6)]);
        let y4 = t.node(op::MatMul {}, &[c, d]);
        let i8a = t.input("qa", DType::U8, &[n(), k(4)]);
        let i8b = t.konst("qb", crate::Tensor::zeros(DType::I8, &[4, 2]));
        let y5 = t.node(op::MatMulInteger {}, &[i8a, i8b]);
        t.run();
        assert_eq!(t.ty(y), "f32[N,40,360]");
        assert_eq!(t.ty(y2), "f32[4]");
        assert_eq!(t.ty(y3), "f32[2,3]");
        assert_eq!(t.ty(y4), "f32[5,4,2,6]");
        assert_eq!(t.ty(y5), "i32[N,2]");
    }

    #[test]
    fn matmul_errors() {
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[k(2), k(3)]);
        let b = t.input("b", DType::F32, &[k(4), k(5)]);
        t.named("mm", op::MatMul {}, &[a, b]);
        assert_eq!(
            t.run_err(),
            "MatMul node 'mm': inner dimensions differ: [2,3] x [4,5] (3 vs 4)"
        );
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[]);
        let b = t.input("b", DType::F32, &[k(4), k(5)]);
        t.named("mm", op::MatMul {}, &[a, b]);
        assert!(t.run_err().contains("needs at least 1-D operands"));
    }

    #[test]
    fn gemm_transposes() {
        // Gemm spec: A' is [M,K], B' is [K,N], Y is [M,N].
        let mut t = T::new();
        let a = t.input("a", DType::F32, &[n(), k(1280)]);
        let w = t.konst_f32("w", &[1000, 1280]);
        let c = t.konst_f32("c", &[1000]);
        let y = t.node(
            op::Gemm {
                trans_b: 1,
                ..Default::default()
            },
            &[a, w, c],
        );
        let at = t.input("at", DType::F32, &[k(7), k(3)]);
        let b = t.konst_f32("b", &[7, 2]);
        let y2 = t.node(
            op::Gemm {
                trans_a: 1,
                ..Default::default()
            },
            &[at, b],
        );
        t.run();
        assert_eq!(t.ty(y), "f32[N,1000]");
        assert_eq!(t.ty(y2), "f32[3,2]");

        let mut t = T::new();
        let a = t.input("a", DType::F32, &[n(), k(1280)]);
        let w = t.konst_f32("w", &[1000, 1280]);
        let c = t.konst_f32("c", &[10]);
        t.named(
            "fc",
            op::Gemm {
                trans_b: 1,
                ..Default::default()
            },
            &[a, w, c],
        );
        assert_eq!(
            t.run_err(),
            "Gemm node 'fc': C: shape [10] cannot be broadcast to [N,1000]"
        );
    }
}
