//! The scalar reference backend (`"i2s/scalar"`): obviously correct, any CPU.
//!
//! Every op is written here once, element by element, and every SIMD backend is tested to
//! produce exactly its integer results (and its float results within tolerance). The
//! functions are `pub(crate)` so that a backend without a SIMD version of an op calls the
//! scalar one by name: `crate::scalar::ternary::ternary_f32_rows(m, out)`.

pub(crate) mod act_quant;
pub(crate) mod attention;
pub(crate) mod dense;
pub(crate) mod membw;
pub(crate) mod ternary;

use crate::backend::{Backend, OpKind};
use crate::ops::KernelId;

/// The scalar reference backend (`"i2s/scalar"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Scalar;

impl Backend for Scalar {
    fn id(&self) -> &'static str {
        "i2s/scalar"
    }

    fn isa(&self) -> &'static str {
        "scalar"
    }

    fn kernel_id(&self, op: OpKind) -> KernelId {
        match op {
            OpKind::Quantize => act_quant::ID,
            OpKind::Ternary => ternary::ID,
            OpKind::TernaryF32 => ternary::F32_ID,
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
