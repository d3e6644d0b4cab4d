//! Ternary (BitNet b1.58) kernels: one op trait, one implementation per ISA, chosen at run time.
//!
//! This crate is being written; [`TernaryWeights`] is the canonical form every loader
//! produces and every storage format decodes to.

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
