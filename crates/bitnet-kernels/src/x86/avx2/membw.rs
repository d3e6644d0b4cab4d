//! AVX2 read kernel for the bandwidth probe ([`crate::membw`]): 32-byte loads, the
//! [`STREAMS`] lockstep streams with two `vpaddq` accumulators each (four independent
//! 256-bit chains, 128 bytes per step).

use crate::membw::streams::{STREAMS, streams};
use std::arch::x86_64::*;

/// `u64`s per stream step: two 256-bit vectors.
const BLOCK: usize = 8;

/// The kernel if this CPU has AVX2.
pub(crate) fn get() -> Option<fn(&[u64]) -> u64> {
    is_x86_feature_detected!("avx2").then_some(sum as fn(&[u64]) -> u64)
}

/// Wrapping sum of `data`. Only reachable through [`get`], which checked AVX2.
fn sum(data: &[u64]) -> u64 {
    // SAFETY: `get` hands this function out only after detecting AVX2, the one feature
    // `sum_avx2` is compiled for; it reads `data` only within its bounds.
    unsafe { sum_avx2(data) }
}

#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(data: &[u64]) -> u64 {
    let (steps, tail) = streams(data.len(), BLOCK);
    let stride = steps * BLOCK;
    let p = data.as_ptr();
    let mut acc = [[_mm256_setzero_si256(); 2]; STREAMS];
    for i in 0..steps {
        for (s, a) in acc.iter_mut().enumerate() {
            let base = s * stride + i * BLOCK;
            // SAFETY: `base + BLOCK <= STREAMS * stride = tail <= data.len()` (from
            // `streams`), so both 32-byte unaligned loads stay inside `data`; AVX2 is
            // enabled on this function.
            unsafe {
                a[0] = _mm256_add_epi64(a[0], _mm256_loadu_si256(p.add(base).cast()));
                a[1] = _mm256_add_epi64(a[1], _mm256_loadu_si256(p.add(base + 4).cast()));
            }
        }
    }
    let mut v = _mm256_setzero_si256();
    for a in acc.iter().flatten() {
        v = _mm256_add_epi64(v, *a);
    }
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 bytes, exactly one unaligned store; AVX2 is enabled here.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), v) };
    let mut total = lanes.iter().fold(0u64, |t, &x| t.wrapping_add(x));
    for &x in &data[tail..] {
        total = total.wrapping_add(x);
    }
    total
}
