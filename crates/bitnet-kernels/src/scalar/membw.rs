//! Scalar read kernel for the bandwidth probe ([`crate::membw`]): the same [`STREAMS`]
//! lockstep streams as the SIMD paths, two `u64` accumulators each, wrapping adds. The
//! reference the SIMD paths are tested against (a wrapping sum is exact in any order).

use crate::membw::streams::{STREAMS, streams};

/// Elements each stream advances per step (two accumulators of one `u64`).
const BLOCK: usize = 2;

/// Wrapping sum of `data`.
pub(crate) fn sum(data: &[u64]) -> u64 {
    let (steps, tail) = streams(data.len(), BLOCK);
    let stride = steps * BLOCK;
    let mut acc = [[0u64; BLOCK]; STREAMS];
    for i in 0..steps {
        for (s, a) in acc.iter_mut().enumerate() {
            let base = s * stride + i * BLOCK;
            for (u, a) in a.iter_mut().enumerate() {
                *a = a.wrapping_add(data[base + u]);
            }
        }
    }
    let mut total = data[tail..].iter().fold(0u64, |a, &b| a.wrapping_add(b));
    for a in acc.iter().flatten() {
        total = total.wrapping_add(*a);
    }
    total
}
