//! Q8_0: 8-bit weights in blocks of 32 with one f16 scale per block, for the optional
//! smaller output head (`--head-type q8_0`).
//!
//! Why: decoding is memory-bound, and the tied F16 head of the 2B4T shape
//! (128256 x 2560) is 0.66 GB of the ~1.18 GB every token streams. Q8_0 stores it in
//! 1.0625 bytes per weight instead of 2. The numerics are ggml's `Q8_0`
//! (`d = max|w| / 127` per block of 32, rounded to f16; `q = round(w / d)` half away from
//! zero), so the error is what llama.cpp users know from `--output-tensor-type q8_0`.
//!
//! Activations are quantised the same way per block of 32 (with an f32 scale), so each block's
//! dot product is exact in integers and costs one float multiply-add:
//! `y[t][r] = sum_b (sum_k qw[r][b][k] * qx[t][b][k]) * dw[r][b] * dx[t][b]`.
//!
//! Layout: quants `[rows][cols]` and scales `[rows][cols / 32]` in two arrays, not ggml's
//! interleaved 34-byte blocks, so that a kernel reads 32 contiguous quants per block and
//! converts eight scales with one instruction. Quantised values lie in `-127..=127`, which
//! the AVX2 kernel relies on (`|q| * q` pairs never saturate 16 bits).

use crate::FormatError;
use crate::pages::zeroed_vec_in_huge_pages;
use half::f16;
use rayon::prelude::*;

/// Values per Q8_0 block.
pub const Q8_BLOCK: usize = 32;

/// A dense `[rows][cols]` matrix in Q8_0 (see the module doc). `cols` is a multiple of 32.
#[derive(Clone, PartialEq)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    qs: Vec<i8>,
    d: Vec<f16>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Q8Matrix")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .finish_non_exhaustive()
    }
}

impl Q8Matrix {
    /// Quantises a `[rows][cols]` matrix whose row `r` `fill_row(r, buf)` writes as f32 into
    /// `buf` (`cols` values), on up to `threads` threads (rows split in contiguous chunks).
    ///
    /// # Errors
    /// [`FormatError::Shape`] if `cols` is not a positive multiple of 32,
    /// [`FormatError::Overflow`] if `rows * cols` overflows.
    pub fn quantize<F>(
        rows: usize,
        cols: usize,
        threads: usize,
        fill_row: F,
    ) -> Result<Self, FormatError>
    where
        F: Fn(usize, &mut [f32]) + Sync,
    {
        if cols == 0 || !cols.is_multiple_of(Q8_BLOCK) {
            return Err(FormatError::Shape {
                format: "Q8_0",
                rows,
                cols,
                reason: "columns must be a positive multiple of 32",
            });
        }
        let len = rows.checked_mul(cols).ok_or(FormatError::Overflow {
            format: "Q8_0",
            rows,
            cols,
        })?;
        let nb = cols / Q8_BLOCK;
        // Streamed once per decoded token: 2 MiB pages (see `crate::pages`).
        let mut qs = zeroed_vec_in_huge_pages::<i8>(len);
        let mut d = zeroed_vec_in_huge_pages::<f16>(rows * nb);
        // Load-time work: rows are quantised in parallel on a rayon pool of `threads` (not the
        // kernels' decode pool, which stays free of load work); each task reuses one row
        // buffer. The result does not depend on the thread count.
        let rows_of = || {
            qs.par_chunks_mut(cols)
                .zip(d.par_chunks_mut(nb))
                .enumerate()
                .for_each_init(
                    || vec![0.0f32; cols],
                    |buf, (r, (qr, dr))| {
                        fill_row(r, buf);
                        quantize_row(buf, qr, dr);
                    },
                )
        };
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads.clamp(1, rows.max(1)))
            .build()
        {
            Ok(pool) => pool.install(rows_of),
            // No threads to be had: the same work on the caller's thread.
            Err(_) => {
                let mut buf = vec![0.0f32; cols];
                for (r, (qr, dr)) in qs.chunks_mut(cols).zip(d.chunks_mut(nb)).enumerate() {
                    fill_row(r, &mut buf);
                    quantize_row(&buf, qr, dr);
                }
            }
        }
        Ok(Self { rows, cols, qs, d })
    }

    /// The matrix a GGUF tensor of ggml's Q8_0 type holds (`rows` rows of `cols / 32`
    /// [`bitnet_formats::BlockQ8_0`]s, checked by [`bitnet_formats::check_blocks`] first): the
    /// same quants and scales, de-interleaved into this layout, so its values are exactly the
    /// file's. `None` when a quant is -128: ggml's quantiser never writes it and the kernels
    /// rely on `-127..=127`, so the caller re-quantises the values ([`Self::quantize`]).
    ///
    /// # Errors
    /// As [`bitnet_formats::check_blocks`].
    pub fn from_ggml_blocks(
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Option<Self>, FormatError> {
        bitnet_formats::check_blocks(bitnet_formats::DenseBlocks::Q8_0, bytes, rows, cols)?;
        let blocks: &[bitnet_formats::BlockQ8_0] = bytemuck::cast_slice(bytes);
        if blocks.iter().any(|b| b.qs.contains(&i8::MIN)) {
            return Ok(None);
        }
        let mut qs = zeroed_vec_in_huge_pages::<i8>(blocks.len() * Q8_BLOCK);
        let mut d = zeroed_vec_in_huge_pages::<f16>(blocks.len());
        for ((b, q), d) in blocks.iter().zip(qs.chunks_exact_mut(Q8_BLOCK)).zip(&mut d) {
            q.copy_from_slice(&b.qs);
            *d = f16::from_le_bytes(b.d);
        }
        Ok(Some(Self { rows, cols, qs, d }))
    }

    /// Rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (input features), a multiple of 32.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Blocks per row (`cols / 32`).
    pub fn blocks_per_row(&self) -> usize {
        self.cols / Q8_BLOCK
    }

    /// The quants, `[rows][cols]`, each in `-127..=127`.
    pub fn quants(&self) -> &[i8] {
        &self.qs
    }

    /// The block scales, `[rows][cols / 32]`.
    pub fn scales(&self) -> &[f16] {
        &self.d
    }

    /// Bytes the matrix occupies (and one matrix-vector product streams).
    pub fn size_bytes(&self) -> usize {
        self.qs.len() + 2 * self.d.len()
    }

    /// Row `r` dequantised into `out` (`cols` values).
    ///
    /// # Panics
    /// If `r >= rows` or `out.len() != cols`.
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.cols, "row_into: out.len() != cols");
        let nb = self.blocks_per_row();
        let q = &self.qs[r * self.cols..(r + 1) * self.cols];
        for ((ob, qb), d) in out
            .chunks_exact_mut(Q8_BLOCK)
            .zip(q.chunks_exact(Q8_BLOCK))
            .zip(&self.d[r * nb..(r + 1) * nb])
        {
            let d = d.to_f32();
            for (o, &v) in ob.iter_mut().zip(qb) {
                *o = f32::from(v) * d;
            }
        }
    }
}

/// Quantises one row to Q8_0 with ggml's `quantize_row_q8_0_ref` steps: per block of 32,
/// `d = amax / 127`, `q = round(x * (1 / d))` (half away from zero, `0` when `d == 0`), and
/// the scale stored as f16. `x.len()` must be a multiple of 32.
///
/// # Panics
/// If `q.len() != x.len()` or `d.len() != x.len() / 32`.
pub fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f16]) {
    assert_eq!(q.len(), x.len(), "quantize_row: q and x lengths differ");
    assert_eq!(
        d.len() * Q8_BLOCK,
        x.len(),
        "quantize_row: d.len() != x.len() / 32"
    );
    for ((xb, qb), db) in x
        .chunks_exact(Q8_BLOCK)
        .zip(q.chunks_exact_mut(Q8_BLOCK))
        .zip(d.iter_mut())
    {
        let s = quantize_block(xb, qb);
        *db = f16::from_f32(s);
    }
}

/// One block: returns `d` (f32) and writes `q`.
#[inline]
fn quantize_block(x: &[f32], q: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (o, &v) in q.iter_mut().zip(x) {
        // `as` saturates (and maps NaN to 0); |v * id| <= 127 up to rounding.
        *o = (v * id).round().clamp(-127.0, 127.0) as i8;
    }
    d
}

/// Activations quantised per block of 32 for [`crate::Kernels::q8_matmul`]: up to
/// `max_rows` rows of `cols` values, allocated once (the decode loop reuses it).
#[derive(Debug, Clone)]
pub struct Q8Activations {
    cols: usize,
    n: usize,
    q: Vec<i8>,
    d: Vec<f32>,
}

impl Q8Activations {
    /// Room for `max_rows` rows of `cols` values; `cols` is a [`Q8Matrix`]'s column count
    /// (a multiple of 32; any tail beyond whole blocks is never quantised).
    pub fn new(max_rows: usize, cols: usize) -> Self {
        Self {
            cols,
            n: 0,
            q: vec![0; max_rows * cols],
            d: vec![0.0; max_rows * cols / Q8_BLOCK],
        }
    }

    /// Quantises `x: [n][cols]`; its rows replace whatever was held.
    ///
    /// # Panics
    /// If `x.len()` is not `n * cols` or `n` exceeds the capacity.
    pub fn quantize(&mut self, x: &[f32], n: usize) {
        assert_eq!(x.len(), n * self.cols, "Q8Activations: x.len() != n * cols");
        assert!(
            n * self.cols <= self.q.len(),
            "Q8Activations: {n} rows exceed the capacity"
        );
        let len = n * self.cols;
        for ((xb, qb), d) in x
            .chunks_exact(Q8_BLOCK)
            .zip(self.q[..len].chunks_exact_mut(Q8_BLOCK))
            .zip(self.d.iter_mut())
        {
            *d = quantize_block(xb, qb);
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

    /// Quants of the rows held, `[n][cols]`.
    pub fn quants(&self) -> &[i8] {
        &self.q[..self.n * self.cols]
    }

    /// Block scales of the rows held, `[n][cols / 32]`.
    pub fn scales(&self) -> &[f32] {
        &self.d[..self.n * self.cols / Q8_BLOCK]
    }
}
