//! Rounding weights onto the integer grid: nearest (half to even, ONNX QuantizeLinear) or
//! stochastic.
//!
//! Stochastic rounding (Gupta et al., "Deep Learning with Limited Numerical Precision",
//! ICML 2015): `q = floor(x / s + u)` with `u` uniform in [0, 1), so x rounds up with
//! probability equal to its distance from the grid point below and the rounding error has
//! zero mean. Each weight tensor draws from its own ChaCha8 stream, seeded from the pass
//! seed and the tensor's name, so a tensor's result does not depend on how many others
//! were rounded before it or in what order.

use qopt_calib::qparams::{QParamsError, quantize_tensor};
use qopt_ir::tensor::Fnv64;
use qopt_ir::{QParams, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::Rounding;

/// The stream of one tensor: the seed mixed with an FNV-1a hash of its name.
fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut h = Fnv64::new();
    h.write(name.as_bytes());
    ChaCha8Rng::seed_from_u64(seed ^ h.finish())
}

/// Quantize an f32 weight tensor with `p` onto the narrow int8 grid [-127, 127].
pub(crate) fn quantize_weight(
    w: &Tensor,
    p: &QParams,
    rounding: Rounding,
    name: &str,
) -> Result<Tensor, QParamsError> {
    let Rounding::Stochastic { seed } = rounding else {
        return quantize_tensor(w, p, true);
    };
    let a = w.as_f32().ok_or(QParamsError::NotF32(w.dtype()))?;
    let mut rng = stream(seed, name);
    let axis = p.axis;
    if let Some(ax) = axis
        && (ax >= a.ndim() || a.shape()[ax] != p.scale.len())
    {
        return Err(QParamsError::Channels {
            scales: p.scale.len(),
            channels: a.shape().get(ax).copied().unwrap_or(0),
            axis: ax,
        });
    }
    // Row-major walk; the channel of element i along `axis` is (i / inner) % channels.
    let inner: usize = axis.map_or(1, |ax| a.shape()[ax + 1..].iter().product());
    let channels = p.scale.len();
    let q: Vec<i8> = a
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = if axis.is_some() {
                (i / inner) % channels
            } else {
                0
            };
            // 24 random bits: u in [0, 1) exactly representable in f32.
            let u = (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0);
            let r = if x.is_finite() {
                (x / p.scale[c] + u).floor()
            } else {
                0.0
            };
            (r as i32 + p.zero_point[c]).clamp(-127, 127) as i8
        })
        .collect();
    Ok(Tensor::from_vec(a.shape(), q))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::DType;

    #[test]
    fn stochastic_rounding_is_unbiased_and_reproducible() {
        // 0.3 on a grid of step 1: rounds up 30% of the time; the mean stays 0.3.
        let n = 20_000;
        let w = Tensor::from_vec(&[n], vec![0.3f32; n]);
        let p = QParams::per_tensor(DType::I8, 1.0, 0);
        let r = Rounding::Stochastic { seed: 7 };
        let q = quantize_weight(&w, &p, r, "w").unwrap();
        let Tensor::I8(a) = &q else { panic!() };
        assert!(a.iter().all(|&v| v == 0 || v == 1));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        assert!((mean - 0.3).abs() < 0.01, "mean {mean}");
        assert_eq!(quantize_weight(&w, &p, r, "w").unwrap(), q);
        assert_ne!(quantize_weight(&w, &p, r, "other").unwrap(), q);
        // Nearest is QuantizeLinear's half-to-even rounding.
        let Tensor::I8(b) = quantize_weight(&w, &p, Rounding::Nearest, "w").unwrap() else {
            panic!()
        };
        assert!(b.iter().all(|&v| v == 0));
    }

    #[test]
    fn stochastic_rounding_per_channel_stays_on_the_grid() {
        // Channel 1 has scale 2: 3.0 / 2 = 1.5 rounds to 1 or 2; values already on the grid
        // never move.
        let w = Tensor::from_vec(&[2, 2], vec![1.0f32, -2.0, 3.0, 4.0]);
        let p = QParams {
            dtype: DType::I8,
            scale: vec![1.0, 2.0],
            zero_point: vec![0, 0],
            axis: Some(0),
        };
        for seed in 0..20 {
            let Tensor::I8(a) =
                quantize_weight(&w, &p, Rounding::Stochastic { seed }, "w").unwrap()
            else {
                panic!()
            };
            assert_eq!((a[[0, 0]], a[[0, 1]], a[[1, 1]]), (1, -2, 2));
            assert!(a[[1, 0]] == 1 || a[[1, 0]] == 2);
        }
    }
}
