//! [`AttentionOps`]: one attention head's two passes over the KV cache (scores against the
//! keys, the softmax-weighted sum of the values), and the checked view of cached rows they
//! read ([`KvRows`]).
//!
//! Decoding at depth reads every cached key and value once per token and layer: at 1024
//! positions of the 2B4T shape that is 157 M multiply-adds per token, which element-at-a-time
//! code on f16 made slower than streaming all the weights. The ops are float sums, so
//! backends may sum in any order (tests bound them against f64 and against the scalar
//! code).

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

/// `rows` cached positions of one head: row `j` is `data[j * stride + start..][..len]`.
/// Checked once when made, so backends slice rows without re-checking the geometry.
#[derive(Debug, Clone, Copy)]
pub struct KvRows<'a> {
    data: KvData<'a>,
    stride: usize,
    start: usize,
    len: usize,
    rows: usize,
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
            stride,
            start,
            len,
            rows,
        }
    }

    /// Positions (rows).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Elements per row (the head dimension).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True when rows have no elements.
    fn is_empty_row(&self) -> bool {
        self.len == 0
    }

    /// The storage.
    pub fn data(&self) -> KvData<'a> {
        self.data
    }

    /// Element offset of row `j` (in bounds for `j < rows`, see [`KvRows::new`]).
    #[inline]
    pub fn offset(&self, j: usize) -> usize {
        j * self.stride + self.start
    }
}

/// The two passes of attention over one KV head's cached rows, for the `g >= 1` query heads
/// that share it (grouped-query attention: 4 in 2B4T). Taking the group at once reads each
/// cached row once for all of them: one head at a time read the cache `g` times, from L3 or
/// memory once a layer's cache outgrows L2.
pub trait AttentionOps {
    /// `scores[h][j] = scale * dot(q[h], row j)` for every row and each of the `g` queries
    /// `q: [g][k.len()]`, `scores: [g][k.rows()]`. Returns the id of the code that ran.
    ///
    /// # Panics
    /// If `q` is not a whole, non-zero number of rows, or `scores` not `g * k.rows()`.
    fn kv_scores(&self, k: &KvRows<'_>, q: &[f32], scale: f32, scores: &mut [f32]) -> KernelId;

    /// `out[h] += sum_j w[h][j] * row j` for the `g` weight rows `w: [g][v.rows()]`,
    /// `out: [g][v.len()]`. Returns the id of the code that ran.
    ///
    /// # Panics
    /// If `out` is not a whole, non-zero number of rows, or `w` not `g * v.rows()`.
    fn kv_mix(&self, v: &KvRows<'_>, w: &[f32], out: &mut [f32]) -> KernelId;
}

/// The length checks every backend makes first (cheap next to the passes); returns `g`.
pub(crate) fn check_scores(k: &KvRows<'_>, q: &[f32], scores: &[f32]) -> usize {
    check_group(k, q, scores, ["kv_scores", "query", "scores"])
}

/// See [`check_scores`].
pub(crate) fn check_mix(v: &KvRows<'_>, w: &[f32], out: &[f32]) -> usize {
    check_group(v, out, w, ["kv_mix", "output", "weights"])
}

/// `per_head` (`[g][rows.len()]`: queries or outputs) must be a whole, non-zero number of
/// heads, and `per_row` (`[g][rows.rows()]`: scores or weights) as many rows of positions;
/// `names` are the op's and the two operands' names for the panic message.
fn check_group(rows: &KvRows<'_>, per_head: &[f32], per_row: &[f32], names: [&str; 3]) -> usize {
    let [op, head_name, row_name] = names;
    assert!(
        !rows.is_empty_row() && !per_head.is_empty() && per_head.len().is_multiple_of(rows.len()),
        "{op}: {head_name} length {} is not a whole number of heads of {}",
        per_head.len(),
        rows.len()
    );
    let g = per_head.len() / rows.len();
    assert_eq!(
        per_row.len(),
        g * rows.rows(),
        "{op}: {row_name} length != heads * rows"
    );
    g
}
