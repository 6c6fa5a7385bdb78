//! Element-wise activations that a convolution or GEMM applies to its output while the output
//! tile is still in cache (the plan fuses `Conv -> Relu` and the like, see `fusion.rs`).
//!
//! Each formula is the ONNX operator's definition (Relu, LeakyRelu, Clip, HardSigmoid,
//! HardSwish, Sigmoid), so a fused and an unfused run give the same values.

use super::simd::multiversion;

#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    LeakyRelu(f32),
    /// Clip(min, max); a missing bound is +-inf.
    Clip(f32, f32),
    /// HardSigmoid(alpha, beta): `max(0, min(1, alpha * x + beta))`.
    HardSigmoid(f32, f32),
    /// `x * max(0, min(1, x / 6 + 0.5))`.
    HardSwish,
    Sigmoid,
    /// A hard-swish written out as ops, `t = Clip(Add(x, add), lo, hi)` then either
    /// `Mul(x, Div(t, scale))` or, with `scale_last`, `Div(Mul(x, t), scale)` (`Mul` by the
    /// scale instead of `Div` when `scale_is_mul`), evaluated in that order so the fused result
    /// is bit-identical to running the four ops.
    HardSwishParts {
        add: f32,
        lo: f32,
        hi: f32,
        scale: f32,
        scale_is_mul: bool,
        scale_last: bool,
    },
}

impl Activation {
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            // `x.max(0.0)` would turn NaN into 0; ONNX Relu keeps NaN.
            Activation::Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Activation::LeakyRelu(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Activation::Clip(lo, hi) => clip(x, lo, hi),
            Activation::HardSigmoid(a, b) => clip(a * x + b, 0.0, 1.0),
            Activation::HardSwish => x * clip(x * (1.0 / 6.0) + 0.5, 0.0, 1.0),
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSwishParts {
                add,
                lo,
                hi,
                scale,
                scale_is_mul,
                scale_last,
            } => {
                let t = clip(x + add, lo, hi);
                let sc = |v: f32| if scale_is_mul { v * scale } else { v / scale };
                if scale_last { sc(x * t) } else { x * sc(t) }
            }
        }
    }
}

/// Clip that keeps NaN (ONNX Clip is `min(max(x, lo), hi)` on IEEE values).
#[inline(always)]
pub fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    let y = if x < lo { lo } else { x };
    if y > hi { hi } else { y }
}

/// Logistic sigmoid, written so that neither branch overflows.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `row[i] = act(row[i] + bias)`.
#[inline(always)]
pub fn bias_act_row(row: &mut [f32], bias: f32, act: Activation) {
    match act {
        // The common cases get their own loops so they vectorise.
        Activation::None => {
            for v in row.iter_mut() {
                *v += bias;
            }
        }
        Activation::Relu => {
            for v in row.iter_mut() {
                let x = *v + bias;
                *v = if x < 0.0 { 0.0 } else { x };
            }
        }
        Activation::Clip(lo, hi) => {
            for v in row.iter_mut() {
                *v = clip(*v + bias, lo, hi);
            }
        }
        _ => {
            for v in row.iter_mut() {
                *v = act.apply(*v + bias);
            }
        }
    }
}

multiversion! {
    /// Apply an activation in place.
    pub fn apply_inplace(data: &mut [f32], act: Activation) {
        if act == Activation::None {
            return;
        }
        bias_act_row(data, 0.0, act);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_match_onnx_definitions() {
        // Hand-derived from the ONNX operator definitions.
        assert_eq!(Activation::Relu.apply(-2.0), 0.0);
        assert!(Activation::Relu.apply(f32::NAN).is_nan());
        assert_eq!(Activation::LeakyRelu(0.1).apply(-2.0), -0.2);
        assert_eq!(Activation::Clip(0.0, 6.0).apply(7.0), 6.0);
        assert_eq!(Activation::HardSigmoid(0.2, 0.5).apply(1.0), 0.7);
        assert_eq!(Activation::HardSwish.apply(-4.0), 0.0);
        assert_eq!(Activation::HardSwish.apply(3.0), 3.0);
        assert_eq!(Activation::HardSwish.apply(1.0), 1.0 * (1.0 / 6.0 + 0.5));
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
