//! The AVX2 backend's attention: the shared tile kernel of `x86::causal` on 8 lanes (with FMA
//! and F16C).

use super::Avx2;
use crate::ops::attention::check_causal;
use crate::ops::{AttentionOps, CausalTile, KernelId};
use crate::x86::causal::causal;
use std::arch::x86_64::__m256;

/// Id of [`kv_causal`].
pub(crate) const ID: KernelId = "kv/avx2";

/// Causal attention of a tile of tokens: 4 cached rows x 2 vectors of query rows for the
/// scores, 4 query rows x 2 vectors of columns for the values (11 of the 16 registers); a
/// decoded token's scores take 2 vectors of 8 cached rows (one key block) at once (8
/// accumulators).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn kv_causal(
    tile: &CausalTile<'_>,
    work: &mut [f32],
    out: &mut [f32],
) -> KernelId {
    check_causal(tile, work, out);
    // SAFETY: the features are enabled on this function; the shapes were checked.
    unsafe { causal::<__m256, 4, 2, 4, 2, 2>(tile, work, out) };
    ID
}

impl AttentionOps for Avx2 {
    fn kv_causal(&self, tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId {
        // SAFETY: an `Avx2` exists only when `Avx2::get` saw AVX2, FMA and F16C.
        unsafe { kv_causal(tile, work, out) }
    }
}
