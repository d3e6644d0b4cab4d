//! AVX-512 VNNI ternary matmul on layout `i2s256`: one 64-byte load holds the codes of 256
//! columns, lined up with four contiguous 64-byte activation slices (see
//! [`crate::packed`]), and `vpdpbusd` on 512-bit vectors does the multiply.
//!
//! # Decode without shifts
//! Masking a byte with `3 << s` leaves `code << s`: an unsigned byte that is an exact
//! multiple of the code, so `vpdpbusd(mask(w), q)` accumulates `2^s * (c . q)` and an
//! arithmetic shift right by `s` at the end recovers `c . q` exactly (every lane is a sum of
//! multiples of `2^s`). The bound: `|2^s * c * q| <= 64 * 2 * 128 = 2^14` per product, so a
//! lane holds rows up to 2^17 blocks without overflow, far beyond any model.
//! - GEMV ([`Gemv`], up to 4 tokens): the four planes `w & 0xC0, 0x30, 0x0C, 0x03`, one
//!   accumulator each (scales 64, 16, 4, 1): four AND per block and no shift, and four
//!   independent `vpdpbusd` chains per token to cover its latency.
//! - GEMM ([`Gemm`], 8 tokens): two accumulators per token to leave registers for eight
//!   tokens, so planes share them: `(w >> 4) & 0x0C` and `w & 0x0C` (planes 0 and 2, both
//!   scaled by 4), `(w >> 4) & 0x03` and `w & 0x03` (planes 1 and 3, unscaled): one 16-bit
//!   shift and four AND per block for eight tokens' 32 multiplies.
//!
//! Codes are `c = v + 1` (unsigned, as `vpdpbusd` wants them); the shared tile loop
//! subtracts `sum q`, and the float step is the shared `finish`, so results equal the scalar
//! reference bit for bit.

use super::Avx512Vnni;
use crate::ops::{KernelId, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};
use crate::packed::{OutRows, PackedLayout};
use crate::tile::{TileDot, ternary_rows};
use crate::x86::avx2;
use std::arch::x86_64::*;

/// Id of [`ternary_vnni`].
pub(crate) const ID: KernelId = "i2s/avx512vnni";

/// Columns per `i2s256` block.
const BLOCK: usize = 256;
/// Bytes per `i2s256` block.
const BLOCK_BYTES: usize = 64;

/// Software prefetch distance in packed bytes (GEMV from DRAM otherwise stalls on the
/// hardware prefetcher ramping up at every row; rows are contiguous, so this runs ahead
/// into the next rows too, and a prefetch past the buffer is harmless). Measured on the
/// 2B4T file, 2 threads, alternating: 1024 bytes 16.2-17.6 tok/s, 2048 17.0-18.8, 4096
/// 18.5-21.4, 8192 no better than 4096.
const PREFETCH: usize = 4096;

#[inline(always)]
unsafe fn load(p: *const u8) -> __m512i {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe { _mm512_loadu_si512(p as *const __m512i) }
}

/// The GEMV micro-kernel: one accumulator per code plane and token.
struct Gemv;

/// Adds one block's `2^s * (c_j . q_j)` to the four plane accumulators of each token.
#[inline(always)]
unsafe fn gemv_block<const NT: usize>(
    acc: &mut [[__m512i; 4]; NT],
    w: *const u8,
    q: &[*const i8; NT],
) {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let w = load(w);
        let c = [
            _mm512_and_si512(w, _mm512_set1_epi8(0xC0u8 as i8)),
            _mm512_and_si512(w, _mm512_set1_epi8(0x30)),
            _mm512_and_si512(w, _mm512_set1_epi8(0x0C)),
            _mm512_and_si512(w, _mm512_set1_epi8(0x03)),
        ];
        for t in 0..NT {
            for j in 0..4 {
                let x = load(q[t].add(j * BLOCK_BYTES) as *const u8);
                acc[t][j] = _mm512_dpbusd_epi32(acc[t][j], c[j], x);
            }
        }
    }
}

impl TileDot for Gemv {
    const TILE: usize = 4;
    const BLOCK: usize = BLOCK;
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
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); 4]; NT];
            let mut qb = *q;
            for b in 0..full {
                let w = row.add(b * BLOCK_BYTES);
                _mm_prefetch::<_MM_HINT_T0>(w.add(PREFETCH) as *const i8);
                gemv_block::<NT>(&mut acc, w, &qb);
                for p in qb.iter_mut() {
                    *p = p.add(BLOCK);
                }
            }
            if has_tail {
                gemv_block::<NT>(&mut acc, row.add(full * BLOCK_BYTES), tails);
            }
            // Plain loops, not closures: a closure is compiled without this function's
            // target features, so the intrinsics in it would not inline.
            let mut out = [0i32; NT];
            for t in 0..NT {
                let [a0, a1, a2, a3] = acc[t];
                let s = _mm512_add_epi32(
                    _mm512_add_epi32(_mm512_srai_epi32::<6>(a0), _mm512_srai_epi32::<4>(a1)),
                    _mm512_add_epi32(_mm512_srai_epi32::<2>(a2), a3),
                );
                out[t] = _mm512_reduce_add_epi32(s);
            }
            out
        }
    }
}

/// Widest rows the 8-token GEMM tile takes (8 x 4096 int8 activations = 32 KiB).
const GEMM8_MAX_COLS: usize = 4096;

/// The GEMM micro-kernel: 8 tokens, two accumulators per token (see the module doc).
struct Gemm;

/// Adds one block's `4 * (c_0 . q_0 + c_2 . q_2)` and `c_1 . q_1 + c_3 . q_3` to each token's
/// two accumulators.
#[inline(always)]
unsafe fn gemm_block<const NT: usize>(
    acc: &mut [[__m512i; 2]; NT],
    w: *const u8,
    q: &[*const i8; NT],
) {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let w = load(w);
        // A 16-bit shift moves the high byte's low bits into this byte's top, which the
        // masks below 0x10 never keep.
        let w4 = _mm512_srli_epi16::<4>(w);
        let (m_hi, m_lo) = (_mm512_set1_epi8(0x0C), _mm512_set1_epi8(0x03));
        let c = [
            _mm512_and_si512(w4, m_hi),
            _mm512_and_si512(w4, m_lo),
            _mm512_and_si512(w, m_hi),
            _mm512_and_si512(w, m_lo),
        ];
        for t in 0..NT {
            for j in 0..4 {
                let x = load(q[t].add(j * BLOCK_BYTES) as *const u8);
                acc[t][j & 1] = _mm512_dpbusd_epi32(acc[t][j & 1], c[j], x);
            }
        }
    }
}

impl TileDot for Gemm {
    const TILE: usize = 8;
    const BLOCK: usize = BLOCK;
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
        unsafe {
            let mut acc = [[_mm512_setzero_si512(); 2]; NT];
            let mut qb = *q;
            for b in 0..full {
                gemm_block::<NT>(&mut acc, row.add(b * BLOCK_BYTES), &qb);
                for p in qb.iter_mut() {
                    *p = p.add(BLOCK);
                }
            }
            if has_tail {
                gemm_block::<NT>(&mut acc, row.add(full * BLOCK_BYTES), tails);
            }
            let mut out = [0i32; NT];
            for t in 0..NT {
                let [a02, a13] = acc[t];
                out[t] =
                    _mm512_reduce_add_epi32(_mm512_add_epi32(_mm512_srai_epi32::<2>(a02), a13));
            }
            out
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn ternary_vnni(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    match m.w().layout() {
        // SAFETY: the features are enabled on this function; `ternary_rows` checks that the
        // weights are in the layout whose block the micro-kernels take.
        PackedLayout::I2s256 => unsafe {
            // Eight tokens' activation rows must stay in L1 (48 KiB on the CPUs measured)
            // while a row block passes over them: beyond 4096 columns (ffn_down's 6912) the
            // 8-token tile is slower than the 4-token one.
            if m.n() <= Gemv::TILE || m.w().cols() > GEMM8_MAX_COLS {
                ternary_rows::<Gemv>(m, out)
            } else {
                ternary_rows::<Gemm>(m, out)
            }
            ID
        },
        // Weights packed for the 256-bit backends (only reachable by calling this backend
        // directly; `Kernels` refuses mismatched layouts): the AVX2 kernel, which this CPU
        // runs too.
        // SAFETY: AVX2, FMA and F16C are enabled on this function.
        PackedLayout::I2s128 => unsafe { avx2::ternary::ternary_avx2(m, out) },
    }
}

impl TernaryMatmulOps for Avx512Vnni {
    fn layout(&self) -> PackedLayout {
        PackedLayout::I2s256
    }

    fn ternary_rows(&self, m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // SAFETY: an `Avx512Vnni` exists only when `Avx512Vnni::get` saw every feature
        // `ternary_vnni` enables; `m`'s shapes were checked when it was built.
        unsafe { ternary_vnni(m, out) }
    }

    fn ternary_f32_rows(&self, m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        // No SIMD version: this path only serves cross-checks (activation quantisation off).
        crate::scalar::ternary::ternary_f32_rows(m, out)
    }
}
