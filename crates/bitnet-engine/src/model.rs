//! The BitNet b1.58 forward pass (W1.58A8), exactly as transformers' `BitNetForCausalLM`
//! computes it:
//!
//! ```text
//! per layer:  h = rms(x) * attn_norm
//!             q, k, v = BitLinear(h); NEOX RoPE on q, k; causal GQA attention
//!             x += BitLinear_o(rms(attn) * attn_sub_norm)
//!             h = rms(x) * ffn_norm
//!             x += BitLinear_down(rms(act(BitLinear_gate(h)) * BitLinear_up(h)) * ffn_sub_norm)
//! end:        logits = head(rms(x) * output_norm)
//! BitLinear:  activations quantised per token over the whole row to int8
//!             (s = 127 / max|x|, round half to even), y = (q . w) / s * w_scale
//! ```
//!
//! A [`Model`] is immutable and shared; a [`Session`] holds one sequence's KV cache and every
//! scratch buffer, all allocated up front, so decoding a token allocates nothing.

use std::path::Path;
use std::sync::Arc;

use bitnet_checkpoint::Checkpoint;
use bitnet_gguf::GgufFile;
use bitnet_kernels::{Kernels, PackedTernary, Q8Activations};
use bitnet_tokenizer::Tokenizer;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::kv_cache::{KvCache, KvType};
use crate::rope::RopeTable;
use crate::weights::{self, ModelWeights};

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Worker threads for the kernels (0 = all available cores).
    pub threads: usize,
    /// Quantise activations to int8 (W1.58A8, the model as trained). `false` keeps them in
    /// f32: not the model as trained, but isolates everything but int8 rounding when
    /// cross-checking against a reference.
    pub activation_quantization: bool,
    /// Force a kernel implementation by id (e.g. `i2s/scalar`); `None` picks the fastest.
    pub kernel: Option<String>,
    /// Storage of the output head: as in the file (F16 in BitNet GGUFs), or Q8_0.
    pub head_type: HeadType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            threads: 0,
            activation_quantization: true,
            kernel: None,
            head_type: HeadType::Stored,
        }
    }
}

/// How the output head is held in memory.
///
/// Decoding streams the whole head once per token; for the 2B4T shape its F16 form is 0.66 GB
/// of ~1.18 GB. `Q8_0` quantises it at load time (ggml's numerics, 1.0625 bytes per weight),
/// trading a small logit error for bandwidth. A tied embedding stays in its stored type
/// (token lookups are exact); the head becomes a quantised copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HeadType {
    /// The type stored in the model (F16 in BitNet GGUFs; F32 or widened BF16 otherwise).
    #[default]
    Stored,
    /// ggml-style Q8_0: int8 blocks of 32 with an f16 scale each.
    Q8_0,
}

impl HeadType {
    /// The names [`HeadType::from_str`](std::str::FromStr) accepts, for help texts.
    pub const NAMES: [&'static str; 2] = ["stored", "q8_0"];

    /// The canonical name (`"stored"`, `"q8_0"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HeadType::Stored => "stored",
            HeadType::Q8_0 => "q8_0",
        }
    }
}

impl std::fmt::Display for HeadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HeadType {
    type Err = String;

    /// `stored` (also `f16`, `file`) or `q8_0` (also `q8`), case-insensitive.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "stored" | "file" | "f16" => Ok(HeadType::Stored),
            "q8_0" | "q8" => Ok(HeadType::Q8_0),
            _ => Err(format!(
                "unknown head type '{s}' (expected one of: {})",
                HeadType::NAMES.join(", ")
            )),
        }
    }
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A GGUF file.
    Gguf,
    /// A Hugging Face checkpoint directory.
    HuggingFace,
    /// Random weights built in memory.
    Synthetic,
}

/// A loaded model: configuration, weights in kernel layout, tokenizer, kernels.
pub struct Model {
    config: ModelConfig,
    weights: ModelWeights,
    kernels: Kernels,
    rope: RopeTable,
    tokenizer: Option<Tokenizer>,
    act_quant: bool,
    head_type: HeadType,
    source: ModelSource,
    /// Activation buffers of [`Model::forward_batch`] (one scheduler drives it at a time).
    batch_scratch: std::sync::Mutex<Option<Scratch>>,
}

impl Model {
    /// Loads a GGUF file or a Hugging Face checkpoint directory.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        let kernels = make_kernels(opts)?;
        if path.is_dir() {
            let ckpt = Checkpoint::open(path)?;
            let config = ModelConfig::from_hf(ckpt.config())?;
            let mut weights = weights::load_checkpoint(&ckpt, &config, &kernels)?;
            apply_head_type(&mut weights, opts, &kernels)?;
            let tokenizer = if path.join("tokenizer.json").is_file() {
                Some(Tokenizer::from_hf_dir(path)?)
            } else {
                None
            };
            Ok(Self::assemble(
                config,
                weights,
                kernels,
                tokenizer,
                opts,
                ModelSource::HuggingFace,
            ))
        } else if path.is_file() {
            let file = Arc::new(GgufFile::open(path)?);
            Self::from_gguf(file, opts, kernels)
        } else {
            Err(EngineError::NotAModel {
                path: path.to_path_buf(),
            })
        }
    }

    /// A model with random ternary weights and the shapes of `config` (see
    /// [`crate::synthetic`]): for benchmarks without a model file. It has no tokenizer.
    pub fn synthetic(config: ModelConfig, seed: u64, opts: &LoadOptions) -> Result<Self> {
        let kernels = make_kernels(opts)?;
        let mut weights = crate::synthetic::weights(&config, seed, &kernels);
        apply_head_type(&mut weights, opts, &kernels)?;
        Ok(Self::assemble(
            config,
            weights,
            kernels,
            None,
            opts,
            ModelSource::Synthetic,
        ))
    }

    /// Loads a model from GGUF bytes held in memory.
    pub fn from_gguf_bytes(bytes: Vec<u8>, opts: &LoadOptions) -> Result<Self> {
        Self::from_gguf_file(Arc::new(GgufFile::from_bytes(bytes)?), opts)
    }

    /// Loads a model from a parsed GGUF file.
    pub fn from_gguf_file(file: Arc<GgufFile>, opts: &LoadOptions) -> Result<Self> {
        let kernels = make_kernels(opts)?;
        Self::from_gguf(file, opts, kernels)
    }

    fn from_gguf(file: Arc<GgufFile>, opts: &LoadOptions, kernels: Kernels) -> Result<Self> {
        let config = ModelConfig::from_gguf(&file)?;
        let mut weights = weights::load_gguf(&file, &config, &kernels)?;
        apply_head_type(&mut weights, opts, &kernels)?;
        let tokenizer = crate::tokenizer::from_gguf(&file)?;
        Ok(Self::assemble(
            config,
            weights,
            kernels,
            tokenizer,
            opts,
            ModelSource::Gguf,
        ))
    }

    fn assemble(
        config: ModelConfig,
        weights: ModelWeights,
        kernels: Kernels,
        tokenizer: Option<Tokenizer>,
        opts: &LoadOptions,
        source: ModelSource,
    ) -> Self {
        let rope = RopeTable::new(config.context_length, config.rope_dim, config.rope_theta);
        Self {
            config,
            weights,
            kernels,
            rope,
            tokenizer,
            act_quant: opts.activation_quantization,
            head_type: opts.head_type,
            source,
            batch_scratch: std::sync::Mutex::new(None),
        }
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Weights (for statistics such as bytes streamed per token).
    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// The kernels (ISA id, thread count, dispatch counters for receipts).
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// The tokenizer, when the model carries one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Whether activations are quantised to int8.
    pub fn activation_quantization(&self) -> bool {
        self.act_quant
    }

    /// How the output head is stored (see [`HeadType`]).
    pub fn head_type(&self) -> HeadType {
        self.head_type
    }

    /// Where the model was loaded from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// A new session with the model's full context and an f32 cache.
    pub fn new_session(&self) -> Session {
        self.session(&SessionOptions::default())
    }

    /// A new session.
    pub fn session(&self, opts: &SessionOptions) -> Session {
        let c = &self.config;
        let ctx = opts
            .context
            .filter(|&n| n > 0)
            .unwrap_or(c.context_length)
            .min(c.context_length);
        let batch = opts.max_batch.clamp(1, ctx);
        Session {
            kv: KvCache::new(c.n_layers, ctx, c.kv_dim(), opts.kv_type),
            pos: 0,
            // One attention score row per kernel thread (prompts split attention by token).
            scores: vec![0.0; ctx * self.kernels.threads()],
            scratch: Scratch::new(c, batch),
        }
    }

    fn check_tokens(&self, session: &Session, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyInput);
        }
        let needed = session.pos + tokens.len();
        if needed > session.capacity() {
            return Err(EngineError::ContextOverflow {
                needed,
                ctx: session.capacity(),
            });
        }
        let vocab = self.config.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(EngineError::InvalidToken { id, vocab });
        }
        Ok(())
    }

    /// Runs `tokens` through the model after what the session already holds and returns the
    /// logits of the last one (`[vocab]`). Long inputs are processed in batches of the
    /// session's `max_batch` (GEMM); a single token takes the GEMV path.
    pub fn forward<'s>(&self, session: &'s mut Session, tokens: &[u32]) -> Result<&'s [f32]> {
        self.check_tokens(session, tokens)?;
        let batch = session.scratch.batch;
        for chunk in tokens.chunks(batch) {
            self.forward_chunk(session, chunk);
        }
        let n_last = (tokens.len() - 1) % batch + 1;
        self.head(&mut session.scratch, n_last - 1, 1);
        Ok(&session.scratch.logits[..self.config.vocab_size])
    }

    /// Runs `tokens` and returns the logits of every one of them, `[tokens.len()][vocab]`
    /// row-major (for perplexity and cross-checking; allocates the result).
    pub fn forward_all(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        self.check_tokens(session, tokens)?;
        let vocab = self.config.vocab_size;
        let mut all = Vec::with_capacity(tokens.len() * vocab);
        for chunk in tokens.chunks(session.scratch.batch) {
            self.forward_chunk(session, chunk);
            for t in 0..chunk.len() {
                self.head(&mut session.scratch, t, 1);
                all.extend_from_slice(&session.scratch.logits[..vocab]);
            }
        }
        Ok(all)
    }

    /// One decode step for several sequences at once (continuous batching): session `i`
    /// takes `tokens[i]`. The linear layers run as one GEMM over the batch (each weight is
    /// streamed once for all sessions) and attention runs per session over its own cache.
    /// Afterwards every `sessions[i].logits()` holds that session's next-token logits.
    ///
    /// Results equal those of calling [`Model::forward`] on each session alone: the kernels'
    /// integer dot products are exact and every other step is per row.
    pub fn forward_batch(&self, sessions: &mut [&mut Session], tokens: &[u32]) -> Result<()> {
        if sessions.len() != tokens.len() {
            return Err(EngineError::InvalidSetting {
                name: "forward_batch",
                value: format!("{} sessions, {} tokens", sessions.len(), tokens.len()),
                reason: "one token per session",
            });
        }
        for (s, t) in sessions.iter().zip(tokens) {
            self.check_tokens(s, std::slice::from_ref(t))?;
        }
        if sessions.is_empty() {
            return Ok(());
        }
        let vocab = self.config.vocab_size;
        let mut guard = self
            .batch_scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.as_ref().is_none_or(|sc| sc.batch < sessions.len()) {
            let mut scratch = Scratch::new(&self.config, sessions.len());
            scratch.logits.resize(sessions.len() * vocab, 0.0);
            *guard = Some(scratch);
        }
        let scratch = guard.as_mut().expect("scratch was just created");
        let mut rows = BatchRows { sessions };
        self.forward_rows(scratch, &mut rows, tokens);
        let n = tokens.len();
        self.head(scratch, 0, n);
        for (t, s) in rows.sessions.iter_mut().enumerate() {
            s.pos += 1;
            s.scratch.logits[..vocab].copy_from_slice(&scratch.logits[t * vocab..(t + 1) * vocab]);
        }
        Ok(())
    }

    /// Final norm and output head for rows `t0..t0 + n` of the scratch, into
    /// `scratch.logits` (`[n][vocab]`).
    fn head(&self, sc: &mut Scratch, t0: usize, n: usize) {
        let d = self.config.hidden_size;
        let eps = self.config.rms_norm_eps;
        for i in 0..n {
            let t = t0 + i;
            rms_norm(
                &sc.x[t * d..(t + 1) * d],
                &self.weights.output_norm,
                eps,
                &mut sc.h[i * d..(i + 1) * d],
            );
        }
        let vocab = self.config.vocab_size;
        self.weights.head.matmul(
            &self.kernels,
            &sc.h[..n * d],
            n,
            &mut sc.head_act,
            &mut sc.logits[..n * vocab],
        );
    }

    /// `out = W · input` for `n` rows, quantising activations when the model does.
    /// `quantized` says the rows of `input` are already quantised in `s.q8` (shared by q/k/v
    /// and by gate/up). The buffers are passed apart (not as the scratch struct) because the
    /// caller holds other scratch fields borrowed at the same time.
    #[allow(clippy::too_many_arguments)]
    fn bitlinear(
        &self,
        w: &PackedTernary,
        input: &[f32],
        q8: &mut [i8],
        q8_scale: &mut [f32],
        n: usize,
        quantized: bool,
        out: &mut [f32],
    ) {
        let cols = w.cols();
        let out = &mut out[..n * w.rows()];
        if self.act_quant {
            let q8 = &mut q8[..n * cols];
            if !quantized {
                self.kernels
                    .quantize_rows(&input[..n * cols], n, q8, &mut q8_scale[..n]);
            }
            self.kernels.ternary_matmul(w, q8, &q8_scale[..n], n, out);
        } else {
            self.kernels
                .ternary_matmul_f32(w, &input[..n * cols], n, out);
        }
    }

    fn forward_chunk(&self, session: &mut Session, tokens: &[u32]) {
        let Session {
            kv,
            pos,
            scores,
            scratch,
        } = session;
        let mut rows = SingleRows {
            kv,
            scores,
            pos0: *pos,
        };
        self.forward_rows(scratch, &mut rows, tokens);
        *pos += tokens.len();
    }

    /// The transformer over `tokens.len()` rows; row `t`'s cache and position come from `rows`.
    /// Leaves the final hidden states in `sc.x`.
    fn forward_rows(&self, sc: &mut Scratch, rows: &mut impl RowCaches, tokens: &[u32]) {
        let c = &self.config;
        let n = tokens.len();
        let (d, qd, kvd, ffn) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
        let hd = c.head_dim;
        let eps = c.rms_norm_eps;

        for (t, &tok) in tokens.iter().enumerate() {
            self.weights
                .embedding
                .row_into(tok as usize, &mut sc.x[t * d..(t + 1) * d]);
        }

        for (l, lw) in self.weights.layers.iter().enumerate() {
            // Attention block.
            for t in 0..n {
                rms_norm(
                    &sc.x[t * d..(t + 1) * d],
                    &lw.attn_norm,
                    eps,
                    &mut sc.h[t * d..(t + 1) * d],
                );
            }
            self.bitlinear(
                &lw.wq,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                false,
                &mut sc.q,
            );
            self.bitlinear(
                &lw.wk,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                true,
                &mut sc.k,
            );
            self.bitlinear(
                &lw.wv,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                true,
                &mut sc.v,
            );
            for t in 0..n {
                let pos = rows.pos(t);
                self.rope
                    .apply(&mut sc.q[t * qd..(t + 1) * qd], c.n_heads, hd, pos);
                self.rope
                    .apply(&mut sc.k[t * kvd..(t + 1) * kvd], c.n_kv_heads, hd, pos);
                let (kv, _) = rows.cache(t);
                kv.store(
                    l,
                    pos,
                    &sc.k[t * kvd..(t + 1) * kvd],
                    &sc.v[t * kvd..(t + 1) * kvd],
                );
            }
            match rows.single_sequence() {
                // A prompt: its tokens' attention split across the kernel threads.
                Some((kv, scores, pos0)) if n > 1 && self.kernels.threads() > 1 => self
                    .attention_tokens(kv, scores, l, pos0, &sc.q[..n * qd], &mut sc.attn[..n * qd]),
                _ => {
                    for t in 0..n {
                        let pos = rows.pos(t);
                        let (kv, scores) = rows.cache(t);
                        self.attention_row(
                            kv,
                            scores,
                            l,
                            pos,
                            &sc.q[t * qd..(t + 1) * qd],
                            &mut sc.attn[t * qd..(t + 1) * qd],
                        );
                    }
                }
            }
            for t in 0..n {
                // rms over the whole attention output, then the sub-norm weight.
                let (src, dst) = (
                    &sc.attn[t * qd..(t + 1) * qd],
                    &mut sc.h[t * qd..(t + 1) * qd],
                );
                rms_norm(src, &lw.attn_sub_norm, eps, dst);
            }
            self.bitlinear(
                &lw.wo,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                false,
                &mut sc.out,
            );
            for (x, o) in sc.x[..n * d].iter_mut().zip(&sc.out[..n * d]) {
                *x += o;
            }

            // Feed-forward block.
            for t in 0..n {
                rms_norm(
                    &sc.x[t * d..(t + 1) * d],
                    &lw.ffn_norm,
                    eps,
                    &mut sc.h[t * d..(t + 1) * d],
                );
            }
            self.bitlinear(
                &lw.w_gate,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                false,
                &mut sc.gate,
            );
            self.bitlinear(
                &lw.w_up,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                true,
                &mut sc.up,
            );
            let act = c.activation;
            for (g, u) in sc.gate[..n * ffn].iter_mut().zip(&sc.up[..n * ffn]) {
                *g = act.apply(*g) * u;
            }
            for t in 0..n {
                let (src, dst) = (
                    &sc.gate[t * ffn..(t + 1) * ffn],
                    &mut sc.h[t * ffn..(t + 1) * ffn],
                );
                rms_norm(src, &lw.ffn_sub_norm, eps, dst);
            }
            self.bitlinear(
                &lw.w_down,
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                false,
                &mut sc.out,
            );
            for (x, o) in sc.x[..n * d].iter_mut().zip(&sc.out[..n * d]) {
                *x += o;
            }
        }
    }

    /// Attention of `q.len() / q_dim` consecutive tokens of one sequence (positions `pos0..`)
    /// on every kernel thread. Token `t` costs `pos0 + t + 1` key/value rows, so the tokens are
    /// split into contiguous ranges of equal total cost; each thread uses its own `ctx`-long
    /// part of `scores` (`threads * ctx` long) and writes only its tokens' rows of `out`.
    fn attention_tokens(
        &self,
        kv: &KvCache,
        scores: &mut [f32],
        layer: usize,
        pos0: usize,
        q: &[f32],
        out: &mut [f32],
    ) {
        let qd = self.config.q_dim();
        let n = q.len() / qd;
        let threads = self.kernels.threads();
        let share = scores.len() / threads;
        assert!(
            share >= pos0 + n,
            "scores: {share} per thread < {} positions",
            pos0 + n
        );
        assert_eq!(out.len(), n * qd, "attention output length");
        // Cost of tokens 0..t, and the first token of thread i's range.
        let cost = |t: usize| t * pos0 + t * (t + 1) / 2;
        let total = cost(n);
        let start = |i: usize| -> usize {
            if i >= threads {
                return n;
            }
            let goal = total * i / threads;
            (0..n).find(|&t| cost(t) >= goal).unwrap_or(n)
        };
        let out = SharedMut::new(out);
        let scores = SharedMut::new(scores);
        self.kernels.run_parallel(&|i| {
            let (t0, t1) = (start(i), start(i + 1));
            if t0 >= t1 {
                return;
            }
            // SAFETY: thread `i` alone uses scores[i * share..] and the rows of tokens
            // t0..t1, ranges that `start` makes disjoint across threads.
            let s = unsafe { scores.slice(i * share..(i + 1) * share) };
            for t in t0..t1 {
                let o = unsafe { out.slice(t * qd..(t + 1) * qd) };
                self.attention(kv, s, layer, pos0 + t, &q[t * qd..(t + 1) * qd], o);
            }
        });
    }

    /// Causal grouped-query attention of one query row at absolute position `pos` over the
    /// cache of `layer` (positions `0..=pos`).
    fn attention(
        &self,
        kv: &KvCache,
        scores: &mut [f32],
        layer: usize,
        pos: usize,
        q_row: &[f32],
        out_row: &mut [f32],
    ) {
        self.attention_heads(
            kv,
            scores,
            layer,
            pos,
            q_row,
            out_row,
            0..self.config.n_heads,
        );
    }

    /// One token's attention, its heads split across the kernel threads when the context is
    /// long enough to pay for the hand-off: decoding reads the whole KV cache once per token
    /// (at 2048 positions of the 2B4T shape, 0.3 GB in f32), so one thread would leave half
    /// the memory bandwidth unused. Each thread uses its own `ctx`-long part of `scores`
    /// (`threads * ctx` long) and writes only its heads' part of `out_row`; every head's
    /// arithmetic is the same as on one thread.
    fn attention_row(
        &self,
        kv: &KvCache,
        scores: &mut [f32],
        layer: usize,
        pos: usize,
        q_row: &[f32],
        out_row: &mut [f32],
    ) {
        /// Below this many cached positions one thread is faster than a hand-off.
        const MIN_PARALLEL_POSITIONS: usize = 64;
        let threads = self.kernels.threads();
        let heads = self.config.n_heads;
        if threads <= 1 || pos < MIN_PARALLEL_POSITIONS || heads < 2 {
            self.attention(kv, scores, layer, pos, q_row, out_row);
            return;
        }
        let share = scores.len() / threads;
        assert!(share > pos, "scores: {share} per thread <= position {pos}");
        let hd = self.config.head_dim;
        let out = SharedMut::new(out_row);
        let scores = SharedMut::new(scores);
        self.kernels.run_parallel(&|i| {
            let h = chunk_range(heads, threads, i);
            if h.is_empty() {
                return;
            }
            // SAFETY: thread `i` alone uses scores[i * share..] and the columns of heads `h`,
            // ranges that `chunk_range` makes disjoint across threads.
            let (s, o) = unsafe {
                (
                    scores.slice(i * share..(i + 1) * share),
                    out.slice(h.start * hd..h.end * hd),
                )
            };
            self.attention_heads(kv, s, layer, pos, q_row, o, h);
        });
    }

    /// Attention of heads `heads` of one query row; `out` holds just those heads' columns.
    #[allow(clippy::too_many_arguments)]
    fn attention_heads(
        &self,
        kv: &KvCache,
        scores: &mut [f32],
        layer: usize,
        pos: usize,
        q_row: &[f32],
        out: &mut [f32],
        heads: std::ops::Range<usize>,
    ) {
        let c = &self.config;
        let hd = c.head_dim;
        let group = c.n_heads / c.n_kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let first = heads.start;
        for head in heads {
            let kv_start = (head / group) * hd;
            let q = &q_row[head * hd..(head + 1) * hd];
            let scores = &mut scores[..=pos];
            let mut max = f32::NEG_INFINITY;
            for (j, sc) in scores.iter_mut().enumerate() {
                *sc = kv.key_dot(layer, j, kv_start, q) * scale;
                max = max.max(*sc);
            }
            let mut sum = 0.0f32;
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
                sum += *sc;
            }
            let inv = 1.0 / sum;
            let out = &mut out[(head - first) * hd..(head - first + 1) * hd];
            out.fill(0.0);
            for (j, &w) in scores.iter().enumerate() {
                kv.add_value(layer, j, kv_start, w * inv, out);
            }
        }
    }
}

/// Part `i` of `0..len` split into `parts` contiguous ranges differing in length by at most one.
fn chunk_range(len: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let (base, extra) = (len / parts, len % parts);
    let start = i * base + i.min(extra);
    start..start + base + usize::from(i < extra)
}

/// Where each row of a forward pass keeps its keys and values, and its position.
trait RowCaches {
    fn pos(&self, t: usize) -> usize;
    fn cache(&mut self, t: usize) -> (&mut KvCache, &mut [f32]);
    /// When every row belongs to one sequence at consecutive positions: its cache, its
    /// scores buffer and the first row's position.
    fn single_sequence(&mut self) -> Option<(&KvCache, &mut [f32], usize)> {
        None
    }
}

/// A buffer that several threads write in disjoint ranges (attention rows, score buffers).
struct SharedMut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: only hands out `&mut [T]` through the unsafe `slice`, whose callers keep the
// ranges disjoint; `T: Send` lets those slices be used from other threads.
unsafe impl<T: Send> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    fn new(buf: &mut [T]) -> Self {
        Self {
            ptr: buf.as_mut_ptr(),
            len: buf.len(),
        }
    }

    /// # Safety
    /// Slices alive at the same time must not overlap, and the buffer passed to `new` must
    /// outlive them and not be used otherwise meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, r: std::ops::Range<usize>) -> &mut [T] {
        assert!(r.start <= r.end && r.end <= self.len, "range out of bounds");
        // SAFETY: in bounds (checked); exclusivity is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len()) }
    }
}

/// Consecutive tokens of one sequence.
struct SingleRows<'a> {
    kv: &'a mut KvCache,
    scores: &'a mut [f32],
    pos0: usize,
}

impl RowCaches for SingleRows<'_> {
    fn pos(&self, t: usize) -> usize {
        self.pos0 + t
    }
    fn cache(&mut self, _t: usize) -> (&mut KvCache, &mut [f32]) {
        (self.kv, self.scores)
    }
    fn single_sequence(&mut self) -> Option<(&KvCache, &mut [f32], usize)> {
        Some((self.kv, self.scores, self.pos0))
    }
}

/// One token of each of several sequences.
struct BatchRows<'a, 'b> {
    sessions: &'a mut [&'b mut Session],
}

impl RowCaches for BatchRows<'_, '_> {
    fn pos(&self, t: usize) -> usize {
        self.sessions[t].pos
    }
    fn cache(&mut self, t: usize) -> (&mut KvCache, &mut [f32]) {
        let s = &mut *self.sessions[t];
        (&mut s.kv, &mut s.scores)
    }
}

/// Activation buffers for up to `batch` rows, allocated once.
pub(crate) struct Scratch {
    batch: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    q8: Vec<i8>,
    q8_scale: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    out: Vec<f32>,
    logits: Vec<f32>,
    /// The head's quantised input when it is Q8_0 (rows of `h` it reads).
    head_act: Q8Activations,
}

impl Scratch {
    fn new(c: &ModelConfig, batch: usize) -> Self {
        let wide = c.hidden_size.max(c.intermediate_size).max(c.q_dim());
        Self {
            batch,
            x: vec![0.0; batch * c.hidden_size],
            h: vec![0.0; batch * wide],
            q8: vec![0; batch * wide],
            q8_scale: vec![0.0; batch],
            q: vec![0.0; batch * c.q_dim()],
            k: vec![0.0; batch * c.kv_dim()],
            v: vec![0.0; batch * c.kv_dim()],
            attn: vec![0.0; batch * c.q_dim()],
            gate: vec![0.0; batch * c.intermediate_size],
            up: vec![0.0; batch * c.intermediate_size],
            out: vec![0.0; batch * c.hidden_size],
            // One row suffices for a session; forward_batch's shared scratch holds one per row.
            logits: vec![0.0; c.vocab_size],
            head_act: Q8Activations::new(batch, c.hidden_size),
        }
    }
}

/// Re-stores the head as `opts.head_type` asks (quantising on the kernels' thread count).
fn apply_head_type(
    weights: &mut ModelWeights,
    opts: &LoadOptions,
    kernels: &Kernels,
) -> Result<()> {
    match opts.head_type {
        HeadType::Stored => Ok(()),
        HeadType::Q8_0 => {
            weights.head = Arc::new(weights.head.to_q8_0(kernels.threads())?);
            Ok(())
        }
    }
}

fn make_kernels(opts: &LoadOptions) -> Result<Kernels> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    match &opts.kernel {
        None => Ok(Kernels::new(threads)),
        Some(id) => {
            let ops = bitnet_kernels::by_id(id).ok_or_else(|| EngineError::InvalidSetting {
                name: "kernel",
                value: id.clone(),
                reason: "not a kernel id available on this CPU",
            })?;
            Ok(Kernels::with_ops(ops, threads))
        }
    }
}

/// `out = x / sqrt(mean(x^2) + eps) * weight`, as transformers' RMSNorm computes it in f32.
#[inline]
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum_sq: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = (sum_sq / x.len() as f64) as f32;
    let inv = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = w * (v * inv);
    }
}

/// Options for a new [`Session`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Context length (positions in the KV cache); `None` = the model's.
    pub context: Option<usize>,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Most tokens processed in one forward batch (prefill uses the GEMM path).
    pub max_batch: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            context: None,
            kv_type: KvType::F32,
            max_batch: 64,
        }
    }
}

/// One sequence's state: KV cache, position and scratch buffers, allocated once.
pub struct Session {
    kv: KvCache,
    pos: usize,
    scores: Vec<f32>,
    scratch: Scratch,
}

impl Session {
    /// Tokens processed so far (the next token's position).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Positions the session can hold.
    pub fn capacity(&self) -> usize {
        self.kv.capacity()
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.size_bytes()
    }

    /// Forgets everything after the first `pos` tokens (to reuse a shared prefix).
    pub fn truncate(&mut self, pos: usize) {
        self.pos = self.pos.min(pos);
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// The next-token logits of the last forward call (`[vocab]`).
    pub fn logits(&self) -> &[f32] {
        &self.scratch.logits
    }
}
