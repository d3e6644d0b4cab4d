//! The op families every backend implements, one file per family (like burn-ndarray's
//! `ops/`), and the checked operand types they take.
//!
//! - [`TernaryMatmulOps`] (`ternary.rs`): ternary weights times int8 activations (the
//!   BitLinear hot path), and times f32 activations (cross-checks).
//! - [`DenseOps`] (`dense.rs`): dense weights (f16, bf16, f32; Q8_0, Q6_K, Q4_K blocks) times
//!   f32 activations (the output head).
//! - [`ActQuantOps`] (`act_quant.rs`): per-row int8 activation quantisation.
//! - [`AttentionOps`] (`attention.rs`): causal attention of a tile of tokens over one KV
//!   head's cache (keys in transposed blocks, [`KvKeys`]; values as rows, [`KvRows`]).
//!
//! [`crate::Backend`] ties the four together with the backend's id and the ids of the code
//! each op actually runs.
//!
//! # Shapes are checked once
//! Every matmul takes its operands as one value ([`TernaryMatmul`], [`TernaryF32Matmul`],
//! [`DenseMatmul`], [`Q8Matmul`], [`KQuantMatmul`]) whose constructor checks the lengths
//! against each other and whose fields are private, so a backend receives operands that fit
//! by construction and its SIMD body can stream them without re-checking. Loops run over
//! the operands' token count; the output view ([`crate::OutRows`]) is indexed through checked accessors,
//! and each backend debug-asserts that it matches the operands.
//!
//! # Every method is written by every backend
//! No method has a default body: a backend without a SIMD version of an op calls the scalar
//! one by name (candle's `vec_dot_unopt` idea), and every method returns the [`KernelId`]
//! of the code that ran, taken from the function that ran it. A backend also *declares*
//! that id ([`crate::Backend::kernel_id`]), which is what receipts report; the two are
//! compared on every call in debug builds and by the tests, so a receipt cannot name a
//! kernel that did not run.

pub(crate) mod act_quant;
pub(crate) mod attention;
mod dense;
mod ternary;

pub use act_quant::ActQuantOps;
pub use attention::{
    AttentionOps, CausalTile, EXP_FLOOR, KEY_BLOCK, KeyBlocks, KvData, KvKeys, KvRows, KvView,
    RowMajor, causal_work_len, softmax,
};
pub use dense::{DenseMatmul, DenseOps, KQuantMatmul, Q4KMatmul, Q6KMatmul, Q8Matmul};
pub use ternary::{TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};

/// Names the code that runs for one op: `"<weight or data format>/<isa>"`, e.g.
/// `"i2s/avx2"`, `"f16/scalar"`, `"act_i8/avx2"`.
///
/// The ISA part is the instruction set of the code that runs, not of the backend that
/// dispatched it: `"i2s/scalar"` from the AVX2 backend means the AVX2 backend has no
/// version of that op and ran the scalar one.
pub type KernelId = &'static str;
