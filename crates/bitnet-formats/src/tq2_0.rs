//! TQ2_0 (ggml): 256-element blocks `{ qs[64], f16 d }` (66 bytes) of 2-bit codes
//! `0/1/2 = -1/0/+1`. Within a block, byte `32h + m` holds element `128h + 32n + m` in bits
//! `2n..2n+1` (ggml's `quantize_row_tq2_0_ref`).

use std::mem::offset_of;

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::ggml::{QK_K, ScaleCheck, blocks, size};
use crate::{FormatError, TernaryWeights};

const TQ2: &str = "TQ2_0";

/// Bytes per TQ2_0 block.
pub const TQ2_0_BLOCK_BYTES: usize = 66;

/// One TQ2_0 block, ggml's `block_tq2_0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockTq2_0 {
    /// 256 2-bit codes (`value + 1`).
    pub qs: [u8; 64],
    /// The block scale, an f16 in little-endian byte order (bytes, so that the struct has
    /// alignment 1 and any byte slice can be viewed as blocks).
    pub d: [u8; 2],
}

const _: () = assert!(size_of::<BlockTq2_0>() == TQ2_0_BLOCK_BYTES);

impl BlockTq2_0 {
    /// Byte index and bit shift of element `i` (`< 256`).
    #[inline]
    fn slot(i: usize) -> (usize, u32) {
        let (h, within) = (i / 128, i % 128);
        (32 * h + within % 32, 2 * (within / 32) as u32)
    }

    /// The 2-bit code of element `i` (`< 256`): `value + 1`, or 3 for an invalid code.
    #[inline]
    pub fn code(&self, i: usize) -> u8 {
        let (byte, shift) = Self::slot(i);
        (self.qs[byte] >> shift) & 3
    }

    /// The block scale.
    pub fn d(&self) -> f16 {
        f16::from_le_bytes(self.d)
    }

    /// The block holding `values` (256 values in `-1..=1`, checked by the caller) with
    /// scale `d`.
    pub fn encode(values: &[i8], d: f16) -> Self {
        debug_assert_eq!(values.len(), QK_K);
        let mut qs = [0u8; 64];
        for (i, &v) in values.iter().enumerate() {
            let (byte, shift) = Self::slot(i);
            qs[byte] |= ((v + 1) as u8) << shift;
        }
        Self {
            qs,
            d: d.to_le_bytes(),
        }
    }
}

/// Byte size of a TQ2_0 tensor (`cols` must be a multiple of 256).
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0` or the size overflows.
pub fn tq2_0_size(rows: usize, cols: usize) -> Result<usize, FormatError> {
    size(TQ2, rows, cols, TQ2_0_BLOCK_BYTES)
}

/// Decodes a ggml TQ2_0 tensor (`rows x cols`, `cols % 256 == 0`).
///
/// The per-tensor scale is the blocks' `d`; all-zero `d` blocks are accepted (their codes
/// still decode), differing non-zero `d` are an error.
///
/// # Errors
/// [`FormatError`] on a wrong shape or byte count, a code 3, a non-finite or differing `d`.
pub fn decode_tq2_0(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryWeights, FormatError> {
    let blocks: &[BlockTq2_0] = blocks(TQ2, bytes, rows, cols)?;
    let mut values = vec![0i8; rows * cols];
    let mut scales = ScaleCheck::new(TQ2);
    for (b, (block, out)) in blocks.iter().zip(values.chunks_exact_mut(QK_K)).enumerate() {
        let base = b * TQ2_0_BLOCK_BYTES;
        // Storage order (byte, then bits from the bottom), so the first invalid code in the
        // buffer is the one reported.
        for byte in 0..64 {
            for n in 0..4 {
                let i = 128 * (byte / 32) + 32 * n + byte % 32;
                let code = block.code(i);
                if code == 3 {
                    return Err(FormatError::InvalidCode {
                        format: TQ2,
                        code,
                        offset: base + byte,
                        element: b * QK_K + i,
                    });
                }
                out[i] = code as i8 - 1;
            }
        }
        scales.see(b, base + offset_of!(BlockTq2_0, d), block.d())?;
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
    w.check(TQ2)?;
    let d = f16::from_f32(w.scale);
    let mut out = Vec::with_capacity(size);
    for vals in w.values.chunks_exact(QK_K) {
        out.extend_from_slice(bytemuck::bytes_of(&BlockTq2_0::encode(vals, d)));
    }
    Ok(out)
}
