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
//!
//! The model is split by concern: `model.rs` (this: the [`Model`], its entry points and the
//! transformer) uses `load.rs` (options and load paths), `session.rs` (sessions and scratch
//! buffers) and `attention.rs` (attention over the KV cache, split across the kernel
//! threads), none of which uses `model.rs` or each other, so the modules form no cycle.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bitnet_gguf::GgufFile;
use bitnet_kernels::{Kernels, PackedTernary};
use bitnet_tokenizer::Tokenizer;

use crate::attention::Attention;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::load::{self, Loaded};
use crate::rescore;
use crate::rope::RopeTable;
use crate::session::{BatchRows, RowCaches, Scratch, SingleRows};
use crate::weights::ModelWeights;

pub use crate::load::{HeadType, LoadOptions, ModelSource};
pub use crate::session::{Session, SessionOptions};

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
    batch_scratch: Mutex<Option<Scratch>>,
    /// Every token's bytes, for constrained decoding (built on first use).
    token_texts: std::sync::OnceLock<Option<std::sync::Arc<crate::constraint::TokenTexts>>>,
}

impl Model {
    /// Loads a GGUF file or a Hugging Face checkpoint directory.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Self> {
        load::path(path, opts).map(|l| Self::assemble(l, opts))
    }

    /// A model with random ternary weights and the shapes of `config` (see
    /// [`crate::synthetic`]): for benchmarks without a model file. It has no tokenizer.
    pub fn synthetic(config: ModelConfig, seed: u64, opts: &LoadOptions) -> Result<Self> {
        load::synthetic(config, seed, opts).map(|l| Self::assemble(l, opts))
    }

    /// Loads a model from GGUF bytes held in memory.
    pub fn from_gguf_bytes(bytes: Vec<u8>, opts: &LoadOptions) -> Result<Self> {
        Self::from_gguf_file(Arc::new(GgufFile::from_bytes(bytes)?), opts)
    }

    /// Loads a model from a parsed GGUF file.
    pub fn from_gguf_file(file: Arc<GgufFile>, opts: &LoadOptions) -> Result<Self> {
        load::gguf(file, opts).map(|l| Self::assemble(l, opts))
    }

    fn assemble(l: Loaded, opts: &LoadOptions) -> Self {
        let c = &l.config;
        let rope = RopeTable::new(c.context_length, c.rope_dim, c.rope_theta);
        let mut weights = l.weights;
        weights.ternary_in_huge_pages(l.kernels.threads());
        Self {
            config: l.config,
            weights,
            kernels: l.kernels,
            rope,
            tokenizer: l.tokenizer,
            act_quant: opts.activation_quantization,
            head_type: opts.head_type,
            source: l.source,
            batch_scratch: Mutex::new(None),
            token_texts: std::sync::OnceLock::new(),
        }
    }

    /// Every token's bytes (see [`crate::TokenTexts`]), built once on first use (a pass
    /// over the vocabulary); `None` without a tokenizer.
    pub fn token_texts(&self) -> Option<std::sync::Arc<crate::constraint::TokenTexts>> {
        self.token_texts
            .get_or_init(|| {
                self.tokenizer
                    .as_ref()
                    .map(|t| std::sync::Arc::new(crate::constraint::TokenTexts::new(t)))
            })
            .clone()
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

    /// A new session with the model's context (at most [`crate::DEFAULT_CONTEXT`]) and an f32
    /// cache.
    pub fn new_session(&self) -> Session {
        self.session(&SessionOptions::default())
    }

    /// A new session.
    pub fn session(&self, opts: &SessionOptions) -> Session {
        Session::new(&self.config, opts, self.kernels.threads())
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
            .unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_none_or(|sc| sc.batch < sessions.len()) {
            let mut scratch = Scratch::new(&self.config, sessions.len(), self.kernels.threads());
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
        if let Some(exact) = &self.weights.rescore {
            for (h, logits) in sc.h[..n * d]
                .chunks_exact(d)
                .zip(sc.logits[..n * vocab].chunks_exact_mut(vocab))
            {
                rescore::rescore_top(logits, |c| exact.row_dot(&self.kernels, c, h));
            }
        }
    }

    /// `out_k = W_k · input` for `n` rows and each of the `K` matrices (one for o and down;
    /// q, k and v, or gate and up, together), quantising the activations once when the model
    /// does, the matmuls in one pool run ([`Kernels::ternary_matmuls`]). The buffers are passed
    /// apart (not as the scratch struct) because the caller holds other scratch fields
    /// borrowed at the same time.
    fn bitlinears<const K: usize>(
        &self,
        ws: [&PackedTernary; K],
        input: &[f32],
        q8: &mut [i8],
        q8_scale: &mut [f32],
        n: usize,
        outs: [&mut [f32]; K],
    ) {
        let cols = ws[0].cols();
        let mut i = 0;
        let outs = outs.map(|out| {
            let out = &mut out[..n * ws[i].rows()];
            i += 1;
            out
        });
        if self.act_quant {
            let q8 = &mut q8[..n * cols];
            self.kernels
                .quantize_rows(&input[..n * cols], n, q8, &mut q8_scale[..n]);
            self.kernels
                .ternary_matmuls(ws, q8, &q8_scale[..n], n, outs);
        } else {
            for (w, out) in ws.into_iter().zip(outs) {
                self.kernels
                    .ternary_matmul_f32(w, &input[..n * cols], n, out);
            }
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
            self.bitlinears(
                [&lw.wq, &lw.wk, &lw.wv],
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                [&mut sc.q, &mut sc.k, &mut sc.v],
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
            let attention = self.attention();
            match rows.single_sequence() {
                // A prompt: its tokens' attention in tiles, split across the kernel threads.
                Some((kv, scores, pos0)) if n > 1 => attention.tokens(
                    kv,
                    scores,
                    &mut sc.bounds,
                    l,
                    pos0,
                    &sc.q[..n * qd],
                    &mut sc.attn[..n * qd],
                ),
                _ => {
                    for t in 0..n {
                        let pos = rows.pos(t);
                        let (kv, scores) = rows.cache(t);
                        attention.row(
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
            self.bitlinears(
                [&lw.wo],
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                [&mut sc.out],
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
            self.bitlinears(
                [&lw.w_gate, &lw.w_up],
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                [&mut sc.gate, &mut sc.up],
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
            self.bitlinears(
                [&lw.w_down],
                &sc.h,
                &mut sc.q8,
                &mut sc.q8_scale,
                n,
                [&mut sc.out],
            );
            for (x, o) in sc.x[..n * d].iter_mut().zip(&sc.out[..n * d]) {
                *x += o;
            }
        }
    }

    /// Attention for this model's shapes on its kernels' threads.
    fn attention(&self) -> Attention<'_> {
        Attention {
            config: &self.config,
            kernels: &self.kernels,
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
