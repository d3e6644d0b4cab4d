//! Ternary matmul at the BitNet b1.58 2B4T shapes, per available ISA, 1 and 2 threads, at
//! n = 1 (decode) and n = 128 (prefill) tokens, reported in GOPS (criterion's `elem/s`,
//! counting `2 * rows * cols * n` operations: a multiply and an add per weight and token;
//! at n = 1 the packed weights streamed are `GOPS / 8` GB/s), next to a memory-read
//! bandwidth probe (sum of a 1 GiB buffer of u64) measured in the same run.
//!
//! The real model's ternary weights (~0.5 GB packed) never fit in cache, so every
//! benchmark cycles through enough copies of the packed matrix (>= 512 MiB in total,
//! `BITNET_BENCH_COLD_MIB` to change) that each call streams its weights from DRAM, not
//! from L3 (up to 300 MiB on the Xeons measured).
//!
//! Dense f16, bf16, Q8_0, Q6_K and Q4_K head groups measure the other large per-token weight
//! stream.
//!
//! Quick run: `cargo bench -p bitnet-kernels -- --warm-up-time 1 --measurement-time 3`.
//!
//! Run as a test (`cargo test`/`cargo nextest` with `--all-targets`, no `--bench` argument),
//! criterion calls each benchmark once: every group then runs on small stand-in shapes
//! (same code paths, every ISA and thread count) so the suite checks the benchmarks run
//! without spending seconds per test building 2B4T-sized inputs in a debug build.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use bitnet_formats::{BlockQ4K, BlockQ6K};
use bitnet_kernels::{
    KBlock, KQuantMatrix, Kernels, OpKind, PackedTernary, Q8Activations, Q8KActivations, Q8Matrix,
    TernaryWeights, available,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// (name, rows = out features, cols = in features) of the 2B4T linears.
const SHAPES: [(&str, usize, usize); 4] = [
    ("attn_qo", 2560, 2560),
    ("attn_kv", 640, 2560),
    ("ffn_gate_up", 6912, 2560),
    ("ffn_down", 2560, 6912),
];

/// Benchmarking (`cargo bench` passes `--bench`), not a test run of the benchmarks.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A dimension of the real shapes, or its stand-in (/ 40, whole 256-column blocks) in a
/// test run.
fn dim(real: usize) -> usize {
    if benchmarking() {
        real
    } else {
        (real / 40).next_multiple_of(256)
    }
}

fn cold_bytes() -> usize {
    if !benchmarking() {
        return 1 << 20;
    }
    std::env::var("BITNET_BENCH_COLD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512usize)
        << 20
}

fn weights(rows: usize, cols: usize, seed: u64) -> TernaryWeights {
    let values = bitnet_test_support::data::ternary_values(rows * cols, seed);
    TernaryWeights {
        rows,
        cols,
        values,
        scale: 0.8,
    }
}

/// Sum of u64 with eight independent lanes so the adds keep up with memory.
fn sum(buf: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    for ch in buf.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(ch) {
            *a = a.wrapping_add(*v);
        }
    }
    acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
}

fn memory_probe(c: &mut Criterion) {
    let mib = if benchmarking() { 1024 } else { 4 };
    let words = (mib << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let mut g = c.benchmark_group("memory_read_probe");
    g.sample_size(10);
    g.throughput(Throughput::Bytes((words * 8) as u64));
    g.bench_function(format!("sum_u64_{mib}MiB/t1"), |b| {
        b.iter(|| black_box(sum(black_box(&buf))))
    });
    g.bench_function(format!("sum_u64_{mib}MiB/t2"), |b| {
        b.iter(|| {
            let (lo, hi) = buf.split_at(buf.len() / 2);
            std::thread::scope(|s| {
                let h = s.spawn(|| sum(black_box(hi)));
                let a = sum(black_box(lo));
                black_box(a.wrapping_add(h.join().unwrap()))
            })
        })
    });
    g.finish();
}

fn ternary(c: &mut Criterion) {
    eprintln!("cpu features: {:?}", bitnet_kernels::cpu_features());
    for (name, rows, cols) in SHAPES {
        let (rows, cols) = (dim(rows), dim(cols));
        let w = weights(rows, cols, rows as u64 * 31 + cols as u64);
        let mut g = c.benchmark_group(format!("ternary_{name}_{rows}x{cols}"));
        g.sample_size(10);
        for ops in available() {
            let packed_one = Kernels::with_backend(ops, 1).pack(&w);
            let copies = cold_bytes().div_ceil(packed_one.size_bytes()).max(1);
            let packed: Vec<PackedTernary> = (0..copies).map(|_| packed_one.clone()).collect();
            for n in [1usize, 128] {
                // Scalar at batch 128 takes seconds per call; it is the reference, not a contender.
                if n > 1 && ops.isa() == "scalar" {
                    continue;
                }
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
                    .collect();
                for threads in [1usize, 2] {
                    let k = Kernels::with_backend(ops, threads);
                    let mut q = vec![0i8; n * cols];
                    let mut s = vec![0f32; n];
                    k.quantize_rows(&x, n, &mut q, &mut s);
                    let mut y = vec![0f32; n * rows];
                    g.throughput(Throughput::Elements((2 * rows * cols * n) as u64));
                    let id = BenchmarkId::new(format!("{}/n{n}", ops.id()), format!("t{threads}"));
                    let mut i = 0;
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            i = (i + 1) % copies;
                            k.ternary_matmul(&packed[i], &q, &s, n, &mut y);
                            black_box(&y);
                        })
                    });
                }
            }
        }
        g.finish();
    }
}

/// Rows of the 2B4T head (its whole vocabulary): 657 MB in f16. A slice would not do: the
/// Xeons measured have up to 300 MiB of L3.
const HEAD_ROWS: usize = 128_256;

/// A float matmul of [`Kernels`] (`f16_matmul`, `bf16_matmul`).
type FloatMatmul<T> = fn(&Kernels, &[T], usize, usize, &[f32], usize, &mut [f32]);

/// The full head in a 16-bit float type `T` (deterministic values in -1..1), as group
/// `{name}_head_{rows}x{cols}`.
fn float_head<T>(
    c: &mut Criterion,
    name: &str,
    op: OpKind,
    from: fn(f32) -> T,
    run: FloatMatmul<T>,
) {
    let (rows, cols) = (dim(HEAD_ROWS), dim(2560));
    let w: Vec<T> = (0..rows * cols)
        .map(|i| from(((i * 7919) % 2001) as f32 / 1000.0 - 1.0))
        .collect();
    let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 13.0).collect();
    let mut y = vec![0f32; rows];
    let name = format!("{name}_head_{rows}x{cols}");
    head_group(c, name, rows * cols * 2, op, |k| {
        run(k, &w, rows, cols, &x, 1, &mut y);
        black_box(&y);
    });
}

/// The dense f16 head (tied embeddings) is the other big weight stream per token.
fn f16_head(c: &mut Criterion) {
    float_head(
        c,
        "f16",
        OpKind::F16,
        half::f16::from_f32,
        Kernels::f16_matmul,
    );
}

/// The same head in bf16 (a bf16 checkpoint's, kept by `bitnet-st2gguf --embed-type bf16`):
/// the same bytes as f16, widened by a shift instead of `vcvtph2ps`.
fn bf16_head(c: &mut Criterion) {
    float_head(
        c,
        "bf16",
        OpKind::BF16,
        half::bf16::from_f32,
        Kernels::bf16_matmul,
    );
}

/// One head group: for every distinct kernel id `op` dispatches to, `run` on 1 and 2
/// threads, throughput counted as the matrix's `bytes`.
fn head_group(
    c: &mut Criterion,
    name: String,
    bytes: usize,
    op: OpKind,
    mut run: impl FnMut(&Kernels),
) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut seen = Vec::new();
    for ops in available() {
        let id = ops.kernel_id(op);
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        for threads in [1usize, 2] {
            let k = Kernels::with_backend(ops, threads);
            g.bench_function(
                BenchmarkId::new(format!("{id}/n1"), format!("t{threads}")),
                |b| b.iter(|| run(&k)),
            );
        }
    }
    g.finish();
}

/// The same head in Q8_0 (`--head-type q8_0`): 1.0625 bytes per weight.
fn q8_head(c: &mut Criterion) {
    let (rows, cols) = (dim(HEAD_ROWS), dim(2560));
    let w = Q8Matrix::quantize(rows, cols, 2, |r, buf| {
        for (k, v) in buf.iter_mut().enumerate() {
            *v = (((r * cols + k) * 7919) % 2001) as f32 / 1000.0 - 1.0;
        }
    })
    .expect("whole blocks of columns");
    let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 13.0).collect();
    let mut act = Q8Activations::new(1, cols);
    let mut y = vec![0f32; rows];
    let name = format!("q8_head_{rows}x{cols}");
    head_group(c, name, w.size_bytes(), OpKind::Q8_0, |k| {
        k.q8_matmul(&w, &x, 1, &mut act, &mut y);
        black_box(&y);
    });
}

/// A head of random `B` blocks, each with finite scales at `scales` (byte offsets in a
/// block): quantising 328 M weights with ggml's search would take longer than the benchmark.
fn random_kquant<B: KBlock>(rows: usize, cols: usize, scales: &[usize]) -> KQuantMatrix<B> {
    let size = size_of::<B>();
    let mut bytes = vec![0u8; rows * cols / 256 * size];
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for b in bytes.chunks_exact_mut(size) {
        for v in b.iter_mut() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            *v = (s >> 56) as u8;
        }
        for &at in scales {
            b[at..at + 2].copy_from_slice(&half::f16::from_f32(0.001).to_le_bytes());
        }
    }
    KQuantMatrix::from_ggml_blocks(rows, cols, &bytes).expect("whole blocks")
}

/// One K-quant head group: the full head in random `B` blocks.
fn kquant_head<B: KBlock>(c: &mut Criterion, name: &str, scales: &[usize]) {
    let (rows, cols) = (dim(HEAD_ROWS), dim(2560));
    let w = random_kquant::<B>(rows, cols, scales);
    let x: Vec<f32> = (0..cols).map(|i| (i % 13) as f32 / 13.0).collect();
    let mut act = Q8KActivations::new(1, cols);
    let mut y = vec![0f32; rows];
    let name = format!("{name}_head_{rows}x{cols}");
    head_group(c, name, w.size_bytes(), B::OP, |k| {
        k.kquant_matmul(&w, &x, 1, &mut act, &mut y);
        black_box(&y);
    });
}

/// The same head in Q6_K (bitnet.cpp's and ik_llama.cpp's recommended head, kept as stored):
/// 0.82 bytes per weight.
fn q6k_head(c: &mut Criterion) {
    kquant_head::<BlockQ6K>(c, "q6k", &[208]);
}

/// The same head in Q4_K: 0.5625 bytes per weight.
fn q4k_head(c: &mut Criterion) {
    kquant_head::<BlockQ4K>(c, "q4k", &[0, 2]);
}

criterion_group!(
    benches,
    memory_probe,
    ternary,
    f16_head,
    bf16_head,
    q8_head,
    q6k_head,
    q4k_head
);
criterion_main!(benches);
