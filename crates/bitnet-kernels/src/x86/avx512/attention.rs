//! The AVX-512 VNNI backend's attention passes: the AVX2 code, called by name. 512-bit
//! versions of both passes (same structure, 32 output columns per step, halved FMA and
//! conversion counts) were written and measured against it on the 2B4T-shaped file: pp1024
//! at 2 threads, alternating in one run, two rounds, was no faster (94.3 / 76.7 tokens/s
//! against 99.9 / 90.0 for AVX2), so they were not kept.

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
