//! AVX-512 VNNI backend (`"i2s/avx512vnni"`): ternary weights in the 512-bit layout
//! `i2s256` (repacked at load), multiplied with `vpdpbusd` on 512-bit vectors (u8 x i8, four
//! products summed into i32 lanes, exact, no intermediate i16). Needs AVX-512F/BW/VL/VNNI
//! plus AVX2/FMA/F16C, all detected at run time.
//!
//! The f16, f32, Q8_0 and Q6_K heads have 512-bit kernels too (`dense.rs`: the f16 head is
//! over half of what a 2B4T token streams). The Q4_K head (no faster at 512 bits, see
//! `dense.rs`) and activation quantisation (negligible) run the AVX2 code, called by name in
//! `dense.rs` and `act_quant.rs` and reported as `*/avx2`; the f32-activation ternary matmul
//! runs the scalar one, as on AVX2.

pub(crate) mod act_quant;
pub(crate) mod attention;
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
    /// The VNNI backend if this CPU has AVX-512F/BW/VL/VNNI and AVX2/FMA/F16C.
    pub(crate) fn get() -> Option<&'static Avx512Vnni> {
        (is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
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
            OpKind::F16 => dense::F16_ID,
            OpKind::BF16 => dense::BF16_ID,
            OpKind::F32 => dense::F32_ID,
            OpKind::Q8_0 => dense::Q8_ID,
            OpKind::Q6K => dense::Q6K_ID,
            OpKind::Q4K => avx2::dense::Q4K_ID,
            OpKind::KvCausal => attention::CAUSAL_ID,
        }
    }
}
