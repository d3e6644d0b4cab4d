//! The key/value cache: preallocated for the whole context when a session starts, so decoding
//! never allocates. Stored as f32 (exact) or f16 (half the memory; what bitnet.cpp does by
//! default).

use bitnet_kernels::{KvData, KvRows};
use half::f16;
use half::slice::HalfFloatSliceExt;

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

    /// Keys of positions `0..rows` of `layer`, columns `start..start + len` (one KV head),
    /// for the kernels' attention passes.
    pub fn keys(&self, layer: usize, start: usize, len: usize, rows: usize) -> KvRows<'_> {
        self.rows(&self.keys, layer, start, len, rows)
    }

    /// Values of positions `0..rows` of `layer`, columns `start..start + len`.
    pub fn values(&self, layer: usize, start: usize, len: usize, rows: usize) -> KvRows<'_> {
        self.rows(&self.values, layer, start, len, rows)
    }

    fn rows<'a>(
        &self,
        store: &'a Store,
        layer: usize,
        start: usize,
        len: usize,
        rows: usize,
    ) -> KvRows<'a> {
        assert!(
            rows <= self.capacity,
            "{rows} positions > capacity {}",
            self.capacity
        );
        let range = self.offset(layer, 0)..self.offset(layer + 1, 0);
        let data = match store {
            Store::F32(s) => KvData::F32(&s[range]),
            Store::F16(s) => KvData::F16(&s[range]),
        };
        KvRows::new(data, self.kv_dim, start, len, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored rows read back through the kernels' view: f32 exactly, f16 rounded once.
    #[test]
    fn rows_view_the_stored_positions() {
        for ty in [KvType::F32, KvType::F16] {
            let mut cache = KvCache::new(2, 3, 4, ty);
            for layer in 0..2 {
                for pos in 0..3 {
                    let k: Vec<f32> = (0..4)
                        .map(|i| (layer * 100 + pos * 10 + i) as f32 + 0.1)
                        .collect();
                    let v: Vec<f32> = k.iter().map(|x| -x).collect();
                    cache.store(layer, pos, &k, &v);
                }
            }
            let round = |x: f32| match ty {
                KvType::F32 => x,
                KvType::F16 => f16::from_f32(x).to_f32(),
            };
            // Element `c` of row `j` of a view, as the kernels read it.
            let at = |rows: &bitnet_kernels::KvRows<'_>, j: usize, c: usize| {
                let o = rows.offset(j) + c;
                match rows.data() {
                    bitnet_kernels::KvData::F32(d) => d[o],
                    bitnet_kernels::KvData::F16(d) => d[o].to_f32(),
                }
            };
            // Columns 2..4 of layer 1's keys: column 2 + 1 of every position.
            let keys = cache.keys(1, 2, 2, 3);
            for pos in 0..3 {
                assert_eq!(at(&keys, pos, 1), round((100 + pos * 10 + 3) as f32 + 0.1));
            }
            let values = cache.values(0, 0, 4, 2);
            for i in 0..4 {
                assert_eq!(at(&values, 0, i), round(-((i as f32) + 0.1)));
            }
        }
    }
}
