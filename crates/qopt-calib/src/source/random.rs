//! `random:N{seed=S dim=D}`: reproducible random samples for smoke tests.
//!
//! Sample `i` draws from ChaCha8 seeded with `S` on stream `i`, so any sample can be made on
//! any thread and the data never depends on the thread split (ChaCha8's output is fixed by
//! its specification, so the data is the same on every machine and version). Float inputs
//! get values uniform in [-1, 1); integer and bool inputs get zeros (random indices would
//! rarely be valid). A symbolic first dimension is 1 (batch); other unknown dimensions are `D`.

use qopt_ir::{DType, Dim, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use super::{InputSpec, SourceError};

/// The concrete shape random data uses for an input.
pub fn concrete_shape(input: &InputSpec, dim: usize) -> Vec<usize> {
    input
        .shape
        .dims()
        .iter()
        .enumerate()
        .map(|(k, d)| match d {
            Dim::Known(n) => *n as usize,
            _ if k == 0 => 1,
            _ => dim,
        })
        .collect()
}

/// Random sample `index` for all inputs.
pub fn sample(
    inputs: &[InputSpec],
    seed: u64,
    dim: usize,
    index: usize,
) -> Result<Vec<Tensor>, SourceError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    inputs
        .iter()
        .map(|inp| {
            let shape = concrete_shape(inp, dim);
            let n: usize = shape.iter().product();
            Ok(match inp.dtype {
                DType::F32 | DType::F16 | DType::F64 => {
                    // 24 random bits -> [0, 1) exactly representable in f32 -> [-1, 1).
                    let v: Vec<f32> = (0..n)
                        .map(|_| (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0) * 2.0 - 1.0)
                        .collect();
                    Tensor::from_vec(&shape, v).cast(inp.dtype)
                }
                other => Tensor::zeros(other, &shape),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qopt_ir::Shape;

    #[test]
    fn reproducible_and_independent_of_order() {
        let inp = [InputSpec {
            name: "x".into(),
            dtype: DType::F32,
            shape: Shape(vec![Dim::Sym("N".into()), Dim::Known(3), Dim::Unknown]),
        }];
        let a = sample(&inp, 7, 5, 2).unwrap();
        let _ = sample(&inp, 7, 5, 1).unwrap();
        assert_eq!(a, sample(&inp, 7, 5, 2).unwrap());
        assert_ne!(a, sample(&inp, 7, 5, 3).unwrap());
        assert_ne!(a, sample(&inp, 8, 5, 2).unwrap());
        assert_eq!(a[0].shape(), &[1, 3, 5]);
        assert!(
            a[0].as_f32()
                .unwrap()
                .iter()
                .all(|&v| (-1.0..1.0).contains(&v))
        );
    }
}
