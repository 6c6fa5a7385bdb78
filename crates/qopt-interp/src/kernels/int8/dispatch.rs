//! Run-time choice of the kernel family (DESIGN.md §7): AVX-512 VNNI where the CPU has it, else
//! AVX2, else the scalar oracle; `QOPT_KERNELS=scalar|avx2|avx512` overrides the choice so tests and
//! benches can exercise each path on a machine that has it. Requesting a family the CPU lacks is an
//! error, not a silent fallback: a test that asked for AVX-512 must not pass by running AVX2.

use super::error::Int8Error;

/// A family of int8 kernels. Weights are packed for one family ([`super::PackedB`] remembers which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelKind {
    /// Plain Rust, the oracle every SIMD path is tested against.
    Scalar,
    /// AVX2 (+FMA): 16-bit `vpmaddwd` GEMM (exact for every u8/i8 input, see `gemm_avx2.rs`).
    Avx2,
    /// AVX-512 F+BW+VNNI: `vpdpbusd` GEMM; its epilogues reuse the AVX2 code.
    Avx512,
}

/// The environment variable that overrides the kernel choice.
pub const KERNELS_ENV: &str = "QOPT_KERNELS";

impl KernelKind {
    /// All families, slowest first.
    pub const ALL: [KernelKind; 3] = [KernelKind::Scalar, KernelKind::Avx2, KernelKind::Avx512];

    /// The name `QOPT_KERNELS` uses.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar",
            KernelKind::Avx2 => "avx2",
            KernelKind::Avx512 => "avx512",
        }
    }

    /// Parses a `QOPT_KERNELS` value (case-insensitive).
    pub fn from_name(name: &str) -> Result<KernelKind, Int8Error> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(KernelKind::Scalar),
            "avx2" => Ok(KernelKind::Avx2),
            "avx512" => Ok(KernelKind::Avx512),
            _ => Err(Int8Error::UnknownKernel(name.to_string())),
        }
    }

    /// `Ok` if this CPU runs the family, else the missing feature.
    pub fn check_supported(self) -> Result<(), Int8Error> {
        match self.missing_feature() {
            None => Ok(()),
            Some(missing) => Err(Int8Error::Unsupported {
                requested: self.name(),
                missing,
            }),
        }
    }

    /// Whether this CPU runs the family.
    pub fn is_supported(self) -> bool {
        self.missing_feature().is_none()
    }

    #[cfg(target_arch = "x86_64")]
    fn missing_feature(self) -> Option<&'static str> {
        match self {
            KernelKind::Scalar => None,
            // FMA comes with every AVX2 CPU (Haswell, Zen); the depthwise kernel uses it.
            KernelKind::Avx2 => [
                ("avx2", is_x86_feature_detected!("avx2")),
                ("fma", is_x86_feature_detected!("fma")),
            ]
            .into_iter()
            .find(|(_, has)| !has)
            .map(|(name, _)| name),
            KernelKind::Avx512 => {
                // The VNNI path also calls the AVX2 epilogues, so it needs both.
                [
                    ("avx2", is_x86_feature_detected!("avx2")),
                    ("fma", is_x86_feature_detected!("fma")),
                    ("avx512f", is_x86_feature_detected!("avx512f")),
                    ("avx512bw", is_x86_feature_detected!("avx512bw")),
                    ("avx512vnni", is_x86_feature_detected!("avx512vnni")),
                ]
                .into_iter()
                .find(|(_, has)| !has)
                .map(|(name, _)| name)
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn missing_feature(self) -> Option<&'static str> {
        match self {
            KernelKind::Scalar => None,
            KernelKind::Avx2 => Some("avx2 (not an x86-64 CPU)"),
            KernelKind::Avx512 => Some("avx512vnni (not an x86-64 CPU)"),
        }
    }

    /// The fastest family this CPU runs, ignoring the environment.
    pub fn best_supported() -> KernelKind {
        *KernelKind::ALL
            .iter()
            .rev()
            .find(|k| k.is_supported())
            .unwrap_or(&KernelKind::Scalar)
    }

    /// The family to use: `QOPT_KERNELS` if set (an error if unknown or unsupported here), else
    /// [`KernelKind::best_supported`]. The plan calls this once and keeps the answer.
    pub fn detect() -> Result<KernelKind, Int8Error> {
        Self::resolve(std::env::var(KERNELS_ENV).ok().as_deref())
    }

    /// [`KernelKind::detect`] with the variable's value passed in (testable without touching the
    /// process environment).
    pub fn resolve(env_value: Option<&str>) -> Result<KernelKind, Int8Error> {
        match env_value {
            None | Some("") => Ok(Self::best_supported()),
            Some(name) => {
                let kind = Self::from_name(name)?;
                kind.check_supported()?;
                Ok(kind)
            }
        }
    }
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_an_error() {
        for k in KernelKind::ALL {
            assert_eq!(KernelKind::from_name(k.name()), Ok(k));
        }
        assert_eq!(KernelKind::from_name(" AVX2 "), Ok(KernelKind::Avx2));
        assert!(matches!(
            KernelKind::resolve(Some("sse9")),
            Err(Int8Error::UnknownKernel(_))
        ));
    }

    #[test]
    fn unset_env_picks_the_best_supported_and_scalar_always_works() {
        assert_eq!(KernelKind::resolve(None), Ok(KernelKind::best_supported()));
        assert_eq!(KernelKind::resolve(Some("scalar")), Ok(KernelKind::Scalar));
        assert!(KernelKind::best_supported().is_supported());
    }

    #[test]
    fn requesting_an_unsupported_family_is_an_error() {
        for k in KernelKind::ALL {
            match KernelKind::resolve(Some(k.name())) {
                Ok(got) => assert!(got == k && k.is_supported()),
                Err(e) => {
                    assert!(!k.is_supported());
                    assert!(matches!(e, Int8Error::Unsupported { .. }), "{e}");
                    eprintln!("SKIP: {k} kernels unsupported here ({e})");
                }
            }
        }
    }
}
