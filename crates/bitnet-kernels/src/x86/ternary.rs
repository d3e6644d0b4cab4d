//! The 256-bit x86 ternary micro-kernel on layout `i2s128` (AVX2's), generic over the
//! integer dot step.
//!
//! # Exactness
//! Codes are unsigned `c = v + 1 in {0,1,2}`, activations signed `q in -128..=127`, so
//! `sum v*q = sum c*q - sum q`. `vpmaddubsw(c, q)` adds two products per i16 lane,
//! `|2 * 2 * 128| = 512`, and four of them (one 128-column block) stay within
//! `4 * 512 = 2048`, far from i16 saturation; `vpmaddwd(.., 1)` widens to i32. `sum q` is computed once per activation row. Everything is exact
//! integer arithmetic, and the float step is the shared `finish`, so the results equal
//! the scalar reference bit for bit.
//!
//! The row/token tiling around this micro-kernel is [`crate::tile`].

use crate::packed::{BLOCK, BLOCK_BYTES};
use crate::tile::TileDot;
use std::arch::x86_64::*;

/// Software prefetch distance in packed bytes (single-thread GEMV from DRAM otherwise
/// stalls on the hardware prefetcher ramping up at every row). 4096 rather than 1024: with
/// the AVX2 dense head prefetching as well, AVX2 decode on the 2B4T file went from 7.4-7.6 to
/// 10.1 tok/s on 1 thread and 13.3-13.9 to 18.2-19.0 on 2 (alternating, one run).
const PREFETCH: usize = 4096;

/// One 128-column block of `c . q` accumulated into i32 lanes.
pub(crate) trait DotStep {
    /// Tokens per tile (see [`TileDot::TILE`]).
    const TILE: usize = 4;

    /// Accumulator state per token (several registers when the multiply's latency needs
    /// independent chains).
    type Acc: Copy;
    /// The empty accumulator.
    ///
    /// # Safety
    /// Needs the CPU features of the implementation.
    unsafe fn zero() -> Self::Acc;
    /// Sums the accumulator into one vector of i32 lanes.
    ///
    /// # Safety
    /// Needs the CPU features of the implementation.
    unsafe fn reduce(acc: Self::Acc) -> __m256i;
    /// Adds `c0.q0 + c1.q1 + c2.q2 + c3.q3` (byte products summed into i32 lanes) to `acc`.
    ///
    /// # Safety
    /// Needs the CPU features of the implementation.
    unsafe fn step(acc: Self::Acc, c: &[__m256i; 4], q: *const i8) -> Self::Acc;
}

#[inline(always)]
unsafe fn codes(row: *const u8) -> [__m256i; 4] {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
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
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
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
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let mut acc = [D::zero(); NT];
        for b in 0..full {
            // Rows are contiguous, so prefetching a fixed distance ahead covers the next
            // rows too (a prefetch past the end of the buffer is harmless).
            _mm_prefetch::<_MM_HINT_T0>(row.add(b * BLOCK_BYTES + PREFETCH) as *const i8);
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
            out[t] = hsum(D::reduce(acc[t]));
        }
        out
    }
}

impl<D: DotStep> TileDot for D {
    const TILE: usize = D::TILE;
    const CODES_OFFSET: bool = true;

    #[inline(always)]
    unsafe fn dot<const NT: usize>(
        row: *const u8,
        full: usize,
        q: &[*const i8; NT],
        tails: &[*const i8; NT],
        has_tail: bool,
    ) -> [i32; NT] {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { dot_tile::<D, NT>(row, full, q, tails, has_tail) }
    }
}
