//! `BitNetBackend::dense_linear` (the head's op family: f32, f16, Q8_0, Q6_K, Q4_K weights) on
//! NdArray
//! against `dense_linear_reference` (stock Burn ops on the weights widened to f32), plus
//! hand-computed values and error cases.

use bitnet_burn::{BurnError, DenseLinearRef, DenseWeights, dense_linear, dense_linear_reference};
use bitnet_kernels::{Kernels, Q4KMatrix, Q6KMatrix, Q8Matrix};
use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use half::{bf16, f16};

type B = NdArray<f32>;

/// Deterministic pseudo-random stream (SplitMix64), uniform in [-1, 1).
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize, mag: f32) -> Vec<f32> {
        (0..len).map(|_| self.unit() * mag).collect()
    }
}

fn tensor(x: Vec<f32>, n: usize, cols: usize) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(x, [n, cols]), &Default::default())
}

fn values(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32 tensor")
}

/// max |a - b| / max |b|.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mag = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / mag
}

/// Kernels vs reference for `w` on `n` random rows, on 1 and 2 threads; returns the relative
/// difference (the two thread counts must agree exactly).
fn compare(rng: &mut Rng, w: DenseWeights<'_>, n: usize) -> f32 {
    let x = tensor(rng.vec(n * w.cols(), 2.0), n, w.cols());
    let want = values(dense_linear_reference(x.clone(), w).unwrap());
    let (one, two) = (Kernels::new(1), Kernels::new(2));
    let got = values(dense_linear(x.clone(), DenseLinearRef::new(&one, w).unwrap()).unwrap());
    let got2 = values(dense_linear(x, DenseLinearRef::new(&two, w).unwrap()).unwrap());
    assert_eq!(got, got2, "{}: threads changed the result", w.type_name());
    let rel = rel_diff(&got, &want);
    eprintln!("{} n={n}: rel diff {rel:e}", w.type_name());
    rel
}

#[test]
fn float_heads_match_burn_matmul() {
    let mut rng = Rng(1);
    let (rows, cols) = (300, 96);
    let w32 = rng.vec(rows * cols, 0.1);
    let w16: Vec<f16> = rng
        .vec(rows * cols, 0.1)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let wb16: Vec<bf16> = rng
        .vec(rows * cols, 0.1)
        .into_iter()
        .map(bf16::from_f32)
        .collect();
    for n in [1, 5] {
        let bf16w = DenseWeights::BF16 {
            rows,
            cols,
            data: &wb16,
        };
        assert!(compare(&mut rng, bf16w, n) <= 1e-5);
        let f32w = DenseWeights::F32 {
            rows,
            cols,
            data: &w32,
        };
        let f16w = DenseWeights::F16 {
            rows,
            cols,
            data: &w16,
        };
        assert!(compare(&mut rng, f32w, n) <= 1e-5);
        assert!(compare(&mut rng, f16w, n) <= 1e-5);
    }
}

/// The K-quant heads: the reference rounds the input through Q8_K per block of 256 and
/// multiplies by the decoded weights; the kernels' exact integer block dots differ from it
/// by float rounding alone.
#[test]
fn k_quant_heads_match_burn_reference() {
    let mut rng = Rng(3);
    let (rows, cols) = (40, 512);
    let dense = rng.vec(rows * cols, 0.1);
    let fill = |r: usize, buf: &mut [f32]| buf.copy_from_slice(&dense[r * cols..(r + 1) * cols]);
    let q6 = Q6KMatrix::quantize(rows, cols, 1, fill).unwrap();
    let q4 = Q4KMatrix::quantize(rows, cols, 1, fill).unwrap();
    for n in [1, 5] {
        assert!(compare(&mut rng, DenseWeights::Q6K(&q6), n) <= 1e-5);
        assert!(compare(&mut rng, DenseWeights::Q4K(&q4), n) <= 1e-5);
    }
}

#[test]
fn q8_0_head_matches_burn_reference() {
    let mut rng = Rng(2);
    let (rows, cols) = (300, 96);
    let dense = rng.vec(rows * cols, 0.1);
    let m = Q8Matrix::quantize(rows, cols, 1, |r, buf| {
        buf.copy_from_slice(&dense[r * cols..(r + 1) * cols])
    })
    .unwrap();
    for n in [1, 5] {
        assert!(compare(&mut rng, DenseWeights::Q8_0(&m), n) <= 1e-5);
    }
    // The input's Q8_0 rounding is visible: the same weights widened to f32 (no input
    // rounding) give results that differ by far more than the bound above.
    let mut widened = vec![0f32; rows * cols];
    for (r, row) in widened.chunks_exact_mut(cols).enumerate() {
        m.row_into(r, row);
    }
    let x = tensor(rng.vec(4 * cols, 2.0), 4, cols);
    let kernels = Kernels::new(1);
    let q8 = values(
        dense_linear(
            x.clone(),
            DenseLinearRef::new(&kernels, DenseWeights::Q8_0(&m)).unwrap(),
        )
        .unwrap(),
    );
    let f32w = DenseWeights::F32 {
        rows,
        cols,
        data: &widened,
    };
    let plain = values(dense_linear_reference(x, f32w).unwrap());
    assert!(rel_diff(&q8, &plain) > 1e-4);
}

#[test]
fn hand_computed_values() {
    let kernels = Kernels::new(1);
    let data = [1.0f32, -2.0, 0.5, 0.0, 1.0, 4.0];
    let w = DenseWeights::F32 {
        rows: 2,
        cols: 3,
        data: &data,
    };
    let x = || Tensor::<B, 2>::from_data([[1.0, 0.5, -2.0]], &Default::default());
    // [1 - 1 - 1, 0 + 0.5 - 8].
    let want = [-1.0f32, -7.5];
    let w_ref = DenseLinearRef::new(&kernels, w).unwrap();
    assert_eq!(values(dense_linear(x(), w_ref).unwrap()), want);
    assert_eq!(values(dense_linear_reference(x(), w).unwrap()), want);
}

#[test]
fn empty_batch_gives_empty_output() {
    let kernels = Kernels::new(1);
    let data = [0.0f32; 6];
    let w = DenseWeights::F32 {
        rows: 2,
        cols: 3,
        data: &data,
    };
    let x = tensor(Vec::new(), 0, 3);
    let y = dense_linear(x, DenseLinearRef::new(&kernels, w).unwrap()).unwrap();
    assert_eq!(y.dims(), [0, 2]);
}

#[test]
fn inconsistent_weights_and_inputs_are_errors() {
    let kernels = Kernels::new(1);
    let data = [f16::ZERO; 5];
    let w = DenseWeights::F16 {
        rows: 2,
        cols: 3,
        data: &data,
    };
    let want = "dense F16 weights: 5 values, expected rows * cols = 2 * 3";
    assert_eq!(
        DenseLinearRef::new(&kernels, w).unwrap_err().to_string(),
        want
    );
    let x = Tensor::<B, 2>::from_data([[1.0, 2.0, 3.0]], &Default::default());
    assert_eq!(dense_linear_reference(x, w).unwrap_err().to_string(), want);

    let data = [0.0f32; 6];
    let w = DenseWeights::F32 {
        rows: 2,
        cols: 3,
        data: &data,
    };
    let x = Tensor::<B, 2>::from_data([[1.0, 2.0]], &Default::default());
    let err = dense_linear(x, DenseLinearRef::new(&kernels, w).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            BurnError::InputFeatures {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "dense_linear: input has 2 features per row but the weight has 3 columns (input shape [1, 2])"
    );
}
