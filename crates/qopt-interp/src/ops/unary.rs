//! Element-wise unary ops (ONNX operator specs of the same names): Abs, Neg, Sqrt, Exp, Log,
//! Reciprocal, Floor, Ceil, Round (half to even), Sign, Sin, Cos, Tan, Atan, Erf, Sigmoid, Tanh,
//! Relu, LeakyRelu, Elu, Celu, Selu, ThresholdedRelu, HardSigmoid, HardSwish, Softplus,
//! Softsign, Mish, Gelu (exact and tanh); and the predicates Not, IsNaN, IsInf.
//!
//! f32 runs through monomorphic loops (vectorised where the formula allows, parallel over
//! chunks); f64 and f16 evaluate the same formulas in f64; Abs, Neg, Sign and Relu also run
//! on integers. NaN propagates through every formula.

use super::{Ctx, OpResult, contig, tensor};
use crate::error::{OpError, bail};
use crate::kernels::activation::{clip, sigmoid};
use crate::kernels::simd::multiversion;
use crate::num::{Num, with_num_type};
use qopt_ir::attr::GeluApprox;
use qopt_ir::{DType, Op, Tensor};
use rayon::prelude::*;

/// An f32 -> f32 element-wise function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Abs,
    Neg,
    Sqrt,
    Exp,
    Log,
    Reciprocal,
    Floor,
    Ceil,
    Round,
    Sign,
    Sin,
    Cos,
    Tan,
    Atan,
    Erf,
    Sigmoid,
    Tanh,
    Relu,
    Softplus,
    Softsign,
    HardSwish,
    Mish,
    LeakyRelu(f32),
    Elu(f32),
    Celu(f32),
    Selu(f32, f32),
    ThresholdedRelu(f32),
    HardSigmoid(f32, f32),
    Gelu,
    GeluTanh,
    /// Clip with constant bounds (used by the plan's in-place path).
    Clip(f32, f32),
}

impl Unary {
    pub fn from_op(op: &Op) -> Option<Unary> {
        Some(match op {
            Op::Abs(_) => Unary::Abs,
            Op::Neg(_) => Unary::Neg,
            Op::Sqrt(_) => Unary::Sqrt,
            Op::Exp(_) => Unary::Exp,
            Op::Log(_) => Unary::Log,
            Op::Reciprocal(_) => Unary::Reciprocal,
            Op::Floor(_) => Unary::Floor,
            Op::Ceil(_) => Unary::Ceil,
            Op::Round(_) => Unary::Round,
            Op::Sign(_) => Unary::Sign,
            Op::Sin(_) => Unary::Sin,
            Op::Cos(_) => Unary::Cos,
            Op::Tan(_) => Unary::Tan,
            Op::Atan(_) => Unary::Atan,
            Op::Erf(_) => Unary::Erf,
            Op::Sigmoid(_) => Unary::Sigmoid,
            Op::Tanh(_) => Unary::Tanh,
            Op::Relu(_) => Unary::Relu,
            Op::Softplus(_) => Unary::Softplus,
            Op::Softsign(_) => Unary::Softsign,
            Op::HardSwish(_) => Unary::HardSwish,
            Op::Mish(_) => Unary::Mish,
            Op::LeakyRelu(o) => Unary::LeakyRelu(o.alpha),
            Op::Elu(o) => Unary::Elu(o.alpha),
            Op::Celu(o) => Unary::Celu(o.alpha),
            Op::Selu(o) => Unary::Selu(o.alpha, o.gamma),
            Op::ThresholdedRelu(o) => Unary::ThresholdedRelu(o.alpha),
            Op::HardSigmoid(o) => Unary::HardSigmoid(o.alpha, o.beta),
            Op::Gelu(o) if o.approximate == GeluApprox::Tanh => Unary::GeluTanh,
            Op::Gelu(_) => Unary::Gelu,
            _ => return None,
        })
    }

    /// The formula in f64 (for f64 and f16 tensors, and as documentation of the f32 loops).
    pub fn eval_f64(self, x: f64) -> f64 {
        use std::f64::consts::{FRAC_1_SQRT_2, PI};
        match self {
            Unary::Abs => x.abs(),
            Unary::Neg => -x,
            Unary::Sqrt => x.sqrt(),
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Reciprocal => 1.0 / x,
            Unary::Floor => x.floor(),
            Unary::Ceil => x.ceil(),
            Unary::Round => x.round_ties_even(),
            Unary::Sign => x.sign_or_nan(),
            Unary::Sin => x.sin(),
            Unary::Cos => x.cos(),
            Unary::Tan => x.tan(),
            Unary::Atan => x.atan(),
            Unary::Erf => libm::erf(x),
            Unary::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Unary::Tanh => x.tanh(),
            Unary::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Unary::Softplus => softplus64(x),
            Unary::Softsign => x / (1.0 + x.abs()),
            Unary::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            Unary::Mish => x * softplus64(x).tanh(),
            Unary::LeakyRelu(a) => {
                if x < 0.0 {
                    a as f64 * x
                } else {
                    x
                }
            }
            Unary::Elu(a) => {
                if x < 0.0 {
                    a as f64 * x.exp_m1()
                } else {
                    x
                }
            }
            Unary::Celu(a) => {
                let a = a as f64;
                x.max(0.0) + (a * (x / a).exp_m1()).min(0.0)
            }
            Unary::Selu(a, g) => g as f64 * if x <= 0.0 { a as f64 * x.exp_m1() } else { x },
            Unary::ThresholdedRelu(a) => {
                if x > a as f64 {
                    x
                } else {
                    0.0
                }
            }
            Unary::HardSigmoid(a, b) => (a as f64 * x + b as f64).clamp(0.0, 1.0),
            Unary::Gelu => 0.5 * x * (1.0 + libm::erf(x * FRAC_1_SQRT_2)),
            Unary::GeluTanh => {
                0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
            }
            Unary::Clip(lo, hi) => {
                let y = if x < lo as f64 { lo as f64 } else { x };
                if y > hi as f64 { hi as f64 } else { y }
            }
        }
    }

    /// Apply to `data` in place (f32).
    pub fn apply_inplace(self, data: &mut [f32]) {
        unary_inplace(self, data);
    }

    #[inline(always)]
    fn apply_slice(self, d: &mut [f32]) {
        macro_rules! each {
            (|$x:ident| $e:expr) => {
                for v in d.iter_mut() {
                    let $x = *v;
                    *v = $e;
                }
            };
        }
        match self {
            Unary::Abs => each!(|x| x.abs()),
            Unary::Neg => each!(|x| -x),
            Unary::Sqrt => each!(|x| x.sqrt()),
            Unary::Exp => each!(|x| x.exp()),
            Unary::Log => each!(|x| x.ln()),
            Unary::Reciprocal => each!(|x| 1.0 / x),
            Unary::Floor => each!(|x| x.floor()),
            Unary::Ceil => each!(|x| x.ceil()),
            Unary::Round => each!(|x| x.round_ties_even()),
            Unary::Sign => each!(|x| if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }),
            Unary::Sin => each!(|x| x.sin()),
            Unary::Cos => each!(|x| x.cos()),
            Unary::Tan => each!(|x| x.tan()),
            Unary::Atan => each!(|x| x.atan()),
            Unary::Erf => each!(|x| libm::erff(x)),
            Unary::Sigmoid => each!(|x| sigmoid(x)),
            Unary::Tanh => each!(|x| x.tanh()),
            Unary::Relu => each!(|x| if x < 0.0 { 0.0 } else { x }),
            Unary::Softplus => each!(|x| softplus64(x as f64) as f32),
            Unary::Softsign => each!(|x| x / (1.0 + x.abs())),
            Unary::HardSwish => each!(|x| x * clip(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)),
            Unary::Mish => each!(|x| (x as f64 * softplus64(x as f64).tanh()) as f32),
            Unary::LeakyRelu(a) => each!(|x| if x < 0.0 { a * x } else { x }),
            Unary::HardSigmoid(a, b) => each!(|x| clip(a * x + b, 0.0, 1.0)),
            Unary::Clip(lo, hi) => each!(|x| clip(x, lo, hi)),
            Unary::ThresholdedRelu(a) => each!(|x| if x > a { x } else { 0.0 }),
            Unary::Gelu => {
                each!(|x| 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)))
            }
            other => each!(|x| other.eval_f64(x as f64) as f32),
        }
    }
}

multiversion! {
    fn unary_inplace(u: Unary, data: &mut [f32]) {
        const CHUNK: usize = 1 << 15;
        if data.len() <= CHUNK {
            u.apply_slice(data);
        } else {
            data.par_chunks_mut(CHUNK).for_each(|part| u.apply_slice(part));
        }
    }
}

/// `ln(1 + e^x)` without overflow for large x.
fn softplus64(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

trait SignOrNan {
    fn sign_or_nan(self) -> Self;
}
impl SignOrNan for f64 {
    fn sign_or_nan(self) -> f64 {
        if self > 0.0 {
            1.0
        } else if self < 0.0 {
            -1.0
        } else {
            self
        }
    }
}

pub fn run(op: &Op, ctx: &mut Ctx, x: &Tensor) -> OpResult {
    let Some(u) = Unary::from_op(op) else {
        bail!("not a unary op")
    };
    let out = match x {
        Tensor::F32(a) => {
            let mut v = ctx.alloc(a.len());
            v.copy_from_slice(&contig(a));
            u.apply_inplace(&mut v);
            tensor(a.shape(), v)?
        }
        Tensor::F64(a) => Tensor::F64(a.mapv(|x| u.eval_f64(x))),
        Tensor::F16(a) => Tensor::F16(a.mapv(|x| half::f16::from_f64(u.eval_f64(x.to_f64())))),
        t => {
            with_num_type!(t.dtype(), T => integer::<T>(u, t)?, else => bail!("{} is not defined for {}", op.op_type(), t.dtype()))
        }
    };
    Ok(vec![out])
}

fn integer<T: Num>(u: Unary, t: &Tensor) -> Result<Tensor, OpError> {
    let a = t.view::<T>().expect("dtype matched");
    let f: fn(T) -> T = match u {
        Unary::Abs => T::abs,
        Unary::Neg => T::neg,
        Unary::Sign => T::sign,
        Unary::Relu => |x: T| if x < T::zero() { T::zero() } else { x },
        _ => bail!("{u:?} is not defined for {}", t.dtype()),
    };
    Ok(T::wrap(a.mapv(f)))
}

/// Not, IsNaN, IsInf: boolean results.
pub fn run_predicate(op: &Op, x: &Tensor) -> OpResult {
    let out = match (op, x) {
        (Op::Not(_), Tensor::Bool(a)) => Tensor::Bool(a.mapv(|v| !v)),
        (Op::IsNaN(_), Tensor::F32(a)) => Tensor::Bool(a.mapv(f32::is_nan)),
        (Op::IsNaN(_), Tensor::F64(a)) => Tensor::Bool(a.mapv(f64::is_nan)),
        (Op::IsNaN(_), Tensor::F16(a)) => Tensor::Bool(a.mapv(|v| v.is_nan())),
        (Op::IsInf(o), t) if t.dtype().is_float() => {
            let (neg, pos) = (o.detect_negative != 0, o.detect_positive != 0);
            let v: Vec<bool> = t
                .to_f64_vec()
                .into_iter()
                .map(|v| v.is_infinite() && ((v > 0.0 && pos) || (v < 0.0 && neg)))
                .collect();
            tensor(t.shape(), v)?
        }
        (op, t) => bail!("{} is not defined for {}", op.op_type(), t.dtype()),
    };
    Ok(vec![out])
}

/// Whether the plan may run this op in place on an f32 input.
pub fn inplace_kind(op: &Op, x: &Tensor) -> Option<Unary> {
    (x.dtype() == DType::F32)
        .then(|| Unary::from_op(op))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::BufferPool;

    fn f(op: Op, xs: &[f32]) -> Vec<f32> {
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset: 17,
            pool: &mut pool,
        };
        let t = run(&op, &mut ctx, &Tensor::from_vec(&[xs.len()], xs.to_vec()))
            .unwrap()
            .remove(0);
        t.as_f32().unwrap().iter().copied().collect()
    }

    #[test]
    fn hand_derived_values() {
        // Values from the ONNX operator definitions, derived by hand.
        assert_eq!(
            f(Op::Round(Default::default()), &[0.5, 1.5, 2.5, -0.5]),
            vec![0.0, 2.0, 2.0, -0.0]
        );
        assert_eq!(
            f(Op::Relu(Default::default()), &[-1.0, 2.0]),
            vec![0.0, 2.0]
        );
        assert_eq!(
            f(Op::HardSwish(Default::default()), &[-3.0, 0.0, 3.0]),
            vec![-0.0, 0.0, 3.0]
        );
        assert_eq!(
            f(Op::Sign(Default::default()), &[-2.0, 0.0, 5.0]),
            vec![-1.0, 0.0, 1.0]
        );
        let g = f(Op::Gelu(Default::default()), &[1.0]);
        // 0.5 * (1 + erf(1/sqrt(2))) = 0.8413447
        assert!((g[0] - 0.841_344_7).abs() < 1e-6);
        let s = f(Op::Sqrt(Default::default()), &[-1.0, f32::INFINITY]);
        assert!(s[0].is_nan() && s[1] == f32::INFINITY);
        let e = f(Op::Exp(Default::default()), &[f32::NAN, 1000.0]);
        assert!(e[0].is_nan() && e[1] == f32::INFINITY);
    }

    #[test]
    fn integers_and_predicates() {
        let mut pool = BufferPool::new();
        let mut ctx = Ctx {
            opset: 17,
            pool: &mut pool,
        };
        let t = run(
            &Op::Abs(Default::default()),
            &mut ctx,
            &Tensor::from_vec(&[2], vec![-3i64, 4]),
        )
        .unwrap()
        .remove(0);
        assert_eq!(t.to_i64_vec().unwrap(), vec![3, 4]);
        assert!(
            run(
                &Op::Exp(Default::default()),
                &mut ctx,
                &Tensor::from_vec(&[1], vec![1i64])
            )
            .is_err()
        );
        let n = run_predicate(
            &Op::IsNaN(Default::default()),
            &Tensor::from_vec(&[2], vec![f32::NAN, 1.0]),
        )
        .unwrap();
        assert_eq!(n[0].to_i64_vec().unwrap(), vec![1, 0]);
    }
}
