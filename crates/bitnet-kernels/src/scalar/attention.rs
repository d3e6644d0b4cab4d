//! Scalar attention passes: eight interleaved partial sums per dot product (so the compiler
//! vectorises them for the baseline ISA), f16 keys converted a block at a time and f16 value
//! rows [`CHUNK`] elements at a time with `half`'s slice conversion (one CPU-feature check
//! per slice rather than a call per element, which made f16-cache attention several times
//! slower than f32).

use super::Scalar;
use crate::ops::attention::{check_causal, softmax};
use crate::ops::{AttentionOps, CausalTile, KEY_BLOCK, KernelId, KvData, KvKeys, KvRows};
use half::slice::HalfFloatSliceExt;

/// Id of [`kv_causal`].
pub(crate) const ID: KernelId = "kv/scalar";

/// Partial sums of [`dot_lanes`].
const LANES: usize = 8;
/// f16 value elements converted at a time.
const CHUNK: usize = 64;

/// `sum k[i] * q[i]` in eight interleaved partial sums: a single running sum is one long
/// dependency chain the compiler may not reorder (float addition is not associative), while
/// eight independent lanes vectorise.
#[inline]
fn dot_lanes(k: &[f32], q: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (kc, qc) = (k.chunks_exact(LANES), q.chunks_exact(LANES));
    let (kt, qt) = (kc.remainder(), qc.remainder());
    for (kb, qb) in kc.zip(qc) {
        for i in 0..LANES {
            acc[i] += kb[i] * qb[i];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (a, b) in kt.iter().zip(qt) {
        sum += a * b;
    }
    sum
}

/// The score pass: `scores[h][j] = scale * q[h] . key j`, each query head on its own, keys
/// in order (`q: [g][len]`, `scores: [g][rows]`). Each block of keys is converted to f32 once
/// (into `block`, `KEY_BLOCK x len`) and each key gathered from it into `row` (`len`).
fn scores(
    k: &KvKeys<'_>,
    q: &[f32],
    scale: f32,
    scores: &mut [f32],
    block: &mut [f32],
    row: &mut [f32],
) {
    let (len, rows) = (k.len(), k.rows());
    let (block, row) = (&mut block[..KEY_BLOCK * len], &mut row[..len]);
    for j0 in (0..rows).step_by(KEY_BLOCK) {
        let b = k.block(j0);
        let keys: &[f32] = match k.data() {
            KvData::F32(d) => &d[b..b + block.len()],
            KvData::F16(d) => {
                d[b..b + block.len()].convert_to_f32_slice(block);
                block
            }
        };
        for j in j0..rows.min(j0 + KEY_BLOCK) {
            for (c, x) in row.iter_mut().enumerate() {
                *x = keys[KvKeys::index(len, j - j0, c)];
            }
            for (h, q) in q.chunks_exact(len).enumerate() {
                scores[h * rows + j] = dot_lanes(row, q) * scale;
            }
        }
    }
}

/// The value pass: `out[h] += sum_j w[h][j] * row j`, each head on its own, rows in order,
/// each added element by element (`w: [g][rows]`, `out: [g][len]`).
fn mix(v: &KvRows<'_>, w: &[f32], out: &mut [f32]) {
    let (len, rows) = (v.len(), v.rows());
    let mut buf = [0f32; CHUNK];
    for (w, out) in w.chunks_exact(rows).zip(out.chunks_exact_mut(len)) {
        for (j, &wj) in w.iter().enumerate() {
            let o = v.offset(j);
            match v.data() {
                KvData::F32(d) => {
                    for (acc, x) in out.iter_mut().zip(&d[o..o + len]) {
                        *acc += wj * x;
                    }
                }
                KvData::F16(d) => {
                    for (acc, x) in out.chunks_mut(CHUNK).zip(d[o..o + len].chunks(CHUNK)) {
                        let buf = &mut buf[..x.len()];
                        x.convert_to_f32_slice(buf);
                        for (acc, x) in acc.iter_mut().zip(buf.iter()) {
                            *acc += wj * x;
                        }
                    }
                }
            }
        }
    }
}

/// The reference causal pass: token by token, head by head, [`scores`], [`softmax`] and
/// [`mix`] over the rows the token sees, its scores in `work`.
pub(crate) fn kv_causal(tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId {
    check_causal(tile, work, out);
    let (k, v, q, g) = (tile.keys(), tile.values(), tile.queries(), tile.group());
    let scale = tile.scale();
    let head = g * k.len();
    for (t, (q, out)) in q
        .chunks_exact(head)
        .zip(out.chunks_exact_mut(head))
        .enumerate()
    {
        let seen = tile.seen(t * g);
        let (scores, rest) = work.split_at_mut(g * seen);
        let (block, row) = rest.split_at_mut(KEY_BLOCK * k.len());
        self::scores(&k.first(seen), q, scale, scores, block, row);
        for row in scores.chunks_exact_mut(seen) {
            softmax(row);
        }
        out.fill(0.0);
        mix(&v.first(seen), scores, out);
    }
    ID
}

impl AttentionOps for Scalar {
    fn kv_causal(&self, tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId {
        kv_causal(tile, work, out)
    }
}
