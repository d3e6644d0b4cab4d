//! I2_S (bitnet.cpp, GGUF type 36): 2-bit codes `0/1/2 = -1/0/+1` in 128-element blocks of
//! 32 bytes, running over the whole tensor (row-major, input fastest), then one f32 scale.
//!
//! Byte `k` of a block holds element `k` in bits 7:6, `32 + k` in 5:4, `64 + k` in 3:2 and
//! `96 + k` in 1:0 ([`BlockI2s`]). After the `rows * cols / 4` code bytes comes an
//! [`I2sTrailer`]: the little-endian f32 per-tensor scale, then 28 padding bytes that
//! bitnet.cpp leaves uninitialised; they are ignored.

use bytemuck::{Pod, Zeroable};

use crate::weights::elements;
use crate::{FormatError, TernaryWeights};

const I2S: &str = "I2_S";

/// Elements per I2_S block.
pub const I2S_BLOCK: usize = 128;
/// Bytes after the codes of an I2_S tensor: f32 scale + 28 padding bytes.
pub const I2S_TRAILER: usize = 32;

/// One I2_S block: 128 ternary values as 2-bit codes (`value + 1`) in 32 bytes.
///
/// The interleave (byte `k` holds elements `k`, `32 + k`, `64 + k`, `96 + k`, most
/// significant bits first) is what lets a SIMD decoder turn one 32-byte load into four
/// 32-lane code vectors with a shift and a mask each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockI2s {
    /// The code bytes.
    pub qs: [u8; 32],
}

const _: () = assert!(size_of::<BlockI2s>() == 32);
const _: () = assert!(size_of::<BlockI2s>() * 4 == I2S_BLOCK);

impl BlockI2s {
    /// Byte index and bit shift of element `i` (`< 128`).
    #[inline]
    fn slot(i: usize) -> (usize, u32) {
        (i % 32, 6 - 2 * (i / 32) as u32)
    }

    /// The 2-bit code of element `i` (`< 128`): `value + 1`, or 3 for an invalid code.
    #[inline]
    pub fn code(&self, i: usize) -> u8 {
        let (byte, shift) = Self::slot(i);
        (self.qs[byte] >> shift) & 3
    }

    /// Index (in storage order: byte, then bits from the top) of the first element whose
    /// code is 3, if any.
    pub fn first_invalid(&self) -> Option<usize> {
        // A 2-bit field holds code 3 exactly when both of its bits are set.
        let k = self.qs.iter().position(|&b| b & (b >> 1) & 0x55 != 0)?;
        (0..4).map(|j| 32 * j + k).find(|&i| self.code(i) == 3)
    }

    /// The block holding `values` (128 values in `-1..=1`, checked by the caller).
    pub fn encode(values: &[i8]) -> Self {
        debug_assert_eq!(values.len(), I2S_BLOCK);
        let mut qs = [0u8; 32];
        for (i, &v) in values.iter().enumerate() {
            let (byte, shift) = Self::slot(i);
            qs[byte] |= ((v + 1) as u8) << shift;
        }
        Self { qs }
    }
}

/// The 32 bytes after an I2_S tensor's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct I2sTrailer {
    /// The per-tensor scale, an f32 in little-endian byte order (bytes, not `f32`, so that
    /// the struct has alignment 1 and any byte slice can be viewed as one).
    pub scale: [u8; 4],
    /// Padding; bitnet.cpp leaves it uninitialised, [`encode_i2s`] writes zeros.
    pub pad: [u8; 28],
}

const _: () = assert!(size_of::<I2sTrailer>() == I2S_TRAILER);

impl I2sTrailer {
    /// The per-tensor scale.
    pub fn scale(&self) -> f32 {
        f32::from_le_bytes(self.scale)
    }
}

/// A validated I2_S tensor borrowed from its bytes: every code is in `0..=2` and the scale
/// is finite. Loaders that can use the blocks as they are (the kernels' layout equals them
/// when `cols % 128 == 0`) take this instead of decoding to a byte per weight.
#[derive(Debug, Clone, Copy)]
pub struct I2sTensor<'a> {
    /// `rows * cols / 128` blocks in storage order.
    pub blocks: &'a [BlockI2s],
    /// The per-tensor scale.
    pub scale: f32,
}

/// Byte size of an I2_S tensor of `rows x cols` elements: `rows*cols/4 + 32`.
///
/// Saturates at `usize::MAX` for absurd shapes (the decoder reports the overflow).
pub fn i2s_size(rows: usize, cols: usize) -> usize {
    rows.checked_mul(cols)
        .and_then(|n| (n / 4).checked_add(I2S_TRAILER))
        .unwrap_or(usize::MAX)
}

/// Checks an I2_S tensor and views it as blocks (see [`I2sTensor`]).
///
/// `bytes` must be exactly [`i2s_size`]`(rows, cols)` long and `rows * cols` a multiple
/// of 128 (I2_S blocks are 128 elements).
///
/// # Errors
/// [`FormatError`] when the shape or byte count is wrong, a code is 3 (the first in storage
/// order is reported), or the scale is not finite.
pub fn parse_i2s(bytes: &[u8], rows: usize, cols: usize) -> Result<I2sTensor<'_>, FormatError> {
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
    let (codes, trailer) = bytes.split_at(n / 4);
    // Alignment 1 and a length that is a whole number of blocks (checked above): the casts
    // cannot fail.
    let blocks: &[BlockI2s] = bytemuck::cast_slice(codes);
    let trailer: &I2sTrailer = bytemuck::from_bytes(trailer);
    for (b, block) in blocks.iter().enumerate() {
        if let Some(i) = block.first_invalid() {
            return Err(FormatError::InvalidCode {
                format: I2S,
                code: 3,
                offset: b * size_of::<BlockI2s>() + i % 32,
                element: b * I2S_BLOCK + i,
            });
        }
    }
    let scale = trailer.scale();
    if !scale.is_finite() {
        return Err(FormatError::NonFiniteScale {
            format: I2S,
            scale,
            offset: n / 4,
        });
    }
    Ok(I2sTensor { blocks, scale })
}

/// Decodes an I2_S tensor (codes + f32 scale trailer, see the module doc).
///
/// # Errors
/// As [`parse_i2s`].
pub fn decode_i2s(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryWeights, FormatError> {
    let t = parse_i2s(bytes, rows, cols)?;
    let mut values = vec![0i8; rows * cols];
    for (block, out) in t.blocks.iter().zip(values.chunks_exact_mut(I2S_BLOCK)) {
        for (i, v) in out.iter_mut().enumerate() {
            *v = block.code(i) as i8 - 1;
        }
    }
    Ok(TernaryWeights {
        rows,
        cols,
        values,
        scale: t.scale,
    })
}

/// Encodes weights as I2_S: codes, then the f32 LE scale and 28 zero bytes.
///
/// # Errors
/// [`FormatError`] when `rows * cols` is not a multiple of 128, `values` has the wrong
/// length, or a value is not ternary.
pub fn encode_i2s(w: &TernaryWeights) -> Result<Vec<u8>, FormatError> {
    w.check(I2S)?;
    let n = w.values.len();
    if !n.is_multiple_of(I2S_BLOCK) {
        return Err(FormatError::Shape {
            format: I2S,
            rows: w.rows,
            cols: w.cols,
            reason: "rows*cols must be a multiple of 128 (the I2_S block)",
        });
    }
    let mut out = Vec::with_capacity(n / 4 + I2S_TRAILER);
    for vals in w.values.chunks_exact(I2S_BLOCK) {
        out.extend_from_slice(bytemuck::bytes_of(&BlockI2s::encode(vals)));
    }
    let trailer = I2sTrailer {
        scale: w.scale.to_le_bytes(),
        pad: [0; 28],
    };
    out.extend_from_slice(bytemuck::bytes_of(&trailer));
    Ok(out)
}
