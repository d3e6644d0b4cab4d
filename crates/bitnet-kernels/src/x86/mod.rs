//! x86_64 implementations: AVX2 (+FMA, F16C) and AVX-512 VNNI, both detected at run time.
//!
//! Both stream the `i2s128` layout with the same loop structure ([`ternary`]); they differ
//! only in the integer dot-product step (`vpmaddubsw`+`vpmaddwd` vs. `vpdpbusd`). Each
//! backend is a directory: `mod.rs` holds the backend type and its [`crate::Backend`] impl,
//! and one file per op family holds that family's impl.

pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod ternary;
