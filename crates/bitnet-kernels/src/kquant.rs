//! ggml's K-quants (Q6_K, Q4_K): super-blocks of 256 weights whose dot product with Q8_K
//! activations is exact in integers, the head types bitnet.cpp and ik_llama.cpp files carry,
//! run as they are stored.
//!
//! This module holds what the formats share: the matrix of blocks ([`KQuantMatrix`], one
//! type for every block format through [`KBlock`]), the activations quantised per 256 values
//! as ggml's Q8_K ([`Q8KActivations`]) and ggml's rounding. Each format's module
//! ([`crate::q6k`], [`crate::q4k`]) holds its block's scalar dot (the reference every SIMD
//! kernel equals bit for bit) and ggml's quantiser for `--head-type`.
//!
//! The contract every backend keeps, whatever the format: a super-block's dot with one
//! token's 256 activations is computed exactly in integers, turned into a float by the
//! format's own fixed expression of the block's scales and the activations' scale
//! ([`KBlock::dot`]), and the super-blocks of a row are summed in order, left to right. So
//! SIMD results equal the scalar ones bit for bit.

use crate::FormatError;
use crate::backend::{Backend, OpKind};
use crate::ops::{KQuantMatmul, KernelId};
use crate::packed::OutRows;
use bitnet_formats::{DenseBlocks, check_blocks, decode_row};
use rayon::prelude::*;

/// Values per K-quant (and Q8_K) super-block.
pub const QK_K: usize = 256;

/// Q8_K activations carry the sum of each this many quants.
pub const Q8K_SUM: usize = 16;

/// A K-quant block format the kernels run as stored. Implemented for ggml's `block_q6_K`
/// and `block_q4_K` only (sealed).
pub trait KBlock:
    bytemuck::Pod + PartialEq + Send + Sync + std::fmt::Debug + sealed::Sealed + 'static
{
    /// The format, for size checks, names and decoding.
    const FORMAT: DenseBlocks;

    /// The op [`crate::Kernels`] counts and receipts name.
    const OP: OpKind;

    /// The scalar reference: this block's contribution to a row's dot with one token's 256
    /// Q8_K activations (`xq` 256 quants, `xs` their 16 sums of 16, `dx` their scale), the
    /// integer part exact and the float step the format's fixed expression.
    fn dot(&self, xq: &[i8], xs: &[i16], dx: f32) -> f32;

    /// Runs the backend's kernel for this format on a row range.
    fn rows(backend: &dyn Backend, m: &KQuantMatmul<'_, Self>, out: &mut OutRows<'_>) -> KernelId;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for bitnet_formats::BlockQ6K {}
    impl Sealed for bitnet_formats::BlockQ4K {}
}

/// A dense `[rows][cols]` matrix in K-quant blocks of format `B`; `cols` is a multiple of
/// 256. The blocks are ggml's bytes, as a GGUF file stores them.
#[derive(Clone, PartialEq)]
pub struct KQuantMatrix<B: KBlock> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) blocks: Vec<B>,
}

impl<B: KBlock> std::fmt::Debug for KQuantMatrix<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KQuantMatrix")
            .field("format", &B::FORMAT.name())
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

/// The error of a column count that is not a positive multiple of 256.
fn shape_error(format: &'static str, rows: usize, cols: usize) -> FormatError {
    FormatError::Shape {
        format,
        rows,
        cols,
        reason: "columns must be a positive multiple of 256",
    }
}

impl<B: KBlock> KQuantMatrix<B> {
    /// The matrix a GGUF tensor of this format holds (`rows` rows of `cols / 256` blocks),
    /// after [`check_blocks`] (size, finite scales): the same blocks.
    ///
    /// # Errors
    /// As [`check_blocks`].
    pub fn from_ggml_blocks(rows: usize, cols: usize, bytes: &[u8]) -> Result<Self, FormatError> {
        check_blocks(B::FORMAT, bytes, rows, cols)?;
        // `check_blocks` checked a whole number of blocks, so the lengths of the copy agree.
        let mut blocks = crate::pages::zeroed_vec_in_huge_pages::<B>(bytes.len() / size_of::<B>());
        bytemuck::cast_slice_mut::<B, u8>(&mut blocks).copy_from_slice(bytes);
        Ok(Self { rows, cols, blocks })
    }

    /// Rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (input features), a multiple of 256.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Super-blocks per row (`cols / 256`).
    pub fn blocks_per_row(&self) -> usize {
        self.cols / QK_K
    }

    /// The blocks of row `r`.
    ///
    /// # Panics
    /// If `r >= rows`.
    #[inline]
    pub fn row(&self, r: usize) -> &[B] {
        let nb = self.blocks_per_row();
        &self.blocks[r * nb..(r + 1) * nb]
    }

    /// All blocks, `[rows][cols / 256]`: ggml's bytes.
    pub fn blocks(&self) -> &[B] {
        &self.blocks
    }

    /// Bytes the matrix occupies (and one matrix-vector product streams).
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of_val(self.blocks.as_slice())
    }

    /// Quantises a `[rows][cols]` matrix whose row `r` `fill_row(r, buf)` writes as f32 into
    /// `buf` (`cols` values) with the format's row quantiser `quantize_row`, on a rayon pool of
    /// up to `threads` threads (load-time work; the result does not depend on the thread
    /// count). Each format's `quantize` is this with ggml's quantiser.
    ///
    /// # Errors
    /// [`FormatError::Shape`] if `cols` is not a positive multiple of 256,
    /// [`FormatError::Overflow`] if `rows * cols` overflows.
    pub(crate) fn quantize_rows<F>(
        rows: usize,
        cols: usize,
        threads: usize,
        fill_row: F,
        quantize_row: fn(&[f32], &mut [B]),
    ) -> Result<Self, FormatError>
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        let format = B::FORMAT.name();
        if cols == 0 || !cols.is_multiple_of(QK_K) {
            return Err(shape_error(format, rows, cols));
        }
        let nb = cols / QK_K;
        let len = rows
            .checked_mul(nb)
            .ok_or(FormatError::Overflow { format, rows, cols })?;
        // Streamed once per decoded token: 2 MiB pages (see `crate::pages`).
        let mut blocks = crate::pages::zeroed_vec_in_huge_pages::<B>(len);
        let rows_of = |blocks: &mut [B]| {
            blocks.par_chunks_mut(nb).enumerate().for_each_init(
                || vec![0.0f32; cols],
                |buf, (r, out)| {
                    fill_row(r, buf);
                    quantize_row(buf, out);
                },
            )
        };
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads.clamp(1, rows.max(1)))
            .build()
        {
            Ok(pool) => pool.install(|| rows_of(&mut blocks)),
            // No threads to be had: the same work on the caller's thread.
            Err(_) => {
                let mut buf = vec![0.0f32; cols];
                for (r, out) in blocks.chunks_mut(nb).enumerate() {
                    fill_row(r, &mut buf);
                    quantize_row(&buf, out);
                }
            }
        }
        Ok(Self { rows, cols, blocks })
    }

    /// Row `r` dequantised into `out` (`cols` values) as ggml's `dequantize_row_*` does.
    ///
    /// # Panics
    /// If `r >= rows` or `out.len() != cols`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.cols, "row_into: out.len() != cols");
        decode_row(B::FORMAT, bytemuck::cast_slice(self.row(r)), out);
    }
}

/// Defines a format's public row quantiser `$name(x, out)`: the lengths checked, then the
/// module's `quantize_blocks(x, out)` (ggml's `quantize_row_*_ref` rewritten), run on x86-64
/// with FMA from a copy compiled for FMA, so its `mul_add`s are one instruction each instead
/// of a libm call (the same results, several times faster over a 2B4T head).
///
/// A macro, not a generic function: a generic `#[target_feature(enable = "fma")]` wrapper
/// taking the block function did not get it compiled with FMA (`--head-type q4_k` on the 2B4T
/// file loaded in 97.5 s instead of 23.5 s); each expansion here calls its own
/// `quantize_blocks` directly.
macro_rules! quantize_row_fn {
    ($(#[$doc:meta])* $name:ident, $block:ty) => {
        $(#[$doc])*
        ///
        /// # Panics
        /// If `x.len() != out.len() * 256`.
        pub fn $name(x: &[f32], out: &mut [$block]) {
            assert_eq!(
                x.len(),
                out.len() * $crate::kquant::QK_K,
                concat!(stringify!($name), ": x.len() != 256 * blocks")
            );
            /// `quantize_blocks` compiled with FMA.
            ///
            /// # Safety
            /// The CPU must have FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "fma")]
            unsafe fn with_fma(x: &[f32], out: &mut [$block]) {
                quantize_blocks(x, out);
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: the CPU has FMA (checked above), the only feature the copy is
                // built for.
                unsafe { with_fma(x, out) };
                return;
            }
            quantize_blocks(x, out);
        }
    };
}
pub(crate) use quantize_row_fn;

/// ggml's `nearest_int`: round half to even through the float adder (`|x| < 2^22`).
#[inline(always)]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Activations quantised per 256 values as ggml's `quantize_row_q8_K_ref` does, for
/// [`crate::Kernels::kquant_matmul`]: up to `max_rows` rows of `cols` values, allocated once
/// (the decode loop reuses it).
#[derive(Debug, Clone)]
pub struct Q8KActivations {
    cols: usize,
    n: usize,
    q: Vec<i8>,
    d: Vec<f32>,
    bsums: Vec<i16>,
}

impl Q8KActivations {
    /// Room for `max_rows` rows of `cols` values; `cols` is a [`KQuantMatrix`]'s column count
    /// (a multiple of 256; any tail beyond whole blocks is never quantised).
    pub fn new(max_rows: usize, cols: usize) -> Self {
        Self {
            cols,
            n: 0,
            q: vec![0; max_rows * cols],
            d: vec![0.0; max_rows * cols / QK_K],
            bsums: vec![0; max_rows * cols / Q8K_SUM],
        }
    }

    /// Quantises `x: [n][cols]`; its rows replace whatever was held. Per block of 256:
    /// `iscale = -127 / max` of the largest-magnitude value, `q = min(127, round(iscale *
    /// x))` (half to even), `d = 1 / iscale`, and each 16 quants' sum.
    ///
    /// # Panics
    /// If `x.len()` is not `n * cols`, `cols` is not a multiple of 256, or `n` exceeds the
    /// capacity.
    pub fn quantize(&mut self, x: &[f32], n: usize) {
        assert_eq!(
            x.len(),
            n * self.cols,
            "Q8KActivations: x.len() != n * cols"
        );
        assert!(
            self.cols.is_multiple_of(QK_K),
            "Q8KActivations: {} columns are not whole blocks of 256",
            self.cols
        );
        assert!(
            n * self.cols <= self.q.len(),
            "Q8KActivations: {n} rows exceed the capacity"
        );
        let len = n * self.cols;
        for (((xb, qb), d), bs) in x
            .chunks_exact(QK_K)
            .zip(self.q[..len].chunks_exact_mut(QK_K))
            .zip(self.d.iter_mut())
            .zip(self.bsums.chunks_exact_mut(QK_K / Q8K_SUM))
        {
            let (mut max, mut amax) = (0.0f32, 0.0f32);
            for &v in xb {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                *d = 0.0;
                qb.fill(0);
                bs.fill(0);
                continue;
            }
            let iscale = -127.0f32 / max;
            for (o, &v) in qb.iter_mut().zip(xb) {
                *o = nearest_int(iscale * v).min(127) as i8;
            }
            for (s, qs) in bs.iter_mut().zip(qb.chunks_exact(Q8K_SUM)) {
                *s = qs.iter().map(|&v| i16::from(v)).sum();
            }
            *d = 1.0 / iscale;
        }
        self.n = n;
    }

    /// Rows held.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Quants of the rows held, `[n][cols]`, each in `-127..=127`.
    pub fn quants(&self) -> &[i8] {
        &self.q[..self.n * self.cols]
    }

    /// Block scales of the rows held, `[n][cols / 256]`.
    pub fn scales(&self) -> &[f32] {
        &self.d[..self.n * self.cols / QK_K]
    }

    /// Sums of each 16 quants, `[n][cols / 16]`.
    pub fn bsums(&self) -> &[i16] {
        &self.bsums[..self.n * self.cols / Q8K_SUM]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let got: Vec<i32> = [0.5f32, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6, 126.5]
            .into_iter()
            .map(nearest_int)
            .collect();
        assert_eq!(got, [0, 2, 2, 0, -2, 2, -3, 126]);
    }
}
