//! What the two ggml ternary formats share: 256-element blocks that never span rows, and one
//! f16 `d` per block where BitNet has one scale per tensor.

use bytemuck::Pod;
use half::f16;

use crate::FormatError;
use crate::weights::elements;

/// Elements per ggml `QK_K` super-block (TQ1_0, TQ2_0).
pub const QK_K: usize = 256;

/// Checks `bytes` against a `rows x cols` tensor of blocks `B` and views it as those blocks.
pub(crate) fn blocks<'a, B: Pod>(
    format: &'static str,
    bytes: &'a [u8],
    rows: usize,
    cols: usize,
) -> Result<&'a [B], FormatError> {
    let expected = size(format, rows, cols, size_of::<B>())?;
    if bytes.len() != expected {
        return Err(FormatError::Size {
            format,
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    // Every block type has alignment 1 and the length is a whole number of blocks: the
    // cast cannot fail.
    Ok(bytemuck::cast_slice(bytes))
}

/// Byte size of a ggml block-quantised tensor, checking the shape.
pub(crate) fn size(
    format: &'static str,
    rows: usize,
    cols: usize,
    block_bytes: usize,
) -> Result<usize, FormatError> {
    let n = elements(format, rows, cols)?;
    if !cols.is_multiple_of(QK_K) {
        return Err(FormatError::Shape {
            format,
            rows,
            cols,
            reason: "cols must be a multiple of 256 (ggml QK_K blocks never span rows)",
        });
    }
    (n / QK_K)
        .checked_mul(block_bytes)
        .ok_or(FormatError::Overflow { format, rows, cols })
}

/// Tracks the single per-tensor scale across ggml blocks: all-zero `d` blocks are accepted
/// (their codes still decode), differing non-zero `d` are an error rather than a silent
/// choice of one of them.
pub(crate) struct ScaleCheck {
    format: &'static str,
    first: Option<(usize, f32)>,
}

impl ScaleCheck {
    pub(crate) fn new(format: &'static str) -> Self {
        Self {
            format,
            first: None,
        }
    }

    /// Sees block `block`'s `d`, stored at byte `offset` of the tensor.
    pub(crate) fn see(&mut self, block: usize, offset: usize, d: f16) -> Result<(), FormatError> {
        let d = d.to_f32();
        if d == 0.0 {
            return Ok(());
        }
        if !d.is_finite() {
            return Err(FormatError::NonFiniteScale {
                format: self.format,
                scale: d,
                offset,
            });
        }
        match self.first {
            None => self.first = Some((block, d)),
            Some((first_block, first)) if first != d => {
                return Err(FormatError::ScaleMismatch {
                    format: self.format,
                    first_block,
                    first,
                    block,
                    offset,
                    found: d,
                });
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// The per-tensor scale (0 when every block's `d` is 0).
    pub(crate) fn scale(&self) -> f32 {
        self.first.map_or(0.0, |(_, d)| d)
    }
}
