//! Run-time selection of the AVX2+FMA code path for auto-vectorised fp32 loops.
//!
//! The crate is compiled for baseline x86-64 (SSE2). [`simd`] runs a closure inside a function
//! compiled with `avx2,fma` enabled when the CPU has them; LLVM inlines the closure (and the
//! `#[inline(always)]` helpers it calls) into that function, so the same source loop is
//! vectorised with 256-bit registers and fused multiply-adds. Kernels that want FMA write
//! `a.mul_add(b, c)`: on the AVX2 path that is one `vfmadd`; on CPUs without FMA it stays
//! correct (a libm call), only slower.

use std::sync::OnceLock;

/// True when the CPU has AVX2 and FMA.
pub fn has_avx2_fma() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

/// Run `f`, compiled for AVX2+FMA when the CPU supports it.
#[inline(always)]
pub fn simd<R, F: FnOnce() -> R>(f: F) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports the features `run_avx2` is compiled for.
        return unsafe { run_avx2(f) };
    }
    f()
}
