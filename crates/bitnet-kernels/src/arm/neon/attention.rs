//! The NEON backend's attention: the scalar code, called by name (its dot products are
//! written in eight independent lanes that the compiler vectorises for NEON, and it converts
//! f16 rows in chunks with `half`'s NEON conversion).

use super::Neon;
use crate::ops::{AttentionOps, CausalTile, KernelId};
use crate::scalar::attention;

impl AttentionOps for Neon {
    fn kv_causal(&self, tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId {
        attention::kv_causal(tile, work, out)
    }
}
