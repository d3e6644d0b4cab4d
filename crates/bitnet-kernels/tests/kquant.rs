//! The K-quant heads (Q6_K, the head bitnet.cpp and ik_llama.cpp files carry, and Q4_K):
//! ggml's Q8_K activation quantisation by hand, every ISA equal to the scalar reference bit
//! for bit (any shape, token count and thread count), the scalar reference against an f64
//! product of the dequantised operands, and ggml's quantisers' round trips. (That the
//! quantisers write the bytes bitnet.cpp's `llama-quantize` writes is checked in
//! bitnet-engine's `dense_heads` test, against files it wrote.)

mod common;

use bitnet_formats::{BlockQ4K, BlockQ6K};
use bitnet_kernels::kquant::QK_K;
use bitnet_kernels::q4k::quantize_row_q4_k;
use bitnet_kernels::q6k::quantize_row_q6_k;
use bitnet_kernels::{
    FormatError, KBlock, KQuantMatrix, Kernels, Q4KMatrix, Q6KMatrix, Q8KActivations, available,
    by_id,
};
use common::{Rng, random};
use proptest::prelude::*;

/// What the tests need of each format besides [`KBlock`]: its quantiser and its precision.
trait Format: KBlock {
    /// The format's `KQuantMatrix::quantize`.
    fn quantize(
        rows: usize,
        cols: usize,
        threads: usize,
        fill: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Result<KQuantMatrix<Self>, FormatError>;
    /// The format's `quantize_row_*`.
    fn quantize_row(x: &[f32], out: &mut [Self]);
    /// A value's largest round-trip error, as a fraction of its super-block's range.
    const STEP: f32;
    /// The largest relative rms round-trip error of uniform values.
    const REL_RMS: f64;
}

impl Format for BlockQ6K {
    fn quantize(
        rows: usize,
        cols: usize,
        threads: usize,
        fill: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Result<Q6KMatrix, FormatError> {
        Q6KMatrix::quantize(rows, cols, threads, fill)
    }
    fn quantize_row(x: &[f32], out: &mut [Self]) {
        quantize_row_q6_k(x, out)
    }
    // A sub-block's step is at most the largest magnitude over 31 (after the 8-bit scale's
    // own rounding); most errors are half a step of a smaller sub-block scale. The range is
    // twice the largest magnitude here. Measured rms 1.3 % (a step of ~1/31 of the range,
    // 1/sqrt(12) of it on average, over an rms of 1/sqrt(3) of the range: 1.6 % before
    // ggml's scale search).
    const STEP: f32 = 1.0 / 62.0;
    const REL_RMS: f64 = 0.016;
}

impl Format for BlockQ4K {
    fn quantize(
        rows: usize,
        cols: usize,
        threads: usize,
        fill: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Result<Q4KMatrix, FormatError> {
        Q4KMatrix::quantize(rows, cols, threads, fill)
    }
    fn quantize_row(x: &[f32], out: &mut [Self]) {
        quantize_row_q4_k(x, out)
    }
    // Sixteen levels over a sub-block's own range (min to max): steps of ~1/15 of it, half
    // a step at most after the least-squares refit, plus the 6-bit scale and min roundings.
    // Uniform values: 1/sqrt(12) of a step of 1/15 of the range on average, over an rms of
    // 1/sqrt(12) of the range: 6.7 % before ggml's search; measured 5.5 %.
    const STEP: f32 = 1.0 / 15.0;
    const REL_RMS: f64 = 0.06;
}

fn matrix<B: Format>(w: &[f32], rows: usize, cols: usize, threads: usize) -> KQuantMatrix<B> {
    B::quantize(rows, cols, threads, |r, buf| {
        buf.copy_from_slice(&w[r * cols..(r + 1) * cols])
    })
    .unwrap()
}

fn run<B: KBlock>(k: &Kernels, m: &KQuantMatrix<B>, x: &[f32], n: usize) -> Vec<f32> {
    let mut act = Q8KActivations::new(n, m.cols());
    let mut y = vec![0.0; n * m.rows()];
    k.kquant_matmul(m, x, n, &mut act, &mut y);
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

fn shapes_that_are_not_whole_blocks_are_refused<B: Format>() {
    let err = B::quantize(4, 128, 1, |_, _| {}).unwrap_err();
    assert!(
        matches!(err, FormatError::Shape { cols: 128, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("multiple of 256"), "{err}");
    assert!(B::quantize(4, 0, 1, |_, _| {}).is_err());
    let bytes = vec![0u8; 2 * size_of::<B>() - 1];
    let err = KQuantMatrix::<B>::from_ggml_blocks(2, 256, &bytes).unwrap_err();
    assert!(matches!(err, FormatError::Size { .. }), "{err:?}");
}

#[test]
fn shapes_that_are_not_whole_blocks_are_refused_with_the_reason() {
    shapes_that_are_not_whole_blocks_are_refused::<BlockQ6K>();
    shapes_that_are_not_whole_blocks_are_refused::<BlockQ4K>();
}

/// The quantiser's round trip: every value within `B::STEP` of its super-block's range, a
/// relative rms error of the format's bits, and the same blocks whatever the thread count;
/// all-zero input gives zero blocks.
fn round_trip<B: Format>() {
    let mut rng = Rng(11);
    let (rows, cols) = (21, 2 * QK_K);
    let w = random(&mut rng, rows * cols, 0.3);
    let one = matrix::<B>(&w, rows, cols, 1);
    for threads in [2, 3, 8] {
        assert!(
            one == matrix(&w, rows, cols, threads),
            "threads = {threads}"
        );
    }
    assert_eq!(one.size_bytes(), rows * cols / QK_K * size_of::<B>());
    let mut row = vec![0.0; cols];
    let (mut err2, mut sum2) = (0.0f64, 0.0f64);
    for r in 0..rows {
        one.row_into(r, &mut row);
        for (b, (got, want)) in row.chunks(QK_K).zip(w[r * cols..].chunks(QK_K)).enumerate() {
            let lo = want.iter().fold(0.0f32, |m, &v| m.min(v));
            let hi = want.iter().fold(0.0f32, |m, &v| m.max(v));
            let range = hi - lo;
            for (g, x) in got.iter().zip(want) {
                assert!(
                    (g - x).abs() <= range * B::STEP,
                    "row {r} block {b}: {g} vs {x}"
                );
                err2 += f64::from(g - x).powi(2);
                sum2 += f64::from(*x).powi(2);
            }
        }
    }
    let rel = (err2 / sum2).sqrt();
    eprintln!("{}: relative rms error {rel}", B::FORMAT.name());
    assert!(rel < B::REL_RMS, "relative rms error {rel}");
    let mut zero = [<B as bytemuck::Zeroable>::zeroed()];
    B::quantize_row(&[0.0; QK_K], &mut zero);
    assert!(bytemuck::bytes_of(&zero[0]).iter().all(|&b| b == 0));
}

#[test]
fn quantising_round_trips_within_a_step_on_any_thread_count() {
    round_trip::<BlockQ6K>();
    round_trip::<BlockQ4K>();
}

/// Scalar against an f64 product of the dequantised operands (the integer dots are exact,
/// so only the float steps differ); every ISA and thread count against scalar, bit for bit.
fn check<B: Format>(rows: usize, blocks: usize, n: usize, threads: usize, seed: u64) {
    let cols = blocks * QK_K;
    let mut rng = Rng(seed);
    let w = random(&mut rng, rows * cols, 0.04);
    let x = random(&mut rng, n * cols, 3.0);
    let m = matrix::<B>(&w, rows, cols, 2);
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
                .any(|(name, _)| name.starts_with(ops.kernel_id(B::OP))),
            "{}",
            ops.id()
        );
    }
}

#[test]
fn every_isa_equals_scalar_on_head_like_shapes() {
    // Odd row counts (the two-stream GEMV's last row), several blocks, token tiles of 4 + rest.
    check::<BlockQ6K>(37, 3, 1, 1, 1);
    check::<BlockQ6K>(37, 3, 1, 2, 2);
    check::<BlockQ6K>(64, 10, 1, 2, 3);
    check::<BlockQ6K>(9, 2, 7, 2, 4);
    check::<BlockQ4K>(37, 3, 1, 1, 1);
    check::<BlockQ4K>(37, 3, 1, 2, 2);
    check::<BlockQ4K>(64, 10, 1, 2, 3);
    check::<BlockQ4K>(9, 2, 7, 2, 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn every_isa_equals_scalar(
        rows in 1usize..40,
        blocks in 1usize..4,
        n in 1usize..6,
        threads in 1usize..3,
        seed in any::<u64>(),
        q4 in any::<bool>(),
    ) {
        if q4 {
            check::<BlockQ4K>(rows, blocks, n, threads, seed);
        } else {
            check::<BlockQ6K>(rows, blocks, n, threads, seed);
        }
    }
}
