//! NEON backend (`"i2s/neon"`), baseline aarch64 (NEON is mandatory there).
//!
//! - `ternary.rs`: each 32-byte block read as two 16-byte halves, `vmull_s8`/`vmlal_high_s8`
//!   into i16 lanes, widened with `vpadalq_s16` (exact). The f32-activation matmul has no
//!   NEON version and runs the scalar one.
//! - `dense.rs`: the f16 head converts with `half` (hardware `fcvtl` where available) into
//!   a stack buffer, then NEON FMA; the Q8_0 head an exact `vmull_s8` dot per block of 32,
//!   the Q6_K and Q4_K heads exact `vmull_s8` dots per super-block of 256.
//! - `act_quant.rs`: no NEON version; the scalar reference runs.
//!
//! The `sdot` (dotprod) instruction would be faster but is optional on ARMv8.2 and its
//! intrinsics are not all stable on the MSRV; this baseline path runs on every aarch64 CPU.

pub(crate) mod act_quant;
pub(crate) mod attention;
pub(crate) mod dense;
pub(crate) mod membw;
pub(crate) mod ternary;

use crate::backend::{Backend, OpKind};
use crate::ops::KernelId;

/// The NEON backend.
#[derive(Debug)]
pub struct Neon {
    _private: (),
}

static NEON: Neon = Neon { _private: () };

impl Neon {
    /// The NEON backend (always available on aarch64).
    pub(crate) fn get() -> &'static Neon {
        &NEON
    }
}

impl Backend for Neon {
    fn id(&self) -> &'static str {
        "i2s/neon"
    }

    fn isa(&self) -> &'static str {
        "neon"
    }

    fn kernel_id(&self, op: OpKind) -> KernelId {
        match op {
            // No NEON versions of these two: the scalar ones run.
            OpKind::Quantize => crate::scalar::act_quant::ID,
            OpKind::TernaryF32 => crate::scalar::ternary::F32_ID,
            OpKind::Ternary => ternary::ID,
            OpKind::F16 => dense::F16_ID,
            OpKind::BF16 => dense::BF16_ID,
            OpKind::F32 => dense::F32_ID,
            OpKind::Q8_0 => dense::Q8_ID,
            OpKind::Q6K => dense::Q6K_ID,
            OpKind::Q4K => dense::Q4K_ID,
            // The scalar code, called by name (see `attention.rs`).
            OpKind::KvCausal => crate::scalar::attention::ID,
        }
    }
}
