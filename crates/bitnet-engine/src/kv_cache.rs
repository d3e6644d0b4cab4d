//! The key/value cache: preallocated for the whole context when a session starts, so decoding
//! never allocates. Stored as f32 (exact) or f16 (half the memory; what bitnet.cpp does by
//! default).
//!
//! Laid out head-major: attention reads one KV head's rows for every cached position, so each
//! (layer, head) is one contiguous stream the hardware prefetchers follow. (Position-major
//! rows, `[layer][position][kv_dim]`, made that read 256 of each 1280 bytes in the 2B4T shape
//! with an f16 cache; the layout alone took decoding at 2048 positions from 14.7-15.2 to
//! 15.4-15.7 tokens/s on two threads, see docs/performance.md.) Values are rows,
//! `[layer][kv_head][position][head_dim]`; keys are blocks of [`KEY_BLOCK`] positions stored
//! transposed, `[layer][kv_head][block][head_dim][KEY_BLOCK]` ([`KvKeys`]), so that decoding
//! loads a vector of positions' key element at once instead of transposing rows (each head's
//! positions rounded up to whole blocks).

use bitnet_kernels::{KEY_BLOCK, KvData, KvKeys, KvRows};
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

impl Store {
    fn new(ty: KvType, len: usize) -> Self {
        match ty {
            KvType::F32 => Store::F32(vec![0.0; len]),
            KvType::F16 => Store::F16(vec![f16::ZERO; len]),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Store::F32(s) => s.len() * 4,
            Store::F16(s) => s.len() * 2,
        }
    }

    /// Elements `range` as the kernels' view of them.
    fn view(&self, range: std::ops::Range<usize>) -> KvData<'_> {
        match self {
            Store::F32(s) => KvData::F32(&s[range]),
            Store::F16(s) => KvData::F16(&s[range]),
        }
    }
}

/// Keys and values of every layer for `capacity` positions, `kv_heads` heads of `head_dim`
/// floats each.
pub struct KvCache {
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
    keys: Store,
    values: Store,
    /// One head's key converted to f16 before it is scattered into its block.
    halves: Vec<f16>,
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
        let heads = n_layers * kv_heads;
        let key_head = capacity.next_multiple_of(KEY_BLOCK) * head_dim;
        Self {
            capacity,
            kv_heads,
            head_dim,
            keys: Store::new(ty, heads * key_head),
            values: Store::new(ty, heads * capacity * head_dim),
            halves: vec![f16::ZERO; head_dim],
        }
    }

    /// Positions the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes allocated for keys and values.
    pub fn size_bytes(&self) -> usize {
        self.keys.bytes() + self.values.bytes()
    }

    /// Element offset of position `pos` of KV head `head` in `layer`'s values.
    fn value_offset(&self, layer: usize, head: usize, pos: usize) -> usize {
        ((layer * self.kv_heads + head) * self.capacity + pos) * self.head_dim
    }

    /// Element offset of KV head `head` in `layer`'s keys (whole blocks per head).
    fn key_offset(&self, layer: usize, head: usize) -> usize {
        (layer * self.kv_heads + head) * self.capacity.next_multiple_of(KEY_BLOCK) * self.head_dim
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
        assert!(
            pos < self.capacity,
            "KvCache::store: position {pos} of {}",
            self.capacity
        );
        for head in 0..self.kv_heads {
            let cols = head * d..(head + 1) * d;
            let o = self.value_offset(layer, head, pos);
            match &mut self.values {
                Store::F32(s) => s[o..o + d].copy_from_slice(&v[cols.clone()]),
                Store::F16(s) => s[o..o + d].convert_from_f32_slice(&v[cols.clone()]),
            }
            // The key's elements go `KEY_BLOCK` apart down its block.
            let o = self.key_offset(layer, head) + KvKeys::index(d, pos, 0);
            match &mut self.keys {
                Store::F32(s) => {
                    for (x, &y) in s[o..].iter_mut().step_by(KEY_BLOCK).zip(&k[cols]) {
                        *x = y;
                    }
                }
                Store::F16(s) => {
                    self.halves.convert_from_f32_slice(&k[cols]);
                    for (x, &y) in s[o..].iter_mut().step_by(KEY_BLOCK).zip(&self.halves) {
                        *x = y;
                    }
                }
            }
        }
    }

    /// Keys of positions `0..rows` of KV head `head` in `layer`, for the kernels' attention
    /// passes.
    pub fn keys(&self, layer: usize, head: usize, rows: usize) -> KvKeys<'_> {
        self.check(head, rows);
        let range = self.key_offset(layer, head)..self.key_offset(layer, head + 1);
        KvKeys::new(self.keys.view(range), self.head_dim, rows)
    }

    /// Values of positions `0..rows` of KV head `head` in `layer`.
    pub fn values(&self, layer: usize, head: usize, rows: usize) -> KvRows<'_> {
        self.check(head, rows);
        let range = self.value_offset(layer, head, 0)..self.value_offset(layer, head + 1, 0);
        let d = self.head_dim;
        KvRows::new(self.values.view(range), d, 0, d, rows)
    }

    fn check(&self, head: usize, rows: usize) {
        assert!(
            rows <= self.capacity && head < self.kv_heads,
            "{rows} positions of KV head {head}: the cache holds {} of {} heads",
            self.capacity,
            self.kv_heads
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored rows read back through the kernels' views (keys in transposed blocks): f32
    /// exactly, f16 rounded once.
    #[test]
    fn rows_view_the_stored_positions() {
        for ty in [KvType::F32, KvType::F16] {
            // Two layers, 20 positions (a whole key block and part of the next), two KV heads
            // of two.
            let mut cache = KvCache::new(2, 20, 2, 2, ty);
            for layer in 0..2 {
                for pos in 0..20 {
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
            // Element `o` of a view, as the kernels read it.
            let at = |data: KvData<'_>, o: usize| match data {
                KvData::F32(d) => d[o],
                KvData::F16(d) => d[o].to_f32(),
            };
            // KV head 1 of layer 1's keys: columns 2..4 of every stored row.
            let keys = cache.keys(1, 1, 20);
            assert_eq!(keys.len(), 2);
            for pos in 0..20 {
                for c in 0..2 {
                    let want = round((100 + pos * 10 + 2 + c) as f32 + 0.1);
                    assert_eq!(at(keys.data(), KvKeys::index(2, pos, c)), want);
                }
            }
            let values = cache.values(0, 0, 2);
            for pos in 0..2 {
                for c in 0..2 {
                    let want = round(-((pos * 10 + c) as f32 + 0.1));
                    assert_eq!(at(values.data(), values.offset(pos) + c), want);
                }
            }
        }
    }
}
