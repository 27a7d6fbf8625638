//! Runtime choice of instruction set for the element-wise loops (bias + activation, activation gradients,
//! the batch-1 dense layer's dot products).
//!
//! Why: the workspace builds for baseline x86-64, so the compiler vectorises these loops with 4-wide SSE2
//! and no fused multiply-add; the `gemm` crate picks its AVX-512 kernels at run time, but our own loops
//! around it did not. [`multiversion!`] compiles one loop body three times (AVX-512, AVX2 + FMA, baseline)
//! and calls the best one the CPU has. The bodies are plain Rust that the compiler vectorises (no
//! intrinsics), marked `#[inline(always)]` so that they are compiled inside each feature-enabled copy;
//! they take a `const FMA: bool` so that products can be fused ([`fmadd`]) where the CPU has FMA
//! (without FMA, `f32::mul_add` would be a libm call per element).

/// The instruction sets [`multiversion!`] chooses between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    /// Baseline x86-64 (SSE2), or another architecture.
    Base,
    /// AVX2 + FMA (x86-64-v3).
    V3,
    /// AVX-512 F/VL + AVX2 + FMA.
    V4,
}

/// The best [`Level`] of this CPU (detected once). `FACERECON_SIMD=base|v3|v4` caps it: for tests of the
/// other copies and for A/B measurements.
pub(crate) fn level() -> Level {
    static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("FACERECON_SIMD").as_deref() {
            Ok("base") => Level::Base,
            Ok("v3") => Level::V3,
            _ => Level::V4,
        };
        let detected = detect();
        // The lower of the cap and what the CPU has.
        match (cap, detected) {
            (Level::Base, _) | (_, Level::Base) => Level::Base,
            (Level::V3, _) | (_, Level::V3) => Level::V3,
            _ => Level::V4,
        }
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f") && has!("avx512vl") && has!("avx2") && has!("fma") {
        Level::V4
    } else if has!("avx2") && has!("fma") {
        Level::V3
    } else {
        Level::Base
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Base
}

/// `a * b + c`, fused (one rounding) when `FMA`.
#[inline(always)]
pub(crate) fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `multiversion!(fn name(args) -> ret = body);` defines `name`, which calls `body::<FMA>(args)` compiled
/// for the best [`level`]: `body` must be `#[inline(always)]` and generic over `const FMA: bool` only.
/// Arguments are passed through unchanged (no generics or explicit lifetimes in the signature).
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:ident) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? {
                    $body::<true>($($arg),*)
                }
                match $crate::ops::simd::level() {
                    // SAFETY: `level()` only reports instruction sets the CPU has.
                    $crate::ops::simd::Level::V4 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::ops::simd::Level::V3 => return unsafe { v3($($arg),*) },
                    $crate::ops::simd::Level::Base => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}
pub(crate) use multiversion;
