//! [`FormatError`]: every way a byte buffer can fail to be a ternary tensor of a format.

/// Why a byte buffer is not a valid tensor of a ternary storage format, or why weights
/// cannot be encoded in one.
///
/// Every variant names the format and the shape, and where it applies the byte offset and
/// element index, so that a loader can wrap it with the tensor name and the message says
/// exactly which bytes are wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FormatError {
    /// `rows * cols` (or the derived byte count) overflows `usize`.
    #[error("{format}: tensor shape {rows}x{cols} is too large (size overflows)")]
    Overflow {
        /// Storage format name, e.g. `"I2_S"`.
        format: &'static str,
        /// Rows (output features).
        rows: usize,
        /// Columns (input features).
        cols: usize,
    },
    /// The shape does not fit the format's block structure.
    #[error("{format}: tensor shape {rows}x{cols} is not supported: {reason}")]
    Shape {
        /// Storage format name.
        format: &'static str,
        /// Rows (output features).
        rows: usize,
        /// Columns (input features).
        cols: usize,
        /// What the format needs.
        reason: &'static str,
    },
    /// The buffer does not have the byte count the shape implies.
    #[error("{format}: tensor shape {rows}x{cols} needs {expected} bytes, got {actual}")]
    Size {
        /// Storage format name.
        format: &'static str,
        /// Rows (output features).
        rows: usize,
        /// Columns (input features).
        cols: usize,
        /// Bytes the shape implies.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A 2-bit code outside `0..=2` (code 3 has no meaning).
    #[error("{format}: invalid 2-bit code {code} at byte offset {offset} (element {element})")]
    InvalidCode {
        /// Storage format name.
        format: &'static str,
        /// The code found.
        code: u8,
        /// Byte offset of the code in the buffer.
        offset: usize,
        /// Flat element index (row-major) the code belongs to.
        element: usize,
    },
    /// The per-tensor scale stored in the file is NaN or infinite.
    #[error("{format}: scale {scale} at byte offset {offset} is not finite")]
    NonFiniteScale {
        /// Storage format name.
        format: &'static str,
        /// The scale read.
        scale: f32,
        /// Byte offset of the scale.
        offset: usize,
    },
    /// Two non-zero block scales differ, so the tensor has no single per-tensor scale.
    #[error(
        "{format}: the per-block scales differ: block {first_block} has d = {first}, block {block} (byte offset {offset}) has d = {found}; BitNet needs one scale per tensor"
    )]
    ScaleMismatch {
        /// Storage format name.
        format: &'static str,
        /// Index of the first block with a non-zero scale.
        first_block: usize,
        /// Its scale.
        first: f32,
        /// Index of the block whose scale differs.
        block: usize,
        /// Byte offset of that block's `d`.
        offset: usize,
        /// The differing scale.
        found: f32,
    },
    /// A weight value outside `-1..=1` (while encoding, or in [`crate::TernaryWeights`]
    /// handed in).
    #[error("{format}: value {value} at element {element} is not ternary (-1, 0 or +1)")]
    InvalidValue {
        /// Storage format name.
        format: &'static str,
        /// The value found.
        value: i8,
        /// Flat element index (row-major).
        element: usize,
    },
    /// `values.len()` is not `rows * cols`.
    #[error("{format}: weights claim {rows}x{cols} but hold {len} values")]
    ValuesLen {
        /// Storage format name.
        format: &'static str,
        /// Rows claimed.
        rows: usize,
        /// Columns claimed.
        cols: usize,
        /// Values held.
        len: usize,
    },
}
