//! `BitNetBackend::ternary_linear` on NdArray against `ternary_linear_reference` (stock Burn
//! ops on the dequantised weights), plus hand-computed values and error cases.

use bitnet_burn::{
    BitLinear, BurnError, TernaryLinearWeights, ternary_linear, ternary_linear_reference,
};
use bitnet_kernels::{Kernels, TernaryWeights};
use burn::backend::NdArray;
use burn::tensor::activation::relu;
use burn::tensor::{FloatDType, Tensor, TensorData};
use std::sync::Arc;

type B = NdArray<f32>;

/// Deterministic pseudo-random stream (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn weights(&mut self, rows: usize, cols: usize, scale: f32) -> TernaryWeights {
        TernaryWeights {
            rows,
            cols,
            values: (0..rows * cols)
                .map(|_| (self.next() % 3) as i8 - 1)
                .collect(),
            scale,
        }
    }
    fn input(&mut self, n: usize, cols: usize) -> Tensor<B, 2> {
        let x: Vec<f32> = (0..n * cols).map(|_| self.unit() * 3.0).collect();
        Tensor::from_data(TensorData::new(x, [n, cols]), &Default::default())
    }
}

fn kernels(threads: usize) -> Arc<Kernels> {
    Arc::new(Kernels::new(threads))
}

fn values(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().expect("f32 tensor")
}

/// max |a - b| / max |b|: the error relative to the output's magnitude.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mag = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / mag
}

/// Kernels vs reference at one shape; returns the relative difference.
fn compare(rng: &mut Rng, n: usize, rows: usize, cols: usize, scale: f32, quantize: bool) -> f32 {
    let tw = rng.weights(rows, cols, scale);
    let w = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let x = rng.input(n, cols);
    let got = ternary_linear(x.clone(), &w, quantize).unwrap();
    let want = ternary_linear_reference(x, &tw, quantize).unwrap();
    assert_eq!(got.dims(), [n, rows]);
    assert_eq!(want.dims(), [n, rows]);
    let rel = rel_diff(&values(got), &values(want));
    eprintln!("n={n} rows={rows} cols={cols} scale={scale} quantize={quantize}: rel diff {rel:e}");
    rel
}

#[test]
fn f32_activations_match_dense_burn_matmul() {
    let mut rng = Rng(1);
    // 300 columns: two full 128-column blocks and a ragged tail.
    for n in [1, 3, 17] {
        assert!(compare(&mut rng, n, 70, 300, 0.0371, false) <= 1e-5);
    }
}

#[test]
fn int8_activations_match_burn_reference() {
    let mut rng = Rng(2);
    for n in [1, 3, 17] {
        assert!(compare(&mut rng, n, 70, 300, 0.0371, true) <= 1e-5);
    }
}

#[test]
fn int8_activations_with_unit_scale_are_bit_identical() {
    // With scale 1 the reference's products and sums are small integers, exact in f32, and
    // its last step `acc / s` is the kernels' `acc / s * 1.0`: no rounding can differ.
    let mut rng = Rng(3);
    for n in [1, 5] {
        assert_eq!(compare(&mut rng, n, 70, 300, 1.0, true), 0.0);
    }
}

#[test]
fn hand_computed_values() {
    let tw = TernaryWeights {
        rows: 2,
        cols: 3,
        values: vec![1, 0, -1, 0, 1, 1],
        scale: 0.5,
    };
    let w = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let x = || Tensor::<B, 2>::from_data([[1.0, -0.5, 0.25]], &Default::default());
    // f32: [1 - 0.25, -0.5 + 0.25] * 0.5.
    assert_eq!(
        values(ternary_linear(x(), &w, false).unwrap()),
        [0.375, -0.125]
    );
    // int8: s = 127, q = [127, round(-63.5) = -64 (half to even), round(31.75) = 32];
    // acc = [127 - 32, -64 + 32] = [95, -32], y = acc / 127 * 0.5.
    let want = [95.0f32 / 127.0 * 0.5, -32.0f32 / 127.0 * 0.5];
    assert_eq!(values(ternary_linear(x(), &w, true).unwrap()), want);
    assert_eq!(
        values(ternary_linear_reference(x(), &tw, true).unwrap()),
        want
    );
}

#[test]
fn threads_do_not_change_results() {
    let mut rng = Rng(4);
    // 256 * 300 weights: above the kernels' threshold for splitting rows across threads.
    let tw = rng.weights(256, 300, 0.02);
    let x = rng.input(2, 300);
    let one = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let two = TernaryLinearWeights::new(kernels(2), &tw).unwrap();
    for quantize in [false, true] {
        assert_eq!(
            values(ternary_linear(x.clone(), &one, quantize).unwrap()),
            values(ternary_linear(x.clone(), &two, quantize).unwrap())
        );
    }
}

#[test]
fn strided_and_f64_inputs_give_the_same_result() {
    let mut rng = Rng(5);
    let tw = rng.weights(40, 130, 0.1);
    let w = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let x = rng.input(4, 130);
    let want = values(ternary_linear(x.clone(), &w, true).unwrap());
    // A transposed view is not in standard layout: gathered into a row-major copy.
    let x_t = x.clone().transpose().into_data();
    let strided = Tensor::<B, 2>::from_data(x_t, &Default::default()).transpose();
    assert_eq!(values(ternary_linear(strided, &w, true).unwrap()), want);
    // f32 -> f64 -> f32 is exact, so the converted input must give the same bits.
    let wide = x.cast(FloatDType::F64);
    assert_eq!(values(ternary_linear(wide, &w, true).unwrap()), want);
}

#[test]
fn output_is_owned_like_burn_op_results() {
    // Owned storage lets the next op (e.g. relu) work in place instead of copying first.
    let mut rng = Rng(9);
    let tw = rng.weights(8, 16, 0.1);
    let w = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let y = ternary_linear(rng.input(2, 16), &w, true).unwrap();
    assert!(!y.into_primitive().tensor().is_borrowed());
}

#[test]
fn empty_batch_gives_empty_output() {
    let mut rng = Rng(6);
    let tw = rng.weights(8, 16, 0.1);
    let w = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(Vec::<f32>::new(), [0, 16]),
        &Default::default(),
    );
    for quantize in [false, true] {
        assert_eq!(
            ternary_linear(x.clone(), &w, quantize).unwrap().dims(),
            [0, 8]
        );
    }
}

#[test]
fn two_layer_model_matches_reference() {
    let mut rng = Rng(7);
    let (t1, t2) = (rng.weights(96, 200, 0.05), rng.weights(50, 96, 0.08));
    let k = kernels(1);
    let l1 = BitLinear::new(TernaryLinearWeights::new(k.clone(), &t1).unwrap());
    let l2 = BitLinear::new(TernaryLinearWeights::new(k, &t2).unwrap());
    let x = rng.input(6, 200);
    for quantize in [false, true] {
        let (l1, l2) = (
            l1.clone().with_quantized_activations(quantize),
            l2.clone().with_quantized_activations(quantize),
        );
        let got = l2.forward(relu(l1.forward(x.clone()).unwrap())).unwrap();
        let hidden = relu(ternary_linear_reference(x.clone(), &t1, quantize).unwrap());
        let want = ternary_linear_reference(hidden, &t2, quantize).unwrap();
        let rel = rel_diff(&values(got), &values(want));
        eprintln!("two layers, quantize={quantize}: rel diff {rel:e}");
        // Layer 1's last-bit differences may flip a rounding in layer 2's int8
        // quantisation (one step is max|h| / 127), hence a looser bound with quantisation.
        assert!(rel <= if quantize { 1e-2 } else { 1e-5 });
    }
}

#[test]
fn wrong_input_shape_is_an_error() {
    let mut rng = Rng(8);
    let tw = rng.weights(8, 16, 0.1);
    let w = TernaryLinearWeights::new(kernels(1), &tw).unwrap();
    let x = rng.input(2, 15);
    let err = ternary_linear(x.clone(), &w, true).unwrap_err();
    assert!(
        matches!(
            err,
            BurnError::InputFeatures {
                expected: 16,
                got: 15,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "ternary_linear: input has 15 features per row but the weight has 16 columns (input shape [2, 15])"
    );
    let err = ternary_linear_reference(x, &tw, true).unwrap_err();
    assert!(
        matches!(
            err,
            BurnError::InputFeatures {
                expected: 16,
                got: 15,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_weights_are_errors() {
    let good = TernaryWeights {
        rows: 2,
        cols: 3,
        values: vec![1, 0, -1, 0, 1, 1],
        scale: 0.5,
    };
    let x = Tensor::<B, 2>::from_data([[1.0, 2.0, 3.0]], &Default::default());
    let check = |w: TernaryWeights, want: &str| {
        let err = TernaryLinearWeights::new(kernels(1), &w).unwrap_err();
        assert_eq!(err.to_string(), want);
        let err = ternary_linear_reference(x.clone(), &w, false).unwrap_err();
        assert_eq!(err.to_string(), want);
    };
    let mut w = good.clone();
    w.values[4] = 2;
    check(
        w,
        "ternary weights: value 2 at index 4 (row 1, col 1) is not -1, 0 or +1",
    );
    let mut w = good.clone();
    w.values.pop();
    check(
        w,
        "ternary weights: values has 5 entries, expected rows * cols = 2 * 3",
    );
    let mut w = good.clone();
    w.rows = usize::MAX;
    check(
        w,
        &format!(
            "ternary weights: values has 6 entries, expected rows * cols = {} * 3",
            usize::MAX
        ),
    );
    let mut w = good;
    w.scale = f32::NAN;
    check(w, "ternary weights: scale NaN is not finite");
}

#[test]
fn layers_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TernaryLinearWeights>();
    send_sync::<BitLinear>();
}
