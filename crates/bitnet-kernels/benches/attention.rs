//! Decode attention ([`Kernels::kv_causal`] with a tile of one token) at the 2B4T shape: one
//! KV head (head dim 128) and the four query heads sharing it, over 512 to 4096 cached
//! positions, f16 and f32 caches, per available ISA on one thread, reported as the cache
//! bytes read per second (keys and values; criterion's `B/s`).
//!
//! Two working sets: `hot` reads one KV head again and again (it stays in L2/L3, so the
//! figure is the kernel's compute rate), `cold` cycles through enough KV heads (>= 512 MiB,
//! `BITNET_BENCH_COLD_MIB` to change) that every call streams its rows from DRAM, as
//! decoding does (30 layers x 5 KV heads at 2048 positions are 157 MB in f16). The gap
//! between the two is what memory costs; `hot` far above `cold` means the kernel waits on
//! memory, `hot` near `cold` that it is compute-bound.
//!
//! Quick run: `cargo bench -p bitnet-kernels --bench attention -- --warm-up-time 1
//! --measurement-time 3`. Run as a test (no `--bench` argument), each benchmark runs once
//! on 64 positions.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use bitnet_kernels::{Kernels, KvData, KvKeys, KvRows, available, causal_work_len};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use half::f16;
use std::hint::black_box;

/// Head dimension and query heads per KV head of 2B4T.
const HEAD_DIM: usize = 128;
const GROUP: usize = 4;

/// Benchmarking (`cargo bench` passes `--bench`), not a test run of the benchmarks.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn cold_bytes() -> usize {
    std::env::var("BITNET_BENCH_COLD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512usize)
        << 20
}

/// One KV head's keys and values as `copies` separate heads, in one element type.
enum Cache {
    F32(Vec<f32>, Vec<f32>),
    F16(Vec<f16>, Vec<f16>),
}

impl Cache {
    fn new(half: bool, rows: usize, copies: usize) -> Self {
        let n = rows * HEAD_DIM * copies;
        let val = |i: usize, s: usize| ((i * s) % 2001) as f32 / 1000.0 - 1.0;
        if half {
            Cache::F16(
                (0..n).map(|i| f16::from_f32(val(i, 7919))).collect(),
                (0..n).map(|i| f16::from_f32(val(i, 104_729))).collect(),
            )
        } else {
            Cache::F32(
                (0..n).map(|i| val(i, 7919)).collect(),
                (0..n).map(|i| val(i, 104_729)).collect(),
            )
        }
    }

    /// Keys and values of copy `i`, `rows` positions (a multiple of the key block).
    fn head(&self, i: usize, rows: usize) -> (KvKeys<'_>, KvRows<'_>) {
        let r = i * rows * HEAD_DIM..(i + 1) * rows * HEAD_DIM;
        let (k, v) = match self {
            Cache::F32(k, v) => (KvData::F32(&k[r.clone()]), KvData::F32(&v[r])),
            Cache::F16(k, v) => (KvData::F16(&k[r.clone()]), KvData::F16(&v[r])),
        };
        (
            KvKeys::new(k, HEAD_DIM, rows),
            KvRows::new(v, HEAD_DIM, 0, HEAD_DIM, rows),
        )
    }
}

fn decode(c: &mut Criterion) {
    let positions: &[usize] = if benchmarking() {
        &[512, 2048, 4096]
    } else {
        &[64]
    };
    let q: Vec<f32> = (0..GROUP * HEAD_DIM)
        .map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5)
        .collect();
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    for &rows in positions {
        let mut work = vec![0f32; causal_work_len(rows, GROUP, HEAD_DIM)];
        for half in [true, false] {
            let ty = if half { "f16" } else { "f32" };
            let bytes = 2 * rows * HEAD_DIM * if half { 2 } else { 4 };
            let cold = if benchmarking() {
                cold_bytes().div_ceil(bytes)
            } else {
                2
            };
            let mut g =
                c.benchmark_group(format!("kv_causal_decode_{ty}_{rows}x{HEAD_DIM}_g{GROUP}"));
            g.sample_size(10);
            g.throughput(Throughput::Bytes(bytes as u64));
            let cache = Cache::new(half, rows, cold);
            for ops in available() {
                let k = Kernels::with_backend(ops, 1);
                for (set, copies) in [("hot", 1), ("cold", cold)] {
                    let mut i = 0;
                    let id = BenchmarkId::new(ops.isa(), set);
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            i = (i + 1) % copies;
                            let (kr, vr) = cache.head(i, rows);
                            k.kv_causal(&kr, &vr, &q, GROUP, scale, &mut work, &mut out);
                            black_box(&out);
                        })
                    });
                }
            }
            g.finish();
        }
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
