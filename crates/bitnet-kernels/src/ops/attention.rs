//! [`AttentionOps`]: causal softmax attention over one KV head's cache for a tile of tokens
//! and the query heads sharing it ([`AttentionOps::kv_causal`]), the checked views of the
//! cached keys ([`KvKeys`], stored in transposed blocks) and values ([`KvRows`]) it reads, and
//! the softmax it computes ([`softmax`]).
//!
//! Decoding at depth reads every cached key and value once per token and layer (at 1024
//! positions of the 2B4T shape, 157 M multiply-adds per token), and a long prompt does that
//! for each of its tokens: the op takes a tile of tokens so that each cached row is loaded
//! once for all of them. The op is float sums, so backends may sum in any order (tests
//! bound them against f64); but each backend must give every query row the same result
//! whatever tile it comes in, and decoding uses the same op (a tile of one token), so
//! logits do not depend on how a prompt was cut into batches, tiles or threads.

use super::KernelId;
use half::f16;

/// The element type of a KV cache.
#[derive(Debug, Clone, Copy)]
pub enum KvData<'a> {
    /// 32-bit floats.
    F32(&'a [f32]),
    /// 16-bit floats.
    F16(&'a [f16]),
}

impl KvData<'_> {
    fn len(&self) -> usize {
        match self {
            KvData::F32(s) => s.len(),
            KvData::F16(s) => s.len(),
        }
    }
}

/// A checked view of `rows` cached positions of one head, `len` elements each, stored as
/// `layout` says: [`KvRows`] (row by row, the values) or [`KvKeys`] (transposed blocks, the
/// keys). Checked once when made, so backends index without re-checking the geometry.
#[derive(Debug, Clone, Copy)]
pub struct KvView<'a, L> {
    data: KvData<'a>,
    len: usize,
    rows: usize,
    layout: L,
}

/// [`KvView`] layout: row `j` is `data[j * stride + start..][..len]`.
#[derive(Debug, Clone, Copy)]
pub struct RowMajor {
    stride: usize,
    start: usize,
}

/// [`KvView`] layout: blocks of [`KEY_BLOCK`] positions, each transposed (see [`KvKeys`]).
#[derive(Debug, Clone, Copy)]
pub struct KeyBlocks;

/// Cached rows of one head, row by row (the values; see [`KvView`]).
pub type KvRows<'a> = KvView<'a, RowMajor>;

/// Cached keys of one head in blocks of [`KEY_BLOCK`] positions, each block transposed:
/// element `c` of position `j` is at [`KvKeys::index`]`(len, j, c)`.
///
/// Decoding scores one token's few query heads against every cached key: with the cached
/// positions in the SIMD lanes, each step over the head dimension is one load of a block's
/// column, where row-major keys had to be transposed in registers first (a third of the
/// decode kernel's time at depth, per `perf`). The last block is always whole in storage (the
/// cache allocates whole blocks), so kernels may load the lanes past `rows` and discard them.
pub type KvKeys<'a> = KvView<'a, KeyBlocks>;

/// Cached positions per block of a key cache ([`KvKeys`]).
pub const KEY_BLOCK: usize = 16;

impl<'a, L: Copy> KvView<'a, L> {
    /// Positions (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per position (the head dimension).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no positions.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The first `rows` positions.
    ///
    /// # Panics
    /// If `rows` is more than [`KvView::rows`].
    pub fn first(&self, rows: usize) -> Self {
        assert!(rows <= self.rows, "KV view: {rows} of {} rows", self.rows);
        Self { rows, ..*self }
    }

    /// The storage.
    pub fn data(&self) -> KvData<'a> {
        self.data
    }
}

impl<'a> KvRows<'a> {
    /// Rows `0..rows` of `data` viewed as `[..][stride]`, columns `start..start + len`.
    ///
    /// # Panics
    /// If the columns do not fit in a row or the rows do not fit in `data` (the engine
    /// builds these from its own cache geometry; a mismatch is a programming error).
    pub fn new(data: KvData<'a>, stride: usize, start: usize, len: usize, rows: usize) -> Self {
        assert!(
            start.checked_add(len).is_some_and(|end| end <= stride),
            "KvRows: columns {start}..{start}+{len} do not fit a row of {stride}"
        );
        let need = rows.checked_sub(1).map_or(Some(0), |last| {
            last.checked_mul(stride)?.checked_add(start + len)
        });
        assert!(
            need.is_some_and(|need| need <= data.len()),
            "KvRows: {rows} rows of stride {stride} do not fit {} elements",
            data.len()
        );
        Self {
            data,
            len,
            rows,
            layout: RowMajor { stride, start },
        }
    }

    /// Elements from one row to the next.
    pub fn stride(&self) -> usize {
        self.layout.stride
    }

    /// Element offset of row `j` (in bounds for `j < rows`, see [`KvRows::new`]).
    #[inline]
    pub fn offset(&self, j: usize) -> usize {
        j * self.layout.stride + self.layout.start
    }
}

impl<'a> KvKeys<'a> {
    /// Positions `0..rows` of `data`, blocks of `KEY_BLOCK x len` elements from its start.
    ///
    /// # Panics
    /// If `data` does not hold the blocks of `rows` positions (whole blocks) or `len` is zero
    /// (the engine builds these from its own cache geometry; a mismatch is a programming
    /// error).
    pub fn new(data: KvData<'a>, len: usize, rows: usize) -> Self {
        let need = Self::storage_len(len, rows);
        assert!(
            len > 0 && need.is_some_and(|need| need <= data.len()),
            "KvKeys: {rows} positions of {len} need whole blocks of {KEY_BLOCK}, not {} elements",
            data.len()
        );
        Self {
            data,
            len,
            rows,
            layout: KeyBlocks,
        }
    }

    /// Elements that hold `rows` positions of `len`: whole blocks (`None` on overflow).
    pub fn storage_len(len: usize, rows: usize) -> Option<usize> {
        rows.div_ceil(KEY_BLOCK)
            .checked_mul(KEY_BLOCK)?
            .checked_mul(len)
    }

    /// Where element `c` of position `j` is stored, for keys of `len` elements.
    #[inline(always)]
    pub fn index(len: usize, j: usize, c: usize) -> usize {
        (j / KEY_BLOCK * len + c) * KEY_BLOCK + j % KEY_BLOCK
    }

    /// Element offset of the block holding position `j` (`len * KEY_BLOCK` elements, in
    /// bounds for `j < rows`, see [`KvKeys::new`]).
    #[inline(always)]
    pub fn block(&self, j: usize) -> usize {
        j / KEY_BLOCK * KEY_BLOCK * self.len
    }
}

/// Attention over one KV head's cached rows, for the `g >= 1` query heads that share it
/// (grouped-query attention: 4 in 2B4T). Taking the group at once reads each cached row once
/// for all of them: one head at a time read the cache `g` times, from L3 or memory once a
/// layer's cache outgrows L2.
pub trait AttentionOps {
    /// Causal softmax attention of consecutive tokens, `g` query heads each, over
    /// one KV head (`tile`: keys `k`, values `v`, queries `q: [tokens][g][len]`); `out` is
    /// shaped like `q`, and token `t` of `tokens` sees the
    /// first `k.rows() - (tokens - 1 - t)` cached rows (the last token sees them all), so
    /// `out[t][h] = sum_j softmax_j(scale * q[t][h] . k_j) v_j` over those rows, the softmax
    /// as [`softmax`] computes it up to float rounding. `work` is scratch of at least
    /// [`causal_work_len`] elements. Returns the id of the code that ran.
    ///
    /// A tile of tokens makes prompt attention a small matrix product (`tokens * g` query
    /// rows against the cached rows, each loaded and converted from f16 once) instead of a
    /// matrix-vector one per token; decoding is a tile of one token.
    ///
    /// Each output row's arithmetic must not depend on `tokens` or on the other rows of the
    /// tile: callers cut prompts into tiles by thread and by buffer size, and logits must not
    /// depend on the thread count.
    ///
    /// # Panics
    /// If `out` is not shaped like the queries or `work` is short.
    fn kv_causal(&self, tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId;
}

/// Softmax terms whose exponent `s - max` is below this are zero. Against the largest term,
/// `exp(0) = 1`, `exp(-60)` (8.8e-27) is far below f32's resolution, so no sum changes; but
/// kept, such weights make weight x value products subnormal (a weight of `exp(-87)` times a
/// value of 0.01 is 1.6e-40), which x86 CPUs compute through microcode assists many times
/// slower than normal FMAs, and glibc's `expf` reaches subnormal results through a slow
/// path that sets `errno` (5-9 % of a long prompt's time in `perf` with the peaked scores of
/// the 2B4T-shaped model, before this cut).
pub const EXP_FLOOR: f32 = -60.0;

/// The softmax of one row of scores, in place: `exp(s - max)` over their sum, terms with an
/// exponent below [`EXP_FLOOR`] zero.
pub fn softmax(scores: &mut [f32]) {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0.0f32;
    for sc in scores.iter_mut() {
        let x = *sc - max;
        *sc = if x < EXP_FLOOR { 0.0 } else { x.exp() };
        sum += *sc;
    }
    let inv = 1.0 / sum;
    for sc in scores.iter_mut() {
        *sc *= inv;
    }
}

/// Query rows of [`AttentionOps::kv_causal`]'s tiles are padded to a multiple of this in
/// `work` (the widest vector's lanes: SIMD backends hold one score per query row per lane).
pub(crate) const CAUSAL_LANES: usize = 16;

/// f32 elements of a block of values a SIMD backend converts and packs in `work`.
pub(crate) const CAUSAL_VALUES: usize = 64 * 64;

/// Elements of `work` that [`AttentionOps::kv_causal`] needs for `m` query rows (tokens
/// times heads) of `len` elements over `rows` cached rows, on any backend: the scores
/// (`rows x m`, padded), the queries transposed (`len x m`), a block of keys converted
/// ([`KEY_BLOCK`] positions) and one key row, one sum per query row, a block of values.
pub fn causal_work_len(rows: usize, m: usize, len: usize) -> usize {
    let mp = m.next_multiple_of(CAUSAL_LANES);
    rows * mp + len * mp + (KEY_BLOCK + 1) * len + mp + CAUSAL_VALUES
}

/// The operands of [`AttentionOps::kv_causal`]: a KV head's keys and values, the tile's
/// queries (`[tokens][g][len]`), `g` and the score scale, checked once when made (like
/// [`crate::DenseMatmul`]), so backends take one value instead of five.
#[derive(Debug, Clone, Copy)]
pub struct CausalTile<'a> {
    pub(crate) k: KvKeys<'a>,
    pub(crate) v: KvRows<'a>,
    pub(crate) q: &'a [f32],
    pub(crate) g: usize,
    pub(crate) scale: f32,
    pub(crate) tokens: usize,
}

impl<'a> CausalTile<'a> {
    /// # Panics
    /// If `q` is not a whole, non-zero number of `g * len` rows, the keys' and values'
    /// shapes differ, or there are fewer rows than tokens.
    pub fn new(k: KvKeys<'a>, v: KvRows<'a>, q: &'a [f32], g: usize, scale: f32) -> Self {
        let len = k.len();
        assert!(
            v.len() == len && v.rows() == k.rows(),
            "kv_causal: values {}x{} != keys {}x{}",
            v.rows(),
            v.len(),
            k.rows(),
            len
        );
        let head = g * len;
        assert!(
            head > 0 && !q.is_empty() && q.len().is_multiple_of(head),
            "kv_causal: query length {} is not a whole number of {g} heads of {len}",
            q.len()
        );
        let tokens = q.len() / head;
        assert!(
            tokens <= k.rows(),
            "kv_causal: {tokens} tokens need at least as many cached rows, not {}",
            k.rows()
        );
        Self {
            k,
            v,
            q,
            g,
            scale,
            tokens,
        }
    }

    /// The keys.
    pub fn keys(&self) -> &KvKeys<'a> {
        &self.k
    }

    /// The values.
    pub fn values(&self) -> &KvRows<'a> {
        &self.v
    }

    /// The queries, `[tokens][g][len]`.
    pub fn queries(&self) -> &'a [f32] {
        self.q
    }

    /// Query heads per token.
    pub fn group(&self) -> usize {
        self.g
    }

    /// The score scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Tokens in the tile.
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// Cached rows that query row `r` (token `r / g`) sees: the causal limit; 1 for rows
    /// past the tile (SIMD padding, never read back).
    #[inline(always)]
    pub(crate) fn seen(&self, r: usize) -> usize {
        let t = r / self.g;
        if t < self.tokens {
            self.k.rows() - (self.tokens - 1 - t)
        } else {
            1
        }
    }

    /// Elements of `work` the op needs ([`causal_work_len`]).
    pub fn work_len(&self) -> usize {
        causal_work_len(self.k.rows(), self.tokens * self.g, self.k.len())
    }
}

/// The checks of [`AttentionOps::kv_causal`] on what [`CausalTile::new`] did not see.
pub(crate) fn check_causal(tile: &CausalTile<'_>, work: &[f32], out: &[f32]) {
    assert_eq!(
        out.len(),
        tile.q.len(),
        "kv_causal: output length != query length"
    );
    let need = tile.work_len();
    assert!(
        work.len() >= need,
        "kv_causal: work of {} < {need} elements",
        work.len()
    )
}
