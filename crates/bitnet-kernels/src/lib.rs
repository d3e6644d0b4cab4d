//! Ternary (BitNet b1.58) kernels: op families as traits, one backend per ISA, chosen at run
//! time.
//!
//! - [`TernaryWeights`]: the canonical form every loader produces; [`formats`] converts the
//!   storage formats (I2_S, TQ2_0, TQ1_0; re-exported from `bitnet-formats`) to and from it.
//! - Op families ([`TernaryMatmulOps`], [`DenseOps`], [`ActQuantOps`], [`AttentionOps`]),
//!   one file per family
//!   per backend, tied together by [`Backend`]. A backend exists per instruction set
//!   (`i2s/scalar`, `i2s/avx2`, `i2s/avx512vnni`, `i2s/neon`); [`detect`] picks the best
//!   once at run time, [`available`]/[`by_id`] expose the others. Every backend gives
//!   bit-identical integer results to the scalar reference (exact i32 accumulation, one
//!   shared float step), and every backend names the code each op runs
//!   ([`Backend::kernel_id`]), so receipts name fallbacks as fallbacks.
//! - [`PackedTernary`]: weights repacked once at load time into a [`PackedLayout`] the
//!   backends stream (0.25 byte per weight; see [`packed`]).
//! - [`Q8Matrix`]: ggml-style Q8_0 for the optional 8-bit output head ([`q8`]).
//! - [`membw`]: the memory read-bandwidth probe (full-width loads per ISA, several streams
//!   per thread, on the kernel pool) that decode's roofline is measured against.
//! - [`Kernels`]: what the engine calls: the backend, a persistent thread pool splitting
//!   rows, shape checks once per call, per-kernel call counters for receipts, and
//!   [`Kernels::for_each_part_mut`] for other parallel work on disjoint [`PartsMut`]. No heap
//!   allocation per call.
//!
//! BitLinear in W1.58A8: activations are quantised per row ([`quantize_row_reference`]:
//! `s = 127 / max(max|x|, 1e-5)`, round half to even), then
//! `y = (values . q) / s * weight_scale` with the dot product in integers.

pub mod act_quant;
#[cfg(target_arch = "aarch64")]
mod arm;
mod backend;
mod dispatch;
mod error;
pub mod formats;
mod kernels;
pub mod kquant;
pub mod membw;
mod ops;
pub mod packed;
pub mod pages;
mod parts;
mod pool;
pub mod q4k;
pub mod q6k;
pub mod q8;
mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tile;
pub mod tuning;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use act_quant::quantize_row_reference;
pub use backend::{Backend, OpKind};
pub use bitnet_formats::{FormatError, TernaryWeights};
pub use dispatch::{available, by_id, cpu_features, detect, known_ids};
pub use error::ShapeError;
pub use kernels::Kernels;
pub use kquant::{KBlock, KQuantMatrix, Q8KActivations};
pub use ops::{
    ActQuantOps, AttentionOps, CausalTile, DenseMatmul, DenseOps, EXP_FLOOR, KEY_BLOCK,
    KQuantMatmul, KernelId, KeyBlocks, KvData, KvKeys, KvRows, KvView, Q4KMatmul, Q6KMatmul,
    Q8Matmul, RowMajor, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps, causal_work_len,
    softmax,
};
pub use packed::{OutRows, PackedLayout, PackedTernary};
pub use parts::{Part, PartsMut};
pub use q4k::Q4KMatrix;
pub use q6k::Q6KMatrix;
pub use q8::{Q8Activations, Q8Matrix};
pub use scalar::Scalar;
