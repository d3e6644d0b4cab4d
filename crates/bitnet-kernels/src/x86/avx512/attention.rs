//! The AVX-512 VNNI backend's attention: the shared tile kernel of `x86::causal` on 16 lanes.

use super::Avx512Vnni;
use crate::ops::attention::check_causal;
use crate::ops::{AttentionOps, CausalTile, KernelId};
use crate::x86::causal::causal;
use std::arch::x86_64::__m512;

/// Id of [`kv_causal`].
pub(crate) const CAUSAL_ID: KernelId = "kv/avx512vnni";

/// Causal attention of a tile of tokens: 4 cached rows x 4 vectors of query rows for the
/// scores (64 query rows: a 16-token tile of the 2B4T shape's four heads per KV head), 4
/// query rows x 4 vectors of columns for the values (21 of the 32 registers); a decoded
/// token's scores take 4 vectors of 16 cached rows at once (16 accumulators).
///
/// # Safety
/// The CPU must have AVX-512F, AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c,avx512f")]
pub(crate) unsafe fn kv_causal(
    tile: &CausalTile<'_>,
    work: &mut [f32],
    out: &mut [f32],
) -> KernelId {
    check_causal(tile, work, out);
    // SAFETY: the features are enabled on this function; the shapes were checked.
    unsafe { causal::<__m512, 4, 4, 4, 4, 4>(tile, work, out) };
    CAUSAL_ID
}

impl AttentionOps for Avx512Vnni {
    fn kv_causal(&self, tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId {
        // SAFETY: `Avx512Vnni::get` checked AVX-512F, AVX2, FMA and F16C.
        unsafe { kv_causal(tile, work, out) }
    }
}
