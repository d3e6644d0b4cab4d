//! AVX-512 VNNI implementation (`"i2s/avx512vnni"`): the AVX2 loop with the dot step done
//! by one `vpdpbusd` per 32 codes (u8 x i8, four products summed into i32 lanes, exact,
//! no intermediate i16). It uses the 256-bit (AVX-512VL) form: the layout's 32-byte blocks
//! map onto it directly, and on the CPUs that have VNNI the decode, not the multiply, is
//! the limit. Needs AVX-512F/VL/VNNI plus AVX2/FMA/F16C (for the shared quantiser and
//! dense head), all detected at run time.

use super::avx2::{f16_rows_avx2, f32_rows_avx2, q8_rows_avx2, quantize_row_avx2};
use super::ternary::DotStep;
use crate::op::{TernaryOps, check_ternary};
use crate::packed::{OutRows, PackedTernary};
use crate::q8::{Q8Activations, Q8Matrix};
use crate::tile::ternary_rows;
use half::f16;
use std::arch::x86_64::*;

/// The AVX-512 VNNI ops.
#[derive(Debug)]
pub struct Avx512Vnni {
    _private: (),
}

static AVX512VNNI: Avx512Vnni = Avx512Vnni { _private: () };

impl Avx512Vnni {
    /// The VNNI ops if this CPU has AVX-512F/VL/VNNI and AVX2/FMA/F16C.
    pub(crate) fn get() -> Option<&'static Avx512Vnni> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(&AVX512VNNI)
    }
}

struct VnniStep;

impl DotStep for VnniStep {
    /// One accumulator per code plane: `vpdpbusd` has a latency of several cycles, and one
    /// chain through a single accumulator (which LLVM re-forms from any tree of adds)
    /// serialised GEMV on it.
    type Acc = [__m256i; 4];

    #[inline(always)]
    unsafe fn zero() -> [__m256i; 4] {
        unsafe { [_mm256_setzero_si256(); 4] }
    }

    #[inline(always)]
    unsafe fn reduce(a: [__m256i; 4]) -> __m256i {
        unsafe { _mm256_add_epi32(_mm256_add_epi32(a[0], a[1]), _mm256_add_epi32(a[2], a[3])) }
    }

    #[inline(always)]
    unsafe fn step(a: [__m256i; 4], c: &[__m256i; 4], q: *const i8) -> [__m256i; 4] {
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
        unsafe { [_mm256_setzero_si256(); 2] }
    }

    #[inline(always)]
    unsafe fn reduce(a: [__m256i; 2]) -> __m256i {
        unsafe { _mm256_add_epi32(a[0], a[1]) }
    }

    #[inline(always)]
    unsafe fn step(a: [__m256i; 2], c: &[__m256i; 4], q: *const i8) -> [__m256i; 2] {
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
unsafe fn ternary_vnni(w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
    unsafe {
        // Eight tokens' activation rows must stay in L1 (48 KiB on the CPUs measured) while
        // a row block passes over them: beyond 4096 columns (ffn_down's 6912) the 8-token tile
        // measured 1.3x slower than the 4-token one, below it 1.3x faster.
        if out.n() == 1 || w.cols() > GEMM8_MAX_COLS {
            ternary_rows::<VnniStep>(w, q, scales, out)
        } else {
            ternary_rows::<VnniGemmStep>(w, q, scales, out)
        }
    }
}

impl TernaryOps for Avx512Vnni {
    fn id(&self) -> &'static str {
        "i2s/avx512vnni"
    }

    fn isa(&self) -> &'static str {
        "avx512vnni"
    }

    fn quantize_row(&self, x: &[f32], q: &mut [i8]) -> f32 {
        // SAFETY: `get` checked AVX2/FMA/F16C.
        unsafe { quantize_row_avx2(x, q) }
    }

    fn ternary_rows(&self, w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
        check_ternary(w, q, scales.len(), out);
        // SAFETY: features checked in `get`; lengths checked above.
        unsafe { ternary_vnni(w, q, scales, out) }
    }

    fn f16_rows(&self, w: &[f16], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        // SAFETY: `get` checked AVX2/FMA/F16C.
        unsafe { f16_rows_avx2(w, cols, x, out) }
    }

    fn f32_rows(&self, w: &[f32], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        // SAFETY: `get` checked AVX2/FMA/F16C.
        unsafe { f32_rows_avx2(w, cols, x, out) }
    }

    fn q8_rows(&self, w: &Q8Matrix, x: &Q8Activations, out: &mut OutRows<'_>) {
        // SAFETY: `get` checked AVX2/FMA/F16C. (The head is memory-bound: VNNI would not
        // move it.)
        unsafe { q8_rows_avx2(w, x, out) }
    }
}
