//! The NEON backend's attention passes: the scalar code, called by name (it is written in
//! eight independent lanes that the compiler vectorises for NEON, and converts f16 rows in
//! chunks with `half`'s NEON conversion).

use super::Neon;
use crate::ops::{AttentionOps, KernelId, KvRows};
use crate::scalar::attention;

impl AttentionOps for Neon {
    fn kv_scores(&self, k: &KvRows<'_>, q: &[f32], scale: f32, out: &mut [f32]) -> KernelId {
        attention::kv_scores(k, q, scale, out)
    }

    fn kv_mix(&self, v: &KvRows<'_>, w: &[f32], out: &mut [f32]) -> KernelId {
        attention::kv_mix(v, w, out)
    }
}
