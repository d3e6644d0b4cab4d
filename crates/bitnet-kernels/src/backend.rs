//! [`Backend`]: one instruction set's implementation of every op family, chosen at run time.
//!
//! Like a Burn backend, a backend is one type per instruction set (`scalar`, `avx2`,
//! `avx512vnni`, `neon`) implementing every op family trait ([`crate::ops`]); [`Backend`]
//! ties the families together and adds what the dispatcher and receipts need: the
//! backend's id, its ISA, and for each op the id of the code that actually runs
//! ([`Backend::kernel_id`]).
//!
//! Unlike Burn's `Backend`, the trait has no associated types or constants: it must stay
//! object safe so that the choice is a run-time value (`&'static dyn Backend`, see
//! [`crate::detect`]), made once. The packed weights are therefore one concrete type,
//! [`crate::PackedTernary`], whose layout is an enum every backend matches on.

use std::fmt;

use crate::ops::{ActQuantOps, AttentionOps, DenseOps, KernelId, TernaryMatmulOps};

/// One op of the op families, as [`crate::Kernels`] counts it and a receipt names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// [`ActQuantOps::quantize_rows`].
    Quantize,
    /// [`TernaryMatmulOps::ternary_rows`] (int8 activations, the BitLinear hot path).
    Ternary,
    /// [`TernaryMatmulOps::ternary_f32_rows`] (f32 activations, cross-checks).
    TernaryF32,
    /// [`DenseOps::f16_rows`].
    F16,
    /// [`DenseOps::bf16_rows`].
    BF16,
    /// [`DenseOps::f32_rows`].
    F32,
    /// [`DenseOps::q8_rows`].
    Q8_0,
    /// [`DenseOps::q6k_rows`].
    Q6K,
    /// [`DenseOps::q4k_rows`].
    Q4K,
    /// [`AttentionOps::kv_causal`].
    KvCausal,
}

impl OpKind {
    /// Every op, in the order receipts list them.
    pub const ALL: [OpKind; 10] = [
        OpKind::Quantize,
        OpKind::Ternary,
        OpKind::TernaryF32,
        OpKind::F16,
        OpKind::BF16,
        OpKind::F32,
        OpKind::Q8_0,
        OpKind::Q6K,
        OpKind::Q4K,
        OpKind::KvCausal,
    ];
}

/// Every op family for one instruction set. See the module doc.
///
/// Each backend writes every op; where it has no SIMD version it calls another backend's
/// function by name and says so in [`Backend::kernel_id`].
pub trait Backend:
    TernaryMatmulOps + DenseOps + ActQuantOps + AttentionOps + Send + Sync + 'static
{
    /// Stable id `"<packed layout family>/<isa>"`, e.g. `"i2s/avx2"`: what `--kernel`
    /// selects ([`crate::by_id`]) and receipts report as the backend.
    fn id(&self) -> &'static str;

    /// The instruction set alone, e.g. `"avx2"`.
    fn isa(&self) -> &'static str;

    /// The id of the code that runs for `op` on this backend, e.g. `"i2s/avx2"` for
    /// [`OpKind::Ternary`] on AVX2 but `"i2s/scalar"` for [`OpKind::TernaryF32`], which has
    /// no AVX2 version. [`crate::Kernels`] names its dispatch counters with it; every op
    /// method returns the id of the code that ran, and debug builds check that the two agree
    /// on every call.
    fn kernel_id(&self, op: OpKind) -> KernelId;
}

impl fmt::Debug for dyn Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}
