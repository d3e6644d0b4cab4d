//! NEON read kernel for the bandwidth probe ([`crate::membw`]): 16-byte loads, the
//! [`STREAMS`] lockstep streams with two `add` accumulators each (four independent
//! 128-bit chains, 64 bytes per step). NEON is baseline on aarch64.

use crate::membw::streams::{STREAMS, streams};
use std::arch::aarch64::*;

/// `u64`s per stream step: two 128-bit vectors.
const BLOCK: usize = 4;

/// Wrapping sum of `data`.
pub(crate) fn sum(data: &[u64]) -> u64 {
    let (steps, tail) = streams(data.len(), BLOCK);
    let stride = steps * BLOCK;
    let p = data.as_ptr();
    // SAFETY: NEON is mandatory on aarch64, so these intrinsics are always available.
    let mut acc = [[unsafe { vdupq_n_u64(0) }; 2]; STREAMS];
    for i in 0..steps {
        for (s, a) in acc.iter_mut().enumerate() {
            let base = s * stride + i * BLOCK;
            // SAFETY: `base + BLOCK <= STREAMS * stride = tail <= data.len()` (from
            // `streams`), so both 16-byte loads stay inside `data`; NEON is baseline.
            unsafe {
                a[0] = vaddq_u64(a[0], vld1q_u64(p.add(base)));
                a[1] = vaddq_u64(a[1], vld1q_u64(p.add(base + 2)));
            }
        }
    }
    // SAFETY: NEON is baseline on aarch64; register-only operations.
    let mut total = unsafe {
        let mut v = vdupq_n_u64(0);
        for a in acc.iter().flatten() {
            v = vaddq_u64(v, *a);
        }
        vaddvq_u64(v)
    };
    for &x in &data[tail..] {
        total = total.wrapping_add(x);
    }
    total
}
