//! Scalar attention passes: eight interleaved partial sums per dot product (so the compiler
//! vectorises them for the baseline ISA), f16 rows converted [`CHUNK`] elements at a time
//! with `half`'s slice conversion (one CPU-feature check per chunk rather than a call per
//! element, which made f16-cache attention several times slower than f32).

use super::Scalar;
use crate::ops::attention::{check_causal, softmax};
use crate::ops::{AttentionOps, CausalTile, KernelId, KvData, KvRows};
use half::f16;
use half::slice::HalfFloatSliceExt;

/// Id of [`kv_causal`].
pub(crate) const ID: KernelId = "kv/scalar";

/// Partial sums of [`dot_lanes`].
const LANES: usize = 8;
/// f16 elements converted at a time; a multiple of [`LANES`], so the f16 dot product sees
/// the same products in the same order as [`dot_lanes`] on converted values.
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

/// [`dot_lanes`] of f16 keys, converted [`CHUNK`] at a time: the same lanes, products and
/// order as converting first, so the same result bit for bit.
fn dot_f16(k: &[f16], q: &[f32]) -> f32 {
    let whole = k.len() / LANES * LANES;
    let mut acc = [0.0f32; LANES];
    let mut buf = [0f32; CHUNK];
    for (kc, qc) in k[..whole].chunks(CHUNK).zip(q[..whole].chunks(CHUNK)) {
        let buf = &mut buf[..kc.len()];
        kc.convert_to_f32_slice(buf);
        for (kb, qb) in buf.chunks_exact(LANES).zip(qc.chunks_exact(LANES)) {
            for i in 0..LANES {
                acc[i] += kb[i] * qb[i];
            }
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (a, b) in k[whole..].iter().zip(&q[whole..]) {
        sum += a.to_f32() * b;
    }
    sum
}

/// The score pass: `scores[h][j] = scale * q[h] . row j`, each query head on its own, rows
/// in order (`q: [g][len]`, `scores: [g][rows]`).
fn scores(k: &KvRows<'_>, q: &[f32], scale: f32, scores: &mut [f32]) {
    let (len, rows) = (k.len(), k.rows());
    for (q, scores) in q.chunks_exact(len).zip(scores.chunks_exact_mut(rows)) {
        for (j, s) in scores.iter_mut().enumerate() {
            let o = k.offset(j);
            *s = match k.data() {
                KvData::F32(d) => dot_lanes(&d[o..o + len], q),
                KvData::F16(d) => dot_f16(&d[o..o + len], q),
            } * scale;
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
        let scores = &mut work[..g * seen];
        self::scores(&k.first(seen), q, scale, scores);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked f16 dot product gives exactly what converting first gives, for lengths
    /// around the lane and chunk sizes.
    #[test]
    fn chunked_f16_dot_is_bit_identical() {
        for len in [1usize, 7, 8, 9, 63, 64, 65, 128, 200] {
            let k: Vec<f16> = (0..len)
                .map(|i| f16::from_f32(((i * 37 % 23) as f32 - 11.0) / 7.0))
                .collect();
            let q: Vec<f32> = (0..len)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) / 5.0)
                .collect();
            let kf: Vec<f32> = k.iter().map(|k| k.to_f32()).collect();
            assert_eq!(
                dot_f16(&k, &q).to_bits(),
                dot_lanes(&kf, &q).to_bits(),
                "len {len}"
            );
        }
    }
}
