//! Q6_K (the head bitnet.cpp and ik_llama.cpp files carry): ggml's Q8_K activation
//! quantisation by hand, every ISA equal to the scalar reference bit for bit (any shape, token
//! count and thread count), the scalar reference against an f64 product of the dequantised
//! operands, and ggml's Q6_K quantiser's round trip. (That the quantiser writes the bytes
//! bitnet.cpp's `llama-quantize` writes is checked in bitnet-engine's `dense_heads` test,
//! against a file it wrote.)

mod common;

use bitnet_kernels::q6k::{QK_K, quantize_row_q6_k};
use bitnet_kernels::{FormatError, Kernels, OpKind, Q6KMatrix, Q8KActivations, available, by_id};
use common::{Rng, random};
use proptest::prelude::*;

fn matrix(w: &[f32], rows: usize, cols: usize, threads: usize) -> Q6KMatrix {
    Q6KMatrix::quantize(rows, cols, threads, |r, buf| {
        buf.copy_from_slice(&w[r * cols..(r + 1) * cols])
    })
    .unwrap()
}

fn run(k: &Kernels, m: &Q6KMatrix, x: &[f32], n: usize) -> Vec<f32> {
    let mut act = Q8KActivations::new(n, m.cols());
    let mut y = vec![0.0; n * m.rows()];
    k.q6k_matmul(m, x, n, &mut act, &mut y);
    y
}

#[test]
fn activations_follow_ggml_q8_k() {
    // Block 0: the largest magnitude is negative (-2.54), so iscale = -127 / -2.54 = 50 and
    // it maps to -127; halves round to even (0.01 * 50 = 0.5 -> 0, 0.03 * 50 = 1.5 -> 2).
    // Block 1 is all zero: d = 0, quants and sums 0.
    let mut x = vec![0.0f32; 2 * QK_K];
    x[0] = -2.54;
    x[1] = 0.01;
    x[2] = 0.03;
    x[3] = 2.0;
    x[17] = -1.0;
    let mut act = Q8KActivations::new(1, 2 * QK_K);
    act.quantize(&x, 1);
    let iscale = -127.0f32 / -2.54;
    assert_eq!(act.scales(), [1.0 / iscale, 0.0]);
    let q = act.quants();
    assert_eq!(
        &q[..4],
        &[-127, 0, 2, (2.0 * iscale).round_ties_even() as i8]
    );
    assert_eq!(q[17], (-iscale).round_ties_even() as i8);
    assert!(q[QK_K..].iter().all(|&v| v == 0));
    let bsums = act.bsums();
    assert_eq!(bsums.len(), 2 * QK_K / 16);
    assert_eq!(
        i32::from(bsums[0]),
        q[..16].iter().map(|&v| i32::from(v)).sum::<i32>()
    );
    assert_eq!(i32::from(bsums[1]), i32::from(q[17]));
    assert!(bsums[16..].iter().all(|&v| v == 0));
}

#[test]
fn shapes_that_are_not_whole_blocks_are_refused_with_the_reason() {
    let err = Q6KMatrix::quantize(4, 128, 1, |_, _| {}).unwrap_err();
    assert!(
        matches!(err, FormatError::Shape { cols: 128, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("multiple of 256"), "{err}");
    assert!(Q6KMatrix::quantize(4, 0, 1, |_, _| {}).is_err());
    let err = Q6KMatrix::from_ggml_blocks(2, 256, &[0u8; 419]).unwrap_err();
    assert!(matches!(err, FormatError::Size { .. }), "{err:?}");
}

/// The quantiser's round trip: every value within one step of its super-block's largest
/// magnitude over 31 (a sub-block's step is at most that, after the 8-bit scale's own
/// rounding; most errors are half a step of a smaller sub-block scale), a relative rms
/// error of a 6-bit code, and the same blocks whatever the thread count; all-zero input gives
/// zero blocks.
#[test]
fn quantising_round_trips_within_a_step_on_any_thread_count() {
    let mut rng = Rng(11);
    let (rows, cols) = (21, 2 * QK_K);
    let w = random(&mut rng, rows * cols, 0.3);
    let one = matrix(&w, rows, cols, 1);
    for threads in [2, 3, 8] {
        assert!(
            one == matrix(&w, rows, cols, threads),
            "threads = {threads}"
        );
    }
    assert_eq!(one.size_bytes(), rows * cols / QK_K * 210);
    let mut row = vec![0.0; cols];
    let (mut err2, mut sum2) = (0.0f64, 0.0f64);
    for r in 0..rows {
        one.row_into(r, &mut row);
        for (b, (got, want)) in row.chunks(QK_K).zip(w[r * cols..].chunks(QK_K)).enumerate() {
            let amax = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (g, x) in got.iter().zip(want) {
                assert!(
                    (g - x).abs() <= amax / 31.0,
                    "row {r} block {b}: {g} vs {x}"
                );
                err2 += f64::from(g - x).powi(2);
                sum2 += f64::from(*x).powi(2);
            }
        }
    }
    let rel = (err2 / sum2).sqrt();
    eprintln!("relative rms error {rel}");
    // Measured 1.3 % (uniform values: a step of ~1/31 of the range, 1/sqrt(12) of it on
    // average, over an rms of 1/sqrt(3) of the range: 1.6 % before ggml's scale search).
    assert!(rel < 0.016, "relative rms error {rel}");
    let mut zero = [<bitnet_formats::BlockQ6K as bytemuck::Zeroable>::zeroed()];
    quantize_row_q6_k(&[0.0; QK_K], &mut zero);
    assert_eq!(bytemuck::bytes_of(&zero[0]), &[0u8; 210]);
}

/// Scalar against an f64 product of the dequantised operands (the integer dots are exact,
/// so only the float steps differ); every ISA and thread count against scalar, bit for bit.
fn check(rows: usize, blocks: usize, n: usize, threads: usize, seed: u64) {
    let cols = blocks * QK_K;
    let mut rng = Rng(seed);
    let w = random(&mut rng, rows * cols, 0.04);
    let x = random(&mut rng, n * cols, 3.0);
    let m = matrix(&w, rows, cols, 2);
    let scalar = run(
        &Kernels::with_backend(by_id("i2s/scalar").unwrap(), 1),
        &m,
        &x,
        n,
    );
    let mut act = Q8KActivations::new(n, cols);
    act.quantize(&x, n);
    let mut wr = vec![0.0f32; cols];
    for r in 0..rows {
        m.row_into(r, &mut wr);
        for t in 0..n {
            let (mut exact, mut bound) = (0.0f64, 0.0f64);
            for (c, &w) in wr.iter().enumerate() {
                let xd = f64::from(act.quants()[t * cols + c])
                    * f64::from(act.scales()[t * blocks + c / QK_K]);
                exact += f64::from(w) * xd;
                bound += (f64::from(w) * xd).abs();
            }
            let got = f64::from(scalar[t * rows + r]);
            assert!(
                (got - exact).abs() <= bound * 1e-5 + 1e-6,
                "row {r} token {t}: {got} vs {exact}"
            );
        }
    }
    for ops in available() {
        let k = Kernels::with_backend(ops, threads);
        let y = run(&k, &m, &x, n);
        for (i, (a, b)) in y.iter().zip(&scalar).enumerate() {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{} ({rows}x{cols}, n {n}, {threads} threads) output {i}: {a} vs scalar {b}",
                ops.id()
            );
        }
        assert!(
            k.dispatch_counts()
                .iter()
                .any(|(name, _)| name.starts_with(ops.kernel_id(OpKind::Q6K))),
            "{}",
            ops.id()
        );
    }
}

#[test]
fn every_isa_equals_scalar_on_head_like_shapes() {
    // Odd row counts (the two-stream GEMV's last row), several blocks, token tiles of 4 + rest.
    check(37, 3, 1, 1, 1);
    check(37, 3, 1, 2, 2);
    check(64, 10, 1, 2, 3);
    check(9, 2, 7, 2, 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_isa_equals_scalar(
        rows in 1usize..40,
        blocks in 1usize..4,
        n in 1usize..6,
        threads in 1usize..3,
        seed in any::<u64>(),
    ) {
        check(rows, blocks, n, threads, seed);
    }
}
