//! Pools: `MaxPool` (with its optional `Indices` output), `AveragePool`,
//! `GlobalAveragePool`, `GlobalMaxPool`.
//!
//! Windowed pools use the Conv window arithmetic (`conv.rs`, after
//! `convPoolShapeInference` in `onnx/defs/nn/defs.cc`) with `ceil_mode`;
//! `kernel_shape` is required. Global pools give `[N, C, 1, ..., 1]`
//! (`globalPoolTypeShapeInference`).

use super::InferError;
use super::conv::Window;
use super::ctx::{Ctx, Out, ty};
use crate::attr::AutoPad;
use crate::dim::{Dim, Shape};
use crate::dtype::DType;
use crate::op;

#[allow(clippy::too_many_arguments)]
fn pool(
    cx: &Ctx,
    auto_pad: AutoPad,
    ceil_mode: i64,
    dilations: &[i64],
    kernel_shape: &[i64],
    pads: &[i64],
    strides: &[i64],
) -> Result<(Option<DType>, Option<Shape>), InferError> {
    let x = cx.req(0, "X")?;
    if kernel_shape.is_empty() {
        return Err(cx.err("kernel_shape is required"));
    }
    let Some(xs) = &x.shape else {
        return Ok((x.dtype, None));
    };
    if xs.rank() < 3 {
        return Err(cx.err(format!(
            "input has shape {xs}; it needs at least 3 dims (N x C x D1 ...)"
        )));
    }
    let n = xs.rank() - 2;
    if kernel_shape.len() != n {
        return Err(cx.err(format!(
            "kernel_shape {kernel_shape:?} has {} values for {n} spatial axes",
            kernel_shape.len()
        )));
    }
    let kernel = kernel_shape.iter().map(|&k| Some(k)).collect();
    let mut win = Window::new(cx, n, auto_pad, kernel, strides, dilations, pads)?;
    win.ceil_mode = ceil_mode != 0;
    let mut dims = vec![xs.0[0].clone(), xs.0[1].clone()];
    dims.extend(win.output_dims(cx, &xs.0[2..])?);
    Ok((x.dtype, Some(Shape(dims))))
}

/// `MaxPool(X) -> (Y, Indices?)`; Indices are int64 with Y's shape.
pub(crate) fn max_pool(cx: &Ctx, o: &op::MaxPool) -> Out {
    let (dtype, shape) = pool(
        cx,
        o.auto_pad,
        o.ceil_mode,
        &o.dilations,
        &o.kernel_shape,
        &o.pads,
        &o.strides,
    )?;
    Ok(vec![ty(dtype, shape.clone()), ty(Some(DType::I64), shape)])
}

pub(crate) fn average_pool(cx: &Ctx, o: &op::AveragePool) -> Out {
    let (dtype, shape) = pool(
        cx,
        o.auto_pad,
        o.ceil_mode,
        &o.dilations,
        &o.kernel_shape,
        &o.pads,
        &o.strides,
    )?;
    Ok(vec![ty(dtype, shape)])
}

/// `[N, C, D1, ...] -> [N, C, 1, ...]`.
pub(crate) fn global_pool(cx: &Ctx) -> Out {
    let x = cx.req(0, "X")?;
    Ok(vec![ty(
        x.dtype,
        global_shape(cx, x.shape.as_ref(), false)?,
    )])
}

/// The output shape of a global pool; `channels_last` keeps `[N, D..., C]` order.
pub(crate) fn global_shape(
    cx: &Ctx,
    x: Option<&Shape>,
    channels_last: bool,
) -> Result<Option<Shape>, InferError> {
    let Some(xs) = x else { return Ok(None) };
    if xs.rank() < 2 {
        return Err(cx.err(format!(
            "input has shape {xs}; it needs at least 2 dims (N x C ...)"
        )));
    }
    let mut d = vec![Dim::Known(1); xs.rank()];
    d[0] = xs.0[0].clone();
    if channels_last {
        d[xs.rank() - 1] = xs.0[xs.rank() - 1].clone();
    } else {
        d[1] = xs.0[1].clone();
    }
    Ok(Some(Shape(d)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::attr::AutoPad;
    use crate::dtype::DType;
    use crate::op;

    #[test]
    fn max_pool_shapes() {
        // ONNX backend tests:
        // test_maxpool_2d_default: [1,3,32,32], k 2 -> [1,3,31,31]
        // test_maxpool_2d_pads: [1,3,28,28], k 3, pads 2 -> [1,3,30,30]
        // test_maxpool_2d_strides: [1,3,32,32], k 5, s 3 -> [1,3,10,10]
        // test_maxpool_2d_ceil: [1,1,4,4], k 3, s 2, ceil -> [1,1,2,2]
        // test_maxpool_2d_same_upper: [1,1,5,5], k 3, s 2 -> [1,1,3,3]
        // test_maxpool_2d_dilations: [1,1,4,4], k 2, d 2 -> [1,1,2,2]
        // test_maxpool_2d_ceil_output_size_reduce_by_one: [1,1,2,2], k 1, s 2, ceil -> [1,1,1,1]
        //   (ONNX Runtime and onnx's reference evaluator agree; onnx 1.22's shape inference
        //   still says [1,1,2,2], fixed in later defs.cc)
        // tools/check_infer_examples.py re-derives all of these with onnx.
        let cases: Vec<(Vec<u64>, op::MaxPool, &str)> = vec![
            (
                vec![1, 3, 32, 32],
                op::MaxPool {
                    kernel_shape: vec![2, 2],
                    ..Default::default()
                },
                "f32[1,3,31,31]",
            ),
            (
                vec![1, 3, 28, 28],
                op::MaxPool {
                    kernel_shape: vec![3, 3],
                    pads: vec![2, 2, 2, 2],
                    ..Default::default()
                },
                "f32[1,3,30,30]",
            ),
            (
                vec![1, 3, 32, 32],
                op::MaxPool {
                    kernel_shape: vec![5, 5],
                    strides: vec![3, 3],
                    ..Default::default()
                },
                "f32[1,3,10,10]",
            ),
            (
                vec![1, 1, 4, 4],
                op::MaxPool {
                    kernel_shape: vec![3, 3],
                    strides: vec![2, 2],
                    ceil_mode: 1,
                    ..Default::default()
                },
                "f32[1,1,2,2]",
            ),
            (
                vec![1, 1, 5, 5],
                op::MaxPool {
                    kernel_shape: vec![3, 3],
                    strides: vec![2, 2],
                    auto_pad: AutoPad::SameUpper,
                    ..Default::default()
                },
                "f32[1,1,3,3]",
            ),
            (
                vec![1, 1, 4, 4],
                op::MaxPool {
                    kernel_shape: vec![2, 2],
                    dilations: vec![2, 2],
                    ..Default::default()
                },
                "f32[1,1,2,2]",
            ),
            (
                vec![1, 1, 2, 2],
                op::MaxPool {
                    kernel_shape: vec![1, 1],
                    strides: vec![2, 2],
                    ceil_mode: 1,
                    ..Default::default()
                },
                "f32[1,1,1,1]",
            ),
        ];
        for (x, o, want) in cases {
            let mut t = T::new();
            let dims: Vec<_> = x.iter().map(|&d| k(d)).collect();
            let xv = t.input("x", DType::F32, &dims);
            let ys = t.multi(o.clone(), &[Some(xv)], 2);
            t.run();
            assert_eq!(t.ty(ys[0]), want, "{o:?}");
            assert_eq!(t.ty(ys[1]), want.replace("f32", "i64"), "{o:?}");
        }
    }

    #[test]
    fn average_pool_ceil_and_symbols() {
        // test_averagepool_2d_ceil: [1,1,4,4], k 3, s 2, ceil -> [1,1,2,2].
        // A 3x3 stride-1 pool with pads 1 keeps symbolic H, W.
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(1), k(4), k(4)]);
        let a = t.node(
            op::AveragePool {
                kernel_shape: vec![3, 3],
                strides: vec![2, 2],
                ceil_mode: 1,
                ..Default::default()
            },
            &[x],
        );
        let xs = t.input("xs", DType::F32, &[n(), k(8), sym("H"), sym("W")]);
        let b = t.node(
            op::AveragePool {
                kernel_shape: vec![3, 3],
                pads: vec![1, 1, 1, 1],
                ..Default::default()
            },
            &[xs],
        );
        let c = t.node(
            op::AveragePool {
                kernel_shape: vec![2, 2],
                strides: vec![2, 2],
                ..Default::default()
            },
            &[xs],
        );
        let g = t.node(op::GlobalAveragePool {}, &[xs]);
        t.run();
        assert_eq!(t.ty(a), "f32[1,1,2,2]");
        assert_eq!(t.ty(b), "f32[N,8,H,W]");
        assert_eq!(t.ty(c), "f32[N,8,?,?]");
        assert_eq!(t.ty(g), "f32[N,8,1,1]");
    }

    #[test]
    fn pool_errors() {
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(3)]);
        t.named(
            "p",
            op::MaxPool {
                kernel_shape: vec![2, 2],
                ..Default::default()
            },
            &[x],
        );
        assert!(
            t.run_err()
                .contains("MaxPool node 'p': input has shape [1,3]")
        );
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[k(1), k(3), k(4), k(4)]);
        t.named("p", op::MaxPool::default(), &[x]);
        assert_eq!(t.run_err(), "MaxPool node 'p': kernel_shape is required");
        let mut t = T::new();
        let x = t.input("x", DType::F32, &[]);
        t.named("g", op::GlobalMaxPool {}, &[x]);
        assert!(
            t.run_err()
                .contains("GlobalMaxPool node 'g': input has shape []")
        );
    }
}
