//! The attention passes over cached rows ([`Kernels::kv_scores`], [`Kernels::kv_mix`]) of
//! every ISA on this CPU agree with an f64 computation on the stored values within float
//! tolerance, for f32 and f16 caches, strided rows and head offsets, groups of 1 to 6 query
//! heads per KV head (the kernels take four at a time), and row counts and lengths around
//! the kernels' 2-row and 8/16-column steps.

mod common;

use bitnet_kernels::{Kernels, KvData, KvRows, OpKind, available};
use common::Rng;
use half::f16;
use proptest::prelude::*;

fn run(rows: usize, len: usize, extra: usize, start_frac: u8, g: usize, seed: u64) {
    let mut rng = Rng(seed);
    let stride = len + extra;
    let start = usize::from(start_frac) * extra / 255;
    let n = rows * stride;
    let f32s: Vec<f32> = (0..n).map(|_| rng.f32() * 4.0).collect();
    let f16s: Vec<f16> = f32s.iter().map(|&x| f16::from_f32(x)).collect();
    let q: Vec<f32> = (0..g * len).map(|_| rng.f32()).collect();
    let w: Vec<f32> = (0..g * rows).map(|_| rng.f32().abs()).collect();
    let out0: Vec<f32> = (0..g * len).map(|_| rng.f32()).collect();
    let scale = 0.125f32;
    for ops in available() {
        let k = Kernels::with_backend(ops, 1);
        for (name, data, stored) in [
            ("f32", KvData::F32(&f32s), f32s.clone()),
            (
                "f16",
                KvData::F16(&f16s),
                f16s.iter().map(|x| x.to_f32()).collect(),
            ),
        ] {
            let at = |j: usize, c: usize| f64::from(stored[j * stride + start + c]);
            let view = KvRows::new(data, stride, start, len, rows);
            let mut scores = vec![f32::NAN; g * rows];
            k.kv_scores(&view, &q, scale, &mut scores);
            for (i, &s) in scores.iter().enumerate() {
                let (h, j) = (i / rows, i % rows);
                let (mut e, mut mag) = (0f64, 0f64);
                for (c, &qc) in q[h * len..(h + 1) * len].iter().enumerate() {
                    e += at(j, c) * f64::from(qc);
                    mag += (at(j, c) * f64::from(qc)).abs();
                }
                let e = e * f64::from(scale);
                assert!(
                    (f64::from(s) - e).abs() <= 1e-6 * mag + 1e-7,
                    "{} {name} scores[{h}][{j}] {s} vs {e} ({rows}x{len}, stride {stride}, start {start}, g {g})",
                    ops.id()
                );
            }
            let mut out = out0.clone();
            k.kv_mix(&view, &w, &mut out);
            for (i, &o) in out.iter().enumerate() {
                let (h, c) = (i / len, i % len);
                let (mut e, mut mag) = (f64::from(out0[i]), f64::from(out0[i]).abs());
                for j in 0..rows {
                    let wj = f64::from(w[h * rows + j]);
                    e += wj * at(j, c);
                    mag += (wj * at(j, c)).abs();
                }
                assert!(
                    (f64::from(o) - e).abs() <= 1e-6 * mag + 1e-7,
                    "{} {name} mix[{h}][{c}] {o} vs {e} ({rows}x{len}, stride {stride}, start {start}, g {g})",
                    ops.id()
                );
            }
        }
        let counts = k.dispatch_counts();
        let id = ops.kernel_id(OpKind::KvScores);
        assert_eq!(
            counts,
            vec![(format!("{id}:scores"), 2), (format!("{id}:mix"), 2)]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_isa_agrees_with_f64(rows in 1usize..40, len in 1usize..140, extra in 0usize..70, start_frac: u8, g in 1usize..7, seed: u64) {
        run(rows, len, extra, start_frac, g, seed);
    }
}

#[test]
fn head_shapes() {
    // The 2B4T KV head (128 of a 640-wide row, fifth head, four query heads), a long
    // context, odd sizes.
    for &(rows, len, extra, start_frac, g) in &[
        (1, 128, 512, 255, 4),
        (1027, 128, 512, 128, 4),
        (5, 64, 0, 0, 1),
        (4, 32, 8, 255, 5),
        (3, 7, 1, 0, 2),
    ] {
        run(rows, len, extra, start_frac, g, (rows * 31 + len) as u64);
    }
}

#[test]
#[should_panic(expected = "do not fit")]
fn rows_beyond_the_data_are_refused() {
    let data = [0f32; 10];
    let _ = KvRows::new(KvData::F32(&data), 4, 0, 4, 3);
}

#[test]
#[should_panic(expected = "kv_scores: query length 3 is not a whole number of heads of 4")]
fn a_query_of_the_wrong_length_is_refused() {
    let data = [0f32; 8];
    let rows = KvRows::new(KvData::F32(&data), 4, 0, 4, 2);
    Kernels::new(1).kv_scores(&rows, &[0.0; 3], 1.0, &mut [0.0; 2]);
}
