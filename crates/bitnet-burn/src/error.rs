//! Errors of the Burn extension and its forward pass: each variant names the op, weight
//! field or token that is wrong.

/// What went wrong in a `bitnet-burn` call.
#[derive(Debug, thiserror::Error)]
pub enum BurnError {
    /// [`bitnet_kernels::TernaryWeights::values`] does not hold `rows * cols` entries.
    #[error("ternary weights: values has {got} entries, expected rows * cols = {rows} * {cols}")]
    WeightLength {
        /// `TernaryWeights::rows`.
        rows: usize,
        /// `TernaryWeights::cols`.
        cols: usize,
        /// `values.len()`.
        got: usize,
    },
    /// A weight value is not -1, 0 or +1.
    #[error(
        "ternary weights: value {value} at index {index} (row {row}, col {col}) is not -1, 0 or +1"
    )]
    NotTernary {
        /// The offending value.
        value: i8,
        /// Its index in `values`.
        index: usize,
        /// Its row.
        row: usize,
        /// Its column.
        col: usize,
    },
    /// The per-tensor weight scale is NaN or infinite.
    #[error("ternary weights: scale {0} is not finite")]
    NonFiniteScale(f32),
    /// The input is not a 2-D `[n, in_features]` tensor.
    #[error("{op}: input must be 2-D [n, in_features], got shape {shape:?}")]
    InputRank {
        /// The op that was called.
        op: &'static str,
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// The input's feature dimension does not match the weight's columns.
    #[error(
        "{op}: input has {got} features per row but the weight has {expected} columns (input shape {shape:?})"
    )]
    InputFeatures {
        /// The op that was called.
        op: &'static str,
        /// Weight columns (in_features).
        expected: usize,
        /// Input features.
        got: usize,
        /// The input's shape.
        shape: Vec<usize>,
    },
    /// `n * out_features` does not fit in `usize`.
    #[error("{op}: output of {n} x {rows} elements overflows usize")]
    OutputTooLarge {
        /// The op that was called.
        op: &'static str,
        /// Input rows.
        n: usize,
        /// Output features.
        rows: usize,
    },
    /// Burn could not read the input tensor's data as f32.
    #[error("{op}: cannot read the input tensor as f32: {reason}")]
    InputData {
        /// The op that was called.
        op: &'static str,
        /// Burn's error, formatted.
        reason: String,
    },
    /// Packed ternary weights met kernels that stream another layout.
    #[error(
        "ternary weights: packed layout {layout} is not the layout {expected} that kernels {kernels} stream"
    )]
    LayoutMismatch {
        /// The weights' layout id.
        layout: &'static str,
        /// The kernels' id.
        kernels: &'static str,
        /// The layout those kernels stream.
        expected: &'static str,
    },
    /// The model's head is rescored (`--head-type q4_k_rescored`), which the Burn forward
    /// pass does not model.
    #[error(
        "the model's head is rescored (head type q4_k_rescored: Q4_K logits, the best 32 \
         recomputed from the float rows), which the Burn forward pass does not model; \
         cross-check its Q4_K head with head type q4_k"
    )]
    RescoredHead,
    /// A dense (head) matrix does not hold `rows * cols` values.
    #[error("dense {dtype} weights: {got} values, expected rows * cols = {rows} * {cols}")]
    DenseLength {
        /// The storage type (`F32`, `F16`).
        dtype: &'static str,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Values held.
        got: usize,
    },
    /// Burn could not read an output tensor's data as f32.
    #[error("{op}: cannot read the output tensor as f32: {reason}")]
    OutputData {
        /// The op or pass that was run.
        op: &'static str,
        /// Burn's error, formatted.
        reason: String,
    },
    /// The forward pass was given no tokens.
    #[error("burn forward: no tokens to run")]
    EmptyInput,
    /// A token id is outside the vocabulary.
    #[error(
        "burn forward: token id {id} at position {position} is outside the vocabulary of {vocab}"
    )]
    InvalidToken {
        /// The token id.
        id: u32,
        /// Its position in the sequence.
        position: usize,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The sequence is longer than the model's context.
    #[error("burn forward: {tokens} tokens exceed the model's context of {ctx}")]
    ContextOverflow {
        /// Tokens given.
        tokens: usize,
        /// The model's context length.
        ctx: usize,
    },
}
