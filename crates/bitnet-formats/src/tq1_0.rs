//! TQ1_0 (ggml): 256-element blocks `{ qs[48], qh[4], f16 d }` (54 bytes) packing 5 trits
//! per byte (4 in `qh`) as a base-3 fixed-point fraction.
//!
//! Each byte is `q = ceil(t * 256 / 243)` of its trits `t` read as a base-3 number (most
//! significant first); trit `n` is recovered as `((q * 3^n) mod 256) * 3 >> 8`, exactly as
//! ggml's `dequantize_row_tq1_0`. Every byte decodes to trits in `0..=2`, so only the size
//! and the scales of a TQ1_0 tensor can be invalid.

use std::mem::offset_of;

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::ggml::{QK_K, ScaleCheck, blocks, size};
use crate::{FormatError, TernaryWeights};

const TQ1: &str = "TQ1_0";

/// Bytes per TQ1_0 block.
pub const TQ1_0_BLOCK_BYTES: usize = 54;

/// One TQ1_0 block, ggml's `block_tq1_0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockTq1_0 {
    /// 5 trits per byte: elements `32n + m` in byte `m < 32`, `160 + 16n + m` in byte `32 + m`.
    pub qs: [u8; 48],
    /// 4 trits per byte: elements `240 + 4n + j` in byte `j`.
    pub qh: [u8; 4],
    /// The block scale, an f16 in little-endian byte order (bytes, so that the struct has
    /// alignment 1 and any byte slice can be viewed as blocks).
    pub d: [u8; 2],
}

const _: () = assert!(size_of::<BlockTq1_0>() == TQ1_0_BLOCK_BYTES);

/// Where each trit of a TQ1_0 block lives: `(byte index in block, trit position n,
/// element index in block)`, in ggml's order (bytes `48..52` are `qh`).
fn trit_map() -> impl Iterator<Item = (usize, u32, usize)> {
    let a = (0..5).flat_map(|n| (0..32).map(move |m| (m, n, 32 * n as usize + m)));
    let b = (0..5).flat_map(|n| (0..16).map(move |m| (32 + m, n, 160 + 16 * n as usize + m)));
    let c = (0..4).flat_map(|n| (0..4).map(move |j| (48 + j, n, 240 + 4 * n as usize + j)));
    a.chain(b).chain(c)
}

impl BlockTq1_0 {
    /// Byte `i` of the 52 trit-carrying bytes (`qs` then `qh`).
    #[inline]
    fn byte(&self, i: usize) -> u8 {
        if i < 48 { self.qs[i] } else { self.qh[i - 48] }
    }

    /// The block scale.
    pub fn d(&self) -> f16 {
        f16::from_le_bytes(self.d)
    }

    /// Writes the block's 256 values (each in `-1..=1`) into `out`.
    pub fn decode(&self, out: &mut [i8]) {
        debug_assert_eq!(out.len(), QK_K);
        for (byte, n, element) in trit_map() {
            let q = self.byte(byte).wrapping_mul(3u8.pow(n));
            out[element] = ((u16::from(q) * 3) >> 8) as i8 - 1;
        }
    }

    /// The block holding `values` (256 values in `-1..=1`, checked by the caller) with
    /// scale `d`, bytes identical to ggml's `quantize_row_tq1_0_ref` for the same trits.
    pub fn encode(values: &[i8], d: f16) -> Self {
        debug_assert_eq!(values.len(), QK_K);
        // Accumulate the base-3 integer of each byte, most significant trit first.
        let mut acc = [0u16; 52];
        for (byte, _n, element) in trit_map() {
            acc[byte] = acc[byte] * 3 + (values[element] + 1) as u16;
        }
        let mut bytes = [0u8; 52];
        for (j, (a, b)) in acc.iter().zip(&mut bytes).enumerate() {
            // qh bytes hold 4 trits: shift the first one to the most significant trit.
            let a = if j >= 48 { a * 3 } else { *a };
            // Ceiling division: the byte is a fixed-point fraction of 3^5 = 243.
            *b = (a * 256).div_ceil(243) as u8;
        }
        let mut block = Self {
            qs: [0; 48],
            qh: [0; 4],
            d: d.to_le_bytes(),
        };
        block.qs.copy_from_slice(&bytes[..48]);
        block.qh.copy_from_slice(&bytes[48..]);
        block
    }
}

/// Byte size of a TQ1_0 tensor (`cols` must be a multiple of 256).
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0` or the size overflows.
pub fn tq1_0_size(rows: usize, cols: usize) -> Result<usize, FormatError> {
    size(TQ1, rows, cols, TQ1_0_BLOCK_BYTES)
}

/// Decodes a ggml TQ1_0 tensor (`rows x cols`, `cols % 256 == 0`; see the module doc).
///
/// # Errors
/// [`FormatError`] on a wrong shape or byte count, a non-finite or differing `d`.
pub fn decode_tq1_0(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryWeights, FormatError> {
    let blocks: &[BlockTq1_0] = blocks(TQ1, bytes, rows, cols)?;
    let mut values = vec![0i8; rows * cols];
    let mut scales = ScaleCheck::new(TQ1);
    for (b, (block, out)) in blocks.iter().zip(values.chunks_exact_mut(QK_K)).enumerate() {
        block.decode(out);
        let offset = b * TQ1_0_BLOCK_BYTES + offset_of!(BlockTq1_0, d);
        scales.see(b, offset, block.d())?;
    }
    Ok(TernaryWeights {
        rows,
        cols,
        values,
        scale: scales.scale(),
    })
}

/// Encodes weights as ggml TQ1_0 with `d = scale` (rounded to f16) in every block.
///
/// # Errors
/// [`FormatError`] when `cols % 256 != 0`, `values` has the wrong length or a value is
/// not ternary.
pub fn encode_tq1_0(w: &TernaryWeights) -> Result<Vec<u8>, FormatError> {
    let size = tq1_0_size(w.rows, w.cols)?;
    w.check(TQ1)?;
    let d = f16::from_f32(w.scale);
    let mut out = Vec::with_capacity(size);
    for vals in w.values.chunks_exact(QK_K) {
        out.extend_from_slice(bytemuck::bytes_of(&BlockTq1_0::encode(vals, d)));
    }
    Ok(out)
}
