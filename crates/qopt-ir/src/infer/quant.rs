//! Quantization ops (quantization/defs.cc and ONNX Runtime's contrib ops).
//!
//! - `QuantizeLinear(x, y_scale, y_zero_point?)`: x's shape; element type of the
//!   zero point, else `output_dtype` (opset 21), else uint8. A 1-D scale is per
//!   axis and must have `x.shape[axis]` elements (blocked quantization, opset 21,
//!   has a scale of x's rank instead).
//! - `DequantizeLinear(x, x_scale, x_zero_point?)`: x's shape, the scale's element
//!   type (float before opset 19).
//! - `DynamicQuantizeLinear(x)`: `y` uint8 of x's shape, scalar f32 scale and
//!   scalar uint8 zero point.
//! - `com.microsoft` `QLinearAdd`/`QLinearMul(A, As, Az, B, Bs, Bz, Cs, Cz?)`:
//!   broadcast of A and B, A's element type; `QLinearGlobalAveragePool`:
//!   `[N, C, 1, 1]` (or `[N, 1, 1, C]` with `channels_last`), X's element type.

use super::InferError;
use super::ctx::{Ctx, Out, ty};
use super::dims::compatible;
use super::elementwise::broadcast_inputs;
use super::pool::global_shape;
use crate::dtype::DType;
use crate::op;

/// A per-axis scale must match the quantized axis.
fn check_scale(
    cx: &Ctx,
    x_slot: usize,
    scale_slot: usize,
    axis: i64,
    block: i64,
) -> Result<(), InferError> {
    let (Some(x), Some(s)) = (cx.shape(x_slot), cx.shape(scale_slot)) else {
        return Ok(());
    };
    if block > 0 {
        if s.rank() != x.rank() {
            return Err(cx.err(format!(
                "blocked scale has shape {s}; it must have the rank of x {x}"
            )));
        }
        return Ok(());
    }
    match s.rank() {
        0 => Ok(()),
        1 if s.0[0] == crate::dim::Dim::Known(1) => Ok(()),
        1 => {
            let a = cx.axis(axis, x.rank(), "axis")?;
            if !compatible(&s.0[0], &x.0[a]) {
                return Err(cx.err(format!(
                    "scale has {} elements but axis {a} of x {x} has {}",
                    s.0[0], x.0[a]
                )));
            }
            Ok(())
        }
        _ => Err(cx.err(format!("scale has shape {s}; it must be a scalar or 1-D"))),
    }
}

pub(crate) fn quantize_linear(cx: &Ctx, o: &op::QuantizeLinear) -> Out {
    let x = cx.req(0, "x")?;
    cx.req(1, "y_scale")?;
    check_scale(cx, 0, 1, o.axis, o.block_size)?;
    let dtype = if cx.has(2) {
        cx.dtype(2)
    } else {
        Some(o.output_dtype.unwrap_or(DType::U8))
    };
    if let (Some(zp), Some(od)) = (cx.dtype(2), o.output_dtype)
        && zp != od
    {
        return Err(cx.err(format!(
            "output_dtype {od} differs from the zero point's type {zp}"
        )));
    }
    Ok(vec![ty(dtype, x.shape.clone())])
}

pub(crate) fn dequantize_linear(cx: &Ctx, o: &op::DequantizeLinear) -> Out {
    let x = cx.req(0, "x")?;
    let s = cx.req(1, "x_scale")?;
    check_scale(cx, 0, 1, o.axis, o.block_size)?;
    let dtype = if cx.opset >= 19 {
        s.dtype
    } else {
        Some(DType::F32)
    };
    Ok(vec![ty(dtype, x.shape.clone())])
}

pub(crate) fn dynamic_quantize_linear(cx: &Ctx) -> Out {
    let x = cx.req(0, "x")?;
    let scalar = Some(crate::dim::Shape::scalar());
    Ok(vec![
        ty(Some(DType::U8), x.shape.clone()),
        ty(Some(DType::F32), scalar.clone()),
        ty(Some(DType::U8), scalar),
    ])
}

pub(crate) fn qlinear_binary(cx: &Ctx) -> Out {
    let a = cx.req(0, "A")?;
    cx.req(3, "B")?;
    let shape = broadcast_inputs(cx, &[0, 3])?;
    Ok(vec![ty(a.dtype, shape)])
}

pub(crate) fn qlinear_global_average_pool(cx: &Ctx, o: &op::QLinearGlobalAveragePool) -> Out {
    let x = cx.req(0, "X")?;
    Ok(vec![ty(
        x.dtype,
        global_shape(cx, x.shape.as_ref(), o.channels_last != 0)?,
    )])
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::dtype::DType;
    use crate::op;
    use crate::tensor::Tensor;

    #[test]
    fn quantize_dequantize() {
        // QuantizeLinear spec: y has y_zero_point's type (uint8 when absent);
        // DequantizeLinear-19+: y has x_scale's type.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), k(4), k(4)]);
        let s = t.konst("s", Tensor::scalar(0.1f32));
        let zi8 = t.konst("z", Tensor::scalar(0i8));
        let q = t.node(op::QuantizeLinear::default(), &[x, s, zi8]);
        let qu = t.node(op::QuantizeLinear::default(), &[x, s]);
        let dq = t.node(op::DequantizeLinear::default(), &[q, s, zi8]);
        let sc = t.konst_f32("sc", &[3]);
        let qa = t.node(
            op::QuantizeLinear {
                axis: 1,
                ..Default::default()
            },
            &[x, sc, zi8],
        );
        let dyn_q = t.multi(op::DynamicQuantizeLinear {}, &[Some(x)], 3);
        t.run();
        assert_eq!(t.ty(q), "i8[N,3,4,4]");
        assert_eq!(t.ty(qu), "u8[N,3,4,4]");
        assert_eq!(t.ty(dq), "f32[N,3,4,4]");
        assert_eq!(t.ty(qa), "i8[N,3,4,4]");
        assert_eq!(t.ty(dyn_q[0]), "u8[N,3,4,4]");
        assert_eq!(t.ty(dyn_q[1]), "f32[]");
        assert_eq!(t.ty(dyn_q[2]), "u8[]");

        let mut t = T::new();
        let x = t.input("x", DType::F32, &[n(), k(3), k(4), k(4)]);
        let sc = t.konst_f32("sc", &[4]);
        t.named(
            "q",
            op::QuantizeLinear {
                axis: 1,
                ..Default::default()
            },
            &[x, sc],
        );
        assert_eq!(
            t.run_err(),
            "QuantizeLinear node 'q': scale has 4 elements but axis 1 of x [N,3,4,4] has 3"
        );
    }

    #[test]
    fn contrib_qlinear() {
        let mut t = T::new();
        let a = t.input("a", DType::U8, &[n(), k(8), k(4), k(4)]);
        let b = t.input("b", DType::U8, &[k(8), k(1), k(1)]);
        let s = t.konst("s", Tensor::scalar(0.1f32));
        let z = t.konst("z", Tensor::scalar(0u8));
        let add = t.node(op::QLinearAdd {}, &[a, s, z, b, s, z, s, z]);
        let gap = t.node(op::QLinearGlobalAveragePool::default(), &[a, s, z, s, z]);
        let gl = t.node(
            op::QLinearGlobalAveragePool { channels_last: 1 },
            &[a, s, z, s, z],
        );
        t.run();
        assert_eq!(t.ty(add), "u8[N,8,4,4]");
        assert_eq!(t.ty(gap), "u8[N,8,1,1]");
        assert_eq!(t.ty(gl), "u8[N,1,1,4]");
    }
}
