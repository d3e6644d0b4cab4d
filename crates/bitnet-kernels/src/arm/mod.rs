//! aarch64 implementations: NEON (always present on aarch64). The backend is a directory:
//! `mod.rs` holds the backend type and its [`crate::Backend`] impl, and one file per op
//! family holds that family's impl.

pub(crate) mod neon;
