//! AVX-512 read kernel for the bandwidth probe ([`crate::membw`]): 64-byte loads, the
//! [`STREAMS`] lockstep streams with two `vpaddq` accumulators each (four independent
//! 512-bit chains, 256 bytes per step). Needs only AVX-512F.

use crate::membw::streams::{STREAMS, streams};
use std::arch::x86_64::*;

/// `u64`s per stream step: two 512-bit vectors.
const BLOCK: usize = 16;

/// The kernel if this CPU has AVX-512F.
pub(crate) fn get() -> Option<fn(&[u64]) -> u64> {
    is_x86_feature_detected!("avx512f").then_some(sum as fn(&[u64]) -> u64)
}

/// Wrapping sum of `data`. Only reachable through [`get`], which checked AVX-512F.
fn sum(data: &[u64]) -> u64 {
    // SAFETY: `get` hands this function out only after detecting AVX-512F, the one feature
    // `sum_avx512` is compiled for; it reads `data` only within its bounds.
    unsafe { sum_avx512(data) }
}

#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(data: &[u64]) -> u64 {
    let (steps, tail) = streams(data.len(), BLOCK);
    let stride = steps * BLOCK;
    let p = data.as_ptr();
    let mut acc = [[_mm512_setzero_si512(); 2]; STREAMS];
    for i in 0..steps {
        for (s, a) in acc.iter_mut().enumerate() {
            let base = s * stride + i * BLOCK;
            // SAFETY: `base + BLOCK <= STREAMS * stride = tail <= data.len()` (from
            // `streams`), so both 64-byte unaligned loads stay inside `data`; AVX-512F is
            // enabled on this function.
            unsafe {
                a[0] = _mm512_add_epi64(a[0], _mm512_loadu_si512(p.add(base).cast()));
                a[1] = _mm512_add_epi64(a[1], _mm512_loadu_si512(p.add(base + 8).cast()));
            }
        }
    }
    let mut v = _mm512_setzero_si512();
    for a in acc.iter().flatten() {
        v = _mm512_add_epi64(v, *a);
    }
    let mut total = _mm512_reduce_add_epi64(v) as u64;
    for &x in &data[tail..] {
        total = total.wrapping_add(x);
    }
    total
}
