//! Gemm (ONNX): `Y = alpha * A' * B' + beta * C` with `A' = transA ? A^T : A` (same for B) and
//! `C` unidirectionally broadcast to `[M, N]`. Transposes are strides, not copies. A bias of
//! shape `[N]` or `[1, N]` (or `[M, 1]`) with beta 1 runs in the GEMM epilogue, as does an
//! activation the plan fuses.

use super::{Ctx, OpResult, contig, f32_arg, opt, tensor};
use crate::error::bail;
use crate::kernels::activation::Activation;
use crate::kernels::gemm::{Bias, Epilogue, MatRef, sgemm};
use qopt_ir::Tensor;
use qopt_ir::op::Gemm;

pub fn run(o: &Gemm, ctx: &mut Ctx, inputs: &[Option<&Tensor>], act: Activation) -> OpResult {
    let (a, b) = (f32_arg(inputs, 0)?, f32_arg(inputs, 1)?);
    let (ash, bsh) = (a.shape(), b.shape());
    if ash.len() != 2 || bsh.len() != 2 {
        bail!("A and B must be 2-D, got {ash:?} and {bsh:?}");
    }
    let (m, k) = if o.trans_a != 0 {
        (ash[1], ash[0])
    } else {
        (ash[0], ash[1])
    };
    let (kb, n) = if o.trans_b != 0 {
        (bsh[1], bsh[0])
    } else {
        (bsh[0], bsh[1])
    };
    if k != kb {
        bail!(
            "inner dimensions differ: A {ash:?} (transA={}), B {bsh:?} (transB={})",
            o.trans_a,
            o.trans_b
        );
    }
    let (ad, bd) = (contig(a), contig(b));
    let am = if o.trans_a != 0 {
        MatRef::transposed(&ad, ash[1])
    } else {
        MatRef::row_major(&ad, ash[1])
    };
    let bm = if o.trans_b != 0 {
        MatRef::transposed(&bd, bsh[1])
    } else {
        MatRef::row_major(&bd, bsh[1])
    };
    let len = super::numel(&[m, n])?;
    let mut y = ctx.alloc(len);
    let c = match opt(inputs, 2) {
        Some(t) if o.beta != 0.0 => match t.as_f32() {
            Some(c) => Some(c),
            None => bail!("C must be f32, got {}", t.dtype()),
        },
        _ => None,
    };
    let cd = c.map(contig);
    let csh: Vec<usize> = c.map(|c| c.shape().to_vec()).unwrap_or_default();
    // Bias forms the epilogue handles directly.
    let bias = match (&cd, csh.as_slice()) {
        (None, _) => Some(Bias::None),
        (Some(c), [nn] | [1, nn]) if o.beta == 1.0 && *nn == n => Some(Bias::Col(c)),
        (Some(c), [mm, 1]) if o.beta == 1.0 && *mm == m => Some(Bias::Row(c)),
        _ => None,
    };
    match bias {
        Some(bias) => sgemm(
            m,
            n,
            k,
            o.alpha,
            am,
            bm,
            false,
            &mut y,
            n,
            &Epilogue { bias, act },
        ),
        None => {
            // General C: broadcast beta * C into Y, then accumulate.
            let c = cd.expect("C present");
            let bsh = super::broadcast::shape_of(&[&csh, &[m, n]])?;
            if bsh != [m, n] {
                bail!("C of shape {csh:?} does not broadcast to [{m}, {n}]");
            }
            let beta = o.beta;
            super::broadcast::binary_map(&c, &csh, &[0f32], &[], &mut y, &[m, n], |c, _| beta * c);
            sgemm(
                m,
                n,
                k,
                o.alpha,
                am,
                bm,
                true,
                &mut y,
                n,
                &Epilogue {
                    bias: Bias::None,
                    act,
                },
            );
        }
    }
    Ok(vec![tensor(&[m, n], y)?])
}
