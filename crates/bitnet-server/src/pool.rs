//! The KV pool: engine sessions kept between requests so that a request whose prompt starts
//! like an earlier one (a chat's next turn, a shared system prompt) reuses the cached keys and
//! values and prefills only the rest.
//!
//! What this is, honestly: **prefix caching over per-session contiguous caches**, not
//! block-paged attention. The engine's attention reads one contiguous cache per session, so a
//! prefix lives in exactly one session and two requests cannot share one copy of it at the same
//! time. Memory is accounted in blocks of [`BLOCK_TOKENS`] positions (what a paged pool would
//! hand out), sessions are allocated lazily up to `max_sessions`, each for the full context, and
//! when every session is taken an idle one is evicted in least-recently-used order.
//!
//! Every session belongs to a **partition** (one per API key unless the server shares its cache
//! across keys): a request reuses only prefixes cached in its own partition. Otherwise
//! `cached_tokens` (and the prefill time) would tell one client how much of another client's
//! prompt a guess matches, an oracle for secrets in prompts.
//!
//! Reusing a prefix gives the same numbers as recomputing it: every K/V row depends only on its
//! own token and the rows before it, and the kernels' integer dot products are exact whatever
//! the batch, so a truncated session holds exactly what a fresh prefill would put there.

/// Positions per accounting block.
pub const BLOCK_TOKENS: usize = 16;

/// What the pool needs from a session (implemented by the engine's `Session`; tests use a
/// stand-in).
pub trait PoolSession {
    /// Positions held.
    fn position(&self) -> usize;
    /// Positions it can hold.
    fn capacity(&self) -> usize;
    /// Keeps the first `n` positions.
    fn truncate(&mut self, n: usize);
    /// Bytes allocated for the cache.
    fn kv_bytes(&self) -> usize;
}

impl PoolSession for bitnet_engine::Session {
    fn position(&self) -> usize {
        bitnet_engine::Session::position(self)
    }
    fn capacity(&self) -> usize {
        bitnet_engine::Session::capacity(self)
    }
    fn truncate(&mut self, n: usize) {
        bitnet_engine::Session::truncate(self, n);
    }
    fn kv_bytes(&self) -> usize {
        bitnet_engine::Session::kv_bytes(self)
    }
}

/// Occupancy figures (for metrics and eviction receipts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PoolStats {
    /// Sessions allocated.
    pub sessions: usize,
    /// Sessions serving a request.
    pub active: usize,
    /// Sessions holding a reusable prefix (or nothing) and no request.
    pub idle: usize,
    /// Most sessions.
    pub max_sessions: usize,
    /// Blocks holding cached positions.
    pub blocks_used: usize,
    /// Blocks the pool may hold at most (`max_sessions` full contexts).
    pub blocks_total: usize,
    /// Bytes allocated by the sessions' caches.
    pub bytes_allocated: usize,
    /// Bytes of the blocks in use.
    pub bytes_used: usize,
}

/// An idle session's cache thrown away to serve another request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Eviction {
    /// The session (stable for the server's lifetime).
    pub session: u64,
    /// Cached tokens discarded.
    pub tokens: usize,
    /// Blocks discarded.
    pub blocks: usize,
    /// Bytes of those blocks.
    pub bytes: usize,
    /// Tokens of its old prefix kept because the new prompt shares them.
    pub kept_tokens: usize,
    /// Pool before the eviction.
    pub before: PoolStats,
    /// Pool after it (the session now belongs to the new request).
    pub after: PoolStats,
}

/// A session handed to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Index of the slot (stable while leased).
    pub slot: usize,
    /// The session's id.
    pub session: u64,
    /// Prompt tokens already in its cache: prefill starts there.
    pub reused: usize,
    /// The eviction this lease caused, if any.
    pub eviction: Option<Eviction>,
}

struct Slot<S> {
    session: S,
    id: u64,
    /// The tokens whose K/V the session holds (`session.position()` of them).
    cached: Vec<u32>,
    /// Whose prefix `cached` is: only requests of this partition may reuse it.
    partition: u64,
    busy: bool,
    last_used: u64,
}

/// A bounded set of sessions with prefix reuse and LRU eviction.
pub struct KvPool<S> {
    slots: Vec<Slot<S>>,
    max_sessions: usize,
    ctx: usize,
    clock: u64,
    next_id: u64,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn blocks(tokens: usize) -> usize {
    tokens.div_ceil(BLOCK_TOKENS)
}

impl<S: PoolSession> KvPool<S> {
    /// A pool of at most `max_sessions` sessions of `ctx` positions.
    pub fn new(max_sessions: usize, ctx: usize) -> Self {
        Self {
            slots: Vec::new(),
            max_sessions: max_sessions.max(1),
            ctx,
            clock: 0,
            next_id: 0,
        }
    }

    /// Leases a session for `prompt` (non-empty) of `partition`, built with `make` if a new
    /// one is needed. `None` when every session is busy. Prefixes cached by another partition
    /// count as nothing shared: they are never reused, and evicted whole.
    ///
    /// Choice: the idle session sharing the longest prefix with `prompt` if that is at least one
    /// block (or the whole prompt but its last token); otherwise a fresh or empty session while
    /// the pool has room; otherwise the least recently used idle session, evicted. At least
    /// the prompt's last token is always left to prefill, since its logits are needed.
    pub fn acquire(
        &mut self,
        prompt: &[u32],
        partition: u64,
        make: impl FnOnce() -> S,
    ) -> Option<Lease> {
        let limit = prompt.len().saturating_sub(1);
        let shared = |s: &Slot<S>| {
            if s.partition == partition {
                common_prefix(&s.cached, prompt).min(limit)
            } else {
                0
            }
        };
        let best = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy)
            .map(|(i, s)| (i, shared(s), s.last_used))
            .max_by_key(|&(_, n, used)| (n, used));
        if let Some((i, n, _)) = best
            && n > 0
            && (n >= BLOCK_TOKENS || n == limit)
        {
            return Some(self.lease(i, n, partition));
        }
        if self.slots.len() < self.max_sessions {
            let id = self.next_id;
            self.next_id += 1;
            self.slots.push(Slot {
                session: make(),
                id,
                cached: Vec::new(),
                partition,
                busy: false,
                last_used: 0,
            });
            let i = self.slots.len() - 1;
            return Some(self.lease(i, 0, partition));
        }
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| !s.busy && s.cached.is_empty())
        {
            return Some(self.lease(i, 0, partition));
        }
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.busy)
            .min_by_key(|(_, s)| s.last_used)
            .map(|(i, _)| i)?;
        let keep = shared(&self.slots[victim]);
        let before = self.stats();
        let old = self.slots[victim].cached.len();
        let per_block = self.bytes_per_block(victim);
        let dropped_blocks = blocks(old) - blocks(keep);
        let mut lease = self.lease(victim, keep, partition);
        lease.eviction = Some(Eviction {
            session: self.slots[victim].id,
            tokens: old - keep,
            blocks: dropped_blocks,
            bytes: dropped_blocks * per_block,
            kept_tokens: keep,
            before,
            after: self.stats(),
        });
        Some(lease)
    }

    fn lease(&mut self, i: usize, keep: usize, partition: u64) -> Lease {
        self.clock += 1;
        let slot = &mut self.slots[i];
        slot.partition = partition;
        slot.session.truncate(keep);
        slot.cached.truncate(keep);
        slot.busy = true;
        slot.last_used = self.clock;
        Lease {
            slot: i,
            session: slot.id,
            reused: keep,
            eviction: None,
        }
    }

    /// Returns a leased session; `cached` are the tokens its cache now holds (prompt and the
    /// generated tokens that were fed back), exactly `session.position()` of them.
    pub fn release(&mut self, slot: usize, cached: Vec<u32>) {
        self.clock += 1;
        let s = &mut self.slots[slot];
        debug_assert_eq!(cached.len(), s.session.position());
        let n = cached.len().min(s.session.position());
        s.cached = cached;
        s.cached.truncate(n);
        s.session.truncate(n);
        s.busy = false;
        s.last_used = self.clock;
    }

    /// The session in `slot`.
    pub fn session(&self, slot: usize) -> &S {
        &self.slots[slot].session
    }

    /// The session in `slot`, mutably.
    pub fn session_mut(&mut self, slot: usize) -> &mut S {
        &mut self.slots[slot].session
    }

    /// Mutable references to the sessions of `slots`, in that order (for one batched decode
    /// step).
    ///
    /// # Panics
    /// If a slot repeats or is out of range (the scheduler leases each slot once).
    pub fn sessions_mut(&mut self, slots: &[usize]) -> Vec<&mut S> {
        let mut all: Vec<Option<&mut S>> = self
            .slots
            .iter_mut()
            .map(|s| Some(&mut s.session))
            .collect();
        slots
            .iter()
            .map(|&i| all[i].take().expect("each slot is leased once"))
            .collect()
    }

    fn bytes_per_block(&self, i: usize) -> usize {
        let s = &self.slots[i].session;
        s.kv_bytes() / s.capacity().max(1) * BLOCK_TOKENS
    }

    /// Current occupancy.
    pub fn stats(&self) -> PoolStats {
        let mut st = PoolStats {
            sessions: self.slots.len(),
            max_sessions: self.max_sessions,
            blocks_total: self.max_sessions * blocks(self.ctx),
            ..PoolStats::default()
        };
        for (i, s) in self.slots.iter().enumerate() {
            if s.busy {
                st.active += 1;
            } else {
                st.idle += 1;
            }
            let b = blocks(s.session.position());
            st.blocks_used += b;
            st.bytes_allocated += s.session.kv_bytes();
            st.bytes_used += b * self.bytes_per_block(i);
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session that only counts positions (4 bytes per position).
    struct Fake {
        pos: usize,
        cap: usize,
    }

    impl PoolSession for Fake {
        fn position(&self) -> usize {
            self.pos
        }
        fn capacity(&self) -> usize {
            self.cap
        }
        fn truncate(&mut self, n: usize) {
            self.pos = self.pos.min(n);
        }
        fn kv_bytes(&self) -> usize {
            self.cap * 4
        }
    }

    fn fake() -> Fake {
        Fake { pos: 0, cap: 64 }
    }

    /// Simulates serving: the session ends up holding `tokens`.
    fn serve(pool: &mut KvPool<Fake>, tokens: &[u32]) -> Lease {
        serve_in(pool, tokens, 0)
    }

    fn serve_in(pool: &mut KvPool<Fake>, tokens: &[u32], partition: u64) -> Lease {
        let lease = pool.acquire(tokens, partition, fake).expect("a session");
        pool.session_mut(lease.slot).pos = tokens.len();
        pool.release(lease.slot, tokens.to_vec());
        lease
    }

    #[test]
    fn prefixes_are_reused_only_within_their_partition() {
        // One session: the other key's request must take it over without reusing anything.
        let mut pool = KvPool::new(1, 64);
        let secret: Vec<u32> = (0..40).collect();
        assert_eq!(serve_in(&mut pool, &secret, 1).reused, 0);
        let guess: Vec<u32> = (0..40).chain([7]).collect();
        let lease = serve_in(&mut pool, &guess, 2);
        assert_eq!(lease.reused, 0, "a prefix leaked across partitions");
        let ev = lease
            .eviction
            .expect("the other key's prefix is evicted whole");
        assert_eq!((ev.tokens, ev.kept_tokens), (40, 0));
        // Within a partition the same guess is a hit.
        let again: Vec<u32> = (0..41).collect();
        assert_eq!(serve_in(&mut pool, &again, 2).reused, 40);
    }

    #[test]
    fn next_turn_reuses_the_cached_prefix() {
        let mut pool = KvPool::new(2, 64);
        let turn1: Vec<u32> = (0..40).collect();
        assert_eq!(serve(&mut pool, &turn1).reused, 0);
        let turn2: Vec<u32> = (0..40).chain(100..110).collect();
        let lease = serve(&mut pool, &turn2);
        assert_eq!(lease.reused, 40);
        assert_eq!(lease.slot, 0);
        assert!(lease.eviction.is_none());
    }

    #[test]
    fn identical_prompt_keeps_its_last_token_to_prefill() {
        let mut pool = KvPool::new(1, 64);
        let p: Vec<u32> = (0..20).collect();
        serve(&mut pool, &p);
        assert_eq!(serve(&mut pool, &p).reused, 19);
    }

    #[test]
    fn short_shared_prefix_prefers_a_fresh_session_while_there_is_room() {
        let mut pool = KvPool::new(2, 64);
        serve(
            &mut pool,
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
            ],
        );
        // Shares only BOS-like token 1: a new session, the first one's cache survives.
        let lease = serve(&mut pool, &[1, 50, 51]);
        assert_eq!((lease.slot, lease.reused), (1, 0));
        assert_eq!(pool.stats().sessions, 2);
    }

    #[test]
    fn full_pool_evicts_the_least_recently_used_idle_session() {
        let mut pool = KvPool::new(2, 64);
        let a: Vec<u32> = (0..33).collect();
        let b: Vec<u32> = (100..120).collect();
        serve(&mut pool, &a); // slot 0, used first
        serve(&mut pool, &b); // slot 1
        let c: Vec<u32> = (200..210).collect();
        let lease = serve(&mut pool, &c);
        let ev = lease.eviction.expect("an eviction");
        assert_eq!(lease.slot, 0);
        assert_eq!(ev.session, 0);
        assert_eq!((ev.tokens, ev.blocks, ev.kept_tokens), (33, 3, 0));
        assert_eq!(ev.bytes, 3 * 16 * 4);
        assert_eq!(ev.before.blocks_used, 3 + 2);
        assert_eq!(ev.after.blocks_used, 2);
        assert_eq!(ev.after.active, 1);
        assert_eq!(pool.stats().blocks_used, 2 + 1);
    }

    #[test]
    fn busy_sessions_are_never_taken() {
        let mut pool = KvPool::new(1, 64);
        let lease = pool.acquire(&[1, 2], 0, fake).unwrap();
        assert!(pool.acquire(&[1, 2], 0, fake).is_none());
        pool.release(lease.slot, Vec::new());
        assert!(pool.acquire(&[1, 2], 0, fake).is_some());
    }

    #[test]
    fn sessions_mut_returns_the_requested_order() {
        let mut pool = KvPool::new(3, 64);
        for p in [[1u32, 2], [3, 4], [5, 6]] {
            let l = pool.acquire(&p, 0, fake).unwrap();
            pool.session_mut(l.slot).pos = l.slot + 10;
        }
        let got: Vec<usize> = pool.sessions_mut(&[2, 0]).iter().map(|s| s.pos).collect();
        assert_eq!(got, vec![12, 10]);
    }
}
