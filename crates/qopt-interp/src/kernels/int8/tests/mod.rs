//! Cross-kernel tests: every SIMD path against the scalar oracle (bit-exact), and the scalar oracle
//! against independent references (i64 accumulation + the documented f32 formula, and exact f64
//! math as in the ONNX QuantizeLinear spec). SIMD families this CPU lacks are skipped with a
//! visible "SKIP:" line; the VNNI family's packing, row preparation, zero-point corrections and
//! driver still run here through `VnniEmulated` (only its 30-line microkernel needs AVX-512).

mod conv;
mod elementwise;
mod gemm;

use super::KernelKind;

/// xorshift64*: a deterministic generator so failures reproduce without a seed file.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi].
    pub(crate) fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next_u64() % ((hi - lo + 1) as u64)) as i32
    }
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// How test data is drawn: uniform over the type, or only its two extremes (which saturate a
/// plain `vpmaddubsw` chain: 255·(−128) + 255·(−128) < −32768).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Values {
    Uniform,
    Extremes,
}

pub(crate) fn draw(rng: &mut Rng, lo: i32, hi: i32, values: Values) -> i32 {
    match values {
        Values::Uniform => rng.range(lo, hi),
        Values::Extremes => {
            if rng.next_u64() & 1 == 0 {
                lo
            } else {
                hi
            }
        }
    }
}

/// The SIMD families this CPU runs. For the others a SKIP line is printed (once per family and
/// process, not once per case: `cargo test -- --nocapture` shows it).
pub(crate) fn simd_kinds(test: &str) -> Vec<KernelKind> {
    static REPORTED: std::sync::Mutex<Vec<KernelKind>> = std::sync::Mutex::new(Vec::new());
    let mut kinds = Vec::new();
    for k in [KernelKind::Avx2, KernelKind::Avx512] {
        match k.check_supported() {
            Ok(()) => kinds.push(k),
            Err(e) => {
                let mut reported = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
                if !reported.contains(&k) {
                    reported.push(k);
                    eprintln!(
                        "SKIP: {k} kernel tests not run on this CPU (first seen in {test}): {e}; \
                         its packing, corrections and driver still run with emulated vpdpbusd"
                    );
                }
            }
        }
    }
    kinds
}
