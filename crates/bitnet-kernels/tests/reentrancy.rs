//! Parallel `Kernels` methods called from inside a job of the same `Kernels` run inline
//! instead of deadlocking. Each test runs on a thread of its own and fails after a timeout,
//! so a regression fails rather than hanging the suite.

mod common;

use bitnet_kernels::{Kernels, PartsMut, TernaryWeights, available};
use common::Rng;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on a new thread and returns its result, or fails after a minute.
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what}: no result after 60 s ({e}): deadlock?"))
}

#[test]
fn nested_run_parallel_runs_every_inner_part() {
    let hits = within_a_minute("nested run_parallel", || {
        let k = Kernels::new(2);
        let hits: Vec<AtomicU32> = (0..4).map(|_| AtomicU32::new(0)).collect();
        k.run_parallel(&|i| {
            k.run_parallel(&|j| {
                hits[i * 2 + j].fetch_add(1, Ordering::Relaxed);
            })
        });
        hits.iter()
            .map(|h| h.load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    });
    assert_eq!(hits, [1, 1, 1, 1]);
}

#[test]
fn a_matmul_inside_a_job_equals_the_same_matmul_outside() {
    // 256 x 512 weights: enough work that the matmul splits its rows over the pool.
    let (rows, cols) = (256, 512);
    for b in available() {
        let (direct, nested) = within_a_minute(b.id(), move || {
            let mut rng = Rng(7);
            let w = TernaryWeights {
                rows,
                cols,
                values: (0..rows * cols)
                    .map(|_| (rng.next() % 3) as i8 - 1)
                    .collect(),
                scale: 0.5,
            };
            let q: Vec<i8> = (0..cols).map(|_| rng.next() as i8).collect();
            let k = Kernels::with_backend(b, 2);
            let p = k.pack(&w);
            let mut direct = vec![0f32; rows];
            k.ternary_matmul(&p, &q, &[3.0], 1, &mut direct);
            // Both parts (the caller's and the worker's) run a whole matmul.
            let mut nested = vec![vec![0f32; rows]; 2];
            k.for_each_part_mut([PartsMut::chunks(&mut nested, 1)], &|_, [mut part]| {
                for y in part.iter_mut() {
                    k.ternary_matmul(&p, &q, &[3.0], 1, y);
                }
            });
            (direct, nested)
        });
        assert_eq!(nested, [direct.clone(), direct], "{}", b.id());
    }
}

#[test]
fn for_each_part_mut_nests() {
    let out = within_a_minute("nested for_each_part_mut", || {
        let k = Kernels::new(2);
        let mut out = vec![0u32; 8];
        k.for_each_part_mut([PartsMut::even(&mut out, 1)], &|i, [mut half]| {
            let start = half.start();
            k.for_each_part_mut([PartsMut::even(&mut half, 1)], &|j, [mut quarter]| {
                let first = start + quarter.start();
                for (c, v) in quarter.iter_mut().enumerate() {
                    *v = (100 * i + 10 * j + first + c) as u32;
                }
            });
        });
        out
    });
    assert_eq!(out, [0, 1, 12, 13, 104, 105, 116, 117]);
}
