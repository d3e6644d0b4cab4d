//! Q8_0 (the 8-bit head): ggml's quantisation formula by hand, every ISA against the scalar
//! reference, the scalar reference against an f64 product of the dequantised operands, and the
//! error against the unquantised f32 product.

mod common;

use bitnet_kernels::q8::{Q8_BLOCK, quantize_row};
use bitnet_kernels::{FormatError, Kernels, OpKind, Q8Activations, Q8Matrix, available, by_id};
use common::{Rng, random};
use half::f16;
use proptest::prelude::*;

fn matrix(w: &[f32], rows: usize, cols: usize, threads: usize) -> Q8Matrix {
    Q8Matrix::quantize(rows, cols, threads, |r, buf| {
        buf.copy_from_slice(&w[r * cols..(r + 1) * cols])
    })
    .unwrap()
}

fn run(k: &Kernels, m: &Q8Matrix, x: &[f32], n: usize) -> Vec<f32> {
    let mut act = Q8Activations::new(n, m.cols());
    let mut y = vec![0.0; n * m.rows()];
    k.q8_matmul(m, x, n, &mut act, &mut y);
    y
}

#[test]
fn quantize_row_follows_ggml_q8_0() {
    // Block 0: 0, 1, ..., 31 scaled by 0.1 -> amax 3.1, d = 3.1 / 127, q = round(x * 127 / 3.1).
    // Block 1: all zero -> d = 0, q = 0. Halves round away from zero like C's roundf.
    let mut x: Vec<f32> = (0..32).map(|i| i as f32 * 0.1).collect();
    x.extend([0.0f32; 32]);
    let mut q = vec![0i8; 64];
    let mut d = vec![f16::ZERO; 2];
    quantize_row(&x, &mut q, &mut d);
    let d0 = 3.1f32 / 127.0;
    assert_eq!(d[0], f16::from_f32(d0));
    assert_eq!(d[1], f16::ZERO);
    let id = 1.0 / d0;
    for i in 0..32 {
        assert_eq!(q[i], (x[i] * id).round() as i8, "element {i}");
    }
    assert_eq!(q[31], 127);
    assert_eq!(q[10], 41); // 1.0 * 127 / 3.1 = 40.97
    assert!(q[32..].iter().all(|&v| v == 0));

    // Negative extreme maps to -127 (never -128), and a half rounds away from zero:
    // amax 127 gives d = 1, so 2.5 -> 3 and -2.5 -> -3.
    let mut y = [0.0f32; 32];
    y[0] = -127.0;
    y[1] = 2.5;
    y[2] = -2.5;
    let mut q = [0i8; 32];
    let mut d = [f16::ZERO];
    quantize_row(&y, &mut q, &mut d);
    assert_eq!(d[0], f16::ONE);
    assert_eq!(&q[..3], &[-127, 3, -3]);
}

#[test]
fn shapes_that_are_not_whole_blocks_are_refused_with_the_reason() {
    let err = Q8Matrix::quantize(4, 33, 1, |_, _| {}).unwrap_err();
    assert!(
        matches!(err, FormatError::Shape { cols: 33, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("multiple of 32"), "{err}");
    assert!(Q8Matrix::quantize(4, 0, 1, |_, _| {}).is_err());
}

#[test]
fn threads_do_not_change_the_quantised_matrix() {
    let mut rng = Rng(7);
    let (rows, cols) = (37, 96);
    let w = random(&mut rng, rows * cols, 0.05);
    let one = matrix(&w, rows, cols, 1);
    for threads in [2, 3, 8, 64] {
        assert!(
            one == matrix(&w, rows, cols, threads),
            "threads = {threads}"
        );
    }
    assert_eq!(one.size_bytes(), rows * cols + rows * cols / 32 * 2);
    let mut row = vec![0.0; cols];
    one.row_into(5, &mut row);
    for (a, b) in row.iter().zip(&w[5 * cols..6 * cols]) {
        assert!((a - b).abs() <= 0.05 / 127.0 * 0.5 + 1e-6, "{a} vs {b}");
    }
}

/// Scalar against an f64 product of the dequantised operands; every ISA against scalar;
/// and the quantisation error against the unquantised f32 product.
fn check(rows: usize, blocks: usize, n: usize, seed: u64) {
    let cols = blocks * Q8_BLOCK;
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
    let mut act = Q8Activations::new(n, cols);
    act.quantize(&x, n);
    let mut wr = vec![0.0f32; cols];
    for r in 0..rows {
        m.row_into(r, &mut wr);
        for t in 0..n {
            let mut exact = 0.0f64;
            let mut unquantised = 0.0f64;
            let mut bound = 0.0f64;
            for c in 0..cols {
                let xd = f64::from(act.quants()[t * cols + c])
                    * f64::from(act.scales()[t * blocks + c / Q8_BLOCK]);
                exact += f64::from(wr[c]) * xd;
                unquantised += f64::from(w[r * cols + c]) * f64::from(x[t * cols + c]);
                bound += f64::from(w[r * cols + c].abs()) * f64::from(x[t * cols + c].abs());
            }
            let got = f64::from(scalar[t * rows + r]);
            assert!(
                (got - exact).abs() <= 1e-5 * bound + 1e-6,
                "scalar r={r} t={t}: {got} vs {exact}"
            );
            // Each operand is within half a step (amax / 254) per element: about 1 % of the
            // absolute product bound at most, far less on average.
            assert!(
                (got - unquantised).abs() <= 0.01 * bound + 1e-6,
                "q8 vs f32 r={r} t={t}: {got} vs {unquantised} (bound {bound})"
            );
        }
    }
    for ops in available() {
        for threads in [1, 2] {
            let got = run(&Kernels::with_backend(ops, threads), &m, &x, n);
            for (i, (a, b)) in got.iter().zip(&scalar).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{} threads={threads} index {i}: {a} vs scalar {b}",
                    ops.id()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_isa_equals_scalar_and_scalar_equals_dequantised_f64(
        rows in 1usize..80, blocks in 1usize..20, n in 1usize..7, seed: u64
    ) {
        check(rows, blocks, n, seed);
    }
}

#[test]
fn head_shaped_rows_and_tails_of_the_scale_groups() {
    // 80 blocks (2560 columns, the 2B4T hidden size) = 10 groups of 8 scales (AVX2) or 5 of
    // 16 (AVX-512); 11 and 3 blocks leave a partial group (and AVX-512 an odd last block).
    for (rows, blocks, n) in [(300, 80, 1), (65, 11, 5), (9, 3, 4), (1, 1, 1)] {
        check(rows, blocks, n, rows as u64);
    }
}

#[test]
fn dispatch_counts_name_the_q8_kernel() {
    let k = Kernels::new(1);
    let m = matrix(&[0.5; 64], 2, 32, 1);
    run(&k, &m, &[1.0; 32], 1);
    run(&k, &m, &[1.0; 64], 2);
    // The id of the code that ran, in the Q8_0 family.
    let id = k.backend().kernel_id(OpKind::Q8_0);
    assert!(id.starts_with("q8_0/"), "{id}");
    let counts = k.dispatch_counts();
    assert!(counts.contains(&(format!("{id}:gemv"), 1)), "{counts:?}");
    assert!(counts.contains(&(format!("{id}:gemm"), 1)), "{counts:?}");
}

/// A GGUF tensor of ggml's own Q8_0 blocks becomes the same matrix as quantising its values:
/// the same quants and scales, de-interleaved; a -128 quant (never written by ggml) is left to
/// the caller to re-quantise.
#[test]
fn ggml_q8_0_blocks_are_taken_as_they_are() {
    let (rows, cols) = (3usize, 96usize);
    let value = |r: usize, c: usize| ((r * 131 + c * 17) % 41) as f32 / 8.0 - 2.5;
    let m = Q8Matrix::quantize(rows, cols, 1, |r, buf| {
        for (c, v) in buf.iter_mut().enumerate() {
            *v = value(r, c);
        }
    })
    .unwrap();
    // ggml's interleaved blocks: { f16 d, int8 qs[32] }.
    let mut bytes = Vec::new();
    for (d, qs) in m.scales().iter().zip(m.quants().chunks_exact(32)) {
        bytes.extend_from_slice(&d.to_le_bytes());
        bytes.extend(qs.iter().map(|&q| q as u8));
    }
    let from_file = Q8Matrix::from_ggml_blocks(rows, cols, &bytes)
        .unwrap()
        .unwrap();
    assert_eq!(from_file, m);
    let mut row = vec![0f32; cols];
    from_file.row_into(1, &mut row);
    assert_eq!(
        row[5],
        f32::from(m.quants()[cols + 5]) * m.scales()[3].to_f32()
    );

    bytes[2 + 7] = 0x80; // quant -128 in the first block
    assert!(
        Q8Matrix::from_ggml_blocks(rows, cols, &bytes)
            .unwrap()
            .is_none()
    );
    assert!(Q8Matrix::from_ggml_blocks(rows, cols, &bytes[..34 * 8]).is_err());
    assert!(Q8Matrix::from_ggml_blocks(rows, 100, &bytes).is_err());
}
