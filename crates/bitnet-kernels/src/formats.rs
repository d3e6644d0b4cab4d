//! Storage formats of ternary tensors <-> [`TernaryWeights`].
//!
//! Three on-disk layouts matter for BitNet b1.58 checkpoints in GGUF files:
//!
//! - **I2_S** (bitnet.cpp, GGUF type 36): 2-bit codes `0/1/2 = -1/0/+1` in 128-element
//!   blocks of 32 bytes; byte `k` of block `b` holds element `128b+k` in bits 7:6, `+32` in
//!   5:4, `+64` in 3:2 and `+96` in 1:0. The blocks run over the whole tensor (row-major,
//!   input fastest). After `rows*cols/4` code bytes comes one little-endian f32 per-tensor
//!   scale, then 28 padding bytes that bitnet.cpp leaves uninitialised: they are ignored.
//! - **TQ2_0** (ggml): 256-element blocks `{ qs[64], f16 d }` (66 bytes); within a block,
//!   byte `32h + m` holds element `128h + 32n + m` in bits `2n..2n+1`, code `0/1/2 = -1/0/+1`.
//! - **TQ1_0** (ggml): 256-element blocks `{ qs[48], qh[4], f16 d }` (54 bytes) packing
//!   5 trits per byte (4 in `qh`) as a base-3 fixed-point fraction (see [`decode_tq1_0`]).
//!
//! The ggml formats carry a scale per block, but BitNet tensors have one scale per tensor:
//! decoding checks that every non-zero block scale is the same and errors otherwise,
//! rather than silently using one of them.
//!
//! Decoders never panic and never allocate from an unchecked size: the byte count is
//! checked against `rows`/`cols` (with overflow checks) before anything else.

use crate::TernaryWeights;
use half::f16;

/// Why a byte buffer is not a valid tensor of a ternary storage format, or why weights
/// cannot be encoded in one.
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
    /// A weight value outside `-1..=1` (while encoding, or in [`TernaryWeights`] handed in).
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

const I2S: &str = "I2_S";
const TQ2: &str = "TQ2_0";
const TQ1: &str = "TQ1_0";

/// Elements per I2_S block.
pub const I2S_BLOCK: usize = 128;
/// Bytes after the codes of an I2_S tensor: f32 scale + 28 padding bytes.
pub const I2S_TRAILER: usize = 32;
/// Elements per ggml `QK_K` super-block (TQ1_0, TQ2_0).
pub const QK_K: usize = 256;
/// Bytes per TQ2_0 block.
pub const TQ2_0_BLOCK_BYTES: usize = 66;
/// Bytes per TQ1_0 block.
pub const TQ1_0_BLOCK_BYTES: usize = 54;

fn elements(format: &'static str, rows: usize, cols: usize) -> Result<usize, FormatError> {
    rows.checked_mul(cols)
        .ok_or(FormatError::Overflow { format, rows, cols })
}

fn check_values(format: &'static str, w: &TernaryWeights) -> Result<(), FormatError> {
    let n = elements(format, w.rows, w.cols)?;
    if w.values.len() != n {
        return Err(FormatError::ValuesLen {
            format,
            rows: w.rows,
            cols: w.cols,
            len: w.values.len(),
        });
    }
    if let Some((element, &value)) = w
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

/// Byte size of an I2_S tensor of `rows x cols` elements: `rows*cols/4 + 32`.
///
/// Saturates at `usize::MAX` for absurd shapes (the decoder reports the overflow).
pub fn i2s_size(rows: usize, cols: usize) -> usize {
    rows.checked_mul(cols)
        .and_then(|n| (n / 4).checked_add(I2S_TRAILER))
        .unwrap_or(usize::MAX)
}

/// Decodes an I2_S tensor (codes + f32 scale trailer, see the module doc).
///
/// `bytes` must be exactly [`i2s_size`]`(rows, cols)` long and `rows * cols` a multiple
/// of 128 (I2_S blocks are 128 elements).
///
/// # Errors
/// [`FormatError`] when the shape or byte count is wrong, a code is 3, or the scale is not
/// finite.
pub fn decode_i2s(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryWeights, FormatError> {
    let n = elements(I2S, rows, cols)?;
    if !n.is_multiple_of(I2S_BLOCK) {
        return Err(FormatError::Shape {
            format: I2S,
            rows,
            cols,
            reason: "rows*cols must be a multiple of 128 (the I2_S block)",
        });
    }
    let expected = n / 4 + I2S_TRAILER;
    if bytes.len() != expected {
        return Err(FormatError::Size {
            format: I2S,
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    let codes = &bytes[..n / 4];
    let mut values = vec![0i8; n];
    for (b, (block, out)) in codes
        .chunks_exact(32)
        .zip(values.chunks_exact_mut(I2S_BLOCK))
        .enumerate()
    {
        for (k, &byte) in block.iter().enumerate() {
            for j in 0..4 {
                let code = (byte >> (6 - 2 * j)) & 3;
                if code == 3 {
                    return Err(FormatError::InvalidCode {
                        format: I2S,
                        code,
                        offset: b * 32 + k,
                        element: b * I2S_BLOCK + 32 * j + k,
                    });
                }
                out[32 * j + k] = code as i8 - 1;
            }
        }
    }
    let offset = n / 4;
    let scale = f32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ]);
    if !scale.is_finite() {
        return Err(FormatError::NonFiniteScale {
            format: I2S,
            scale,
            offset,
        });
    }
    Ok(TernaryWeights {
        rows,
        cols,
        values,
        scale,
    })
}

/// I2_S bytes straight into the kernels' layout, when `cols % 128 == 0`.
///
/// Rows then start on I2_S block boundaries and the code bytes are byte-identical to layout
/// `i2s128` (see [`crate::PackedTernary`]), so loading is one copy plus a scan for the invalid
/// code 3, instead of decoding to a byte per weight and packing again: for a 2B4T-sized model
/// that is the difference between a load of seconds and one of a fraction of a second.
/// Returns `Ok(None)` when `cols % 128 != 0` (use [`decode_i2s`] and pack).
///
/// # Errors
/// As [`decode_i2s`]: wrong size, invalid code 3, non-finite scale.
pub fn i2s_to_packed(
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Option<crate::PackedTernary>, FormatError> {
    if !cols.is_multiple_of(I2S_BLOCK) {
        return Ok(None);
    }
    let n = elements(I2S, rows, cols)?;
    let expected = n / 4 + I2S_TRAILER;
    if bytes.len() != expected {
        return Err(FormatError::Size {
            format: I2S,
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    let codes = &bytes[..n / 4];
    // A 2-bit field holds code 3 exactly when both of its bits are set.
    if let Some(offset) = codes.iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
        let byte = codes[offset];
        let j = (0..4).find(|j| (byte >> (6 - 2 * j)) & 3 == 3).unwrap_or(0);
        let (b, k) = (offset / 32, offset % 32);
        return Err(FormatError::InvalidCode {
            format: I2S,
            code: 3,
            offset,
            element: b * I2S_BLOCK + 32 * j + k,
        });
    }
    let offset = n / 4;
    let scale = f32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ]);
    if !scale.is_finite() {
        return Err(FormatError::NonFiniteScale {
            format: I2S,
            scale,
            offset,
        });
    }
    Ok(Some(crate::PackedTernary::from_unpadded_i2s128(
        codes.to_vec(),
        rows,
        cols,
        scale,
    )))
}

/// Encodes weights as I2_S: codes, then the f32 LE scale and 28 zero bytes.
///
/// # Errors
/// [`FormatError`] when `rows * cols` is not a multiple of 128, `values` has the wrong
/// length, or a value is not ternary.
pub fn encode_i2s(w: &TernaryWeights) -> Result<Vec<u8>, FormatError> {
    check_values(I2S, w)?;
    let n = w.values.len();
    if !n.is_multiple_of(I2S_BLOCK) {
        return Err(FormatError::Shape {
            format: I2S,
            rows: w.rows,
            cols: w.cols,
            reason: "rows*cols must be a multiple of 128 (the I2_S block)",
        });
    }
    let mut out = vec![0u8; n / 4 + I2S_TRAILER];
    for (block, vals) in out[..n / 4]
        .chunks_exact_mut(32)
        .zip(w.values.chunks_exact(I2S_BLOCK))
    {
        for (k, byte) in block.iter_mut().enumerate() {
            let mut b = 0u8;
            for j in 0..4 {
                b |= ((vals[32 * j + k] + 1) as u8) << (6 - 2 * j);
            }
            *byte = b;
        }
    }
    out[n / 4..n / 4 + 4].copy_from_slice(&w.scale.to_le_bytes());
    Ok(out)
}

/// Byte size of a ggml block-quantised tensor, checking the shape.
fn ggml_size(
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

/// Byte size of a TQ2_0 tensor (`cols` must be a multiple of 256).
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0` or the size overflows.
pub fn tq2_0_size(rows: usize, cols: usize) -> Result<usize, FormatError> {
    ggml_size(TQ2, rows, cols, TQ2_0_BLOCK_BYTES)
}

/// Byte size of a TQ1_0 tensor (`cols` must be a multiple of 256).
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0` or the size overflows.
pub fn tq1_0_size(rows: usize, cols: usize) -> Result<usize, FormatError> {
    ggml_size(TQ1, rows, cols, TQ1_0_BLOCK_BYTES)
}

/// Tracks the single per-tensor scale across ggml blocks.
struct ScaleCheck {
    format: &'static str,
    first: Option<(usize, f32)>,
}

impl ScaleCheck {
    fn see(&mut self, block: usize, offset: usize, bits: [u8; 2]) -> Result<(), FormatError> {
        let d = f16::from_le_bytes(bits).to_f32();
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

    fn scale(&self) -> f32 {
        self.first.map_or(0.0, |(_, d)| d)
    }
}

/// Decodes a ggml TQ2_0 tensor (`rows x cols`, `cols % 256 == 0`).
///
/// The per-tensor scale is the blocks' `d`; all-zero `d` blocks are accepted (their codes
/// still decode), differing non-zero `d` are an error.
///
/// # Errors
/// [`FormatError`] on a wrong shape or byte count, a code 3, a non-finite or differing `d`.
pub fn decode_tq2_0(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryWeights, FormatError> {
    let expected = tq2_0_size(rows, cols)?;
    if bytes.len() != expected {
        return Err(FormatError::Size {
            format: TQ2,
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    let mut values = vec![0i8; rows * cols];
    let mut scales = ScaleCheck {
        format: TQ2,
        first: None,
    };
    for (i, (block, out)) in bytes
        .chunks_exact(TQ2_0_BLOCK_BYTES)
        .zip(values.chunks_exact_mut(QK_K))
        .enumerate()
    {
        let base = i * TQ2_0_BLOCK_BYTES;
        for h in 0..2 {
            for m in 0..32 {
                let byte = block[32 * h + m];
                for n in 0..4 {
                    let code = (byte >> (2 * n)) & 3;
                    let element = 128 * h + 32 * n + m;
                    if code == 3 {
                        return Err(FormatError::InvalidCode {
                            format: TQ2,
                            code,
                            offset: base + 32 * h + m,
                            element: i * QK_K + element,
                        });
                    }
                    out[element] = code as i8 - 1;
                }
            }
        }
        scales.see(i, base + 64, [block[64], block[65]])?;
    }
    Ok(TernaryWeights {
        rows,
        cols,
        values,
        scale: scales.scale(),
    })
}

/// Encodes weights as ggml TQ2_0 with `d = scale` (rounded to f16) in every block.
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0`, `values` has the wrong length or a value is
/// not ternary.
pub fn encode_tq2_0(w: &TernaryWeights) -> Result<Vec<u8>, FormatError> {
    let size = tq2_0_size(w.rows, w.cols)?;
    check_values(TQ2, w)?;
    let d = f16::from_f32(w.scale).to_le_bytes();
    let mut out = vec![0u8; size];
    for (block, vals) in out
        .chunks_exact_mut(TQ2_0_BLOCK_BYTES)
        .zip(w.values.chunks_exact(QK_K))
    {
        for h in 0..2 {
            for m in 0..32 {
                let mut byte = 0u8;
                for n in 0..4 {
                    byte |= ((vals[128 * h + 32 * n + m] + 1) as u8) << (2 * n);
                }
                block[32 * h + m] = byte;
            }
        }
        block[64..66].copy_from_slice(&d);
    }
    Ok(out)
}

/// Where each trit of a TQ1_0 block lives: `(byte index in block, trit position n,
/// element index in block)`, in ggml's order. Bytes `0..32` carry 5 trits for elements
/// `32n + m`; bytes `32..48` carry 5 trits for `160 + 16n + m`; `qh` bytes `48..52` carry 4
/// trits for `240 + 4n + j`.
fn tq1_0_map() -> impl Iterator<Item = (usize, u32, usize)> {
    let a = (0..5).flat_map(|n| (0..32).map(move |m| (m, n, 32 * n as usize + m)));
    let b = (0..5).flat_map(|n| (0..16).map(move |m| (32 + m, n, 160 + 16 * n as usize + m)));
    let c = (0..4).flat_map(|n| (0..4).map(move |j| (48 + j, n, 240 + 4 * n as usize + j)));
    a.chain(b).chain(c)
}

/// Decodes a ggml TQ1_0 tensor (`rows x cols`, `cols % 256 == 0`).
///
/// Each byte is a base-3 fixed-point fraction `q = ceil(t * 256 / 243)` of its trits `t`
/// (most significant first); trit `n` is recovered as `((q * 3^n) mod 256) * 3 >> 8`, exactly
/// as ggml's `dequantize_row_tq1_0`. Every byte decodes to a trit in `0..=2`, so only the
/// size and the scales can be invalid.
///
/// # Errors
/// [`FormatError`] on a wrong shape or byte count, a non-finite or differing `d`.
pub fn decode_tq1_0(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryWeights, FormatError> {
    let expected = tq1_0_size(rows, cols)?;
    if bytes.len() != expected {
        return Err(FormatError::Size {
            format: TQ1,
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    let mut values = vec![0i8; rows * cols];
    let mut scales = ScaleCheck {
        format: TQ1,
        first: None,
    };
    for (i, (block, out)) in bytes
        .chunks_exact(TQ1_0_BLOCK_BYTES)
        .zip(values.chunks_exact_mut(QK_K))
        .enumerate()
    {
        for (byte, n, element) in tq1_0_map() {
            let q = block[byte].wrapping_mul(3u8.pow(n));
            let trit = ((u16::from(q) * 3) >> 8) as i8;
            out[element] = trit - 1;
        }
        scales.see(i, i * TQ1_0_BLOCK_BYTES + 52, [block[52], block[53]])?;
    }
    Ok(TernaryWeights {
        rows,
        cols,
        values,
        scale: scales.scale(),
    })
}

/// Encodes weights as ggml TQ1_0 with `d = scale` (rounded to f16) in every block, bytes
/// identical to ggml's `quantize_row_tq1_0_ref` for the same trits.
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0`, `values` has the wrong length or a value is
/// not ternary.
pub fn encode_tq1_0(w: &TernaryWeights) -> Result<Vec<u8>, FormatError> {
    let size = tq1_0_size(w.rows, w.cols)?;
    check_values(TQ1, w)?;
    let d = f16::from_f32(w.scale).to_le_bytes();
    let mut out = vec![0u8; size];
    for (block, vals) in out
        .chunks_exact_mut(TQ1_0_BLOCK_BYTES)
        .zip(w.values.chunks_exact(QK_K))
    {
        // Accumulate the base-3 integer of each byte, most significant trit first.
        let mut acc = [0u16; 52];
        for (byte, _n, element) in tq1_0_map() {
            acc[byte] = acc[byte] * 3 + (vals[element] + 1) as u16;
        }
        for (j, a) in acc.iter().enumerate() {
            // qh bytes hold 4 trits: shift the first one to the most significant trit.
            let a = if j >= 48 { a * 3 } else { *a };
            // Ceiling division: the byte is a fixed-point fraction of 3^5 = 243.
            block[j] = (a * 256).div_ceil(243) as u8;
        }
        block[52..54].copy_from_slice(&d);
    }
    Ok(out)
}
