//! AMX backend (`"i2s/amx"`): Intel Advanced Matrix Extensions (Sapphire Rapids and later
//! Xeons) for the ternary GEMM of prompt processing; everything else, and ternary GEMV,
//! runs the AVX-512 VNNI backend's code (AMX implies it on every CPU that has it), called by
//! name. Weights are in the VNNI backend's layout `i2s256`, so the two backends pack alike.
//!
//! One `tdpbusd` multiplies a 16 x 64 tile of unsigned bytes by a 64 x 16 tile of signed
//! bytes into 16 x 16 exact i32 sums: 16 384 multiply-adds per instruction, against 64 for
//! a 512-bit `vpdpbusd`. Decode (one token) cannot fill a tile's 16 token columns and is
//! bound by memory anyway, so only GEMM uses it (see `ternary.rs`).
//!
//! Linux hands AMX's 8 KiB tile state to a process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`); [`Amx::get`] asks once and offers
//! the backend only if CPUID shows AMX-TILE and AMX-INT8 and the kernel grants it. The tile
//! instructions are written with `asm!`: Rust's AMX intrinsics are not stable.

pub(crate) mod delegate;
pub(crate) mod ternary;

use crate::backend::{Backend, OpKind};
use crate::ops::KernelId;
use crate::x86::avx2;
use crate::x86::avx512::{self, Avx512Vnni};
use std::sync::OnceLock;

/// The AMX backend. Only [`Amx::get`] makes one, after checking the CPU and the kernel,
/// so holding a `&Amx` proves AMX-INT8 is usable and AVX-512 VNNI present.
#[derive(Debug)]
pub struct Amx {
    vnni: &'static Avx512Vnni,
}

impl Amx {
    /// The AMX backend if this CPU has AMX-TILE, AMX-INT8 and the AVX-512 VNNI backend's
    /// features, and the kernel lets this process use the tile state.
    pub(crate) fn get() -> Option<&'static Amx> {
        static AMX: OnceLock<Option<Amx>> = OnceLock::new();
        AMX.get_or_init(|| {
            let vnni = Avx512Vnni::get()?;
            (cpu_has_amx_int8() && request_tile_state()).then_some(Amx { vnni })
        })
        .as_ref()
    }

    /// The VNNI backend this one runs everything but GEMM on.
    pub(crate) fn vnni(&self) -> &'static Avx512Vnni {
        self.vnni
    }
}

/// CPUID leaf 7: EDX bit 24 is AMX-TILE, bit 25 AMX-INT8.
pub(crate) fn cpu_has_amx_int8() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // `__cpuid` is an unsafe fn on Rust 1.89 (the MSRV) and safe on later compilers.
    #[allow(unused_unsafe)]
    // SAFETY: CPUID is available on every x86_64 CPU.
    let max_leaf = unsafe { __cpuid(0) }.eax;
    if max_leaf < 7 {
        return false;
    }
    #[allow(unused_unsafe)]
    // SAFETY: as above; leaf 7 exists (checked against the maximum leaf).
    let edx = unsafe { __cpuid_count(7, 0) }.edx;
    edx & (1 << 24) != 0 && edx & (1 << 25) != 0
}

/// Asks Linux for the AMX tile data state for this process (Linux 5.16+); true if granted.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM only changes which XSAVE features the
    // kernel lets this process use; it takes no pointers.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

/// Other systems: not supported (their own permission schemes are not implemented).
#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

impl Backend for Amx {
    fn id(&self) -> &'static str {
        "i2s/amx"
    }

    fn isa(&self) -> &'static str {
        "amx"
    }

    fn kernel_id(&self, op: OpKind) -> KernelId {
        match op {
            OpKind::Ternary => ternary::ID,
            // The VNNI backend's code for the rest (see `delegate.rs`).
            OpKind::Quantize => avx2::act_quant::ID,
            OpKind::TernaryF32 => crate::scalar::ternary::F32_ID,
            OpKind::F16 => avx512::dense::F16_ID,
            OpKind::BF16 => avx512::dense::BF16_ID,
            OpKind::F32 => avx512::dense::F32_ID,
            OpKind::Q8_0 => avx512::dense::Q8_ID,
            OpKind::Q6K => avx512::dense::Q6K_ID,
            OpKind::Q4K => avx2::dense::Q4K_ID,
            OpKind::KvCausal => avx512::attention::CAUSAL_ID,
        }
    }
}
