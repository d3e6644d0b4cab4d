//! The AVX-512 VNNI backend's attention passes: the AVX2 code, called by name. A head's
//! row is 128 elements in the shapes we run, two 512-bit vectors; the passes are bound by
//! their loads and the softmax around them, not the vector width.

use super::Avx512Vnni;
use crate::ops::{AttentionOps, KernelId, KvRows};
use crate::x86::avx2;

impl AttentionOps for Avx512Vnni {
    fn kv_scores(&self, k: &KvRows<'_>, q: &[f32], scale: f32, out: &mut [f32]) -> KernelId {
        // SAFETY: `Avx512Vnni::get` checked AVX2, FMA and F16C.
        unsafe { avx2::attention::kv_scores(k, q, scale, out) }
    }

    fn kv_mix(&self, v: &KvRows<'_>, w: &[f32], out: &mut [f32]) -> KernelId {
        // SAFETY: as above.
        unsafe { avx2::attention::kv_mix(v, w, out) }
    }
}
