//! Ternary (BitNet b1.58) kernels: one op trait, one implementation per ISA, chosen at run time.
//!
//! - [`TernaryWeights`]: the canonical form every loader produces; [`formats`] converts the
//!   storage formats (I2_S, TQ2_0, TQ1_0) to and from it.
//! - [`TernaryOps`]: the op trait, implemented once per instruction set (`i2s/scalar`,
//!   `i2s/avx2`, `i2s/avx512vnni`, `i2s/neon`); [`detect`] picks the best once at run time,
//!   [`available`]/[`by_id`] expose the others. Every implementation gives bit-identical
//!   results to the scalar reference (exact i32 accumulation, one shared float step).
//! - [`PackedTernary`]: weights repacked once at load time into the 2-bit layout the
//!   kernels stream (0.25 byte per weight; see [`packed`]).
//! - [`Q8Matrix`]: ggml-style Q8_0 for the optional 8-bit output head ([`q8`]).
//! - [`Kernels`]: what the engine calls: the ops, a persistent thread pool splitting rows,
//!   and per-kernel call counters for receipts. No heap allocation per call.
//!
//! BitLinear in W1.58A8: activations are quantised per row ([`quantize_row_reference`]:
//! `s = 127 / max(max|x|, 1e-5)`, round half to even), then
//! `y = (values . q) / s * weight_scale` with the dot product in integers.

pub mod act_quant;
#[cfg(target_arch = "aarch64")]
mod arm;
mod dispatch;
pub mod formats;
mod kernels;
mod op;
pub mod packed;
mod pool;
pub mod q8;
mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tile;
pub mod tuning;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use act_quant::quantize_row_reference;
pub use dispatch::{available, by_id, cpu_features, detect, known_ids};
pub use formats::FormatError;
pub use kernels::Kernels;
pub use op::TernaryOps;
pub use packed::{OutRows, PackedTernary};
pub use q8::{Q8Activations, Q8Matrix};
pub use scalar::Scalar;

/// Ternary weights in canonical form: row-major `[rows][cols]` values in `{-1, 0, +1}`
/// and one per-tensor scale, so that the effective weight is `values[r * cols + c] * scale`.
///
/// Every storage format (I2_S, TQ2_0, TQ1_0, Hugging Face packed U8, unpacked ternary,
/// absmean-ternarised master weights) decodes to this, and kernels repack it at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryWeights {
    /// Output features (rows of the weight matrix; GGUF `ne[1]`).
    pub rows: usize,
    /// Input features (columns; GGUF `ne[0]`, the fastest-varying dimension).
    pub cols: usize,
    /// `rows * cols` values, each -1, 0 or +1.
    pub values: Vec<i8>,
    /// Per-tensor scale: effective weight = value * scale.
    pub scale: f32,
}
