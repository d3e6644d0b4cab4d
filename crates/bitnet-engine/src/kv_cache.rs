//! The key/value cache: preallocated for the whole context when a session starts, so decoding
//! never allocates. Stored as f32 (exact) or f16 (half the memory; what bitnet.cpp does by
//! default).

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Elements converted from f16 at a time into a stack buffer: `half`'s slice conversion runs
/// F16C (or NEON) over the whole chunk after one CPU-feature check, where `f16::to_f32` per
/// element pays that check and a call each time and cannot vectorise (it made f16-cache
/// attention several times slower than f32). A multiple of [`LANES`], so the lanes of
/// [`dot_lanes`] see the same products in the same order: results are bit-identical.
const CHUNK: usize = 64;

/// Element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// 32-bit floats: bit-exact with an uncached forward.
    #[default]
    F32,
    /// 16-bit floats: half the memory, rounds K and V.
    F16,
}

impl KvType {
    /// Bytes of one cached element.
    pub fn element_bytes(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

enum Store {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// Keys and values of every layer for `capacity` positions, `kv_dim` floats each.
pub struct KvCache {
    capacity: usize,
    kv_dim: usize,
    n_layers: usize,
    keys: Store,
    values: Store,
}

impl KvCache {
    /// Allocates the cache for `n_layers` layers of `capacity` positions.
    pub fn new(n_layers: usize, capacity: usize, kv_dim: usize, ty: KvType) -> Self {
        let len = n_layers * capacity * kv_dim;
        let make = || match ty {
            KvType::F32 => Store::F32(vec![0.0; len]),
            KvType::F16 => Store::F16(vec![f16::ZERO; len]),
        };
        Self {
            capacity,
            kv_dim,
            n_layers,
            keys: make(),
            values: make(),
        }
    }

    /// Positions the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated for keys and values.
    pub fn size_bytes(&self) -> usize {
        let ty = match self.keys {
            Store::F32(_) => KvType::F32,
            Store::F16(_) => KvType::F16,
        };
        2 * self.n_layers * self.capacity * self.kv_dim * ty.element_bytes()
    }

    fn offset(&self, layer: usize, pos: usize) -> usize {
        (layer * self.capacity + pos) * self.kv_dim
    }

    /// Stores the key and value of `pos` in `layer`.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let o = self.offset(layer, pos);
        let d = self.kv_dim;
        for (store, src) in [(&mut self.keys, k), (&mut self.values, v)] {
            match store {
                Store::F32(s) => s[o..o + d].copy_from_slice(src),
                Store::F16(s) => s[o..o + d].convert_from_f32_slice(src),
            }
        }
    }

    /// `dot(q, key[layer][pos][range])` for one head.
    #[inline]
    pub fn key_dot(&self, layer: usize, pos: usize, start: usize, q: &[f32]) -> f32 {
        let o = self.offset(layer, pos) + start;
        match &self.keys {
            Store::F32(s) => dot_lanes(&s[o..o + q.len()], q, |&k| k),
            Store::F16(s) => dot_f16(&s[o..o + q.len()], q),
        }
    }

    /// `out += weight * value[layer][pos][range]` for one head.
    #[inline]
    pub fn add_value(&self, layer: usize, pos: usize, start: usize, weight: f32, out: &mut [f32]) {
        let o = self.offset(layer, pos) + start;
        let n = out.len();
        match &self.values {
            Store::F32(s) => {
                for (acc, v) in out.iter_mut().zip(&s[o..o + n]) {
                    *acc += weight * v;
                }
            }
            Store::F16(s) => {
                let mut buf = [0f32; CHUNK];
                for (acc, v) in out.chunks_mut(CHUNK).zip(s[o..o + n].chunks(CHUNK)) {
                    let buf = &mut buf[..v.len()];
                    v.convert_to_f32_slice(buf);
                    for (acc, v) in acc.iter_mut().zip(buf.iter()) {
                        *acc += weight * v;
                    }
                }
            }
        }
    }
}

/// Partial sums of [`dot_lanes`].
const LANES: usize = 8;

/// [`dot_lanes`] of f16 keys, converted [`CHUNK`] at a time: the same lanes, products and
/// order, so the same result bit for bit.
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

/// `sum k[i] * q[i]` in eight interleaved partial sums: a single running sum is one long
/// dependency chain the compiler may not reorder (float addition is not associative), while
/// eight independent lanes vectorise. Prompt attention spends most of its time here.
#[inline]
fn dot_lanes<K>(k: &[K], q: &[f32], to_f32: impl Fn(&K) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (kc, qc) = (k.chunks_exact(LANES), q.chunks_exact(LANES));
    let (kt, qt) = (kc.remainder(), qc.remainder());
    for (kb, qb) in kc.zip(qc) {
        for i in 0..LANES {
            acc[i] += to_f32(&kb[i]) * qb[i];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (a, b) in kt.iter().zip(qt) {
        sum += to_f32(a) * b;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunked f16 paths give exactly what converting element by element gives, for
    /// lengths around the lane and chunk sizes.
    #[test]
    fn chunked_f16_conversion_is_bit_identical() {
        for len in [1usize, 7, 8, 9, 63, 64, 65, 128, 200] {
            let k: Vec<f16> = (0..len)
                .map(|i| f16::from_f32(((i * 37 % 23) as f32 - 11.0) / 7.0))
                .collect();
            let q: Vec<f32> = (0..len)
                .map(|i| ((i * 11 % 17) as f32 - 8.0) / 5.0)
                .collect();
            let want = dot_lanes(&k, &q, |k| k.to_f32());
            assert_eq!(dot_f16(&k, &q).to_bits(), want.to_bits(), "len {len}");

            let mut cache = KvCache::new(1, 2, len, KvType::F16);
            cache.store(0, 1, &q, &q);
            let mut out = vec![0.5f32; len];
            cache.add_value(0, 1, 0, 0.3, &mut out);
            for (i, o) in out.iter().enumerate() {
                let v = f16::from_f32(q[i]).to_f32();
                assert_eq!(
                    o.to_bits(),
                    (0.5 + 0.3 * v).to_bits(),
                    "len {len} element {i}"
                );
            }
            let kq = cache.key_dot(0, 1, 0, &q);
            let stored: Vec<f16> = q.iter().map(|&x| f16::from_f32(x)).collect();
            assert_eq!(
                kq.to_bits(),
                dot_lanes(&stored, &q, |k| k.to_f32()).to_bits()
            );
        }
    }
}
