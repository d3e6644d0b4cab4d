//! Model weights in the form the forward pass uses, and the two loaders that produce them:
//! GGUF files (`bitnet-b1.58`, `bitnet-25`, `bitnet`) and Hugging Face checkpoint directories.
//!
//! Ternary linears are decoded once to canonical `TernaryWeights` and repacked into the
//! kernels' layout; norms become `f32`; the embedding (and tied head) stays in its file type
//! (F16 and BF16 copied into 2 MiB pages, see `bitnet_kernels::pages`; Q8_0, Q6_K and Q4_K
//! blocks as they are; F32).
//!
//! Tensor names and shapes come from the schema's layer table (`bitnet_schema::layers`), the
//! one the converter writes by. The blocks are decoded and packed in parallel, one block per
//! task on a rayon pool of the kernels' thread count built for the load and dropped after it
//! (the decode hot path keeps the kernels' own pool); the result does not depend on the
//! thread count, and a failure reports the first bad block in file order.

use std::sync::Arc;

use bitnet_checkpoint::{Checkpoint, DenseValues};
use bitnet_gguf::{GgmlType, GgufFile, TensorInfo};
use bitnet_kernels::formats::DenseBlocks;
use bitnet_kernels::pages::filled_in_huge_pages;
use bitnet_kernels::{
    FormatError, Kernels, PackedTernary, Q4KMatrix, Q6KMatrix, Q8Activations, Q8KActivations,
    Q8Matrix, TernaryWeights, formats,
};
use bitnet_schema::{Linear, ModelTensor, Norm};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// A dense `[rows][cols]` matrix (the embedding and the output head).
pub struct DenseMatrix {
    rows: usize,
    cols: usize,
    data: DenseData,
}

enum DenseData {
    F32(Vec<f32>),
    /// F16 or BF16 values (their bits; BF16 is a bf16 checkpoint's values as they are) in a
    /// buffer advised for 2 MiB pages (see `bitnet_kernels::pages` for why, and why the head is
    /// not streamed from a GGUF file's map).
    Half {
        bits: Vec<u16>,
        bf16: bool,
    },
    /// 8-bit blocks (the optional smaller head, `HeadType::Q8_0`).
    Q8(Q8Matrix),
    /// ggml's Q6_K blocks (a file's Q6_K head as stored, or `HeadType::Q6K`).
    Q6K(Q6KMatrix),
    /// ggml's Q4_K blocks (a file's Q4_K head as stored, or `HeadType::Q4K`).
    Q4K(Q4KMatrix),
}

/// A 16-bit float matrix's values, borrowed (owned or from the file).
enum HalfRows<'a> {
    F16(&'a [f16]),
    BF16(&'a [bf16]),
}

/// The quantised input a Q8_0 or K-quant head reads, allocated once per session (the decode
/// loop reuses it): Q8_0 quantises per block of 32, Q6_K and Q4_K per block of 256 (ggml's
/// Q8_K).
#[derive(Debug, Clone)]
pub struct HeadActivations {
    q8: Q8Activations,
    q8k: Q8KActivations,
}

impl HeadActivations {
    /// Room for `max_rows` rows of `cols` values.
    pub fn new(max_rows: usize, cols: usize) -> Self {
        Self {
            q8: Q8Activations::new(max_rows, cols),
            q8k: Q8KActivations::new(max_rows, cols),
        }
    }
}

impl DenseMatrix {
    /// An owned f32 matrix.
    pub fn from_f32(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        Self {
            rows,
            cols,
            data: DenseData::F32(data),
        }
    }

    /// An f16 matrix, copied into 2 MiB pages on up to `threads` threads.
    pub fn from_f16(rows: usize, cols: usize, data: &[f16], threads: usize) -> Self {
        Self::half(rows, cols, false, data, f16::to_bits, threads)
    }

    /// A bf16 matrix (a bf16 checkpoint's embedding, as stored), copied into 2 MiB pages on
    /// up to `threads` threads.
    pub fn from_bf16(rows: usize, cols: usize, data: &[bf16], threads: usize) -> Self {
        Self::half(rows, cols, true, data, bf16::to_bits, threads)
    }

    fn half<T: Copy + Sync>(
        rows: usize,
        cols: usize,
        bf16: bool,
        data: &[T],
        to_bits: fn(T) -> u16,
        threads: usize,
    ) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        let bits = filled_in_huge_pages(data.len(), threads, |at, dst| {
            for (d, &v) in dst.iter_mut().zip(&data[at..]) {
                *d = to_bits(v);
            }
        });
        Self {
            rows,
            cols,
            data: DenseData::Half { bits, bf16 },
        }
    }

    /// Rows (output features).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (input features).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage type name, for receipts and `inspect`.
    pub fn type_name(&self) -> &'static str {
        match self.data {
            DenseData::F32(_) => "F32",
            DenseData::Half { bf16: true, .. } => "BF16",
            DenseData::Half { bf16: false, .. } => "F16",
            DenseData::Q8(_) => "Q8_0",
            DenseData::Q6K(_) => "Q6_K",
            DenseData::Q4K(_) => "Q4_K",
        }
    }

    /// Bytes streamed by one full matrix-vector product.
    pub fn size_bytes(&self) -> usize {
        match &self.data {
            DenseData::F32(_) => self.rows * self.cols * 4,
            DenseData::Half { .. } => self.rows * self.cols * 2,
            DenseData::Q8(m) => m.size_bytes(),
            DenseData::Q6K(m) => m.size_bytes(),
            DenseData::Q4K(m) => m.size_bytes(),
        }
    }

    /// This matrix quantised to Q8_0 (ggml's numerics, see `bitnet_kernels::q8`) on up to
    /// `threads` threads: half the bytes of F16 per matrix-vector product.
    ///
    /// # Errors
    /// If the column count is not a multiple of 32 (Q8_0's block).
    pub fn to_q8_0(&self, threads: usize) -> Result<Self> {
        let held = match &self.data {
            DenseData::Q8(m) => Some(m),
            _ => None,
        };
        self.requantized("Q8_0", held, DenseData::Q8, |rows, cols, fill| {
            Q8Matrix::quantize(rows, cols, threads, fill)
        })
    }

    /// This matrix quantised to Q6_K with ggml's own quantiser (the blocks `llama-quantize
    /// --output-tensor-type q6_k` writes, see `bitnet_kernels::q6k`) on up to `threads`
    /// threads: 0.82 bytes per weight.
    ///
    /// # Errors
    /// If the column count is not a multiple of 256 (Q6_K's block).
    pub fn to_q6_k(&self, threads: usize) -> Result<Self> {
        let held = match &self.data {
            DenseData::Q6K(m) => Some(m),
            _ => None,
        };
        self.requantized("Q6_K", held, DenseData::Q6K, |rows, cols, fill| {
            Q6KMatrix::quantize(rows, cols, threads, fill)
        })
    }

    /// This matrix quantised to Q4_K with ggml's own quantiser (the blocks `llama-quantize
    /// --output-tensor-type q4_k` writes, see `bitnet_kernels::q4k`) on up to `threads`
    /// threads: 0.5625 bytes per weight.
    ///
    /// # Errors
    /// If the column count is not a multiple of 256 (Q4_K's block).
    pub fn to_q4_k(&self, threads: usize) -> Result<Self> {
        let held = match &self.data {
            DenseData::Q4K(m) => Some(m),
            _ => None,
        };
        self.requantized("Q4_K", held, DenseData::Q4K, |rows, cols, fill| {
            Q4KMatrix::quantize(rows, cols, threads, fill)
        })
    }

    /// This matrix as `format`: a copy of `held` when it is already stored so, else
    /// `quantize(rows, cols, fill_row)` of its rows (decoded to f32 one at a time).
    fn requantized<M: Clone>(
        &self,
        format: &str,
        held: Option<&M>,
        wrap: fn(M) -> DenseData,
        quantize: impl FnOnce(
            usize,
            usize,
            &(dyn Fn(usize, &mut [f32]) + Sync),
        ) -> std::result::Result<M, FormatError>,
    ) -> Result<Self> {
        let m = match held {
            Some(m) => m.clone(),
            None => quantize(self.rows, self.cols, &|r, buf| self.row_into(r, buf)).map_err(
                |source| EngineError::Format {
                    name: format!("output head as {format}"),
                    source,
                },
            )?,
        };
        Ok(Self {
            rows: self.rows,
            cols: self.cols,
            data: wrap(m),
        })
    }

    /// Whether the values are floats (F16, BF16 or F32, as stored): rows a rescored head
    /// recomputes its top logits from (see `crate::rescore`).
    pub fn is_float(&self) -> bool {
        matches!(self.data, DenseData::F32(_) | DenseData::Half { .. })
    }

    /// Row `r` of a float matrix times `x` (`cols` values), on the kernels' f16 / bf16 / f32
    /// matmul of that one row: the same code, in the same order, as the row's logit in a full
    /// [`Self::matmul`].
    ///
    /// # Panics
    /// If the matrix is not float ([`Self::is_float`]), `r >= rows` or `x.len() != cols`.
    pub(crate) fn row_dot(&self, kernels: &Kernels, r: usize, x: &[f32]) -> f32 {
        let range = r * self.cols..(r + 1) * self.cols;
        let mut y = [0.0f32];
        match (&self.data, self.half_rows()) {
            (DenseData::F32(v), _) => kernels.f32_matmul(&v[range], 1, self.cols, x, 1, &mut y),
            (_, Some(HalfRows::F16(v))) => {
                kernels.f16_matmul(&v[range], 1, self.cols, x, 1, &mut y)
            }
            (_, Some(HalfRows::BF16(v))) => {
                kernels.bf16_matmul(&v[range], 1, self.cols, x, 1, &mut y)
            }
            _ => panic!("row_dot of a {} matrix: not float", self.type_name()),
        }
        y[0]
    }

    /// The values of an F16 or BF16 matrix.
    fn half_rows(&self) -> Option<HalfRows<'_>> {
        match &self.data {
            DenseData::Half { bits, bf16: true } => {
                Some(HalfRows::BF16(bytemuck::cast_slice(bits)))
            }
            DenseData::Half { bits, bf16: false } => {
                Some(HalfRows::F16(bytemuck::cast_slice(bits)))
            }
            DenseData::F32(_) | DenseData::Q8(_) | DenseData::Q6K(_) | DenseData::Q4K(_) => None,
        }
    }

    /// Copies row `r` into `out` as f32 (embedding lookup).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let range = r * self.cols..(r + 1) * self.cols;
        match &self.data {
            DenseData::F32(v) => out.copy_from_slice(&v[range]),
            DenseData::Q8(m) => m.row_into(r, out),
            DenseData::Q6K(m) => m.row_into(r, out),
            DenseData::Q4K(m) => m.row_into(r, out),
            _ => match self.half_rows().expect("f16 or bf16 data") {
                HalfRows::F16(v) => v[range].convert_to_f32_slice(out),
                HalfRows::BF16(v) => v[range].convert_to_f32_slice(out),
            },
        }
    }

    /// `y[t][r] = sum_c self[r][c] * x[t][c]` for `n` rows of `x`. A Q8_0 or K-quant matrix
    /// quantises `x` into `act` first (room for `n` rows of `cols`; other types leave it
    /// alone).
    pub fn matmul(
        &self,
        kernels: &Kernels,
        x: &[f32],
        n: usize,
        act: &mut HeadActivations,
        y: &mut [f32],
    ) {
        match &self.data {
            DenseData::F32(v) => kernels.f32_matmul(v, self.rows, self.cols, x, n, y),
            DenseData::Q8(m) => kernels.q8_matmul(m, x, n, &mut act.q8, y),
            DenseData::Q6K(m) => kernels.kquant_matmul(m, x, n, &mut act.q8k, y),
            DenseData::Q4K(m) => kernels.kquant_matmul(m, x, n, &mut act.q8k, y),
            _ => match self.half_rows().expect("f16 or bf16 data") {
                HalfRows::F16(v) => kernels.f16_matmul(v, self.rows, self.cols, x, n, y),
                HalfRows::BF16(v) => kernels.bf16_matmul(v, self.rows, self.cols, x, n, y),
            },
        }
    }
}

/// A read-only view of a [`DenseMatrix`]'s storage as it is held, so that code running the
/// head on its own terms (bitnet-burn's Burn forward pass) borrows it instead of copying it.
#[derive(Debug, Clone, Copy)]
pub enum DenseStorage<'a> {
    /// Row-major f32 `[rows][cols]`.
    F32(&'a [f32]),
    /// Row-major f16 `[rows][cols]` (owned, or borrowed from the GGUF's map).
    F16(&'a [f16]),
    /// Row-major bf16 `[rows][cols]` (owned, or borrowed from the GGUF's map).
    BF16(&'a [bf16]),
    /// Q8_0 blocks (`HeadType::Q8_0`).
    Q8_0(&'a Q8Matrix),
    /// Q6_K blocks (a file's Q6_K head, or `HeadType::Q6K`).
    Q6K(&'a Q6KMatrix),
    /// Q4_K blocks (a file's Q4_K head, or `HeadType::Q4K`).
    Q4K(&'a Q4KMatrix),
}

impl DenseMatrix {
    /// The storage as it is held (see [`DenseStorage`]).
    pub fn storage(&self) -> DenseStorage<'_> {
        match &self.data {
            DenseData::F32(v) => DenseStorage::F32(v),
            DenseData::Q8(m) => DenseStorage::Q8_0(m),
            DenseData::Q6K(m) => DenseStorage::Q6K(m),
            DenseData::Q4K(m) => DenseStorage::Q4K(m),
            _ => match self.half_rows().expect("f16 or bf16 data") {
                HalfRows::F16(v) => DenseStorage::F16(v),
                HalfRows::BF16(v) => DenseStorage::BF16(v),
            },
        }
    }
}

/// The weights of one transformer block.
pub struct LayerWeights {
    /// RMSNorm before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection `[q_dim, hidden]`.
    pub wq: PackedTernary,
    /// Key projection `[kv_dim, hidden]`.
    pub wk: PackedTernary,
    /// Value projection `[kv_dim, hidden]`.
    pub wv: PackedTernary,
    /// RMSNorm of the attention output (BitNet's sub-norm).
    pub attn_sub_norm: Vec<f32>,
    /// Output projection `[hidden, q_dim]`.
    pub wo: PackedTernary,
    /// RMSNorm before the FFN.
    pub ffn_norm: Vec<f32>,
    /// FFN gate `[intermediate, hidden]`.
    pub w_gate: PackedTernary,
    /// FFN up `[intermediate, hidden]`.
    pub w_up: PackedTernary,
    /// RMSNorm of the FFN's inner activation (BitNet's sub-norm).
    pub ffn_sub_norm: Vec<f32>,
    /// FFN down `[hidden, intermediate]`.
    pub w_down: PackedTernary,
}

impl LayerWeights {
    /// A block from its tensors in the schema's forward order: norms as [`Norm::ALL`]
    /// (input, attention sub-norm, post-attention, FFN sub-norm), linears as [`Linear::ALL`]
    /// (q, k, v, o, gate, up, down). Every loader builds blocks through this one mapping.
    pub fn from_parts(norms: [Vec<f32>; 4], linears: [PackedTernary; 7]) -> Self {
        let Ok(block) =
            Self::try_from_parts::<std::convert::Infallible>(norms.map(Ok), linears.map(Ok));
        block
    }

    /// [`Self::from_parts`] of loaded tensors: the first error in file order
    /// ([`bitnet_schema::BLOCK_ORDER`]: attn_norm, q, k, v, attn_sub_norm, o, ...).
    fn try_from_parts<E>(
        norms: [std::result::Result<Vec<f32>, E>; 4],
        linears: [std::result::Result<PackedTernary, E>; 7],
    ) -> std::result::Result<Self, E> {
        let [attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm] = norms;
        let [wq, wk, wv, wo, w_gate, w_up, w_down] = linears;
        // Fields are evaluated in the order written: BLOCK_ORDER.
        Ok(Self {
            attn_norm: attn_norm?,
            wq: wq?,
            wk: wk?,
            wv: wv?,
            attn_sub_norm: attn_sub_norm?,
            wo: wo?,
            ffn_norm: ffn_norm?,
            w_gate: w_gate?,
            w_up: w_up?,
            ffn_sub_norm: ffn_sub_norm?,
            w_down: w_down?,
        })
    }

    /// The ternary matrices of the block, in forward order, to modify.
    fn linears_mut(&mut self) -> [&mut PackedTernary; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.w_gate,
            &mut self.w_up,
            &mut self.w_down,
        ]
    }

    /// The ternary matrices of the block, in forward order.
    pub fn linears(&self) -> [&PackedTernary; 7] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
    }
}

/// Every weight of a model.
pub struct ModelWeights {
    /// Token embedding `[vocab, hidden]`.
    pub embedding: Arc<DenseMatrix>,
    /// Output head `[vocab, hidden]`; the same matrix as the embedding when tied.
    pub head: Arc<DenseMatrix>,
    /// Whether the head is the embedding.
    pub tied: bool,
    /// The float head whose rows recompute the quantised head's best logits
    /// (`HeadType::Q4KRescored`, see `crate::rescore`); the embedding when tied.
    pub rescore: Option<Arc<DenseMatrix>>,
    /// Final RMSNorm.
    pub output_norm: Vec<f32>,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
}

impl ModelWeights {
    /// Moves every block's ternary matrices, in forward order, into one buffer in 2 MiB
    /// pages ([`PackedTernary::share_huge_pages`], on up to `threads` threads): the last step
    /// of every load.
    pub(crate) fn ternary_in_huge_pages(&mut self, threads: usize) {
        let mut all: Vec<&mut PackedTernary> = self
            .layers
            .iter_mut()
            .flat_map(LayerWeights::linears_mut)
            .collect();
        PackedTernary::share_huge_pages(&mut all, threads);
    }

    /// Bytes one decoded token streams through the weights: every ternary matrix in its packed
    /// layout plus the head and a rescored head's exact rows (the embedding row is
    /// negligible). The memory roofline is `bandwidth / this`.
    pub fn bytes_per_token(&self) -> usize {
        let ternary: usize = self
            .layers
            .iter()
            .flat_map(|l| l.linears())
            .map(|w| w.size_bytes())
            .sum();
        let rescored = self.rescore.as_ref().map_or(0, |exact| {
            crate::rescore::RESCORE_TOP * exact.size_bytes() / exact.rows().max(1)
        });
        ternary + self.head.size_bytes() + rescored
    }
}

/// Runs `f` on a rayon pool of `threads` threads built for it: load-time work uses the
/// thread count the user gave the kernels, and never the decode hot path, which keeps the
/// kernels' own pool. The pool's threads are joined before this returns (after their
/// thread-local destructors, which free and allocate), so nothing of the load runs, or
/// allocates, while the model decodes. If no pool can be built, `f` runs on the caller's
/// thread.
pub(crate) fn on_load_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    let mut handles = Vec::with_capacity(threads);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .spawn_handler(|thread| {
            let handle = std::thread::Builder::new()
                .name(format!("bitnet-load-{}", thread.index()))
                .spawn(|| thread.run())?;
            handles.push(handle);
            Ok(())
        })
        .build();
    let result = match pool {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    };
    // The pool is dropped: its threads finish and exit.
    for handle in handles {
        // A load thread that panicked has already propagated its panic through `install`.
        let _ = handle.join();
    }
    result
}

/// `f(0..n)` in parallel on the current rayon pool, results in index order; the error of the
/// lowest failing index, so the message does not depend on scheduling.
pub(crate) fn par_map<T: Send, E: Send>(
    n: usize,
    f: impl Fn(usize) -> std::result::Result<T, E> + Sync + Send,
) -> std::result::Result<Vec<T>, E> {
    let results: Vec<std::result::Result<T, E>> = (0..n).into_par_iter().map(f).collect();
    results.into_iter().collect()
}

/// Loads weights from a GGUF file.
pub fn load_gguf(
    file: &Arc<GgufFile>,
    cfg: &ModelConfig,
    kernels: &Kernels,
) -> Result<ModelWeights> {
    let embedding = Arc::new(dense_from_gguf(
        file,
        ModelTensor::Embedding.gguf_name(),
        cfg.vocab_size,
        cfg.hidden_size,
        kernels.threads(),
    )?);
    let (head, tied) = match file.tensor(ModelTensor::Output.gguf_name()) {
        Some(_) => (
            Arc::new(dense_from_gguf(
                file,
                ModelTensor::Output.gguf_name(),
                cfg.vocab_size,
                cfg.hidden_size,
                kernels.threads(),
            )?),
            false,
        ),
        None => (Arc::clone(&embedding), true),
    };
    let output_norm = vector_from_gguf(file, ModelTensor::OutputNorm.gguf_name(), cfg.hidden_size)?;
    check_block_count(file, cfg)?;
    let dims = cfg.dims();
    let layers = on_load_pool(kernels.threads(), || {
        par_map(cfg.n_layers, |l| {
            let norms = Norm::ALL.map(|n| vector_from_gguf(file, &n.gguf_weight(l), n.len(&dims)));
            let linears = Linear::ALL.map(|w| {
                let (rows, cols) = w.shape(&dims);
                packed_from_gguf(file, &w.gguf_base(l), rows, cols, kernels)
            });
            LayerWeights::try_from_parts(norms, linears)
        })
    })?;
    Ok(ModelWeights {
        rescore: None,
        embedding,
        head,
        tied,
        output_norm,
        layers,
    })
}

/// Tensors every block has (four norms, seven linears).
const TENSORS_PER_BLOCK: usize = Norm::ALL.len() + Linear::ALL.len();

/// Refuses a block count the file cannot hold before anything is sized by it: every block
/// has [`TENSORS_PER_BLOCK`] tensors, so a header claiming 2^24 blocks in a file of a few
/// hundred tensors is an error naming the count, not millions of lookups and results.
fn check_block_count(file: &GgufFile, cfg: &ModelConfig) -> Result<()> {
    let found = file.tensors().len();
    let needed = cfg.n_layers.saturating_mul(TENSORS_PER_BLOCK);
    if needed > found {
        return Err(EngineError::TooFewTensors {
            layers: cfg.n_layers,
            needed,
            found,
        });
    }
    Ok(())
}

/// Refuses a float tensor holding NaN or infinity, naming it and the first bad element: such
/// an embedding or head loads and decodes to garbage without any other error.
fn check_finite(name: &str, values: impl Iterator<Item = f32>) -> Result<()> {
    for (i, x) in values.enumerate() {
        if !x.is_finite() {
            return Err(EngineError::BadTensor {
                name: name.to_string(),
                reason: format!("element {i} is {x} (NaN or infinite values are not weights)"),
            });
        }
    }
    Ok(())
}

fn tensor_info<'a>(file: &'a GgufFile, name: &str) -> Result<&'a TensorInfo> {
    file.tensor(name).ok_or_else(|| EngineError::MissingTensor {
        name: name.to_string(),
    })
}

fn check_dims(info: &TensorInfo, expected: &[u64]) -> Result<()> {
    if info.dims != expected {
        return Err(EngineError::ShapeMismatch {
            name: info.name.clone(),
            expected: expected.to_vec(),
            found: info.dims.clone(),
        });
    }
    Ok(())
}

/// Any float tensor type widened to f32.
fn float_values(info: &TensorInfo, bytes: &[u8]) -> Result<Vec<f32>> {
    let values = match info.ggml_type {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(EngineError::UnsupportedTensorType {
                name: info.name.clone(),
                ty: other.name().to_string(),
                reason: "expected F32, F16 or BF16".to_string(),
            });
        }
    };
    Ok(values)
}

fn vector_from_gguf(file: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    let info = tensor_info(file, name)?;
    check_dims(info, &[len as u64])?;
    let v = float_values(info, file.tensor_data(info))?;
    check_finite(name, v.iter().copied())?;
    Ok(v)
}

/// The embedding or head `name` (`[rows][cols]`): F16 and BF16 copied into 2 MiB pages
/// ([`filled_in_huge_pages`]), ggml's dense block types as they are (Q8_0 blocks re-laid out
/// for the Q8_0 kernels, [`q8_from_gguf`]), F32 as f32.
fn dense_from_gguf(
    file: &Arc<GgufFile>,
    name: &str,
    rows: usize,
    cols: usize,
    threads: usize,
) -> Result<DenseMatrix> {
    let info = tensor_info(file, name)?;
    check_dims(info, &[cols as u64, rows as u64])?;
    let bytes = file.tensor_data(info);
    let data = match info.ggml_type {
        GgmlType::F16 | GgmlType::BF16 => {
            let bits = filled_in_huge_pages(bytes.len() / 2, threads, |at, dst| {
                for (d, b) in dst.iter_mut().zip(bytes[2 * at..].chunks_exact(2)) {
                    *d = u16::from_le_bytes([b[0], b[1]]);
                }
            });
            // The copy is what runs: the file's pages can leave this process.
            file.release(info);
            let is_bf16 = info.ggml_type == GgmlType::BF16;
            if is_bf16 {
                check_finite(name, bits.iter().map(|&b| bf16::from_bits(b).to_f32()))?;
            } else {
                check_finite(name, bits.iter().map(|&b| f16::from_bits(b).to_f32()))?;
            }
            DenseData::Half {
                bits,
                bf16: is_bf16,
            }
        }
        GgmlType::Q8_0 => DenseData::Q8(q8_from_gguf(info, file, threads)?),
        GgmlType::Q4_K => DenseData::Q4K(
            Q4KMatrix::from_ggml_blocks(rows, cols, file.tensor_data(info))
                .map_err(|source| format_error(info, source))?,
        ),
        GgmlType::Q6_K => DenseData::Q6K(
            Q6KMatrix::from_ggml_blocks(rows, cols, file.tensor_data(info))
                .map_err(|source| format_error(info, source))?,
        ),
        GgmlType::F32 => {
            let v = float_values(info, bytes)?;
            check_finite(name, v.iter().copied())?;
            DenseData::F32(v)
        }
        other => {
            return Err(EngineError::UnsupportedTensorType {
                name: info.name.clone(),
                ty: other.name().to_string(),
                reason: "embeddings and heads must be F16, BF16, F32, Q8_0, Q4_K or Q6_K"
                    .to_string(),
            });
        }
    };
    Ok(DenseMatrix { rows, cols, data })
}

/// A format error about tensor `info`.
fn format_error(info: &TensorInfo, source: FormatError) -> EngineError {
    EngineError::Format {
        name: info.name.clone(),
        source,
    }
}

/// An embedding or head stored in Q8_0, as the Q8_0 kernels take it: the same quants and
/// scales (when a quant is -128, which ggml's quantiser never writes and the kernels do not
/// take, the blocks are decoded exactly and re-quantised on up to `threads` threads).
fn q8_from_gguf(info: &TensorInfo, file: &GgufFile, threads: usize) -> Result<Q8Matrix> {
    let (rows, cols) = (info.dims[1] as usize, info.dims[0] as usize);
    let bytes = file.tensor_data(info);
    let err = |source| format_error(info, source);
    if let Some(m) = Q8Matrix::from_ggml_blocks(rows, cols, bytes).map_err(err)? {
        return Ok(m);
    }
    let kind = DenseBlocks::Q8_0;
    let row_bytes = kind.row_bytes(rows, cols).map_err(err)?;
    Q8Matrix::quantize(rows, cols, threads, |r, buf| {
        formats::decode_row(kind, &bytes[r * row_bytes..(r + 1) * row_bytes], buf)
    })
    .map_err(err)
}

/// Decodes `<base>.weight` (any ternary storage type or a float type) and applies the optional
/// per-tensor `<base>.scale` multiplier that llama.cpp's `bitnet` architecture uses.
/// A linear weight in the kernels' layout. I2_S tensors whose rows are whole blocks of that
/// layout (every real BitNet shape) are taken as they are or transcoded within bytes (see
/// `formats::i2s_to_packed`), so loading is one pass and a validity scan; everything else is
/// decoded to ternary values and packed.
fn packed_from_gguf(
    file: &GgufFile,
    base: &str,
    rows: usize,
    cols: usize,
    kernels: &Kernels,
) -> Result<PackedTernary> {
    let name = format!("{base}.weight");
    let info = tensor_info(file, &name)?;
    check_dims(info, &[cols as u64, rows as u64])?;
    if info.ggml_type == GgmlType::I2_S {
        let fast = formats::i2s_to_packed(file.tensor_data(info), rows, cols, kernels.layout())
            .map_err(|source| EngineError::Format {
                name: name.clone(),
                source,
            })?;
        if let Some(packed) = fast {
            let factor = scale_factor(file, base)?;
            let packed = packed.scaled(factor);
            check_scale(&name, packed.scale())?;
            return Ok(packed);
        }
    }
    ternary_from_gguf(file, base, rows, cols).map(|w| kernels.pack(&w))
}

/// The optional per-tensor `<base>.scale` (1 when absent).
fn scale_factor(file: &GgufFile, base: &str) -> Result<f32> {
    let scale_name = format!("{base}.scale");
    let Some(info) = file.tensor(&scale_name) else {
        return Ok(1.0);
    };
    let v = float_values(info, file.tensor_data(info))?;
    if v.len() != 1 {
        return Err(EngineError::ShapeMismatch {
            name: scale_name,
            expected: vec![1],
            found: info.dims.clone(),
        });
    }
    Ok(v[0])
}

fn check_scale(name: &str, scale: f32) -> Result<()> {
    if !scale.is_finite() || scale == 0.0 {
        return Err(EngineError::BadTensor {
            name: name.to_string(),
            reason: format!("scale {scale} is not a finite non-zero number"),
        });
    }
    Ok(())
}

fn ternary_from_gguf(
    file: &GgufFile,
    base: &str,
    rows: usize,
    cols: usize,
) -> Result<TernaryWeights> {
    let name = format!("{base}.weight");
    let info = tensor_info(file, &name)?;
    check_dims(info, &[cols as u64, rows as u64])?;
    let bytes = file.tensor_data(info);
    let fmt_err = |source| EngineError::Format {
        name: name.clone(),
        source,
    };
    let mut w = match info.ggml_type {
        GgmlType::I2_S => formats::decode_i2s(bytes, rows, cols).map_err(fmt_err)?,
        GgmlType::TQ2_0 => formats::decode_tq2_0(bytes, rows, cols).map_err(fmt_err)?,
        GgmlType::TQ1_0 => formats::decode_tq1_0(bytes, rows, cols).map_err(fmt_err)?,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let values = float_values(info, bytes)?;
            ternarize_dense(&name, rows, cols, &values)?
        }
        other => {
            return Err(EngineError::UnsupportedTensorType {
                name,
                ty: other.name().to_string(),
                reason: "ternary linears must be I2_S, TQ2_0, TQ1_0, F16, BF16 or F32".to_string(),
            });
        }
    };
    w.scale *= scale_factor(file, base)?;
    check_scale(&name, w.scale)?;
    Ok(w)
}

/// A float linear weight as ternary values and one scale.
///
/// Files written by llama.cpp's converter store BitNet linears already ternarised and
/// multiplied by their scale (every non-zero magnitude equal); those are taken exactly.
/// Anything else is a latent master weight and is ternarised by absmean, as transformers does
/// (`s = mean|W|`, `values = clamp(round(W / s), -1, 1)`).
pub fn ternarize_dense(name: &str, rows: usize, cols: usize, w: &[f32]) -> Result<TernaryWeights> {
    if w.iter().any(|x| !x.is_finite()) {
        return Err(EngineError::BadTensor {
            name: name.to_string(),
            reason: "contains NaN or infinite values".to_string(),
        });
    }
    let magnitude = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let already_ternary = magnitude > 0.0
        && w.iter()
            .all(|&x| x == 0.0 || (x.abs() - magnitude).abs() <= magnitude * 1e-3);
    if already_ternary {
        let values = w
            .iter()
            .map(|&x| {
                if x == 0.0 {
                    0
                } else if x > 0.0 {
                    1
                } else {
                    -1
                }
            })
            .collect();
        return Ok(TernaryWeights {
            rows,
            cols,
            values,
            scale: magnitude,
        });
    }
    let t = bitnet_checkpoint::absmean_ternarize(w, rows, cols);
    Ok(t)
}

/// Loads weights from a Hugging Face checkpoint directory.
pub fn load_checkpoint(
    ckpt: &Checkpoint,
    cfg: &ModelConfig,
    kernels: &Kernels,
) -> Result<ModelWeights> {
    ckpt.check_tensor_set()?;
    let dense = |(shape, values): (Vec<usize>, DenseValues)| {
        Arc::new(match values {
            DenseValues::F32(v) => DenseMatrix::from_f32(shape[0], shape[1], v),
            DenseValues::BF16(v) => {
                DenseMatrix::from_bf16(shape[0], shape[1], &v, kernels.threads())
            }
        })
    };
    let embedding = dense(ckpt.embedding()?);
    let (head, tied) = match ckpt.lm_head()? {
        Some(head) => (dense(head), false),
        None => (Arc::clone(&embedding), true),
    };
    let layers = on_load_pool(kernels.threads(), || {
        par_map(cfg.n_layers, |l| {
            let norms = Norm::ALL.map(|n| ckpt.norm(l, n).map_err(EngineError::from));
            let linears = Linear::ALL.map(|w| {
                ckpt.linear(l, w)
                    .map(|t| kernels.pack(&t))
                    .map_err(EngineError::from)
            });
            LayerWeights::try_from_parts(norms, linears)
        })
    })?;
    Ok(ModelWeights {
        rescore: None,
        embedding,
        head,
        tied,
        output_norm: ckpt.final_norm()?,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, Model};

    #[test]
    fn par_map_keeps_order_and_reports_the_first_error() {
        for threads in [1, 2, 5] {
            let ok: std::result::Result<Vec<usize>, String> =
                on_load_pool(threads, || par_map(50, |i| Ok(i * i)));
            assert_eq!(ok.unwrap(), (0..50).map(|i| i * i).collect::<Vec<_>>());
            let err = on_load_pool(threads, || {
                par_map(50, |i| {
                    if i % 7 == 3 {
                        Err(format!("bad {i}"))
                    } else {
                        Ok(i)
                    }
                })
            });
            assert_eq!(err.unwrap_err(), "bad 3", "{threads} threads");
            let pool_size = on_load_pool(threads, rayon::current_num_threads);
            assert_eq!(pool_size, threads);
        }
    }

    fn codes(w: &ModelWeights) -> Vec<u8> {
        w.layers
            .iter()
            .flat_map(|l| l.linears())
            .flat_map(|p| {
                (0..p.rows())
                    .flat_map(|r| p.row(r).to_vec())
                    .chain(p.scale().to_le_bytes())
            })
            .collect()
    }

    fn embedding(w: &ModelWeights) -> Vec<f32> {
        let e = &w.embedding;
        let mut out = vec![0.0; e.rows() * e.cols()];
        for (r, row) in out.chunks_exact_mut(e.cols()).enumerate() {
            e.row_into(r, row);
        }
        out
    }

    #[test]
    fn synthetic_weights_do_not_depend_on_threads() {
        // More embedding rows than one random stream covers.
        let cfg = ModelConfig {
            vocab_size: 2500,
            ..bitnet_schema::presets::preset("tiny").unwrap()
        };
        let one = crate::synthetic::weights(&cfg, 7, &Kernels::new(1));
        let three = crate::synthetic::weights(&cfg, 7, &Kernels::new(3));
        assert_eq!(codes(&one), codes(&three));
        assert_eq!(embedding(&one), embedding(&three));
        assert_ne!(
            embedding(&one)[..256],
            embedding(&one)[1024 * 256..1025 * 256]
        );
        let other_seed = crate::synthetic::weights(&cfg, 8, &Kernels::new(3));
        assert_ne!(codes(&one), codes(&other_seed));
    }

    #[test]
    fn parallel_load_equals_sequential_load() {
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-bitnet");
        for path in [
            fixtures.join("i2s/model-i2_s.gguf"),
            fixtures.join("packed"),
        ] {
            let load = |threads| {
                let opts = LoadOptions {
                    threads,
                    ..LoadOptions::default()
                };
                Model::load(&path, &opts).unwrap()
            };
            let (one, three) = (load(1), load(3));
            assert_eq!(codes(one.weights()), codes(three.weights()));
            let logits = |m: &Model| {
                let mut s = m.new_session();
                m.forward_all(&mut s, &[1, 10, 20, 30]).unwrap()
            };
            assert_eq!(logits(&one), logits(&three), "{}", path.display());
        }
    }
}
