//! The stream layout every read kernel of [`crate::membw`] shares, in its own file so the ISA
//! kernels and the probe that calls them do not import each other.

/// Concurrent streams each thread reads (sub-ranges of its share, read in lockstep).
pub const STREAMS: usize = 4;

/// Lengths of the [`STREAMS`] lockstep streams of a slice of `len` elements read in blocks
/// of `block` elements per stream step: `(steps, tail)` where stream `s` covers
/// `[s * steps * block, (s + 1) * steps * block)` and `[tail, len)` is left for a scalar
/// loop. Shared by every ISA path so they read the same layout.
pub(crate) fn streams(len: usize, block: usize) -> (usize, usize) {
    let steps = len / (STREAMS * block);
    (steps, STREAMS * steps * block)
}
