//! The key/value cache: preallocated for the whole context when a session starts, so decoding
//! never allocates. Stored as f32 (exact) or f16 (half the memory; what bitnet.cpp does by
//! default).

use half::f16;

/// Element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// 32-bit floats: bit-exact with an uncached forward.
    #[default]
    F32,
    /// 16-bit floats: half the memory, rounds K and V.
    F16,
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
        let elem = match self.keys {
            Store::F32(_) => 4,
            Store::F16(_) => 2,
        };
        2 * self.n_layers * self.capacity * self.kv_dim * elem
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
                Store::F16(s) => {
                    for (dst, &x) in s[o..o + d].iter_mut().zip(src) {
                        *dst = f16::from_f32(x);
                    }
                }
            }
        }
    }

    /// `dot(q, key[layer][pos][range])` for one head.
    #[inline]
    pub fn key_dot(&self, layer: usize, pos: usize, start: usize, q: &[f32]) -> f32 {
        let o = self.offset(layer, pos) + start;
        match &self.keys {
            Store::F32(s) => dot_lanes(&s[o..o + q.len()], q, |&k| k),
            Store::F16(s) => dot_lanes(&s[o..o + q.len()], q, |k| k.to_f32()),
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
                for (acc, v) in out.iter_mut().zip(&s[o..o + n]) {
                    *acc += weight * v.to_f32();
                }
            }
        }
    }
}

/// `sum k[i] * q[i]` in eight interleaved partial sums: a single running sum is one long
/// dependency chain the compiler may not reorder (float addition is not associative), while
/// eight independent lanes vectorise. Prompt attention spends most of its time here.
#[inline]
fn dot_lanes<K>(k: &[K], q: &[f32], to_f32: impl Fn(&K) -> f32) -> f32 {
    const LANES: usize = 8;
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
