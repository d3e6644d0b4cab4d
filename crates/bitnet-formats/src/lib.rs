//! Ternary (BitNet b1.58) storage formats, the dense formats of their embeddings and heads,
//! and the canonical form they decode to, with no SIMD and no `unsafe`.
//!
//! - [`TernaryWeights`]: row-major values in `{-1, 0, +1}` plus one per-tensor scale, the
//!   form every loader produces and the kernels repack at load time.
//! - [`i2s`], [`tq2_0`], [`tq1_0`]: the three on-disk layouts that matter for BitNet b1.58
//!   GGUF files (bitnet.cpp's I2_S, ggml's TQ2_0 and TQ1_0), each with its block as a typed
//!   `#[repr(C)]` struct ([`BlockI2s`], [`BlockTq2_0`], [`BlockTq1_0`]) and encode/decode
//!   to and from [`TernaryWeights`].
//! - [`DenseBlocks`] and [`decode_row`]: ggml's dense block formats a BitNet file's
//!   embedding and head may come in (Q8_0, Q4_K, Q6_K), decoded bit for bit as ggml does.
//! - [`FormatError`]: every way bytes can fail to be a tensor of a format.
//!
//! # Design
//! Why a crate of its own: the converter, the checkpoint reader and the GGUF tests need the
//! formats but not the kernels; the kernels need them only to load. Keeping the byte layouts
//! here, away from SIMD and thread pools, lets this crate forbid `unsafe` and stay small
//! enough to read in one sitting.
//!
//! Why typed blocks: like candle's `k_quants.rs`, each block is a `#[repr(C)]` struct with a
//! compile-time size assert, so a byte offset in an error message is a field offset
//! (`offset_of!`) rather than arithmetic repeated in every decoder. Scales are stored as byte
//! arrays, not `f16`/`f32`, so every block has alignment 1: `bytemuck` can view *any* byte
//! slice (a memory map, a sub-slice of a file) as blocks after checking only its length.
//!
//! The ggml formats carry a scale per block, but BitNet tensors have one scale per tensor:
//! decoding checks that every non-zero block scale is the same and errors otherwise, rather
//! than silently using one of them. Decoders never panic and never allocate from an
//! unchecked size: the byte count is checked against `rows`/`cols` (with overflow checks)
//! before anything else.

#![forbid(unsafe_code)]

mod dense;
mod error;
mod ggml;
pub mod i2s;
pub mod tq1_0;
pub mod tq2_0;
mod weights;

pub use dense::{
    BlockQ4K, BlockQ6K, BlockQ8_0, DenseBlocks, Q8_0_BLOCK, check_blocks, decode_q4_k, decode_q6_k,
    decode_q8_0, decode_row,
};
pub use error::FormatError;
pub use ggml::QK_K;
pub use i2s::{
    BlockI2s, I2S_BLOCK, I2S_TRAILER, I2sTensor, I2sTrailer, decode_i2s, encode_i2s, i2s_size,
    parse_i2s,
};
pub use tq1_0::{BlockTq1_0, TQ1_0_BLOCK_BYTES, decode_tq1_0, encode_tq1_0, tq1_0_size};
pub use tq2_0::{BlockTq2_0, TQ2_0_BLOCK_BYTES, decode_tq2_0, encode_tq2_0, tq2_0_size};
pub use weights::TernaryWeights;
