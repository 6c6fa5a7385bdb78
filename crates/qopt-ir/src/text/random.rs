//! `random(seed=S, lo=A, hi=B)` constant initializers for hand-written `.qir` tests.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014; the reference C code is Vigna's `splitmix64.c`): tiny, fully
//! specified and stable, so a test file means the same weights forever and any language can
//! reproduce them. One 64-bit draw per element, in row-major order:
//!
//! - `u = (draw >> 11) * 2^-53`, uniform in `[0, 1)`;
//! - floats: `lo + u * (hi - lo)` computed in f64, rounded to the element type
//!   (defaults `lo = -1`, `hi = 1`);
//! - integers: `min(lo + floor(u * (hi - lo + 1)), hi)` (inclusive; defaults `-128..=127`,
//!   `0..=255` for u8, clipped to the type's range);
//! - bool: `u >= 0.5`.

use crate::dtype::DType;
use crate::tensor::{Element, Tensor};
use half::f16;

/// Largest tensor `splat(..)` or `random(..)` may materialise (2^28 elements, 1 GiB of f32):
/// a typo in a shape must give an error, not exhaust memory.
pub const MAX_GENERATED_ELEMENTS: usize = 1 << 28;

pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Default bounds of `random(..)` for each element type.
pub fn default_bounds(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 | DType::F16 | DType::F64 => (-1.0, 1.0),
        DType::U8 => (0.0, 255.0),
        DType::Bool => (0.0, 1.0),
        DType::I8 | DType::I32 | DType::I64 => (-128.0, 127.0),
    }
}

/// A tensor of `shape` filled from SplitMix64(`seed`) within `[lo, hi]`.
pub fn random_tensor(
    dtype: DType,
    shape: &[usize],
    seed: u64,
    lo: f64,
    hi: f64,
) -> Result<Tensor, String> {
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(format!(
            "random bounds [{lo}, {hi}] must be finite with lo <= hi"
        ));
    }
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_GENERATED_ELEMENTS)
        .ok_or_else(|| {
            format!("shape {shape:?} has more than {MAX_GENERATED_ELEMENTS} elements")
        })?;
    let mut rng = SplitMix64::new(seed);
    fn floats<T: Element>(n: usize, rng: &mut SplitMix64, lo: f64, hi: f64) -> Vec<T> {
        (0..n)
            .map(|_| T::from_f64(lo + rng.next_unit() * (hi - lo)))
            .collect()
    }
    fn ints<T: Element>(
        n: usize,
        rng: &mut SplitMix64,
        lo: f64,
        hi: f64,
        range: (i64, i64),
    ) -> Result<Vec<T>, String> {
        if lo.fract() != 0.0 || hi.fract() != 0.0 {
            return Err(format!("random bounds of {} must be integers", T::DTYPE));
        }
        if lo < range.0 as f64 || hi > range.1 as f64 {
            return Err(format!(
                "random bounds [{lo}, {hi}] exceed the range of {}",
                T::DTYPE
            ));
        }
        let span = hi - lo + 1.0;
        Ok((0..n)
            .map(|_| T::from_f64((lo + (rng.next_unit() * span).floor()).min(hi)))
            .collect())
    }
    let r = dtype.int_range().unwrap_or((0, 0));
    match dtype {
        DType::F32 => Tensor::try_from_vec(shape, floats::<f32>(n, &mut rng, lo, hi)),
        DType::F64 => Tensor::try_from_vec(shape, floats::<f64>(n, &mut rng, lo, hi)),
        DType::F16 => Tensor::try_from_vec(shape, floats::<f16>(n, &mut rng, lo, hi)),
        DType::I8 => Tensor::try_from_vec(shape, ints::<i8>(n, &mut rng, lo, hi, r)?),
        DType::U8 => Tensor::try_from_vec(shape, ints::<u8>(n, &mut rng, lo, hi, r)?),
        DType::I32 => Tensor::try_from_vec(shape, ints::<i32>(n, &mut rng, lo, hi, r)?),
        DType::I64 => Tensor::try_from_vec(shape, ints::<i64>(n, &mut rng, lo, hi, r)?),
        DType::Bool => {
            let v: Vec<bool> = (0..n).map(|_| rng.next_unit() >= 0.5).collect();
            Tensor::try_from_vec(shape, v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference() {
        // Reference: the test vector of rand_xoshiro's SplitMix64 (from Vigna's splitmix64.c),
        // reproduced by an independent Python implementation.
        let mut r = SplitMix64::new(1_477_776_061_723_855_037);
        assert_eq!(
            [r.next_u64(), r.next_u64(), r.next_u64()],
            [
                1_985_237_415_132_408_290,
                2_979_275_885_539_914_483,
                13_511_426_838_097_143_398
            ]
        );
    }

    #[test]
    fn tensors_follow_the_documented_mapping() {
        // Reference: the mapping above implemented in Python/numpy:
        // np.float32(-1 + ((x >> 11) * 2**-53) * 2) for the draws of seed 1, and
        // min(-128 + floor(u * 256), 127) for seed 7.
        let t = random_tensor(DType::F32, &[2, 2], 1, -1.0, 1.0).unwrap();
        assert_eq!(
            t.as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![0.13312314f32, 0.49156353, 0.9420055, -0.11128157]
        );
        let t = random_tensor(DType::I8, &[4], 7, -128.0, 127.0).unwrap();
        assert_eq!(t.to_i64_vec().unwrap(), vec![-29, -124, 102, 21]);
    }

    #[test]
    fn bad_requests_are_errors() {
        assert!(random_tensor(DType::I8, &[4], 0, -1000.0, 0.0).is_err());
        assert!(random_tensor(DType::I32, &[4], 0, 0.5, 1.0).is_err());
        assert!(random_tensor(DType::F32, &[4], 0, 1.0, 0.0).is_err());
        assert!(random_tensor(DType::F32, &[1 << 20, 1 << 20], 0, 0.0, 1.0).is_err());
        assert!(random_tensor(DType::F32, &[usize::MAX, 2], 0, 0.0, 1.0).is_err());
    }
}
