//! The numbers behind the folds: a per-output-channel affine map `y' = y * scale[c] + shift[c]`
//! that follows a Conv, ConvTranspose or Gemm is absorbed into the layer's weight and bias.
//!
//! Every fold in `fuse` and `fold-bias` is this one operation with a different affine map:
//!
//! | after the layer                  | scale                       | shift               |
//! | -------------------------------- | --------------------------- | ------------------- |
//! | BatchNormalization (inference)   | gamma / sqrt(var + eps)     | beta - mean * scale |
//! | Mul by k                         | k                           | 0                   |
//! | Div by k                         | 1 / k                       | 0                   |
//! | Add k                            | 1                           | k                   |
//! | Sub k (`y - k`)                  | 1                           | -k                  |
//! | Sub from k (`k - y`)             | -1                          | k                   |
//!
//! BatchNormalization's inference formula is the ONNX spec's:
//! `Y = (X - mean) / sqrt(var + epsilon) * scale + B`, per channel (axis 1).
//!
//! The layer's output channel `c` is computed from one slice of its weight plus one bias
//! element, so `affine(layer(x; W, b)) = layer(x; W', b')` with
//! - Conv (`W: [Cout, Cin/g, k...]`): `W'[c, ...] = W[c, ...] * scale[c]`;
//! - ConvTranspose (`W: [Cin, Cout/g, k...]`): input channel `i` of group `i / (Cin/g)` feeds
//!   output channel `c = (i / (Cin/g)) * (Cout/g) + j` through `W[i, j, ...]`, so
//!   `W'[i, j, ...] = W[i, j, ...] * scale[c]`;
//! - Gemm (`Y = alpha * A * op(B) + beta * C`): output column `n` is column `n` of `op(B)`,
//!   i.e. `B[:, n]` (transB = 0) or `B[n, :]` (transB = 1); `C' = beta * C * scale + shift`
//!   with the new Gemm's beta set to 1;
//! - bias (Conv, ConvTranspose): `b'[c] = b[c] * scale[c] + shift[c]` (`b = 0` when absent).
//!
//! Arithmetic is in f64 and rounded once to the weight's type, so a folded f32 weight is the
//! correctly rounded product. A fold is refused (the graph keeps the unfused form) when a
//! constant does not broadcast per output channel, types differ, or a result is not finite.

use ndarray::{ArrayD, IxDyn};
use qopt_ir::{DType, Element, Op, Tensor};

/// The layers an affine map folds into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Conv,
    ConvTranspose,
    Gemm,
}

/// What follows the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    BatchNorm,
    Mul,
    Div,
    Add,
    /// `y - k`.
    Sub,
    /// `k - y`.
    SubFrom,
}

/// `y' = y * scale[c] + shift[c]`, one entry per output channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelAffine {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
}

/// A layer's new weight, bias and op after absorbing an affine map.
#[derive(Debug)]
pub struct Folded {
    /// `None`: the weight is unchanged (scale is all ones), so it stays shared.
    pub weight: Option<Tensor>,
    /// `None`: no bias (the layer had none and the shift is zero).
    pub bias: Option<Tensor>,
    /// The layer's op (a Gemm's beta becomes 1 when it gets a bias).
    pub op: Op,
}

fn to_f64(t: &Tensor) -> ArrayD<f64> {
    match t.cast(DType::F64) {
        Tensor::F64(a) => a,
        _ => unreachable!("cast to f64 gives an f64 tensor"),
    }
}

fn from_f64(a: ArrayD<f64>, dtype: DType) -> Tensor {
    Tensor::F64(a).cast(dtype)
}

fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::F64)
}

impl Layer {
    /// Output rank and channel count, from the weight (and the op's group/transB).
    pub fn output_channels(self, op: &Op, w: &Tensor) -> Result<(usize, usize), String> {
        let s = w.shape();
        match (self, op) {
            (Layer::Conv, Op::Conv(_)) if s.len() >= 3 => Ok((s.len(), s[0])),
            (Layer::ConvTranspose, Op::ConvTranspose(c)) if s.len() >= 3 => {
                let g = usize::try_from(c.group).map_err(|_| "bad group".to_string())?;
                if g == 0 || !s[0].is_multiple_of(g) {
                    return Err(format!("weight {s:?} does not split into {g} groups"));
                }
                Ok((s.len(), s[1] * g))
            }
            (Layer::Gemm, Op::Gemm(gm)) if s.len() == 2 => {
                Ok((2, if gm.trans_b == 0 { s[1] } else { s[0] }))
            }
            _ => Err(format!(
                "weight of shape {s:?} does not fit {}",
                op.op_type()
            )),
        }
    }
}

impl ChannelAffine {
    /// BatchNormalization in inference mode with per-channel parameters of length `channels`.
    pub fn batchnorm(
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        epsilon: f32,
        channels: usize,
    ) -> Result<ChannelAffine, String> {
        for (what, t) in [("scale", gamma), ("B", beta), ("mean", mean), ("var", var)] {
            if t.shape() != [channels] || !is_float(t.dtype()) {
                return Err(format!(
                    "BatchNormalization {what} is {} {:?}, expected a float [{channels}]",
                    t.dtype(),
                    t.shape()
                ));
            }
        }
        let (g, b, m, v) = (
            gamma.to_f64_vec(),
            beta.to_f64_vec(),
            mean.to_f64_vec(),
            var.to_f64_vec(),
        );
        let eps = epsilon as f64;
        let scale: Vec<f64> = (0..channels).map(|c| g[c] / (v[c] + eps).sqrt()).collect();
        let shift = (0..channels).map(|c| b[c] - m[c] * scale[c]).collect();
        ChannelAffine { scale, shift }.finite()
    }

    /// A binary op with constant `k` applied to a layer output of rank `out_rank` and
    /// `channels` channels on axis 1. `k` must broadcast per channel: after aligning its
    /// shape to the right, every dim is 1 except the channel dim, which is 1 or `channels`
    /// (`[C,1,1]`, `[1,C,1,1]`, `[1]`, a scalar, `[C]` for a Gemm); and it must not raise the
    /// rank (which would change the output shape).
    pub fn binary(
        source: Source,
        k: &Tensor,
        out_rank: usize,
        channels: usize,
    ) -> Result<ChannelAffine, String> {
        let shape = k.shape();
        let bad = || {
            format!(
                "constant of shape {shape:?} does not broadcast per channel over a rank-{out_rank} output with {channels} channels"
            )
        };
        if shape.len() > out_rank || out_rank < 2 || !is_float(k.dtype()) {
            return Err(bad());
        }
        for (i, &d) in shape.iter().enumerate() {
            let axis = out_rank - shape.len() + i;
            let ok = d == 1 || (axis == 1 && d == channels);
            if !ok {
                return Err(bad());
            }
        }
        let flat = k.to_f64_vec();
        let v: Vec<f64> = if flat.len() == 1 {
            vec![flat[0]; channels]
        } else {
            flat
        };
        let ones = vec![1.0; channels];
        let zeros = vec![0.0; channels];
        let aff = match source {
            Source::Mul => ChannelAffine {
                scale: v,
                shift: zeros,
            },
            Source::Div => {
                if v.contains(&0.0) {
                    return Err("division by a zero constant".into());
                }
                ChannelAffine {
                    scale: v.iter().map(|x| 1.0 / x).collect(),
                    shift: zeros,
                }
            }
            Source::Add => ChannelAffine {
                scale: ones,
                shift: v,
            },
            Source::Sub => ChannelAffine {
                scale: ones,
                shift: v.iter().map(|x| -x).collect(),
            },
            Source::SubFrom => ChannelAffine {
                scale: vec![-1.0; channels],
                shift: v,
            },
            Source::BatchNorm => unreachable!("BatchNormalization has its own constructor"),
        };
        aff.finite()
    }

    fn finite(self) -> Result<ChannelAffine, String> {
        if self.scale.iter().chain(&self.shift).all(|x| x.is_finite()) {
            Ok(self)
        } else {
            Err("the folded scale or shift is not finite".into())
        }
    }

    pub fn len(&self) -> usize {
        self.scale.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }

    fn scale_is_one(&self) -> bool {
        self.scale.iter().all(|&s| s == 1.0)
    }

    fn shift_is_zero(&self) -> bool {
        self.shift.iter().all(|&t| t == 0.0)
    }
}

/// Fold `aff` into a layer with op `op`, weight `w` and optional bias `b`.
pub fn fold_into_layer(
    layer: Layer,
    op: &Op,
    w: &Tensor,
    b: Option<&Tensor>,
    aff: &ChannelAffine,
) -> Result<Folded, String> {
    let (_, channels) = layer.output_channels(op, w)?;
    if channels != aff.len() {
        return Err(format!(
            "{} channels in the layer, {} in the folded operation",
            channels,
            aff.len()
        ));
    }
    let dtype = w.dtype();
    if !is_float(dtype) {
        return Err(format!("weight is {dtype}, not a float type"));
    }
    if let Some(b) = b
        && b.dtype() != dtype
    {
        return Err(format!("bias is {} but the weight is {dtype}", b.dtype()));
    }

    let weight = if aff.scale_is_one() {
        None
    } else {
        let runs = channel_runs(layer, op, w.shape())?;
        Some(match w {
            Tensor::F32(a) => Tensor::F32(scale_runs(a, &runs, &aff.scale)),
            Tensor::F64(a) => Tensor::F64(scale_runs(a, &runs, &aff.scale)),
            Tensor::F16(a) => Tensor::F16(scale_runs(a, &runs, &aff.scale)),
            _ => unreachable!("checked to be a float type"),
        })
    };

    let (bias, op) = match layer {
        Layer::Conv | Layer::ConvTranspose => {
            let bias = match b {
                None if aff.shift_is_zero() => None,
                None => Some(ArrayD::from_shape_vec(
                    IxDyn(&[channels]),
                    aff.shift.clone(),
                )),
                Some(b) => {
                    if b.shape() != [channels] {
                        return Err(format!(
                            "bias of shape {:?}, expected [{channels}]",
                            b.shape()
                        ));
                    }
                    let v = b.to_f64_vec();
                    let out = (0..channels)
                        .map(|c| v[c] * aff.scale[c] + aff.shift[c])
                        .collect();
                    Some(ArrayD::from_shape_vec(IxDyn(&[channels]), out))
                }
            };
            (bias.map(|r| r.expect("shape matches length")), op.clone())
        }
        Layer::Gemm => {
            let Op::Gemm(gm) = op else {
                return Err("not a Gemm".into());
            };
            let scale = ArrayD::from_shape_vec(IxDyn(&[channels]), aff.scale.clone())
                .expect("length matches");
            let shift = ArrayD::from_shape_vec(IxDyn(&[channels]), aff.shift.clone())
                .expect("length matches");
            match b {
                None if aff.shift_is_zero() => (None, op.clone()),
                None => {
                    let mut g = gm.clone();
                    g.beta = 1.0;
                    (Some(shift), Op::Gemm(g))
                }
                Some(c) => {
                    let cs = c.shape();
                    // C broadcasts unidirectionally to [M, N]: its last dim is 1 or N.
                    if cs.len() > 2 || cs.last().is_some_and(|&d| d != 1 && d != channels) {
                        return Err(format!(
                            "Gemm C of shape {cs:?} does not broadcast to N = {channels}"
                        ));
                    }
                    let cf = to_f64(c) * gm.beta as f64;
                    let out = &(&cf * &scale) + &shift;
                    let mut g = gm.clone();
                    g.beta = 1.0;
                    (Some(out), Op::Gemm(g))
                }
            }
        }
    };
    let bias = bias.map(|a| from_f64(a, dtype));
    if weight.as_ref().is_some_and(|t| !all_finite(t))
        || bias.as_ref().is_some_and(|t| !all_finite(t))
    {
        return Err("a folded weight or bias is not finite".into());
    }
    Ok(Folded { weight, bias, op })
}

/// No NaN or infinity (a product can overflow the weight's type).
fn all_finite(t: &Tensor) -> bool {
    match t {
        Tensor::F32(a) => a.iter().all(|x| x.is_finite()),
        Tensor::F64(a) => a.iter().all(|x| x.is_finite()),
        Tensor::F16(a) => a.iter().all(|x| x.is_finite()),
        _ => true,
    }
}

/// The weight in row-major order as runs of consecutive elements that feed one output
/// channel: `(length, channel)`.
fn channel_runs(layer: Layer, op: &Op, wshape: &[usize]) -> Result<Vec<(usize, usize)>, String> {
    let inner: usize = wshape.iter().skip(2).product();
    Ok(match (layer, op) {
        // [Cout, Cin/g, k...]: one run per output channel.
        (Layer::Conv, _) => {
            let per_channel = wshape[1..].iter().product::<usize>();
            (0..wshape[0]).map(|c| (per_channel, c)).collect()
        }
        // [Cin, Cout/g, k...]: W[i, j, ...] feeds channel (i / (Cin/g)) * (Cout/g) + j.
        (Layer::ConvTranspose, Op::ConvTranspose(c)) => {
            let (cin, per_group_out) = (wshape[0], wshape[1]);
            let per_group_in = cin / c.group as usize;
            (0..cin)
                .flat_map(|i| {
                    (0..per_group_out).map(move |j| (inner, (i / per_group_in) * per_group_out + j))
                })
                .collect()
        }
        // B is [K, N]: element (k, n) feeds column n (runs of one element; Gemm weights
        // that get a BN or a scale are rare and small enough).
        (Layer::Gemm, Op::Gemm(g)) if g.trans_b == 0 => {
            let (k, n) = (wshape[0], wshape[1]);
            (0..k).flat_map(|_| (0..n).map(|c| (1, c))).collect()
        }
        // With transB, B is [N, K]: row n feeds column n.
        (Layer::Gemm, Op::Gemm(_)) => (0..wshape[0]).map(|c| (wshape[1], c)).collect(),
        _ => return Err(format!("{} is not a {layer:?}", op.op_type())),
    })
}

/// `a` with each run of elements multiplied by its channel's scale, in f64, rounded once.
fn scale_runs<T: Element>(a: &ArrayD<T>, runs: &[(usize, usize)], scale: &[f64]) -> ArrayD<T> {
    let owned: Vec<T>;
    let src: &[T] = match a.as_slice() {
        Some(s) => s,
        None => {
            owned = a.iter().copied().collect();
            &owned
        }
    };
    let mut out = Vec::with_capacity(src.len());
    let mut pos = 0;
    for &(len, c) in runs {
        let s = scale[c];
        out.extend(
            src[pos..pos + len]
                .iter()
                .map(|&x| T::from_f64(x.to_f64() * s)),
        );
        pos += len;
    }
    ArrayD::from_shape_vec(a.raw_dim(), out).expect("same number of elements")
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::op;

    // Reference: the affine maps are checked against the definitions in the table above,
    // evaluated by hand on small numbers.

    #[test]
    fn per_channel_broadcast_shapes() {
        let k = |shape: &[usize]| Tensor::from_vec(shape, vec![2f32; shape.iter().product()]);
        for ok in [&[3usize, 1, 1][..], &[1, 3, 1, 1], &[1], &[], &[1, 1, 1, 1]] {
            assert!(
                ChannelAffine::binary(Source::Mul, &k(ok), 4, 3).is_ok(),
                "{ok:?}"
            );
        }
        for bad in [
            &[3usize][..],
            &[2, 3, 1, 1],
            &[1, 1, 3, 1, 1],
            &[1, 3, 2, 1],
        ] {
            assert!(
                ChannelAffine::binary(Source::Mul, &k(bad), 4, 3).is_err(),
                "{bad:?}"
            );
        }
        // A Gemm output is [M, N]: [N] and [1, N] are per channel.
        assert!(ChannelAffine::binary(Source::Add, &k(&[3]), 2, 3).is_ok());
        assert!(ChannelAffine::binary(Source::Add, &k(&[3, 1]), 2, 3).is_err());
    }

    #[test]
    fn sources_give_their_affine_maps() {
        let k = Tensor::from_vec(&[2, 1, 1], vec![2f32, 4.0]);
        let a = |s| ChannelAffine::binary(s, &k, 4, 2).unwrap();
        assert_eq!(a(Source::Div).scale, vec![0.5, 0.25]);
        assert_eq!(a(Source::Sub).shift, vec![-2.0, -4.0]);
        assert_eq!(a(Source::SubFrom).scale, vec![-1.0, -1.0]);
        let zero = Tensor::from_vec(&[1], vec![0f32]);
        assert!(ChannelAffine::binary(Source::Div, &zero, 4, 2).is_err());
        // var + eps < 0 gives NaN: refused.
        let t = |v: f32| Tensor::from_vec(&[1], vec![v]);
        assert!(ChannelAffine::batchnorm(&t(1.0), &t(0.0), &t(0.0), &t(-1.0), 1e-5, 1).is_err());
    }

    #[test]
    fn conv_transpose_groups_scale_the_right_slices() {
        // W: [Cin=4, Cout/g=1, 1, 1], group 2: output channel of W[i, 0] is i / 2.
        let w = Tensor::from_vec(&[4, 1, 1, 1], vec![1f32, 1.0, 1.0, 1.0]);
        let op = Op::ConvTranspose(op::ConvTranspose {
            group: 2,
            ..Default::default()
        });
        let aff = ChannelAffine {
            scale: vec![2.0, 3.0],
            shift: vec![0.0, 0.0],
        };
        let f = fold_into_layer(Layer::ConvTranspose, &op, &w, None, &aff).unwrap();
        assert_eq!(f.weight.unwrap().to_f64_vec(), vec![2.0, 2.0, 3.0, 3.0]);
        assert!(f.bias.is_none());
    }

    #[test]
    fn gemm_trans_b_and_beta() {
        // transB = 1: B is [N=2, K=2], row n scales.
        let w = Tensor::from_vec(&[2, 2], vec![1f32, 2.0, 3.0, 4.0]);
        let op = Op::Gemm(op::Gemm {
            trans_b: 1,
            beta: 0.5,
            ..Default::default()
        });
        let c = Tensor::from_vec(&[2], vec![10f32, 20.0]);
        let aff = ChannelAffine {
            scale: vec![2.0, 3.0],
            shift: vec![1.0, 1.0],
        };
        let f = fold_into_layer(Layer::Gemm, &op, &w, Some(&c), &aff).unwrap();
        assert_eq!(f.weight.unwrap().to_f64_vec(), vec![2.0, 4.0, 9.0, 12.0]);
        // beta * C * scale + shift = [0.5*10*2+1, 0.5*20*3+1]
        assert_eq!(f.bias.unwrap().to_f64_vec(), vec![11.0, 31.0]);
        assert!(matches!(f.op, Op::Gemm(g) if g.beta == 1.0 && g.trans_b == 1));
    }

    #[test]
    fn add_keeps_the_weight_shared() {
        let w = Tensor::from_vec(&[2, 1, 1, 1], vec![1f32, 2.0]);
        let op = Op::Conv(op::Conv::default());
        let aff = ChannelAffine {
            scale: vec![1.0, 1.0],
            shift: vec![0.5, -0.5],
        };
        let f = fold_into_layer(Layer::Conv, &op, &w, None, &aff).unwrap();
        assert!(f.weight.is_none());
        assert_eq!(f.bias.unwrap().to_f64_vec(), vec![0.5, -0.5]);
    }
}
