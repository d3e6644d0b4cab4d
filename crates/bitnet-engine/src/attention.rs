//! Causal grouped-query attention over the KV cache, split across the kernel threads: a
//! prompt by tokens (contiguous ranges of equal cost), one decoded token by heads (when the
//! context is long enough to pay for the hand-off).
//!
//! Each thread uses its own `group * ctx` part of the session's scores (`threads * group *
//! ctx` long, `group` the query heads per KV head) and
//! writes only its own tokens' or heads' part of the output. The parts are cut by
//! [`Kernels::for_each_part_mut`], which hands each job exclusive slices: no raw pointers
//! here. Every head's arithmetic is the same whichever thread runs it, so results do not
//! depend on the thread count.

use std::ops::Range;

use bitnet_kernels::{Kernels, PartsMut};

use crate::config::ModelConfig;
use crate::kv_cache::KvCache;

/// Lowest softmax exponent: `exp` of anything below about -87.3 is subnormal or zero in
/// f32, and glibc's `expf` reaches it through a slow path that sets `errno` (5-9 % of a
/// long prompt's time in `perf`, with the peaked scores of the 2B4T-shaped model). Against
/// the largest term, `exp(0) = 1`, a term of `exp(-87)` (1.6e-38) changes no sum.
const EXP_FLOOR: f32 = -87.0;

/// Attention for one model: its shapes and the kernels whose threads split the work.
pub(crate) struct Attention<'a> {
    pub(crate) config: &'a ModelConfig,
    pub(crate) kernels: &'a Kernels,
}

impl Attention<'_> {
    /// Attention of `q.len() / q_dim` consecutive tokens of one sequence (positions
    /// `pos0..`) on every kernel thread. Token `t` costs `pos0 + t + 1` key/value rows, so
    /// the tokens are split into contiguous ranges of equal total cost, whose boundaries go
    /// to `bounds` (`threads + 1` long, caller-owned so nothing is allocated).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tokens(
        &self,
        kv: &KvCache,
        scores: &mut [f32],
        bounds: &mut [usize],
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
            share >= self.config.group() * (pos0 + n),
            "scores: {share} per thread < {} heads x {} positions",
            self.config.group(),
            pos0 + n
        );
        assert_eq!(out.len(), n * qd, "attention output length");
        // Cost of tokens 0..t; thread i starts at the first token where its share begins.
        let cost = |t: usize| t * pos0 + t * (t + 1) / 2;
        let total = cost(n);
        let bounds = &mut bounds[..=threads];
        for (i, b) in bounds.iter_mut().enumerate() {
            let goal = total * i / threads;
            *b = (0..n).find(|&t| cost(t) >= goal).unwrap_or(n) * qd;
        }
        self.kernels.for_each_part_mut(
            [PartsMut::at(out, bounds), PartsMut::chunks(scores, share)],
            &|_, [mut rows, mut s]| {
                let t0 = rows.start() / qd;
                for (k, o) in rows.chunks_exact_mut(qd).enumerate() {
                    let t = t0 + k;
                    let q_row = &q[t * qd..(t + 1) * qd];
                    self.heads(
                        kv,
                        &mut s,
                        layer,
                        pos0 + t,
                        q_row,
                        o,
                        0..self.config.n_heads,
                    );
                }
            },
        );
    }

    /// One token's attention at absolute position `pos` over the cache of `layer`
    /// (positions `0..=pos`), its heads split across the kernel threads when the context is
    /// long enough to pay for the hand-off: decoding reads the whole KV cache once per token
    /// (at 2048 positions of the 2B4T shape, 0.3 GB in f32), so one thread would leave half
    /// the memory bandwidth unused.
    pub(crate) fn row(
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
            self.heads(kv, scores, layer, pos, q_row, out_row, 0..heads);
            return;
        }
        let share = scores.len() / threads;
        assert!(
            share > self.config.group() * pos,
            "scores: {share} per thread <= {} heads x position {pos}",
            self.config.group()
        );
        let hd = self.config.head_dim;
        self.kernels.for_each_part_mut(
            [PartsMut::even(out_row, hd), PartsMut::chunks(scores, share)],
            &|_, [mut o, mut s]| {
                let first = o.start() / hd;
                let h = first..first + o.len() / hd;
                if !h.is_empty() {
                    self.heads(kv, &mut s, layer, pos, q_row, &mut o, h);
                }
            },
        );
    }

    /// Attention of heads `heads` of one query row; `out` holds just those heads' columns.
    /// The heads sharing a KV head go to the kernels together (each cached row is read once
    /// for the group), their score rows side by side in `scores` (`group * (pos + 1)`).
    #[allow(clippy::too_many_arguments)]
    fn heads(
        &self,
        kv: &KvCache,
        scores: &mut [f32],
        layer: usize,
        pos: usize,
        q_row: &[f32],
        out: &mut [f32],
        heads: Range<usize>,
    ) {
        let c = self.config;
        let hd = c.head_dim;
        let group = c.n_heads / c.n_kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let rows = pos + 1;
        let first = heads.start;
        let mut h0 = heads.start;
        while h0 < heads.end {
            // The heads of `heads` that share h0's KV head.
            let kv_head = h0 / group;
            let h1 = heads.end.min((kv_head + 1) * group);
            let g = h1 - h0;
            let kv_start = kv_head * hd;
            let q = &q_row[h0 * hd..h1 * hd];
            let scores = &mut scores[..g * rows];
            self.kernels
                .kv_scores(&kv.keys(layer, kv_start, hd, rows), q, scale, scores);
            for scores in scores.chunks_exact_mut(rows) {
                let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                let mut sum = 0.0f32;
                for sc in scores.iter_mut() {
                    *sc = (*sc - max).max(EXP_FLOOR).exp();
                    sum += *sc;
                }
                let inv = 1.0 / sum;
                for sc in scores.iter_mut() {
                    *sc *= inv;
                }
            }
            let out = &mut out[(h0 - first) * hd..(h1 - first) * hd];
            out.fill(0.0);
            self.kernels
                .kv_mix(&kv.values(layer, kv_start, hd, rows), scores, out);
            h0 = h1;
        }
    }
}
