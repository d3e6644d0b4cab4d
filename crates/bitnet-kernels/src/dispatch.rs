//! Run-time ISA selection: detect once, keep every usable backend reachable.
//!
//! [`detect`] picks the best backend for this CPU the first time it is called and caches it
//! in a `OnceLock`; [`available`] lists every backend the CPU can run (tests compare each
//! against scalar); [`by_id`] selects one explicitly (for tuning or to reproduce a
//! receipt). Scalar is always available, so selection never fails.

use crate::backend::Backend;
use crate::scalar::Scalar;
use std::sync::OnceLock;

static SCALAR: Scalar = Scalar;

#[cfg(target_arch = "x86_64")]
fn simd_candidates() -> Vec<&'static dyn Backend> {
    let mut v: Vec<&'static dyn Backend> = Vec::new();
    if let Some(ops) = crate::x86::amx::Amx::get() {
        v.push(ops);
    }
    if let Some(ops) = crate::x86::avx512::Avx512Vnni::get() {
        v.push(ops);
    }
    if let Some(ops) = crate::x86::avx2::Avx2::get() {
        v.push(ops);
    }
    v
}

#[cfg(target_arch = "aarch64")]
fn simd_candidates() -> Vec<&'static dyn Backend> {
    vec![crate::arm::neon::Neon::get()]
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_candidates() -> Vec<&'static dyn Backend> {
    Vec::new()
}

/// Every backend usable on this CPU, best first; the last is always scalar.
pub fn available() -> Vec<&'static dyn Backend> {
    let mut v = simd_candidates();
    v.push(&SCALAR);
    v
}

/// The best backend for this CPU, detected once.
pub fn detect() -> &'static dyn Backend {
    static BEST: OnceLock<&'static dyn Backend> = OnceLock::new();
    *BEST.get_or_init(|| available()[0])
}

/// The backend with id `id` (e.g. `"i2s/avx2"`), if this CPU can run it.
pub fn by_id(id: &str) -> Option<&'static dyn Backend> {
    available().into_iter().find(|o| o.id() == id)
}

/// Ids of every backend compiled for this architecture (usable or not).
pub fn known_ids() -> &'static [&'static str] {
    #[cfg(target_arch = "x86_64")]
    {
        &["i2s/amx", "i2s/avx512vnni", "i2s/avx2", "i2s/scalar"]
    }
    #[cfg(target_arch = "aarch64")]
    {
        &["i2s/neon", "i2s/scalar"]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        &["i2s/scalar"]
    }
}

/// CPU features relevant to the kernels that this CPU has (for receipts).
pub fn cpu_features() -> Vec<&'static str> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_x86_feature_detected!($f) { v.push($f); } )* };
        }
        probe!(
            "sse4.1",
            "ssse3",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avxvnni"
        );
        // Not in `is_x86_feature_detected!` on stable Rust: CPUID, as the AMX backend reads it.
        if crate::x86::amx::cpu_has_amx_int8() {
            v.push("amx-int8");
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($f) { v.push($f); } )* };
        }
        probe!("neon", "fp16", "dotprod", "i8mm", "sve");
    }
    v
}
