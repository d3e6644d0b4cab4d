//! One sequence's state ([`Session`], [`SessionOptions`]), the activation buffers a forward
//! pass works in ([`Scratch`]), and where each row of a forward pass keeps its keys and
//! values ([`RowCaches`]: the consecutive tokens of one session, or one token of each of
//! several sessions).
//!
//! Everything a forward pass writes is allocated here, up front, sized by the model's shapes,
//! the session's context and batch, and the kernels' thread count, so that decoding a token
//! allocates nothing (tested with a counting allocator).

use crate::weights::HeadActivations;

use crate::config::ModelConfig;
use crate::kv_cache::{KvCache, KvType};

/// Context of a session that asks for none: the model's, at most this many positions (as
/// llama.cpp's default `-c 4096`). The KV cache is allocated up front, so sizing it by a
/// file's `context_length` alone would let a 1 MB file claiming 16 M positions allocate
/// gigabytes; a longer context is asked for explicitly (`--ctx-size`).
pub const DEFAULT_CONTEXT: usize = 4096;

/// Options for a new [`Session`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Context length (positions in the KV cache), at most the model's; `None` = the
    /// model's, at most [`DEFAULT_CONTEXT`].
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
    pub(crate) kv: KvCache,
    pub(crate) pos: usize,
    /// Attention scratch per kernel thread ([`crate::attention::scores_share`]): a prompt
    /// tile's queries, outputs and kernel work over `capacity()` positions (a decoded token
    /// is a tile of one).
    pub(crate) scores: Vec<f32>,
    pub(crate) scratch: Scratch,
}

impl Session {
    /// A session for a model of shape `c` whose kernels run on `threads` threads (see
    /// [`crate::Model::session`]).
    pub(crate) fn new(c: &ModelConfig, opts: &SessionOptions, threads: usize) -> Self {
        let ctx = opts
            .context
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_CONTEXT)
            .min(c.context_length);
        let batch = opts.max_batch.clamp(1, ctx);
        Self {
            kv: KvCache::new(c.n_layers, ctx, c.n_kv_heads, c.head_dim, opts.kv_type),
            pos: 0,
            // Per kernel thread, the work of one attention tile (prompts split attention by
            // token, decoding by head).
            scores: vec![0.0; crate::attention::scores_share(c, ctx) * threads],
            scratch: Scratch::new(c, batch, threads),
        }
    }

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

/// Where each row of a forward pass keeps its keys and values, and its position.
pub(crate) trait RowCaches {
    fn pos(&self, t: usize) -> usize;
    fn cache(&mut self, t: usize) -> (&mut KvCache, &mut [f32]);
    /// When every row belongs to one sequence at consecutive positions: its cache, its
    /// scores buffer and the first row's position.
    fn single_sequence(&mut self) -> Option<(&KvCache, &mut [f32], usize)> {
        None
    }
}

/// Consecutive tokens of one sequence.
pub(crate) struct SingleRows<'a> {
    pub(crate) kv: &'a mut KvCache,
    pub(crate) scores: &'a mut [f32],
    pub(crate) pos0: usize,
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
pub(crate) struct BatchRows<'a, 'b> {
    pub(crate) sessions: &'a mut [&'b mut Session],
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
    pub(crate) batch: usize,
    pub(crate) x: Vec<f32>,
    pub(crate) h: Vec<f32>,
    pub(crate) q8: Vec<i8>,
    pub(crate) q8_scale: Vec<f32>,
    pub(crate) q: Vec<f32>,
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    pub(crate) attn: Vec<f32>,
    pub(crate) gate: Vec<f32>,
    pub(crate) up: Vec<f32>,
    pub(crate) out: Vec<f32>,
    pub(crate) logits: Vec<f32>,
    /// The head's quantised input when it is Q8_0 or Q6_K (rows of `h` it reads).
    pub(crate) head_act: HeadActivations,
    /// Element boundaries of each kernel thread's rows of `attn` when a prompt's attention
    /// is split by token (`threads + 1` entries).
    pub(crate) bounds: Vec<usize>,
}

impl Scratch {
    pub(crate) fn new(c: &ModelConfig, batch: usize, threads: usize) -> Self {
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
            head_act: HeadActivations::new(batch, c.hidden_size),
            bounds: vec![0; threads + 1],
        }
    }
}
