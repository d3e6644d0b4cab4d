//! The x86 ternary GEMV/GEMM loop, generic over the integer dot step.
//!
//! # Exactness
//! Codes are unsigned `c = v + 1 in {0,1,2}`, activations signed `q in -128..=127`, so
//! `sum v*q = sum c*q - sum q`. `vpmaddubsw(c, q)` adds two products per i16 lane,
//! `|2 * 2 * 128| = 512`, and four of them (one 128-column block) stay within
//! `4 * 512 = 2048`, far from i16 saturation; `vpmaddwd(.., 1)` widens to i32 (`vpdpbusd`
//! does both at once). `sum q` is computed once per activation row. Everything is exact
//! integer arithmetic, and the float step is the shared `finish`, so the results equal
//! the scalar reference bit for bit.
//!
//! # Loop structure
//! Columns beyond the last full block read a zero-padded stack copy of the activation tail
//! (the packed padding codes are 1 = weight 0, so `c * 0` adds nothing). For GEMM the rows
//! are processed in blocks of [`ROW_BLOCK`] whose packed bytes (at most a few KiB each)
//! stay in L1 while tiles of up to 4 tokens pass over them, so weights are streamed from
//! memory once per 64-token chunk, not once per token.

use crate::act_quant::finish;
use crate::packed::{BLOCK, BLOCK_BYTES, OutRows, PackedTernary};
use std::arch::x86_64::*;

/// Rows per cache block in GEMM.
const ROW_BLOCK: usize = 16;
/// Tokens whose sums and tails are kept on the stack at once.
const TOKEN_CHUNK: usize = 32;
/// Tokens per micro-kernel tile.
const TILE: usize = 4;

/// One 128-column block of `c . q` accumulated into i32 lanes.
pub(crate) trait DotStep {
    /// Adds `c0.q0 + c1.q1 + c2.q2 + c3.q3` (byte products summed into i32 lanes) to `acc`.
    ///
    /// # Safety
    /// Needs the CPU features of the implementation.
    unsafe fn step(acc: __m256i, c: &[__m256i; 4], q: *const i8) -> __m256i;
}

#[inline(always)]
unsafe fn codes(row: *const u8) -> [__m256i; 4] {
    unsafe {
        let mask = _mm256_set1_epi8(3);
        let w = _mm256_loadu_si256(row as *const __m256i);
        // 16-bit shifts move neighbour bits into each byte's upper bits; the mask keeps
        // only the byte's own 2-bit field.
        [
            _mm256_and_si256(_mm256_srli_epi16::<6>(w), mask),
            _mm256_and_si256(_mm256_srli_epi16::<4>(w), mask),
            _mm256_and_si256(_mm256_srli_epi16::<2>(w), mask),
            _mm256_and_si256(w, mask),
        ]
    }
}

#[inline(always)]
unsafe fn hsum(v: __m256i) -> i32 {
    unsafe {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }
}

/// `c . q` over one packed row for `NT` tokens (unsigned-code dot, before `- sum q`).
#[inline(always)]
unsafe fn dot_tile<D: DotStep, const NT: usize>(
    row: *const u8,
    full: usize,
    q: &[*const i8; NT],
    tails: &[*const i8; NT],
    has_tail: bool,
) -> [i32; NT] {
    unsafe {
        let mut acc = [_mm256_setzero_si256(); NT];
        for b in 0..full {
            let c = codes(row.add(b * BLOCK_BYTES));
            for t in 0..NT {
                acc[t] = D::step(acc[t], &c, q[t].add(b * BLOCK));
            }
        }
        if has_tail {
            let c = codes(row.add(full * BLOCK_BYTES));
            for t in 0..NT {
                acc[t] = D::step(acc[t], &c, tails[t]);
            }
        }
        let mut out = [0i32; NT];
        for t in 0..NT {
            out[t] = hsum(acc[t]);
        }
        out
    }
}

/// The whole ternary op for the rows of `out` (lengths checked by the caller).
///
/// # Safety
/// Needs the CPU features `D` needs (AVX2 at least); must be inlined into a function
/// enabling them.
#[inline(always)]
pub(crate) unsafe fn ternary_rows<D: DotStep>(
    w: &PackedTernary,
    q: &[i8],
    scales: &[f32],
    out: &mut OutRows<'_>,
) {
    let cols = w.cols();
    let full = cols / BLOCK;
    let tail_len = cols % BLOCK;
    let has_tail = tail_len != 0;
    let rows = out.rows();
    let n = out.n();
    let w_scale = w.scale();
    let mut sums = [0i32; TOKEN_CHUNK];
    let mut tails = [[0i8; BLOCK]; TOKEN_CHUNK];
    for t0 in (0..n).step_by(TOKEN_CHUNK) {
        let nt_chunk = TOKEN_CHUNK.min(n - t0);
        for i in 0..nt_chunk {
            let qt = &q[(t0 + i) * cols..(t0 + i + 1) * cols];
            sums[i] = qt.iter().map(|&v| i32::from(v)).sum();
            tails[i][..tail_len].copy_from_slice(&qt[full * BLOCK..]);
        }
        let row_block = if n == 1 { usize::MAX } else { ROW_BLOCK };
        let mut r0 = rows.start;
        while r0 < rows.end {
            let r1 = rows.end.min(r0.saturating_add(row_block));
            let mut i = 0;
            while i < nt_chunk {
                let nt = TILE.min(nt_chunk - i);
                let t = t0 + i;
                macro_rules! tile {
                    ($nt:literal) => {{
                        let qp: [*const i8; $nt] =
                            std::array::from_fn(|k| q[(t + k) * cols..].as_ptr());
                        let tp: [*const i8; $nt] = std::array::from_fn(|k| tails[i + k].as_ptr());
                        for r in r0..r1 {
                            // SAFETY: the row has `full (+1 if tail)` blocks; every q row has
                            // `full * 128` columns before the tail; tails are 128 bytes.
                            let acc = unsafe {
                                dot_tile::<D, $nt>(w.row(r).as_ptr(), full, &qp, &tp, has_tail)
                            };
                            for k in 0..$nt {
                                let y = out.token(t + k);
                                y[r - rows.start] =
                                    finish(acc[k] - sums[i + k], scales[t + k], w_scale);
                            }
                        }
                    }};
                }
                match nt {
                    4 => tile!(4),
                    3 => tile!(3),
                    2 => tile!(2),
                    _ => tile!(1),
                }
                i += nt;
            }
            r0 = r1;
        }
    }
}
