//! Is Burn fast enough for the hot path? One 2560x2560 BitLinear (BitNet 2B's hidden size)
//! at batch 1 (decode) and 128 (prefill), three ways:
//!
//! - `burn_ext`: [`bitnet_burn::ternary_linear`] on `NdArray<f32>` (tensor in, tensor out);
//! - `kernels`: the same kernels called directly on slices with reused buffers, as the
//!   engine does;
//! - `burn_f32_matmul`: a plain Burn model's linear layer, `x.matmul(W^T)` with the weight
//!   dequantised to dense f32 `[in, out]` ahead of time (Burn's own CPU matmul).
//!
//! All with one thread (burn-ndarray is built without its `multi-threads` feature).
//! Run: `cargo bench -p bitnet-burn --bench burn_vs_kernels`.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use bitnet_burn::{TernaryLinearWeights, ternary_linear};
use bitnet_kernels::{Kernels, TernaryWeights};
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

const DIM: usize = 2560;

/// Deterministic pseudo-random stream (SplitMix64), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng(7);
    let tw = TernaryWeights {
        rows: DIM,
        cols: DIM,
        values: (0..DIM * DIM).map(|_| (rng.next() % 3) as i8 - 1).collect(),
        scale: 0.0123,
    };
    let kernels = Arc::new(Kernels::new(1));
    let w = TernaryLinearWeights::new(kernels.clone(), &tw).expect("valid weights");
    let device = Default::default();
    // W^T dense in f32, stored `[in, out]` and contiguous as burn-nn's `Linear` keeps it.
    let dense_t: Vec<f32> = (0..DIM * DIM)
        .map(|i| f32::from(tw.values[(i % DIM) * DIM + i / DIM]) * tw.scale)
        .collect();
    let w_t = Tensor::<NdArray, 2>::from_data(TensorData::new(dense_t, [DIM, DIM]), &device);

    let mut group = c.benchmark_group(format!("bitlinear_{DIM}x{DIM}_{}", kernels.backend().id()));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in [1usize, 128] {
        let x: Vec<f32> = (0..n * DIM).map(|_| rng.unit()).collect();
        let xt = Tensor::<NdArray, 2>::from_data(TensorData::new(x.clone(), [n, DIM]), &device);
        group.throughput(Throughput::Elements((n * DIM * DIM) as u64));

        group.bench_with_input(BenchmarkId::new("burn_ext", n), &n, |b, _| {
            b.iter(|| ternary_linear(black_box(xt.clone()), &w, true).expect("ok"))
        });
        let (mut q, mut s, mut y) = (vec![0i8; n * DIM], vec![0f32; n], vec![0f32; n * DIM]);
        group.bench_with_input(BenchmarkId::new("kernels", n), &n, |b, _| {
            b.iter(|| {
                kernels.quantize_rows(black_box(&x), n, &mut q, &mut s);
                kernels.ternary_matmul(w.packed(), &q, &s, n, &mut y);
            })
        });
        group.bench_with_input(BenchmarkId::new("burn_f32_matmul", n), &n, |b, _| {
            b.iter(|| black_box(xt.clone()).matmul(w_t.clone()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
