//! The key/value cache: preallocated for the whole context when a session starts, so decoding
//! never allocates. Stored as f32 (exact) or f16 (half the memory; what bitnet.cpp does by
//! default).
//!
//! Laid out head-major, `[layer][kv_head][position][head_dim]`: attention reads one KV head's
//! rows for every cached position, so each (layer, head) is one contiguous stream the
//! hardware prefetchers follow. (Position-major rows, `[layer][position][kv_dim]`, made that
//! read 256 of each 1280 bytes in the 2B4T shape with an f16 cache; the layout alone took
//! decoding at 2048 positions from 14.7-15.2 to 15.4-15.7 tokens/s on two threads, see
//! docs/performance.md.)

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

/// Keys and values of every layer for `capacity` positions, `kv_heads` heads of `head_dim`
/// floats each.
pub struct KvCache {
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
    n_layers: usize,
    keys: Store,
    values: Store,
}

impl KvCache {
    /// Allocates the cache for `n_layers` layers of `capacity` positions of `kv_heads` heads.
    pub fn new(
        n_layers: usize,
        capacity: usize,
        kv_heads: usize,
        head_dim: usize,
        ty: KvType,
    ) -> Self {
        let len = n_layers * kv_heads * capacity * head_dim;
        let make = || match ty {
            KvType::F32 => Store::F32(vec![0.0; len]),
            KvType::F16 => Store::F16(vec![f16::ZERO; len]),
        };
        Self {
            capacity,
            kv_heads,
            head_dim,
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
        2 * self.n_layers * self.kv_heads * self.capacity * self.head_dim * ty.element_bytes()
    }

    /// Element offset of position `pos` of KV head `head` in `layer`.
    fn offset(&self, layer: usize, head: usize, pos: usize) -> usize {
        ((layer * self.kv_heads + head) * self.capacity + pos) * self.head_dim
    }

    /// Stores the key and value of `pos` in `layer` (`kv_heads * head_dim` floats each, the
    /// heads in order).
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let d = self.head_dim;
        assert!(
            k.len() == self.kv_heads * d && v.len() == k.len(),
            "KvCache::store: {} and {} floats for {} heads of {d}",
            k.len(),
            v.len(),
            self.kv_heads
        );
        for head in 0..self.kv_heads {
            let o = self.offset(layer, head, pos);
            let cols = head * d..(head + 1) * d;
            for (store, src) in [(&mut self.keys, k), (&mut self.values, v)] {
                match store {
                    Store::F32(s) => s[o..o + d].copy_from_slice(&src[cols.clone()]),
                    Store::F16(s) => s[o..o + d].convert_from_f32_slice(&src[cols.clone()]),
                }
            }
        }
    }

    /// Keys of positions `0..rows` of KV head `head` in `layer`, for the kernels' attention
    /// passes.
    pub fn keys(&self, layer: usize, head: usize, rows: usize) -> KvRows<'_> {
        self.rows(&self.keys, layer, head, rows)
    }

    /// Values of positions `0..rows` of KV head `head` in `layer`.
    pub fn values(&self, layer: usize, head: usize, rows: usize) -> KvRows<'_> {
        self.rows(&self.values, layer, head, rows)
    }

    fn rows<'a>(&self, store: &'a Store, layer: usize, head: usize, rows: usize) -> KvRows<'a> {
        assert!(
            rows <= self.capacity && head < self.kv_heads,
            "{rows} positions of KV head {head}: the cache holds {} of {} heads",
            self.capacity,
            self.kv_heads
        );
        let range = self.offset(layer, head, 0)..self.offset(layer, head + 1, 0);
        let data = match store {
            Store::F32(s) => KvData::F32(&s[range]),
            Store::F16(s) => KvData::F16(&s[range]),
        };
        let d = self.head_dim;
        KvRows::new(data, d, 0, d, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored rows read back through the kernels' view: f32 exactly, f16 rounded once.
    #[test]
    fn rows_view_the_stored_positions() {
        for ty in [KvType::F32, KvType::F16] {
            // Two layers, three positions, two KV heads of two.
            let mut cache = KvCache::new(2, 3, 2, 2, ty);
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
            // KV head 1 of layer 1's keys: columns 2..4 of every stored row.
            let keys = cache.keys(1, 1, 3);
            assert_eq!(keys.len(), 2);
            for pos in 0..3 {
                for c in 0..2 {
                    let want = round((100 + pos * 10 + 2 + c) as f32 + 0.1);
                    assert_eq!(at(&keys, pos, c), want);
                }
            }
            let values = cache.values(0, 0, 2);
            for pos in 0..2 {
                for c in 0..2 {
                    assert_eq!(at(&values, pos, c), round(-((pos * 10 + c) as f32 + 0.1)));
                }
            }
        }
    }
}
