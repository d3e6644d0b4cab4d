//! The stream layout every read kernel of [`crate::membw`] shares, in its own file so the ISA
//! kernels and the probe that calls them do not import each other.

/// Concurrent streams each thread reads (sub-ranges of its share, read in lockstep).
///
/// Two, measured: a C read of one 1.5 GiB buffer in 2 MiB pages, each thread's share in S
/// lockstep streams (machine D, Xeon with AVX-512, two rounds, GB/s on 1 / 2 threads): 256-bit
/// loads S = 1: 16.8-16.9 / 33.3-33.8, S = 2: 17.8-18.1 / 35.4-35.7, S = 3: 17.0-17.4 /
/// 33.8-34.5, S = 4: 16.7-16.9 / 33.0-33.2; 512-bit loads S = 2: 17.3-17.4 / 33.8-34.2, S = 4:
/// 16.6-16.7 / 32.8-33.1. More streams than two spread the prefetchers thin; one leaves
/// too few misses in flight.
pub const STREAMS: usize = 2;

/// Lengths of the [`STREAMS`] lockstep streams of a slice of `len` elements read in blocks
/// of `block` elements per stream step: `(steps, tail)` where stream `s` covers
/// `[s * steps * block, (s + 1) * steps * block)` and `[tail, len)` is left for a scalar
/// loop. Shared by every ISA path so they read the same layout.
pub(crate) fn streams(len: usize, block: usize) -> (usize, usize) {
    let steps = len / (STREAMS * block);
    (steps, STREAMS * steps * block)
}
