//! Every ISA implementation available on this CPU equals the scalar reference exactly, and
//! the scalar reference equals a naive f64 computation within float tolerance.
//!
//! Shapes are random (rows 1..300, cols 1..1100 including non-multiples of the 128-column
//! block, n 1..5 tokens); data come from a seeded generator so a failing case is reproducible
//! from the printed proptest inputs.

mod common;

use bitnet_kernels::{
    Backend, Kernels, OpKind, TernaryWeights, available, by_id, quantize_row_reference,
};
use common::Rng;
use half::{bf16, f16};
use proptest::prelude::*;

fn weights(rng: &mut Rng, rows: usize, cols: usize) -> TernaryWeights {
    TernaryWeights {
        rows,
        cols,
        values: (0..rows * cols)
            .map(|_| (rng.next() % 3) as i8 - 1)
            .collect(),
        scale: 0.5 + rng.f32().abs() * 2.0,
    }
}

fn ops_name(ops: &dyn Backend) -> &'static str {
    ops.id()
}

#[test]
fn scalar_is_always_available_and_ids_resolve() {
    let all = available();
    assert_eq!(all.last().unwrap().id(), "i2s/scalar");
    for ops in &all {
        assert_eq!(by_id(ops.id()).unwrap().id(), ops.id());
        assert!(ops.id().starts_with("i2s/"));
        assert!(ops.id().ends_with(ops.isa()));
    }
    assert_eq!(bitnet_kernels::detect().id(), all[0].id());
    eprintln!(
        "available: {:?}, cpu features: {:?}",
        all.iter().map(|o| ops_name(*o)).collect::<Vec<_>>(),
        bitnet_kernels::cpu_features()
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        assert!(by_id("i2s/avx2").is_some());
    }
    #[cfg(target_arch = "aarch64")]
    assert!(by_id("i2s/neon").is_some());
}

#[test]
fn quantize_reference_known_values() {
    // max|x| = 2 -> s = 63.5; 0.5 * 63.5 = 31.75 -> 32; ties round to even:
    // x = 1/127 * k / 2 style values land exactly on .5 with s = 127.
    let x = [2.0f32, -1.0, 0.5, 0.0];
    let mut q = [0i8; 4];
    let s = quantize_row_reference(&x, &mut q);
    assert_eq!(s, 63.5);
    assert_eq!(q, [127, -64, 32, 0]); // -63.5 -> -64 (even), 31.75 -> 32
    let x = [1.0f32, 0.5 / 127.0 * 1.0, 1.5 / 127.0, 2.5 / 127.0];
    let s = quantize_row_reference(&x, &mut q);
    assert_eq!(s, 127.0);
    let expect: Vec<i8> = x
        .iter()
        .map(|v| (v * 127.0f32).round_ties_even() as i8)
        .collect();
    assert_eq!(q.to_vec(), expect);
    // All-zero rows use the 1e-5 floor.
    let s = quantize_row_reference(&[0.0; 3], &mut q[..3]);
    assert_eq!(s, 127.0 / 1e-5);
    assert_eq!(&q[..3], &[0, 0, 0]);
}

fn check_quantize(x: &[f32]) {
    let mut q_ref = vec![0i8; x.len()];
    let s_ref = quantize_row_reference(x, &mut q_ref);
    for ops in available() {
        let mut q = vec![0i8; x.len()];
        let mut s = [0f32];
        ops.quantize_rows(x, x.len(), &mut q, &mut s);
        assert_eq!(s[0].to_bits(), s_ref.to_bits(), "{}: scale", ops.id());
        assert_eq!(q, q_ref, "{}: codes", ops.id());
    }
}

#[test]
fn quantize_special_values() {
    let mut x: Vec<f32> = (0..77).map(|i| (i as f32 - 38.0) / 76.0).collect();
    check_quantize(&x);
    x[5] = f32::NAN;
    x[40] = f32::NAN;
    check_quantize(&x);
    x[7] = f32::INFINITY;
    check_quantize(&x);
    check_quantize(&[]);
    check_quantize(&[1e-30; 40]);
}

/// `y[t][r]` computed in f64 from the same int8 activations.
fn naive(w: &TernaryWeights, q: &[i8], scales: &[f32], n: usize) -> Vec<f64> {
    let mut y = vec![0.0; n * w.rows];
    for t in 0..n {
        for r in 0..w.rows {
            let dot: i64 = (0..w.cols)
                .map(|c| i64::from(w.values[r * w.cols + c]) * i64::from(q[t * w.cols + c]))
                .sum();
            y[t * w.rows + r] = dot as f64 / f64::from(scales[t]) * f64::from(w.scale);
        }
    }
    y
}

fn run_ternary(rows: usize, cols: usize, n: usize, seed: u64) {
    let mut rng = Rng(seed);
    let w = weights(&mut rng, rows, cols);
    // Full int8 range, including -128 (which real quantisation never produces).
    let q: Vec<i8> = (0..n * cols).map(|_| rng.next() as i8).collect();
    let scales: Vec<f32> = (0..n).map(|_| 1.0 + rng.f32().abs() * 100.0).collect();

    let scalar = Kernels::with_backend(by_id("i2s/scalar").unwrap(), 1);
    let pw = scalar.pack(&w);
    let mut y_ref = vec![0f32; n * rows];
    scalar.ternary_matmul(&pw, &q, &scales, n, &mut y_ref);
    let exact = naive(&w, &q, &scales, n);
    for (i, (&a, &b)) in y_ref.iter().zip(&exact).enumerate() {
        // One int->f32 conversion (exact below 2^24), one division and one multiplication.
        let tol = 4.0 * f64::from(f32::EPSILON) * b.abs() + 1e-30;
        assert!(
            (f64::from(a) - b).abs() <= tol,
            "scalar vs f64 at {i}: {a} vs {b}"
        );
    }
    for ops in available() {
        for threads in [1, 2] {
            let k = Kernels::with_backend(ops, threads);
            let p = k.pack(&w);
            let mut y = vec![f32::NAN; n * rows];
            k.ternary_matmul(&p, &q, &scales, n, &mut y);
            let same = y
                .iter()
                .zip(&y_ref)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{} threads={threads} {rows}x{cols} n={n}: differs from scalar",
                ops.id()
            );
        }
    }
}

/// `ternary_matmuls` (several matrices on one input, one pool run) equals separate
/// `ternary_matmul` calls bit for bit, on every ISA and thread count; the third matrix has
/// fewer rows than some thread counts.
fn run_ternary_group(rows: [usize; 3], cols: usize, n: usize, seed: u64) {
    let mut rng = Rng(seed);
    let ws = rows.map(|r| weights(&mut rng, r, cols));
    let q: Vec<i8> = (0..n * cols).map(|_| rng.next() as i8).collect();
    let scales: Vec<f32> = (0..n).map(|_| 1.0 + rng.f32().abs() * 100.0).collect();
    for ops in available() {
        for threads in [1, 2, 3] {
            let k = Kernels::with_backend(ops, threads);
            let ps = ws.each_ref().map(|w| k.pack(w));
            let separate = ps.each_ref().map(|p| {
                let mut y = vec![f32::NAN; n * p.rows()];
                k.ternary_matmul(p, &q, &scales, n, &mut y);
                y
            });
            let [mut a, mut b, mut c] = rows.map(|r| vec![f32::NAN; n * r]);
            k.ternary_matmuls(
                [&ps[0], &ps[1], &ps[2]],
                &q,
                &scales,
                n,
                [&mut a, &mut b, &mut c],
            );
            for (got, want) in [a, b, c].iter().zip(&separate) {
                assert!(
                    got.iter()
                        .zip(want)
                        .all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{} threads={threads} rows {rows:?} cols {cols} n={n}: differs",
                    ops.id()
                );
            }
        }
    }
}

fn run_quantize_and_float(rows: usize, cols: usize, n: usize, seed: u64) {
    let mut rng = Rng(seed ^ 0xABCD);
    let w = weights(&mut rng, rows, cols);
    let x: Vec<f32> = (0..n * cols).map(|_| rng.f32() * 3.0).collect();
    let wf16: Vec<f16> = (0..rows * cols).map(|_| f16::from_f32(rng.f32())).collect();
    let wf32: Vec<f32> = wf16.iter().map(|v| v.to_f32()).collect();
    // bf16 over a wider range than f16's (its exponent is f32's), and its widened values.
    let wbf16: Vec<bf16> = (0..rows * cols)
        .map(|i| bf16::from_f32(rng.f32() * 2f32.powi((i % 41) as i32 - 20)))
        .collect();
    let wbf32: Vec<f32> = wbf16.iter().map(|v| v.to_f32()).collect();
    for ops in available() {
        let k = Kernels::with_backend(ops, 2);
        // Quantisation: identical to the reference, row by row.
        let mut q = vec![0i8; n * cols];
        let mut s = vec![0f32; n];
        k.quantize_rows(&x, n, &mut q, &mut s);
        for t in 0..n {
            let mut qr = vec![0i8; cols];
            let sr = quantize_row_reference(&x[t * cols..(t + 1) * cols], &mut qr);
            assert_eq!(s[t].to_bits(), sr.to_bits(), "{}", ops.id());
            assert_eq!(q[t * cols..(t + 1) * cols], qr[..], "{}", ops.id());
        }
        // Float paths vs f64, relative to the magnitude of the summed terms.
        let p = k.pack(&w);
        let mut y = vec![0f32; n * rows];
        k.ternary_matmul_f32(&p, &x, n, &mut y);
        let mut yh = vec![0f32; n * rows];
        k.f16_matmul(&wf16, rows, cols, &x, n, &mut yh);
        let mut yf = vec![0f32; n * rows];
        k.f32_matmul(&wf32, rows, cols, &x, n, &mut yf);
        // bf16: the f32 kernel on the widened weights, bit for bit (the contract).
        let mut yb = vec![0f32; n * rows];
        k.bf16_matmul(&wbf16, rows, cols, &x, n, &mut yb);
        let mut ybf = vec![0f32; n * rows];
        k.f32_matmul(&wbf32, rows, cols, &x, n, &mut ybf);
        assert_eq!(
            yb.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            ybf.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{} bf16 differs from f32 on the widened weights",
            ops.id()
        );
        for t in 0..n {
            for r in 0..rows {
                let xt = &x[t * cols..(t + 1) * cols];
                let (mut e, mut mag) = (0f64, 0f64);
                let (mut d, mut dmag) = (0f64, 0f64);
                for c in 0..cols {
                    let term = f64::from(w.values[r * cols + c]) * f64::from(xt[c]);
                    e += term;
                    mag += term.abs();
                    let dterm = f64::from(wf32[r * cols + c]) * f64::from(xt[c]);
                    d += dterm;
                    dmag += dterm.abs();
                }
                let e = e * f64::from(w.scale);
                let mag = mag * f64::from(w.scale);
                let got = f64::from(y[t * rows + r]);
                assert!(
                    (got - e).abs() <= 1e-5 * mag + 1e-6,
                    "{} f32 ternary: {got} vs {e}",
                    ops.id()
                );
                for (name, got) in [("f16", yh[t * rows + r]), ("f32", yf[t * rows + r])] {
                    let got = f64::from(got);
                    assert!(
                        (got - d).abs() <= 1e-5 * dmag + 1e-6,
                        "{} {name} dense: {got} vs {d}",
                        ops.id()
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn ternary_every_isa_equals_scalar(rows in 1usize..300, cols in 1usize..1100, n in 1usize..13, seed: u64) {
        run_ternary(rows, cols, n, seed);
    }

    #[test]
    fn ternary_batches_equal_scalar(rows in 16usize..80, cols in 1usize..700, n in 16usize..70, seed: u64) {
        run_ternary(rows, cols, n, seed);
    }

    #[test]
    fn ternary_groups_equal_separate_calls(ra in 1usize..300, rb in 1usize..300, rc in 1usize..4, cols in 1usize..1100, n in 1usize..6, seed: u64) {
        run_ternary_group([ra, rb, rc], cols, n, seed);
    }

    #[test]
    fn quantize_and_float_paths(rows in 1usize..100, cols in 1usize..1100, n in 1usize..5, seed: u64) {
        run_quantize_and_float(rows, cols, n, seed);
    }

    #[test]
    fn quantize_every_isa_equals_reference(len in 0usize..700, seed: u64, scale in -8i32..8) {
        let mut rng = Rng(seed);
        let m = 2f32.powi(scale);
        // Values on the half-integer grid of s make ties common.
        let x: Vec<f32> = (0..len).map(|i| if i % 3 == 0 { (rng.next() % 255) as f32 / 2.0 - 63.5 } else { rng.f32() * m }).collect();
        check_quantize(&x);
    }
}

#[test]
fn fixed_edge_shapes() {
    // Exact block multiples, one-off tails, GEMM tiles of 1..=8, rows past the 8-token tile's
    // 4096-column limit, and more than a token chunk.
    for &(rows, cols, n) in &[
        (1, 1, 1),
        (3, 128, 1),
        (17, 127, 2),
        (33, 129, 3),
        (16, 256, 4),
        (40, 384, 5),
        (7, 2560, 1),
        (20, 300, 70),
        (64, 1024, 9),
        (24, 4096, 8),
        (9, 4224, 8),
        (5, 640, 13),
        // Prompt-sized batches (the AMX backend's tile GEMM from 16 tokens): whole and
        // partial 16-row tiles and 16-token tiles, several groups of 64 tokens, rows padded
        // to 256 columns.
        (32, 256, 16),
        (48, 512, 17),
        (40, 2560, 33),
        (130, 768, 100),
        (33, 300, 64),
        (64, 1100, 129),
    ] {
        run_ternary(rows, cols, n, (rows * 7919 + cols * 31 + n) as u64);
    }
}

#[test]
fn dispatch_counts_are_recorded() {
    let k = Kernels::new(1);
    let w = TernaryWeights {
        rows: 4,
        cols: 8,
        values: vec![1; 32],
        scale: 1.0,
    };
    let p = k.pack(&w);
    let (q, s) = (vec![1i8; 8 * 2], vec![1.0f32; 2]);
    let mut y = vec![0f32; 8];
    k.ternary_matmul(&p, &q[..8], &s[..1], 1, &mut y[..4]);
    k.ternary_matmul(&p, &q[..8], &s[..1], 1, &mut y[..4]);
    k.ternary_matmul(&p, &q, &s, 2, &mut y);
    assert_eq!(y, vec![8.0; 8]);
    let id = k.backend().kernel_id(OpKind::Ternary);
    assert_eq!(
        k.dispatch_counts(),
        vec![(format!("{id}:gemv"), 2), (format!("{id}:gemm"), 1)]
    );
}
