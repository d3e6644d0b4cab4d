//! AVX2 backend (`"i2s/avx2"`): needs AVX2, FMA and F16C (every x86 CPU since
//! Haswell / Excavator has all three), checked at run time.
//!
//! - `ternary.rs`: `vpmaddubsw(codes, q)` then `vpmaddwd(.., 1)` (see [`super::ternary`]
//!   for why this is exact); the f32-activation matmul has no AVX2 version and runs the
//!   scalar one.
//! - `dense.rs`: the f16 head converts with `vcvtph2ps` and accumulates with FMA; the Q8_0
//!   head does an exact integer dot per block of 32 and one FMA, the Q6_K and Q4_K heads
//!   exact integer dots per super-block of 256 (`vpmaddubsw`, `vpmaddwd`).
//! - `act_quant.rs`: the reference's exact f32 steps 8 lanes at a time.

pub(crate) mod act_quant;
pub(crate) mod attention;
pub(crate) mod dense;
pub(crate) mod membw;
pub(crate) mod ternary;

use crate::backend::{Backend, OpKind};
use crate::ops::KernelId;

/// The AVX2 backend. Only [`Avx2::get`] makes one, after checking the CPU features, so
/// holding a `&Avx2` proves they are present (what the `unsafe` calls of its ops rely on).
#[derive(Debug)]
pub struct Avx2 {
    _private: (),
}

static AVX2: Avx2 = Avx2 { _private: () };

impl Avx2 {
    /// The AVX2 backend if this CPU has AVX2, FMA and F16C.
    pub(crate) fn get() -> Option<&'static Avx2> {
        (is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(&AVX2)
    }
}

impl Backend for Avx2 {
    fn id(&self) -> &'static str {
        "i2s/avx2"
    }

    fn isa(&self) -> &'static str {
        "avx2"
    }

    fn kernel_id(&self, op: OpKind) -> KernelId {
        match op {
            OpKind::Quantize => act_quant::ID,
            OpKind::Ternary => ternary::ID,
            // No AVX2 version: the scalar one runs (see `ternary.rs`).
            OpKind::TernaryF32 => crate::scalar::ternary::F32_ID,
            OpKind::F16 => dense::F16_ID,
            OpKind::BF16 => dense::BF16_ID,
            OpKind::F32 => dense::F32_ID,
            OpKind::Q8_0 => dense::Q8_ID,
            OpKind::Q6K => dense::Q6K_ID,
            OpKind::Q4K => dense::Q4K_ID,
            OpKind::KvCausal => attention::ID,
        }
    }
}
