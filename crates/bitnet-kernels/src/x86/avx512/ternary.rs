//! AVX-512 VNNI ternary matmul: the shared x86 tile loop with `vpdpbusd` as the dot step.
//! It uses the 256-bit (AVX-512VL) form: the layout's 32-byte blocks map onto it directly,
//! and on the CPUs that have VNNI the decode, not the multiply, is the limit.

use super::Avx512Vnni;
use crate::ops::{KernelId, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};
use crate::packed::{OutRows, PackedLayout};
use crate::tile::ternary_rows;
use crate::x86::ternary::DotStep;
use std::arch::x86_64::*;

/// Id of [`ternary_vnni`].
pub(crate) const ID: KernelId = "i2s/avx512vnni";

struct VnniStep;

impl DotStep for VnniStep {
    /// One accumulator per code plane: `vpdpbusd` has a latency of several cycles, and one
    /// chain through a single accumulator (which LLVM re-forms from any tree of adds)
    /// serialised GEMV on it.
    type Acc = [__m256i; 4];

    #[inline(always)]
    unsafe fn zero() -> [__m256i; 4] {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { [_mm256_setzero_si256(); 4] }
    }

    #[inline(always)]
    unsafe fn reduce(a: [__m256i; 4]) -> __m256i {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm256_add_epi32(_mm256_add_epi32(a[0], a[1]), _mm256_add_epi32(a[2], a[3])) }
    }

    #[inline(always)]
    unsafe fn step(a: [__m256i; 4], c: &[__m256i; 4], q: *const i8) -> [__m256i; 4] {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe {
            [
                _mm256_dpbusd_epi32(a[0], c[0], _mm256_loadu_si256(q as *const __m256i)),
                _mm256_dpbusd_epi32(a[1], c[1], _mm256_loadu_si256(q.add(32) as *const __m256i)),
                _mm256_dpbusd_epi32(a[2], c[2], _mm256_loadu_si256(q.add(64) as *const __m256i)),
                _mm256_dpbusd_epi32(a[3], c[3], _mm256_loadu_si256(q.add(96) as *const __m256i)),
            ]
        }
    }
}

/// Widest rows the 8-token GEMM tile takes (8 x 4096 int8 activations = 32 KiB).
const GEMM8_MAX_COLS: usize = 4096;

/// The GEMM step: 8 tokens per tile (AVX-512VL has 32 vector registers), two accumulators
/// per token, so that the 4 code registers of a block feed 8 tokens' `vpdpbusd` chains
/// (twice the reuse of the 4-token tile) while 16 independent chains cover the latency.
struct VnniGemmStep;

impl DotStep for VnniGemmStep {
    const TILE: usize = 8;
    type Acc = [__m256i; 2];

    #[inline(always)]
    unsafe fn zero() -> [__m256i; 2] {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { [_mm256_setzero_si256(); 2] }
    }

    #[inline(always)]
    unsafe fn reduce(a: [__m256i; 2]) -> __m256i {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe { _mm256_add_epi32(a[0], a[1]) }
    }

    #[inline(always)]
    unsafe fn step(a: [__m256i; 2], c: &[__m256i; 4], q: *const i8) -> [__m256i; 2] {
        // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
        unsafe {
            let a0 = _mm256_dpbusd_epi32(a[0], c[0], _mm256_loadu_si256(q as *const __m256i));
            let a1 =
                _mm256_dpbusd_epi32(a[1], c[1], _mm256_loadu_si256(q.add(32) as *const __m256i));
            let a0 = _mm256_dpbusd_epi32(a0, c[2], _mm256_loadu_si256(q.add(64) as *const __m256i));
            let a1 = _mm256_dpbusd_epi32(a1, c[3], _mm256_loadu_si256(q.add(96) as *const __m256i));
            [a0, a1]
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn ternary_vnni(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
    match m.w().layout() {
        // SAFETY: the features are enabled on this function.
        PackedLayout::I2s128 => unsafe {
            // Eight tokens' activation rows must stay in L1 (48 KiB on the CPUs measured)
            // while a row block passes over them: beyond 4096 columns (ffn_down's 6912) the
            // 8-token tile measured 1.3x slower than the 4-token one, below it 1.3x faster.
            if m.n() == 1 || m.w().cols() > GEMM8_MAX_COLS {
                ternary_rows::<VnniStep>(m, out)
            } else {
                ternary_rows::<VnniGemmStep>(m, out)
            }
        },
    }
    ID
}

impl TernaryMatmulOps for Avx512Vnni {
    fn layout(&self) -> PackedLayout {
        PackedLayout::I2s128
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
