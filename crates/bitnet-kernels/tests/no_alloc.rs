//! Proves the steady-state hot path does not touch the heap: a counting global allocator
//! (only in this test binary) sees zero allocations across repeated GEMV, GEMM,
//! quantisation, dense-head and parallel-parts calls, with 1 and 2 threads.

use bitnet_kernels::{Kernels, PartsMut, Q8Activations, Q8Matrix, TernaryWeights, available};
use bitnet_test_support::alloc::{Counting, fewest_allocations};
use half::f16;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test function only: the counter is global, and other tests running in parallel
/// would allocate while it counts.
#[test]
fn hot_path_allocates_nothing_after_warm_up() {
    let (rows, cols, n) = (160, 700, 3);
    let values = (0..rows * cols).map(|i| (i % 3) as i8 - 1).collect();
    let w = TernaryWeights {
        rows,
        cols,
        values,
        scale: 0.7,
    };
    let x: Vec<f32> = (0..n * cols)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let head: Vec<f16> = (0..rows * cols)
        .map(|i| f16::from_f32((i % 7) as f32 / 7.0))
        .collect();
    let q8_cols = 640;
    let q8 = Q8Matrix::quantize(rows, q8_cols, 1, |r, buf| {
        for (c, v) in buf.iter_mut().enumerate() {
            *v = ((r * 31 + c * 7) % 13) as f32 / 13.0 - 0.5;
        }
    })
    .unwrap();
    let mut act = Q8Activations::new(n, q8_cols);
    for ops in available() {
        for threads in [1, 2] {
            let k = Kernels::with_backend(ops, threads);
            let p = k.pack(&w);
            let mut q = vec![0i8; n * cols];
            let mut s = vec![0f32; n];
            let mut y = vec![0f32; n * rows];
            let mut scratch = vec![0f32; 2 * cols];
            let bounds = [0, 1, n];
            let mut run = |k: &Kernels| {
                k.quantize_rows(&x[..cols], 1, &mut q[..cols], &mut s[..1]);
                k.ternary_matmul(&p, &q[..cols], &s[..1], 1, &mut y[..rows]);
                k.quantize_rows(&x, n, &mut q, &mut s);
                k.ternary_matmul(&p, &q, &s, n, &mut y);
                k.ternary_matmul_f32(&p, &x, n, &mut y);
                k.f16_matmul(&head, rows, cols, &x[..cols], 1, &mut y[..rows]);
                k.q8_matmul(&q8, &x[..q8_cols], 1, &mut act, &mut y[..rows]);
                k.q8_matmul(&q8, &x[..n * q8_cols], n, &mut act, &mut y);
                let (y, s) = (&mut y[..n * rows], &mut scratch[..threads * cols]);
                k.for_each_part_mut(
                    [
                        PartsMut::at(y, &bounds[..=threads]),
                        PartsMut::chunks(s, cols),
                    ],
                    &|_, [mut y, mut s]| {
                        s[0] = 1.0;
                        y.fill(s[0]);
                    },
                );
            };
            run(&k); // warm-up (thread start-up, lazy statics)
            let allocs = fewest_allocations(3, || {
                for _ in 0..20 {
                    run(&k);
                }
            });
            assert_eq!(
                allocs,
                0,
                "{} threads={threads}: {allocs} heap allocations",
                ops.id()
            );
            assert!(y.iter().all(|v| v.is_finite()));
        }
    }
}
