//! Run-time selection of AVX2+FMA code for auto-vectorised fp32 loops.
//!
//! The crate is compiled for baseline x86-64 (SSE2). [`multiversion!`] defines a function
//! twice from one body: once with `#[target_feature(enable = "avx2,fma")]` and once for the
//! baseline, and picks at run time. Closures written in the body (rayon tasks included)
//! inherit the target features of the copy they are in, and `#[inline(always)]` helpers are
//! inlined into it, so the same source loop becomes 256-bit vector code with fused
//! multiply-adds. Kernels that want FMA write `a.mul_add(b, c)`: one `vfmadd` on the AVX2
//! path; still correct (a libm call) on CPUs without FMA, only slower.

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

/// `multiversion! { pub fn name[generics](args) -> Ret where [bounds] { body } }`: `name`
/// compiled for AVX2+FMA and for the baseline, dispatched at run time. Generics and where
/// clauses go in brackets; arguments are plain identifiers.
macro_rules! multiversion {
    (
        $(#[$m:meta])*
        $vis:vis fn $name:ident $([$($g:tt)*])? ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)?
        $(where [$($w:tt)*])?
        $body:block
    ) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name $(<$($g)*>)? ($($arg: $ty),*) $(-> $ret)? $(where $($w)*)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2 $(<$($g)*>)? ($($arg: $ty),*) $(-> $ret)? $(where $($w)*)? $body
                if $crate::kernels::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body
        }
    };
}
pub(crate) use multiversion;
