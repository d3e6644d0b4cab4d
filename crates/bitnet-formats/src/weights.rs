//! [`TernaryWeights`], the canonical form every storage format decodes to.

use crate::FormatError;

/// Ternary weights in canonical form: row-major `[rows][cols]` values in `{-1, 0, +1}`
/// and one per-tensor scale, so that the effective weight is `values[r * cols + c] * scale`.
///
/// Every storage format (I2_S, TQ2_0, TQ1_0, Hugging Face packed U8, unpacked ternary,
/// absmean-ternarised master weights) decodes to this, and kernels repack it at load time.
/// One byte per weight is wasteful, but it is the form every producer and consumer agrees
/// on without knowing each other's layouts; nothing streams it at inference time.
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

impl TernaryWeights {
    /// Checks the invariants every encoder relies on: `values.len() == rows * cols` and every
    /// value in `-1..=1`. `format` names the format being encoded in the error.
    ///
    /// # Errors
    /// [`FormatError::Overflow`], [`FormatError::ValuesLen`] or [`FormatError::InvalidValue`]
    /// (the first offending element).
    pub fn check(&self, format: &'static str) -> Result<(), FormatError> {
        let n = elements(format, self.rows, self.cols)?;
        if self.values.len() != n {
            return Err(FormatError::ValuesLen {
                format,
                rows: self.rows,
                cols: self.cols,
                len: self.values.len(),
            });
        }
        if let Some((element, &value)) = self
            .values
            .iter()
            .enumerate()
            .find(|(_, v)| !(-1..=1).contains(*v))
        {
            return Err(FormatError::InvalidValue {
                format,
                value,
                element,
            });
        }
        Ok(())
    }
}

/// `rows * cols`, or the overflow error naming `format`.
pub(crate) fn elements(
    format: &'static str,
    rows: usize,
    cols: usize,
) -> Result<usize, FormatError> {
    rows.checked_mul(cols)
        .ok_or(FormatError::Overflow { format, rows, cols })
}
