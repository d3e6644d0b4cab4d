//! Memory read bandwidth probe: the roofline that decode is measured against.
//!
//! Decode streams every weight once per token, so `read bandwidth / bytes per token` bounds
//! its tokens/s, and `bitnet-cli bench` reports how close it gets. That ratio is only honest
//! if the probe reads as fast as this machine can read, so it lives here, next to the
//! kernels, and reads the way the fastest kernels do:
//!
//! - SIMD loads (AVX-512, AVX2, NEON; scalar elsewhere): [`read_kernels`] lists every one
//!   this CPU runs, and [`read_bandwidth`] times each of them, alternating, and keeps the
//!   fastest, because the widest load is not always the fastest read (on a Xeon with
//!   AVX-512, 256-bit loads read 3-5 % faster than 512-bit ones: see [`STREAMS`]);
//! - two concurrent streams per thread ([`STREAMS`] sub-ranges read in lockstep, each
//!   with two independent accumulators), so the core keeps more cache-line misses in
//!   flight than one stream does, where more streams spread the prefetchers thin;
//! - a buffer in 2 MiB pages (`crate::pages`), as the weights are;
//! - the threads of a [`Kernels`] pool, the same persistent pool decode runs on, each
//!   reading one contiguous, cache-line aligned share of one large buffer;
//! - best of several passes, each timed as a whole (start to the last thread done), as
//!   STREAM does; `scripts/bench/membw_check.sh` checks that the result is not below a
//!   C/OpenMP STREAM-style read (on machine D it reads 6-8 % above it).
//!
//! The data are summed as wrapping `u64` (exact and independent of order, so every ISA path
//! returns the scalar sum bit for bit, which the tests check), and the sum is checked
//! against the known fill, so no pass can be optimised away.

pub(crate) mod streams;

pub use streams::STREAMS;

use crate::Kernels;
use crate::PartsMut;
use crate::pool::chunk;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// `u64`s per 64-byte cache line: shares and the buffer start are aligned to lines.
const LINE: usize = 8;

/// One read kernel: the wrapping `u64` sum of a slice, with an id naming its ISA.
#[derive(Clone, Copy)]
pub struct ReadKernel {
    id: &'static str,
    sum: fn(&[u64]) -> u64,
}

impl std::fmt::Debug for ReadKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadKernel").field("id", &self.id).finish()
    }
}

impl ReadKernel {
    /// `"read/avx512"`, `"read/avx2"`, `"read/neon"` or `"read/scalar"`.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Wrapping sum of `data` (every element read once).
    pub fn sum(&self, data: &[u64]) -> u64 {
        (self.sum)(data)
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_read_kernels() -> Vec<ReadKernel> {
    let mut v = Vec::new();
    if let Some(sum) = crate::x86::avx512::membw::get() {
        v.push(ReadKernel {
            id: "read/avx512",
            sum,
        });
    }
    if let Some(sum) = crate::x86::avx2::membw::get() {
        v.push(ReadKernel {
            id: "read/avx2",
            sum,
        });
    }
    v
}

#[cfg(target_arch = "aarch64")]
fn simd_read_kernels() -> Vec<ReadKernel> {
    vec![ReadKernel {
        id: "read/neon",
        sum: crate::arm::neon::membw::sum,
    }]
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_read_kernels() -> Vec<ReadKernel> {
    Vec::new()
}

/// Every read kernel this CPU can run, widest loads first; the last is always scalar.
pub fn read_kernels() -> Vec<ReadKernel> {
    let mut v = simd_read_kernels();
    v.push(ReadKernel {
        id: "read/scalar",
        sum: crate::scalar::membw::sum,
    });
    v
}

/// Result of [`read_bandwidth`].
#[derive(Debug, Clone)]
pub struct ReadProbe {
    /// Id of the read kernel used.
    pub kernel: &'static str,
    /// Threads that read (the pool's).
    pub threads: usize,
    /// Bytes read per pass.
    pub bytes: usize,
    /// Timed passes.
    pub passes: usize,
    /// Bandwidth of the fastest pass, bytes per second.
    pub best_bytes_per_sec: f64,
    /// Bandwidth of every pass, bytes per second, in order.
    pub pass_bytes_per_sec: Vec<f64>,
}

/// Measures memory read bandwidth on the threads of `kernels`: fills a buffer of `bytes`
/// (rounded down to whole cache lines, at least one) in parallel (so each thread faults in
/// the pages it will read), reads it once untimed, then `passes` timed times with every
/// SIMD read kernel this CPU runs (the scalar one where there is none), the kernels taking
/// turns pass by pass, each thread summing its share in [`STREAMS`] streams. Reports the
/// kernel whose best pass was fastest, with its passes.
///
/// # Panics
/// If `passes == 0`, or the sum of a pass is not the sum of the data written (a kernel
/// bug: the probe would be measuring something else).
pub fn read_bandwidth(kernels: &Kernels, bytes: usize, passes: usize) -> ReadProbe {
    let all = read_kernels();
    let simd = &all[..all.len() - 1];
    let candidates = if simd.is_empty() { &all[..] } else { simd };
    read_bandwidth_of(kernels, candidates, bytes, passes)
}

/// [`read_bandwidth`] with an explicit read kernel (e.g. to compare ISA paths).
///
/// # Panics
/// As [`read_bandwidth`].
pub fn read_bandwidth_with(
    kernels: &Kernels,
    kernel: ReadKernel,
    bytes: usize,
    passes: usize,
) -> ReadProbe {
    read_bandwidth_of(kernels, &[kernel], bytes, passes)
}

/// The probe over `candidates` (at least one), taking turns pass by pass.
fn read_bandwidth_of(
    kernels: &Kernels,
    candidates: &[ReadKernel],
    bytes: usize,
    passes: usize,
) -> ReadProbe {
    assert!(passes > 0, "read_bandwidth: passes must be at least 1");
    let threads = kernels.threads();
    let lines = (bytes / (LINE * 8)).max(1);
    let n = lines * LINE;
    // One line of slack to start the buffer on a cache-line boundary; 2 MiB pages, as the
    // model's weights have (`crate::pages`): from 4 KiB pages this machine class reads 12-20 %
    // slower, which would flatter decode's roofline %.
    let mut storage = crate::pages::zeroed_vec_in_huge_pages::<u64>(n + LINE);
    let skip = storage.as_ptr().align_offset(LINE * 8).min(LINE);
    let buf = &mut storage[skip..skip + n];
    kernels.for_each_part_mut([PartsMut::even(buf, LINE)], &|_, [mut part]| {
        let start = part.start() as u64;
        for (j, x) in part.iter_mut().enumerate() {
            *x = start + j as u64;
        }
    });
    let buf = &storage[skip..skip + n];
    // Sum of 0..n, wrapping like the kernels (`n` is a multiple of 8, so `n / 2` is exact).
    let n64 = n as u64;
    let expected = (n64 / 2).wrapping_mul(n64 - 1);
    let total = AtomicU64::new(0);
    let pass = |kernel: &ReadKernel| {
        total.store(0, Ordering::Relaxed);
        let start = Instant::now();
        kernels.run_parallel(&|i| {
            let r = chunk(lines, threads, i);
            let s = kernel.sum(std::hint::black_box(&buf[r.start * LINE..r.end * LINE]));
            total.fetch_add(s, Ordering::Relaxed);
        });
        let secs = start.elapsed().as_secs_f64();
        let sum = std::hint::black_box(total.load(Ordering::Relaxed));
        assert_eq!(
            sum, expected,
            "read_bandwidth: {} summed wrongly",
            kernel.id
        );
        (n * 8) as f64 / secs
    };
    // One untimed pass per kernel (warms the pages and the code), then the timed rounds.
    for kernel in candidates {
        pass(kernel);
    }
    let mut per_kernel = vec![Vec::with_capacity(passes); candidates.len()];
    for _ in 0..passes {
        for (kernel, times) in candidates.iter().zip(&mut per_kernel) {
            times.push(pass(kernel));
        }
    }
    let best = |times: &[f64]| times.iter().copied().fold(0.0, f64::max);
    let (kernel, pass_bytes_per_sec) = candidates
        .iter()
        .zip(per_kernel)
        .max_by(|(_, a), (_, b)| best(a).total_cmp(&best(b)))
        .expect("at least one read kernel");
    ReadProbe {
        kernel: kernel.id,
        threads,
        bytes: n * 8,
        passes,
        best_bytes_per_sec: best(&pass_bytes_per_sec),
        pass_bytes_per_sec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known data whose wrapping sum is computed independently of any kernel.
    fn data(len: usize) -> Vec<u64> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            })
            .collect()
    }

    #[test]
    fn every_read_kernel_equals_the_plain_sum() {
        let kernels = read_kernels();
        assert_eq!(kernels.last().unwrap().id(), "read/scalar");
        let d = data(5000);
        // Lengths around the block and stream boundaries of every ISA, and odd offsets (so
        // unaligned starts are covered too).
        for len in [
            0, 1, 7, 8, 63, 64, 65, 127, 128, 255, 256, 257, 1000, 4096, 4999,
        ] {
            for off in [0, 1, 3] {
                let s = &d[off..off + len.min(d.len() - off)];
                let want = s.iter().fold(0u64, |a, &b| a.wrapping_add(b));
                for k in &kernels {
                    assert_eq!(k.sum(s), want, "{} on len {len} offset {off}", k.id());
                }
            }
        }
    }

    #[test]
    fn probe_reads_the_whole_buffer_on_every_thread_count() {
        for threads in [1, 2, 3] {
            let k = Kernels::new(threads);
            for kernel in read_kernels() {
                // 1 MiB + a partial line: rounded down to whole lines.
                let p = read_bandwidth_with(&k, kernel, (1 << 20) + 17, 2);
                assert_eq!(p.bytes, 1 << 20);
                assert_eq!(p.threads, threads);
                assert_eq!(p.pass_bytes_per_sec.len(), 2);
                assert!(p.best_bytes_per_sec > 0.0);
                assert_eq!(p.kernel, kernel.id());
            }
        }
        // Smaller than a line: one line.
        assert_eq!(read_bandwidth(&Kernels::new(2), 3, 1).bytes, 64);
        // The probe picks among the SIMD kernels where there are any.
        let p = read_bandwidth(&Kernels::new(2), 1 << 20, 2);
        let ids: Vec<_> = read_kernels().iter().map(ReadKernel::id).collect();
        assert!(ids.contains(&p.kernel), "{}", p.kernel);
        assert!(ids.len() == 1 || p.kernel != "read/scalar", "{}", p.kernel);
        assert_eq!(p.pass_bytes_per_sec.len(), 2);
    }
}
