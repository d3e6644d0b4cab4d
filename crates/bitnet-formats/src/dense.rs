//! ggml's dense block formats that a BitNet GGUF's token embedding and output head come in:
//! Q8_0, Q4_K and Q6_K (bitnet.cpp's and ik_llama.cpp's recommended head is Q6_K). Blocks are
//! decoded to f32 exactly as ggml's reference `dequantize_row_*` and gguf-py's
//! `gguf.quants` compute them: the same products in the same order, so every value is bit for
//! bit theirs (`tests/dense_ggml.rs` checks against gguf-py's output).
//!
//! The kernels (`bitnet-kernels`) run these blocks as stored (Q8_0 re-laid out, Q6_K and
//! Q4_K as they are); embedding lookups decode rows through [`decode_row`].

use bytemuck::{Pod, Zeroable};
use half::f16;

use crate::FormatError;
use crate::ggml::QK_K;

/// Values per Q8_0 block.
pub const Q8_0_BLOCK: usize = 32;

/// One Q8_0 block, ggml's `block_q8_0`: `{ f16 d; int8 qs[32] }`, value `i` = `d * qs[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ8_0 {
    /// The scale, an f16 in little-endian byte order.
    pub d: [u8; 2],
    /// The quants.
    pub qs: [i8; 32],
}

/// One Q4_K super-block, ggml's `block_q4_K` (144 bytes): eight sub-blocks of 32 4-bit
/// quants, each with a 6-bit scale and a 6-bit min; value = `d * sc * q - dmin * m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ4K {
    /// Super-block scale of the scales (f16, little-endian).
    pub d: [u8; 2],
    /// Super-block scale of the mins (f16, little-endian).
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit mins, packed in 12 bytes.
    pub scales: [u8; 12],
    /// 256 4-bit quants: byte `32j + l` holds value `64j + l` (low nibble) and
    /// `64j + 32 + l` (high nibble).
    pub qs: [u8; 128],
}

/// One Q6_K super-block, ggml's `block_q6_K` (210 bytes): sixteen sub-blocks of 16 6-bit
/// quants with an 8-bit scale each; value = `d * scale * (q - 32)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct BlockQ6K {
    /// Low 4 bits of the quants.
    pub ql: [u8; 128],
    /// High 2 bits of the quants.
    pub qh: [u8; 64],
    /// Sub-block scales.
    pub scales: [i8; 16],
    /// Super-block scale (f16, little-endian).
    pub d: [u8; 2],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// The dense block types [`decode_row`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseBlocks {
    /// [`BlockQ8_0`].
    Q8_0,
    /// [`BlockQ4K`].
    Q4K,
    /// [`BlockQ6K`].
    Q6K,
}

impl DenseBlocks {
    /// ggml's name of the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Q8_0 => "Q8_0",
            Self::Q4K => "Q4_K",
            Self::Q6K => "Q6_K",
        }
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        match self {
            Self::Q8_0 => Q8_0_BLOCK,
            Self::Q4K | Self::Q6K => QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            Self::Q8_0 => size_of::<BlockQ8_0>(),
            Self::Q4K => size_of::<BlockQ4K>(),
            Self::Q6K => size_of::<BlockQ6K>(),
        }
    }

    /// Bytes of one row of `cols` values.
    ///
    /// # Errors
    /// [`FormatError::Shape`] unless `cols` is a positive multiple of the block size (ggml's
    /// blocks never span rows).
    pub fn row_bytes(self, rows: usize, cols: usize) -> Result<usize, FormatError> {
        if cols == 0 || !cols.is_multiple_of(self.block_values()) {
            return Err(FormatError::Shape {
                format: self.name(),
                rows,
                cols,
                reason: "columns must be a positive multiple of the block size",
            });
        }
        Ok(cols / self.block_values() * self.block_bytes())
    }
}

/// Checks the size of a `rows x cols` tensor of `kind` blocks and that every block's f16
/// scales (`d`, and `dmin` for Q4_K) are finite: then every value decodes finite
/// (`|d * scale * q|` stays far inside f32's range).
///
/// # Errors
/// [`FormatError::Shape`], [`FormatError::Overflow`] or [`FormatError::Size`] for the size,
/// [`FormatError::NonFiniteScale`] naming the first bad scale's byte offset.
pub fn check_blocks(
    kind: DenseBlocks,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<(), FormatError> {
    let expected = kind
        .row_bytes(rows, cols)?
        .checked_mul(rows)
        .ok_or(FormatError::Overflow {
            format: kind.name(),
            rows,
            cols,
        })?;
    if bytes.len() != expected {
        return Err(FormatError::Size {
            format: kind.name(),
            rows,
            cols,
            expected,
            actual: bytes.len(),
        });
    }
    let scale_offsets: &[usize] = match kind {
        DenseBlocks::Q8_0 => &[0],
        DenseBlocks::Q4K => &[0, 2],
        DenseBlocks::Q6K => &[208],
    };
    for (b, block) in bytes.chunks_exact(kind.block_bytes()).enumerate() {
        for &off in scale_offsets {
            let scale = f16::from_le_bytes([block[off], block[off + 1]]).to_f32();
            if !scale.is_finite() {
                return Err(FormatError::NonFiniteScale {
                    format: kind.name(),
                    scale,
                    offset: b * kind.block_bytes() + off,
                });
            }
        }
    }
    Ok(())
}

/// Decodes one row (`out.len()` values, a whole number of blocks) from its bytes.
///
/// # Panics
/// If `row` is not `out.len() / block_values` blocks long (the caller sliced it with
/// [`DenseBlocks::row_bytes`]).
pub fn decode_row(kind: DenseBlocks, row: &[u8], out: &mut [f32]) {
    assert_eq!(
        row.len(),
        out.len() / kind.block_values() * kind.block_bytes(),
        "{} row of {} values",
        kind.name(),
        out.len()
    );
    match kind {
        DenseBlocks::Q8_0 => {
            let blocks: &[BlockQ8_0] = bytemuck::cast_slice(row);
            for (b, y) in blocks.iter().zip(out.chunks_exact_mut(Q8_0_BLOCK)) {
                decode_q8_0(b, y);
            }
        }
        DenseBlocks::Q4K => {
            let blocks: &[BlockQ4K] = bytemuck::cast_slice(row);
            for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
                decode_q4_k(b, y);
            }
        }
        DenseBlocks::Q6K => {
            let blocks: &[BlockQ6K] = bytemuck::cast_slice(row);
            for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
                decode_q6_k(b, y);
            }
        }
    }
}

/// ggml's `dequantize_row_q8_0` for one block: `y[i] = q[i] * d`.
pub fn decode_q8_0(b: &BlockQ8_0, y: &mut [f32]) {
    let d = f16::from_le_bytes(b.d).to_f32();
    for (y, &q) in y.iter_mut().zip(&b.qs) {
        *y = f32::from(q) * d;
    }
}

/// The 6-bit scale and min of Q4_K sub-block `j` (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// ggml's `dequantize_row_q4_K` for one block: `(d * sc) * q - (dmin * m)`, two roundings
/// (as gguf-py computes it, and ggml's C where the compiler does not contract to an FMA).
pub fn decode_q4_k(b: &BlockQ4K, y: &mut [f32]) {
    let d = f16::from_le_bytes(b.d).to_f32();
    let min = f16::from_le_bytes(b.dmin).to_f32();
    for (j, (qs, y)) in
        b.qs.chunks_exact(32)
            .zip(y.chunks_exact_mut(64))
            .enumerate()
    {
        let (sc1, m1) = scale_min_k4(2 * j, &b.scales);
        let (sc2, m2) = scale_min_k4(2 * j + 1, &b.scales);
        let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
        let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
        let (lo, hi) = y.split_at_mut(32);
        for ((&q, lo), hi) in qs.iter().zip(lo).zip(hi) {
            *lo = d1 * f32::from(q & 0xF) - m1;
            *hi = d2 * f32::from(q >> 4) - m2;
        }
    }
}

/// ggml's `dequantize_row_q6_K` for one block: `(d * scale) * (q - 32)`.
pub fn decode_q6_k(b: &BlockQ6K, y: &mut [f32]) {
    let d = f16::from_le_bytes(b.d).to_f32();
    // Two halves of 128 values, each from 64 `ql` bytes, 32 `qh` bytes and 8 scales.
    for (h, y) in y.chunks_exact_mut(128).enumerate() {
        let ql = &b.ql[64 * h..64 * h + 64];
        let qh = &b.qh[32 * h..32 * h + 32];
        let sc = &b.scales[8 * h..8 * h + 8];
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0xF) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &q) in q.iter().enumerate() {
                let q = i32::from(q) - 32;
                y[l + 32 * k] = d * f32::from(sc[is + 2 * k]) * q as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q6_block(d: f32, scales: [i8; 16], q: impl Fn(usize) -> u8) -> BlockQ6K {
        // Inverse of decode_q6_k's layout, written independently of it: value index ->
        // (half, position within the half) -> (ql byte, nibble, qh byte, bit pair).
        let mut b = BlockQ6K::zeroed();
        b.d = f16::from_f32(d).to_le_bytes();
        b.scales = scales;
        for i in 0..QK_K {
            let (h, w) = (i / 128, i % 128);
            let (k, l) = (w / 32, w % 32);
            let v = q(i) & 63;
            let ql_i = 64 * h + l + if k % 2 == 1 { 32 } else { 0 };
            let shift = if k >= 2 { 4 } else { 0 };
            b.ql[ql_i] |= (v & 0xF) << shift;
            b.qh[32 * h + l] |= (v >> 4) << (2 * k);
        }
        b
    }

    #[test]
    fn q6_k_values_are_scale_times_centred_quant() {
        let scales: [i8; 16] = std::array::from_fn(|j| j as i8 - 8);
        let b = q6_block(0.5, scales, |i| (i * 7 % 64) as u8);
        let mut y = [0f32; QK_K];
        decode_q6_k(&b, &mut y);
        for (i, &v) in y.iter().enumerate() {
            let q = (i * 7 % 64) as f32 - 32.0;
            assert_eq!(v, 0.5 * f32::from(scales[i / 16]) * q, "value {i}");
        }
    }

    #[test]
    fn q4_k_sub_block_scales_and_mins_unpack_as_ggml() {
        // Scales 1..8 and mins 10..17, packed as ggml's make_qkx / quantize_row_q4_K do.
        let sc: [u8; 8] = std::array::from_fn(|j| j as u8 + 1 + 40 * (j as u8 / 4));
        let mn: [u8; 8] = std::array::from_fn(|j| j as u8 + 10 + 30 * (j as u8 / 4));
        let mut s = [0u8; 12];
        for j in 0..8 {
            if j < 4 {
                s[j] = sc[j];
                s[j + 4] = mn[j];
            } else {
                s[j + 4] = (sc[j] & 0xF) | ((mn[j] & 0xF) << 4);
                s[j - 4] |= (sc[j] >> 4) << 6;
                s[j] |= (mn[j] >> 4) << 6;
            }
        }
        for j in 0..8 {
            assert_eq!(scale_min_k4(j, &s), (sc[j], mn[j]), "sub-block {j}");
        }
        let mut b = BlockQ4K::zeroed();
        b.d = f16::from_f32(0.25).to_le_bytes();
        b.dmin = f16::from_f32(0.125).to_le_bytes();
        b.scales = s;
        for (i, q) in b.qs.iter_mut().enumerate() {
            *q = (i % 16) as u8 | (((i + 3) % 16) as u8) << 4;
        }
        let mut y = [0f32; QK_K];
        decode_q4_k(&b, &mut y);
        for (i, &v) in y.iter().enumerate() {
            let (j, l) = (i / 32, i % 32);
            let byte = b.qs[32 * (j / 2) + l];
            let q = if j % 2 == 0 { byte & 0xF } else { byte >> 4 };
            let want = 0.25 * f32::from(sc[j]) * f32::from(q) - 0.125 * f32::from(mn[j]);
            assert_eq!(v, want, "value {i}");
        }
    }

    #[test]
    fn a_non_finite_scale_is_named_by_its_offset() {
        let mut bytes = vec![0u8; 2 * 210];
        bytes[210 + 208..210 + 210].copy_from_slice(&f16::NAN.to_le_bytes());
        let e = check_blocks(DenseBlocks::Q6K, &bytes, 1, 512).unwrap_err();
        assert!(
            matches!(e, FormatError::NonFiniteScale { offset: 418, .. }),
            "{e}"
        );
        assert!(check_blocks(DenseBlocks::Q6K, &bytes[..210], 1, 512).is_err());
        bytes[418..420].copy_from_slice(&f16::ONE.to_le_bytes());
        check_blocks(DenseBlocks::Q6K, &bytes, 1, 512).unwrap();
    }

    #[test]
    fn rows_must_be_whole_blocks() {
        assert_eq!(DenseBlocks::Q6K.row_bytes(2, 512).unwrap(), 420);
        assert_eq!(DenseBlocks::Q8_0.row_bytes(2, 64).unwrap(), 68);
        assert!(DenseBlocks::Q4K.row_bytes(2, 100).is_err());
        assert!(DenseBlocks::Q8_0.row_bytes(2, 0).is_err());
    }
}
