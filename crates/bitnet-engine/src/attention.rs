//! Causal grouped-query attention over the KV cache, split across the kernel threads: a
//! prompt by tokens (contiguous ranges of equal cost, each cut into tiles of up to
//! [`MAX_TILE_TOKENS`] tokens that go to [`Kernels::kv_causal`] one KV head at a time), one
//! decoded token by heads (when the context is long enough to pay for the hand-off).
//!
//! Each thread uses its own part of the session's scores buffer ([`scores_share`] long: a
//! tile's queries, outputs and kernel work) and writes only its
//! own tokens' or heads' part of the output. The parts are cut by
//! [`Kernels::for_each_part_mut`], which hands each job exclusive slices: no raw pointers
//! here. Every head's arithmetic is the same whichever thread runs it and whatever tile it
//! falls in ([`Kernels::kv_causal`]'s contract), so results do not depend on the thread count.

use std::ops::Range;

use bitnet_kernels::{Kernels, PartsMut, causal_work_len};

use crate::config::ModelConfig;
use crate::kv_cache::KvCache;

/// Most tokens of a prompt tile: 64 query rows of the 2B4T shape (4 heads per KV head), the
/// AVX-512 tile kernel's widest register block (chosen from the register count; other tile
/// sizes were not measured).
pub(crate) const MAX_TILE_TOKENS: usize = 16;

/// Scores buffer per thread worth aiming for (f32 elements, 1 MiB): the tile shrinks below
/// [`MAX_TILE_TOKENS`] when a long context would need more.
const TILE_BUDGET: usize = 1 << 18;

/// Tokens per prompt tile for a context of `ctx` positions.
fn tile_tokens_for(c: &ModelConfig, ctx: usize) -> usize {
    (TILE_BUDGET / (ctx.max(1) * c.group())).clamp(1, MAX_TILE_TOKENS)
}

/// Elements of a `tile`-token tile's part of the scores buffer over `rows` cached rows: its
/// gathered queries and outputs, and the kernel's work.
fn tile_share(c: &ModelConfig, tile: usize, rows: usize) -> usize {
    let m = tile * c.group();
    2 * m * c.head_dim + causal_work_len(rows, m, c.head_dim)
}

/// Elements of the scores buffer each kernel thread needs for a context of `ctx` positions:
/// a prompt tile ([`tile_share`]), which is also enough for one decoded token's heads (a
/// tile of one token).
pub(crate) fn scores_share(c: &ModelConfig, ctx: usize) -> usize {
    tile_share(c, tile_tokens_for(c, ctx), ctx)
}

/// Attention for one model: its shapes and the kernels whose threads split the work.
pub(crate) struct Attention<'a> {
    pub(crate) config: &'a ModelConfig,
    pub(crate) kernels: &'a Kernels,
}

impl Attention<'_> {
    /// Attention of `q.len() / q_dim` consecutive tokens of one sequence (positions
    /// `pos0..`) on every kernel thread. Token `t` costs `pos0 + t + 1` key/value rows, so
    /// the tokens are split into contiguous ranges of equal total cost, whose boundaries go
    /// to `bounds` (`threads + 1` long, caller-owned so nothing is allocated); each range goes
    /// through [`Kernels::kv_causal`] in tiles of as many tokens as the thread's part of
    /// `scores` holds, up to [`MAX_TILE_TOKENS`].
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
        let c = self.config;
        let (qd, hd, g) = (c.q_dim(), c.head_dim, c.group());
        let n = q.len() / qd;
        let threads = self.kernels.threads();
        let share = scores.len() / threads;
        let rows = pos0 + n;
        let tile = (1..=MAX_TILE_TOKENS)
            .rev()
            .find(|&t| tile_share(c, t, rows) <= share)
            .unwrap_or_else(|| panic!("scores: {share} per thread < one token over {rows} rows"));
        assert_eq!(out.len(), n * qd, "attention output length");
        let scale = 1.0 / (hd as f32).sqrt();
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
            &|_, [mut part, mut s]| {
                let t0 = part.start() / qd;
                let (qt, rest) = s.split_at_mut(tile * g * hd);
                let (ot, work) = rest.split_at_mut(tile * g * hd);
                for (i, out) in part.chunks_mut(tile * qd).enumerate() {
                    let a = t0 + i * tile;
                    let tokens = out.len() / qd;
                    let (qt, ot) = (&mut qt[..tokens * g * hd], &mut ot[..tokens * g * hd]);
                    let seen = pos0 + a + tokens;
                    for kv_head in 0..c.n_kv_heads {
                        // This KV head's query heads are adjacent in each token's row.
                        let cols = kv_head * g * hd..(kv_head + 1) * g * hd;
                        for (t, qh) in qt.chunks_exact_mut(g * hd).enumerate() {
                            qh.copy_from_slice(&q[(a + t) * qd..][cols.clone()]);
                        }
                        self.kernels.kv_causal(
                            &kv.keys(layer, kv_head, seen),
                            &kv.values(layer, kv_head, seen),
                            qt,
                            g,
                            scale,
                            work,
                            ot,
                        );
                        for (o, oh) in out.chunks_exact_mut(qd).zip(ot.chunks_exact(g * hd)) {
                            o[cols.clone()].copy_from_slice(oh);
                        }
                    }
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
    /// The heads sharing a KV head go to [`Kernels::kv_causal`] together (each cached row is
    /// read once for the group) as a tile of one token, `scores` its work: the same op and
    /// arithmetic as a prompt's tiles, so a token's logits do not depend on whether it came
    /// in a prompt or was decoded.
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
            let q = &q_row[h0 * hd..h1 * hd];
            let out = &mut out[(h0 - first) * hd..(h1 - first) * hd];
            let (keys, values) = (
                kv.keys(layer, kv_head, rows),
                kv.values(layer, kv_head, rows),
            );
            // One token: the last (only) token of a tile sees every row.
            self.kernels
                .kv_causal(&keys, &values, q, g, scale, scores, out);
            h0 = h1;
        }
    }
}
