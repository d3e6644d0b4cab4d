//! AVX-512 VNNI backend (`"i2s/avx512vnni"`): the AVX2 ternary loop with the dot step done
//! by `vpdpbusd` (u8 x i8, four products summed into i32 lanes, exact, no intermediate
//! i16). Needs AVX-512F/VL/VNNI plus AVX2/FMA/F16C, all detected at run time.
//!
//! Only the ternary matmul has a VNNI version. The dense head is memory-bound (VNNI would
//! not move it) and quantisation is negligible, so those ops run the AVX2 code, called by
//! name in `dense.rs` and `act_quant.rs` and reported as `*/avx2`; the f32-activation
//! ternary matmul runs the scalar one, as on AVX2.

pub(crate) mod act_quant;
pub(crate) mod dense;
pub(crate) mod membw;
pub(crate) mod ternary;

use crate::backend::{Backend, OpKind};
use crate::ops::KernelId;
use crate::x86::avx2;

/// The AVX-512 VNNI backend. Only [`Avx512Vnni::get`] makes one, after checking the CPU
/// features, so holding a `&Avx512Vnni` proves they are present.
#[derive(Debug)]
pub struct Avx512Vnni {
    _private: (),
}

static AVX512VNNI: Avx512Vnni = Avx512Vnni { _private: () };

impl Avx512Vnni {
    /// The VNNI backend if this CPU has AVX-512F/VL/VNNI and AVX2/FMA/F16C.
    pub(crate) fn get() -> Option<&'static Avx512Vnni> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        .then_some(&AVX512VNNI)
    }
}

impl Backend for Avx512Vnni {
    fn id(&self) -> &'static str {
        "i2s/avx512vnni"
    }

    fn isa(&self) -> &'static str {
        "avx512vnni"
    }

    fn kernel_id(&self, op: OpKind) -> KernelId {
        match op {
            // The AVX2 code runs for everything but the ternary int8 matmul (module doc).
            OpKind::Quantize => avx2::act_quant::ID,
            OpKind::Ternary => ternary::ID,
            OpKind::TernaryF32 => crate::scalar::ternary::F32_ID,
            OpKind::F16 => avx2::dense::F16_ID,
            OpKind::F32 => avx2::dense::F32_ID,
            OpKind::Q8_0 => avx2::dense::Q8_ID,
        }
    }
}
