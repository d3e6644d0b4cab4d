//! aarch64 implementations: NEON (always present on aarch64).

pub(crate) mod neon;
