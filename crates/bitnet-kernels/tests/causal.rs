//! A prompt tile's causal attention ([`Kernels::kv_causal`]) of every ISA on this CPU against
//! an f64 computation on the stored values, for f32 and f16 caches (keys in transposed
//! blocks, the storage past the last row filled with other values; value rows strided and
//! offset), 1 to 6 query heads per KV head, tiles of 1 to 20 tokens and row counts, lengths
//! and query-row counts around the kernels' 4-row, 8/16-lane and 64-row steps; and each
//! output row equal bit for bit whatever tile it was computed in (the engine cuts prompts
//! into tiles by thread, and logits must not depend on the thread count).

mod common;

use bitnet_kernels::{Kernels, KvData, KvKeys, KvRows, available, causal_work_len};
use common::Rng;
use half::f16;
use proptest::prelude::*;

struct Case {
    rows: usize,
    len: usize,
    stride: usize,
    start: usize,
    g: usize,
    tokens: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
    q: Vec<f32>,
}

impl Case {
    #[allow(clippy::too_many_arguments)]
    fn new(
        rows: usize,
        len: usize,
        extra: usize,
        start_frac: u8,
        g: usize,
        tokens: usize,
        seed: u64,
    ) -> Self {
        let mut rng = Rng(seed);
        let stride = len + extra;
        let start = usize::from(start_frac) * extra / 255;
        let n = rows * stride;
        // Scores of a few units: peaked softmax rows, as in real models.
        let keys = (0..n).map(|_| rng.f32() * 3.0).collect();
        let values = (0..n).map(|_| rng.f32() * 2.0).collect();
        let q = (0..tokens * g * len).map(|_| rng.f32()).collect();
        Self {
            rows,
            len,
            stride,
            start,
            g,
            tokens,
            keys,
            values,
            q,
        }
    }
}

impl Case {
    /// The case's keys (rows `stride` apart from `start`) as the cache stores them, in
    /// transposed blocks; the rest of the last block holds `pad`.
    fn blocked<T: Copy>(&self, rows: &[T], pad: T) -> Vec<T> {
        let len = self.len;
        let mut out = vec![pad; KvKeys::storage_len(len, self.rows).unwrap()];
        for j in 0..self.rows {
            for c in 0..len {
                out[KvKeys::index(len, j, c)] = rows[j * self.stride + self.start + c];
            }
        }
        out
    }
}

/// Output of `k.kv_causal` for tokens `t0..t1` of the case (`t1 - 1` seeing `rows - (tokens - t1)`).
fn run(k: &Kernels, c: &Case, kd: KvData<'_>, vd: KvData<'_>, t0: usize, t1: usize) -> Vec<f32> {
    let head = c.g * c.len;
    let rows = c.rows - (c.tokens - t1);
    let kr = KvKeys::new(kd, c.len, rows);
    let vr = KvRows::new(vd, c.stride, c.start, c.len, rows);
    let m = (t1 - t0) * c.g;
    let mut work = vec![f32::NAN; causal_work_len(rows, m, c.len)];
    let mut out = vec![f32::NAN; m * c.len];
    k.kv_causal(
        &kr,
        &vr,
        &c.q[t0 * head..t1 * head],
        c.g,
        0.125,
        &mut work,
        &mut out,
    );
    out
}

fn check(c: &Case, split: usize) {
    let f16k: Vec<f16> = c.keys.iter().map(|&x| f16::from_f32(x)).collect();
    let f16v: Vec<f16> = c.values.iter().map(|&x| f16::from_f32(x)).collect();
    let back = |h: &[f16]| h.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
    // Positions past the tile's rows are never seen: whatever the storage holds there.
    let (k32, k16) = (
        c.blocked(&c.keys, 1e4),
        c.blocked(&f16k, f16::from_f32(-1e4)),
    );
    for ops in available() {
        let k = Kernels::with_backend(ops, 1);
        for (name, kd, vd, ks, vs) in [
            (
                "f32",
                KvData::F32(&k32),
                KvData::F32(&c.values),
                c.keys.clone(),
                c.values.clone(),
            ),
            (
                "f16",
                KvData::F16(&k16),
                KvData::F16(&f16v),
                back(&f16k),
                back(&f16v),
            ),
            (
                "f32/f16",
                KvData::F32(&k32),
                KvData::F16(&f16v),
                c.keys.clone(),
                back(&f16v),
            ),
        ] {
            let whole = run(&k, c, kd, vd, 0, c.tokens);
            let (len, g) = (c.len, c.g);
            let at = |d: &[f32], j: usize, col: usize| f64::from(d[j * c.stride + c.start + col]);
            for t in 0..c.tokens {
                let seen = c.rows - (c.tokens - 1 - t);
                for h in 0..g {
                    let q = &c.q[(t * g + h) * len..][..len];
                    let s: Vec<f64> = (0..seen)
                        .map(|j| {
                            (0..len)
                                .map(|d| at(&ks, j, d) * f64::from(q[d]))
                                .sum::<f64>()
                                * 0.125
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for col in 0..len {
                        let want: f64 =
                            (0..seen).map(|j| e[j] * at(&vs, j, col)).sum::<f64>() / sum;
                        let mag: f64 = (0..seen)
                            .map(|j| (e[j] * at(&vs, j, col)).abs())
                            .sum::<f64>()
                            / sum;
                        let got = f64::from(whole[(t * g + h) * len + col]);
                        assert!(
                            (got - want).abs() <= 2e-5 * mag + 1e-6,
                            "{} {name}: token {t} head {h} col {col}: {got} vs {want} ({} rows x {len}, g {g}, {} tokens)",
                            ops.id(),
                            c.rows,
                            c.tokens
                        );
                    }
                }
            }
            // The same rows from two tiles cut at `split`.
            let head = g * len;
            let a = run(&k, c, kd, vd, 0, split);
            let b = run(&k, c, kd, vd, split, c.tokens);
            assert_eq!(
                a[..],
                whole[..split * head],
                "{} {name}: first tile of a split at {split}",
                ops.id()
            );
            assert_eq!(
                b[..],
                whole[split * head..],
                "{} {name}: second tile of a split at {split}",
                ops.id()
            );
        }
        assert_eq!(
            k.dispatch_counts(),
            vec![(
                format!("{}:causal", ops.kernel_id(bitnet_kernels::OpKind::KvCausal)),
                9
            )]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_isa_agrees_with_f64_and_tiles_do_not_matter(
        extra_rows in 0usize..50, len in 1usize..70, extra in 0usize..40, start_frac: u8,
        g in 1usize..7, tokens in 1usize..20, split_frac: u8, seed: u64,
    ) {
        let c = Case::new(tokens + extra_rows, len, extra, start_frac, g, tokens, seed);
        let split = 1.max(usize::from(split_frac) * tokens / 256).min(tokens);
        if split < tokens {
            check(&c, split);
        }
    }
}

#[test]
fn head_shapes() {
    // The 2B4T KV head (head dim 128, four query heads; values 128 of a 640-wide row) with a
    // 16-token tile deep in a prompt; a first tile (the last token sees exactly the tile); odd
    // sizes; a decoded token (a tile of one token: cached rows in the lanes, several vectors
    // of them at once, a partial last pass and block, values read in place) deep in a strided
    // cache and in a contiguous one.
    for &(rows, len, extra, start_frac, g, tokens, split) in &[
        (300, 128, 512, 255, 4, 16, 5),
        (300, 128, 512, 255, 4, 16, 15),
        (203, 128, 0, 0, 4, 2, 1),
        (77, 40, 0, 0, 2, 3, 2),
        (16, 128, 512, 0, 4, 16, 8),
        (40, 24, 3, 100, 3, 7, 3),
        (9, 17, 0, 0, 5, 9, 1),
    ] {
        let c = Case::new(
            rows,
            len,
            extra,
            start_frac,
            g,
            tokens,
            (rows * 7 + len) as u64,
        );
        check(&c, split);
    }
}

#[test]
#[should_panic(expected = "kv_causal: 3 tokens need at least as many cached rows, not 2")]
fn more_tokens_than_rows_are_refused() {
    let data = [0f32; 64];
    let keys = KvKeys::new(KvData::F32(&data), 4, 2);
    let rows = KvRows::new(KvData::F32(&data), 4, 0, 4, 2);
    let mut work = vec![0f32; causal_work_len(2, 3, 4)];
    Kernels::new(1).kv_causal(&keys, &rows, &[0.0; 12], 1, 1.0, &mut work, &mut [0.0; 12]);
}

#[test]
#[should_panic(expected = "kv_causal: work of 10 <")]
fn short_work_is_refused() {
    let data = [0f32; 64];
    let keys = KvKeys::new(KvData::F32(&data), 4, 2);
    let rows = KvRows::new(KvData::F32(&data), 4, 0, 4, 2);
    Kernels::new(1).kv_causal(
        &keys,
        &rows,
        &[0.0; 4],
        1,
        1.0,
        &mut [0.0; 10],
        &mut [0.0; 4],
    );
}

#[test]
#[should_panic(expected = "do not fit")]
fn rows_beyond_the_data_are_refused() {
    let data = [0f32; 10];
    let _ = KvRows::new(KvData::F32(&data), 4, 0, 4, 3);
}

#[test]
#[should_panic(expected = "3 positions of 4 need whole blocks of 16, not 63 elements")]
fn keys_without_a_whole_last_block_are_refused() {
    let data = [0f32; 63];
    let _ = KvKeys::new(KvData::F32(&data), 4, 3);
}
