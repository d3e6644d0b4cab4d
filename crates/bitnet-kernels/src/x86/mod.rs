//! x86_64 implementations: AVX2 (+FMA, F16C), AVX-512 VNNI and AMX (the VNNI backend with
//! tile GEMM for prompts), all detected at run time.
//!
//! AVX2 streams the `i2s128` layout through the 256-bit micro-kernel of [`ternary`]
//! (`vpmaddubsw`+`vpmaddwd`); AVX-512 VNNI streams `i2s256` with 512-bit `vpdpbusd`
//! micro-kernels of its own (`avx512/ternary.rs`). Both run in the shared tiling of
//! [`crate::tile`]. Each
//! backend is a directory: `mod.rs` holds the backend type and its [`crate::Backend`] impl,
//! and one file per op family holds that family's impl.

pub(crate) mod amx;
pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod causal;
pub(crate) mod ternary;
