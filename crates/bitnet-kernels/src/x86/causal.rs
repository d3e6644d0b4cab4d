//! Causal attention of a tile of tokens ([`crate::AttentionOps::kv_causal`]) as small matrix
//! products, written once over a vector type ([`Lanes`]: `__m256` for AVX2, `__m512` for
//! AVX-512) and instantiated by each backend inside its own `#[target_feature]` function.
//!
//! Token by token, prompt attention is a matrix-vector product per token and KV head: every
//! cached row is loaded and converted from f16 for each token (at 2048 positions, 27 % of a
//! prompt's time went to the score pass and 18 % to the value pass, per `perf`). Here a tile of
//! `m = tokens x group` query rows goes through each cached row at once:
//!
//! - Scores, `S[j][r] = scale * q_r . k_j`, stored row-major by cached row with one query row
//!   per lane: the queries are transposed once (`len x m`), each block of keys is converted
//!   to f32 once, and `KR` rows times `QV` vectors of query rows accumulate in registers over
//!   the head dimension, one broadcast key element per FMA row (no horizontal sums). Tiles
//!   of at most half a vector of query rows (a decoded token's heads) put cached rows in the
//!   lanes instead ([`scores_by_key`]): the cache stores keys in transposed blocks
//!   ([`crate::KvKeys`]), so a vector of rows' element is one load; several vectors at once,
//!   each query element broadcast.
//! - Softmax down each column (one query row per lane, so it vectorises across rows), with
//!   the causal mask per lane and a polynomial `exp` ([`exp_nonpos`]).
//! - Values, `O[r] = sum_j S[j][r] v_j / sum_j S[j][r]`: `RV` query rows times `HV` vectors
//!   of columns in registers while the rows pass (blocks of rows packed as f32 first, except
//!   for small tiles, which read the cache in place).
//!
//! Every output element is one fixed chain of operations whatever the tile: a score is an FMA
//! chain over the head dimension from zero (on either score path), a softmax sum runs over
//! the rows in order, an output accumulates over the rows in order (rows past a query's
//! causal limit carry weight exactly zero, which adds exactly nothing). So a query row's
//! result does not depend on how the prompt was cut into tiles or threads, nor on whether
//! it was decoded.
//!
//! Intrinsics are only reached through `#[inline(always)]` functions and loops, never
//! closures (a closure is compiled without the enclosing function's target features).

use crate::ops::attention::{CAUSAL_LANES, CAUSAL_VALUES, EXP_FLOOR};
use crate::ops::{CausalTile, KEY_BLOCK, KvData};
use half::f16;
use std::arch::x86_64::*;
use std::ops::Range;

/// Cached rows per block of the value pass: 64 rows of a 64-column chunk are 16 KiB of f32
/// values (packed contiguously) and 16 KiB of weights (64 query rows), inside a 48 KiB L1.
const VALUE_BLOCK: usize = 64;

/// Rows ahead that the value pass prefetches when it reads the cache in place (a decoded
/// token): a small tile's few FMAs per row are far shorter than a row's trip from memory,
/// and the hardware prefetchers stop at each 4 KiB page (16 rows of 2B4T's f16 values).
/// 32 and 64 measured alike, 16 less (`--bench attention`, cold).
const VALUE_AHEAD: usize = 32;

/// One SIMD vector of f32 lanes and the operations the tile kernel needs. Implementations
/// are `#[inline(always)]` wrappers of one intrinsic each; they are only sound inside a
/// function compiled with the vector type's features.
pub(crate) trait Lanes: Copy {
    /// Lanes per vector.
    const N: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn load_f16(p: *const f16) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `a * b + c`, fused.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn mul(a: Self, b: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn sub(a: Self, b: Self) -> Self;
    unsafe fn div(a: Self, b: Self) -> Self;
    unsafe fn max(a: Self, b: Self) -> Self;
    unsafe fn min(a: Self, b: Self) -> Self;
    /// Lane by lane, `if a < b { x } else { y }`.
    unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self;
    /// Rounded to the nearest integer (ties to even).
    unsafe fn round(a: Self) -> Self;
    /// `2^n` for integral `n` in `-126..=127`.
    unsafe fn pow2(n: Self) -> Self;
}

impl Lanes for __m256 {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller runs with AVX2 (trait doc).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: as above; the caller passes 8 readable floats.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> Self {
        // SAFETY: as above, with F16C; 8 readable halves.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: as above; 8 writable floats.
        unsafe { _mm256_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: as above, with FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
    }
    #[inline(always)]
    unsafe fn round(a: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        // SAFETY: as above.
        unsafe {
            let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
            _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e))
        }
    }
}

impl Lanes for __m512 {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller runs with AVX-512F (trait doc).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: as above; the caller passes 16 readable floats.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const f16) -> Self {
        // SAFETY: as above; 16 readable halves.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: as above; 16 writable floats.
        unsafe { _mm512_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn sub(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn min(a: Self, b: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    unsafe fn select_lt(a: Self, b: Self, x: Self, y: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), y, x) }
    }
    #[inline(always)]
    unsafe fn round(a: Self) -> Self {
        // SAFETY: as above.
        unsafe { _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(a) }
    }
    #[inline(always)]
    unsafe fn pow2(n: Self) -> Self {
        // SAFETY: as above.
        unsafe {
            let e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(e))
        }
    }
}

/// A cached element type: f32 or f16.
pub(crate) trait Elem: Copy {
    unsafe fn load<L: Lanes>(p: *const Self) -> L;
    fn to_f32(self) -> f32;
    /// `src` as f32: itself, or converted into `buf` (as long as `src`), a vector at a
    /// time (`half`'s per-element conversion checks the CPU's features on every call).
    #[inline(always)]
    unsafe fn slice_f32<L: Lanes>(src: &[Self], buf: &mut [f32]) -> *const f32 {
        let whole = src.len() / L::N * L::N;
        // SAFETY: the caller's features; vectors end at `whole <= src.len() <= buf.len()`.
        unsafe {
            let mut c = 0;
            while c < whole {
                Self::load::<L>(src.as_ptr().add(c)).store(buf.as_mut_ptr().add(c));
                c += L::N;
            }
        }
        for (x, y) in buf[whole..].iter_mut().zip(&src[whole..]) {
            *x = y.to_f32();
        }
        buf.as_ptr()
    }
}

impl Elem for f32 {
    #[inline(always)]
    unsafe fn load<L: Lanes>(p: *const f32) -> L {
        // SAFETY: forwards the caller's contract.
        unsafe { L::load(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    unsafe fn slice_f32<L: Lanes>(src: &[f32], _: &mut [f32]) -> *const f32 {
        src.as_ptr()
    }
}

impl Elem for f16 {
    #[inline(always)]
    unsafe fn load<L: Lanes>(p: *const f16) -> L {
        // SAFETY: forwards the caller's contract.
        unsafe { L::load_f16(p) }
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// `exp(x)` for `x` in `[EXP_FLOOR, 0]`: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, Cephes'
/// degree-6 polynomial for `exp(r)` (about 1 ulp), times `2^n` built in the exponent bits
/// (`n >= -87` here, so no subnormals).
#[inline(always)]
unsafe fn exp_nonpos<L: Lanes>(x: L) -> L {
    // SAFETY: forwards the caller's contract (features of `L`).
    unsafe {
        let n = L::round(L::mul(x, L::splat(std::f32::consts::LOG2_E)));
        let r = L::fma(n, L::splat(-0.693_359_4), x);
        let r = L::fma(n, L::splat(2.121_944_4e-4), r);
        let mut p = L::splat(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = L::fma(p, r, L::splat(c));
        }
        let p = L::add(L::fma(p, L::mul(r, r), r), L::splat(1.0));
        L::mul(p, L::pow2(n))
    }
}

/// The kernel: dispatches on the cache's element types, then [`tile`].
///
/// # Safety
/// The CPU must have the features of `L` (and FMA, F16C); `work` and `out` must have passed
/// [`crate::ops::attention::check_causal`].
#[inline(always)]
pub(crate) unsafe fn causal<
    L: Lanes,
    const KR: usize,
    const QV: usize,
    const RV: usize,
    const HV: usize,
    const KB: usize,
>(
    t: &CausalTile<'_>,
    work: &mut [f32],
    out: &mut [f32],
) {
    let q = t.q;
    // SAFETY: forwards this function's contract.
    unsafe {
        match (t.k.data(), t.v.data()) {
            (KvData::F32(kd), KvData::F32(vd)) => {
                tile::<L, f32, f32, KR, QV, RV, HV, KB>(t, kd, vd, q, work, out)
            }
            (KvData::F16(kd), KvData::F16(vd)) => {
                tile::<L, f16, f16, KR, QV, RV, HV, KB>(t, kd, vd, q, work, out)
            }
            (KvData::F32(kd), KvData::F16(vd)) => {
                tile::<L, f32, f16, KR, QV, RV, HV, KB>(t, kd, vd, q, work, out)
            }
            (KvData::F16(kd), KvData::F32(vd)) => {
                tile::<L, f16, f32, KR, QV, RV, HV, KB>(t, kd, vd, q, work, out)
            }
        }
    }
}

#[inline(always)]
unsafe fn tile<
    L: Lanes,
    K: Elem,
    V: Elem,
    const KR: usize,
    const QV: usize,
    const RV: usize,
    const HV: usize,
    const KB: usize,
>(
    t: &CausalTile<'_>,
    kd: &[K],
    vd: &[V],
    q: &[f32],
    work: &mut [f32],
    out: &mut [f32],
) {
    // Groups of `KR` keys (from positions that are multiples of `KR`) never straddle key
    // blocks, nor do vectors of keys.
    const {
        assert!(
            KEY_BLOCK.is_multiple_of(KR)
                && KEY_BLOCK.is_multiple_of(L::N)
                && VALUE_BLOCK * HV * 16 <= CAUSAL_VALUES
        )
    };
    let (len, rows) = (t.k.len(), t.k.rows());
    let m = q.len() / len;
    let mp = m.next_multiple_of(CAUSAL_LANES);
    let (s, rest) = work.split_at_mut(rows * mp);
    let (qt, rest) = rest.split_at_mut(len * mp);
    let (kbuf, rest) = rest.split_at_mut((KEY_BLOCK + 1) * len);
    let (inv, rest) = rest.split_at_mut(mp);
    let vbuf = &mut rest[..CAUSAL_VALUES];

    // SAFETY (all blocks below): `check_causal` sized `work` for these slices and `out` as
    // `q`; `KvRows::new` checked every value row `j < rows` to have `len` elements from
    // `offset(j)` and `KvKeys::new` the key blocks to be whole (re-checked by the slicing);
    // the CPU features are the caller's contract.
    // Vector accesses stay inside: `mp` is a multiple of `L::N` (16 is), columns go up to
    // `whole <= len`.
    let nv = mp / L::N;
    // Tiles of at most half a vector of query rows (a decoded token's heads): cached rows in
    // the lanes for the scores, values read straight from the cache (packing them would cost
    // more than the few query rows that read them).
    let small = 2 * m <= L::N;
    let mut j = if small {
        // SAFETY: see "all blocks below" above.
        unsafe { scores_by_key::<L, K, KB>(t, kd, q, mp, s) };
        rows
    } else {
        // The queries transposed, padding rows zero: `qt[d][r] = q[r][d]`.
        for (d, col) in qt.chunks_exact_mut(mp).enumerate() {
            for (r, x) in col.iter_mut().enumerate() {
                *x = if r < m { q[r * len + d] } else { 0.0 };
            }
        }
        0
    };
    // The current block of keys as f32 (`[len][KEY_BLOCK]`): in place, or converted once.
    let mut block: *const f32 = std::ptr::null();
    while j < rows {
        if j.is_multiple_of(KEY_BLOCK) {
            let keys = &kd[t.k.block(j)..][..KEY_BLOCK * len];
            // SAFETY: the caller's features.
            block = unsafe { K::slice_f32::<L>(keys, kbuf) };
        }
        let kr = if j + KR <= rows { KR } else { 1 };
        let mut kp = [std::ptr::null(); KR];
        for (i, p) in kp.iter_mut().take(kr).enumerate() {
            // SAFETY: the block holds `KEY_BLOCK` keys; `j % KEY_BLOCK + i` is one of them.
            *p = unsafe { block.add(j % KEY_BLOCK + i) };
        }
        let mut u = 0;
        while u < nv {
            let at = s[j * mp + u * L::N..].as_mut_ptr();
            let qp = qt[u * L::N..].as_ptr();
            // SAFETY: see "all blocks below" above.
            unsafe {
                match (kr == KR, u + QV <= nv) {
                    (true, true) => scores::<L, KR, QV>(&kp, qp, len, mp, t.scale, at),
                    (true, false) => scores::<L, KR, 1>(&kp, qp, len, mp, t.scale, at),
                    (false, true) => scores::<L, 1, QV>(&[kp[0]], qp, len, mp, t.scale, at),
                    (false, false) => scores::<L, 1, 1>(&[kp[0]], qp, len, mp, t.scale, at),
                }
            }
            u += if u + QV <= nv { QV } else { 1 };
        }
        j += kr;
    }

    // Softmax down each column, `L::N` query rows at a time.
    for u in 0..nv {
        let mut lens = [0f32; CAUSAL_LANES];
        for (i, l) in lens[..L::N].iter_mut().enumerate() {
            *l = t.seen(u * L::N + i) as f32;
        }
        let last = t.seen((u * L::N + L::N - 1).min(m - 1));
        // SAFETY: as above; `col` and `inv` hold `L::N` lanes from `u * L::N < mp`.
        unsafe {
            let lens = L::load(lens.as_ptr());
            let col = s[u * L::N..].as_mut_ptr();
            // The row index as a vector counter (exact below 2^24), not converted per row.
            let one = L::splat(1.0);
            let mut mx = L::splat(f32::NEG_INFINITY);
            let mut jv = L::zero();
            for j in 0..last {
                let x = L::load(col.add(j * mp));
                mx = L::select_lt(jv, lens, L::max(mx, x), mx);
                jv = L::add(jv, one);
            }
            let (zero, floor) = (L::zero(), L::splat(EXP_FLOOR));
            let mut sum = zero;
            let mut jv = zero;
            for j in 0..last {
                let p = col.add(j * mp);
                let x = L::min(L::sub(L::load(p), mx), zero);
                let e = L::select_lt(x, floor, zero, exp_nonpos(L::max(x, floor)));
                let e = L::select_lt(jv, lens, e, zero);
                jv = L::add(jv, one);
                sum = L::add(sum, e);
                e.store(p);
            }
            L::div(L::splat(1.0), sum).store(inv[u * L::N..].as_mut_ptr());
        }
    }

    // Values, unscaled, accumulated in `out`: blocks of `VALUE_BLOCK` cached rows, and in
    // each `HV` vectors of columns times `RV` query rows at a time, so that a block's value
    // columns and weights stay in L1 while every query row passes (a KV head's values at
    // 2048 positions are 1 MiB in f32: read once per query row chunk from L2 or L3, they
    // held the pass at a quarter of its FMA rate).
    out.fill(0.0);
    let whole = len / L::N * L::N;
    let mut j0 = 0;
    while j0 < rows {
        let j1 = (j0 + VALUE_BLOCK).min(rows);
        let mut c = 0;
        while c < whole {
            let hv = if c + HV * L::N <= whole { HV } else { 1 };
            let width = hv * L::N;
            // This block's columns `c..c + width`: read in place for a small tile, else
            // packed as f32 once for all its query rows.
            if !small {
                for (j, packed) in (j0..j1).zip(vbuf.chunks_exact_mut(width)) {
                    let row = vd[t.v.offset(j) + c..][..width].as_ptr();
                    for h in 0..hv {
                        // SAFETY: as above; `row` holds `width = hv * L::N` elements.
                        unsafe {
                            V::load::<L>(row.add(h * L::N)).store(packed[h * L::N..].as_mut_ptr())
                        };
                    }
                }
            }
            let mut r = 0;
            while r < m {
                let rv = if r + RV <= m { RV } else { 1 };
                // Rows past the chunk's last query row's causal limit weigh zero for all.
                let hi = j1.min(t.seen(r + rv - 1));
                if hi > j0 {
                    let rows = j0..hi;
                    // SAFETY: as above; `o` is row `r`, column `c` of `out`; the block's
                    // rows are in the cache's view (`vd` from `offset(j0)`, `stride` apart)
                    // or packed in `vbuf` (`width` apart).
                    unsafe {
                        let o = out[r * len + c..].as_mut_ptr();
                        let at = MixAt {
                            s,
                            mp,
                            r,
                            rows,
                            len,
                            o,
                        };
                        if small {
                            let (v, stride) = (vd[t.v.offset(j0) + c..].as_ptr(), t.v.stride());
                            let job = MixJob { v, stride, at };
                            mix_block::<L, V, RV, HV, true>(rv, hv, job);
                        } else {
                            let job = MixJob {
                                v: vbuf.as_ptr(),
                                stride: width,
                                at,
                            };
                            mix_block::<L, f32, RV, HV, false>(rv, hv, job);
                        }
                    }
                }
                r += rv;
            }
            c += hv * L::N;
        }
        j0 = j1;
    }
    // The columns after the last whole vector, and every output over its row's sum.
    for (r, (o, &inv)) in out.chunks_exact_mut(len).zip(inv.iter()).enumerate() {
        let last = t.seen(r);
        for (c, o) in o.iter_mut().enumerate().skip(whole) {
            for j in 0..last {
                *o = s[j * mp + r].mul_add(vd[t.v.offset(j) + c].to_f32(), *o);
            }
        }
        for o in o.iter_mut() {
            *o *= inv;
        }
    }
}

/// Scores with the cached rows in the lanes, for tiles of at most `L::N / 2` query rows (one
/// decoded token's heads), where one query row per lane would leave most lanes idle and
/// broadcast every key element: the keys are stored in transposed blocks ([`KEY_BLOCK`]), so
/// `L::N` cached rows' element `d` is one load (converted from f16 on the way), and each
/// query row's elements broadcast against `KB` vectors of rows at once (`KB x` rows of
/// independent FMA chains in flight; one vector's chains alone wait on the FMA latency).
/// Lanes past the last row (the rest of the last block) are computed and dropped. Each
/// score is the same FMA chain over the head dimension as in [`scores`], so a query row's
/// scores do not depend on which path its tile took.
#[inline(always)]
unsafe fn scores_by_key<L: Lanes, K: Elem, const KB: usize>(
    t: &CausalTile<'_>,
    kd: &[K],
    q: &[f32],
    mp: usize,
    s: &mut [f32],
) {
    let (len, rows) = (t.k.len(), t.k.rows());
    let m = q.len() / len;
    let n = L::N;
    // SAFETY: the caller's (see `tile`): `s` holds `rows` rows of `mp >= m`; every vector of
    // `n` keys from a multiple of `n` lies in one whole stored block (`KvKeys::new`).
    unsafe {
        let mut j0 = 0;
        while j0 < rows {
            let vectors = (rows - j0).div_ceil(n).min(KB);
            let keys = (rows - j0).min(vectors * n);
            let mut kp = [std::ptr::null(); KB];
            for (b, p) in kp.iter_mut().take(vectors).enumerate() {
                let j = j0 + b * n;
                *p = kd.as_ptr().add(t.k.block(j) + j % KEY_BLOCK);
            }
            let at = s[j0 * mp..].as_mut_ptr();
            let mut r = 0;
            while r < m {
                let qr = q[r * len..].as_ptr();
                let step = if r + 4 <= m { 4 } else { 1 };
                if vectors == KB {
                    match step {
                        4 => by_key::<L, K, 4, KB>(qr, len, &kp, t.scale, keys, mp, at.add(r)),
                        _ => by_key::<L, K, 1, KB>(qr, len, &kp, t.scale, keys, mp, at.add(r)),
                    }
                } else {
                    for (b, &p) in kp.iter().take(vectors).enumerate() {
                        let (kp, keys) = ([p], (keys - b * n).min(n));
                        let at = at.add(b * n * mp + r);
                        match step {
                            4 => by_key::<L, K, 4, 1>(qr, len, &kp, t.scale, keys, mp, at),
                            _ => by_key::<L, K, 1, 1>(qr, len, &kp, t.scale, keys, mp, at),
                        }
                    }
                }
                r += step;
            }
            j0 += keys;
        }
    }
}

/// `R` query rows (from `q`, `len` apart) against `B` vectors of keys (`kp[b]`: `L::N`
/// consecutive positions' element `d` at `kp[b] + d * KEY_BLOCK`), scaled, the first `keys`
/// keys' scores stored down `s` (`mp` apart per key, the query rows side by side).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn by_key<L: Lanes, K: Elem, const R: usize, const B: usize>(
    q: *const f32,
    len: usize,
    kp: &[*const K; B],
    scale: f32,
    keys: usize,
    mp: usize,
    s: *mut f32,
) {
    // SAFETY: the caller's (see `scores_by_key`).
    unsafe {
        let mut acc = [[L::zero(); B]; R];
        // The same element of the next `B` vectors of keys: the blocks are 4 KiB pages apart
        // (2B4T, f16), where the hardware prefetchers stop.
        let ahead = B * L::N * len;
        for d in 0..len {
            let mut kv = [L::zero(); B];
            for (x, p) in kv.iter_mut().zip(kp) {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(d * KEY_BLOCK + ahead).cast());
                *x = K::load::<L>(p.add(d * KEY_BLOCK));
            }
            for (i, a) in acc.iter_mut().enumerate() {
                let qv = L::splat(*q.add(i * len + d));
                for (x, k) in a.iter_mut().zip(kv) {
                    *x = L::fma(k, qv, *x);
                }
            }
        }
        let mut lanes = [0f32; CAUSAL_LANES];
        for (i, a) in acc.iter().enumerate() {
            for (b, x) in a.iter().enumerate() {
                L::mul(*x, L::splat(scale)).store(lanes.as_mut_ptr());
                let first = b * L::N;
                for (key, &x) in lanes[..keys.saturating_sub(first).min(L::N)]
                    .iter()
                    .enumerate()
                {
                    *s.add((first + key) * mp + i) = x;
                }
            }
        }
    }
}

/// `KR` cached rows (f32, element `d` of row `i` at `kp[i] + d * KEY_BLOCK`: a block of keys
/// as stored) against `QV` vectors of query rows from `qt` (`[len][mp]`), scaled, into `s`
/// (`[KR][mp]` from `out`).
#[inline(always)]
unsafe fn scores<L: Lanes, const KR: usize, const QV: usize>(
    kp: &[*const f32; KR],
    qt: *const f32,
    len: usize,
    mp: usize,
    scale: f32,
    out: *mut f32,
) {
    // SAFETY: the caller's (see `tile`): `kp` points at `KR` keys of a block of `len`, `qt`
    // at `len` rows of `mp`, `out` at `KR` rows of `mp`.
    unsafe {
        let mut acc = [[L::zero(); QV]; KR];
        for d in 0..len {
            let mut qv = [L::zero(); QV];
            for (u, x) in qv.iter_mut().enumerate() {
                *x = L::load(qt.add(d * mp + u * L::N));
            }
            for (i, a) in acc.iter_mut().enumerate() {
                let kv = L::splat(*kp[i].add(d * KEY_BLOCK));
                for (x, qx) in a.iter_mut().zip(qv) {
                    *x = L::fma(kv, qx, *x);
                }
            }
        }
        let sc = L::splat(scale);
        for (i, a) in acc.iter().enumerate() {
            for (u, x) in a.iter().enumerate() {
                L::mul(*x, sc).store(out.add(i * mp + u * L::N));
            }
        }
    }
}

/// One register block's share of the value pass ([`mix`]): the value rows, read from `v`
/// (the block's first row's columns, rows `stride` apart: the cache in place, or the block
/// packed as f32), and where they go ([`MixAt`]).
struct MixJob<'a, V> {
    v: *const V,
    stride: usize,
    at: MixAt<'a>,
}

/// Output rows from `r` at `o` (rows `len` apart) add the weighted sum of value rows `rows`
/// (a range inside one block), the weights in `s`, `mp` per cached row.
struct MixAt<'a> {
    s: &'a [f32],
    mp: usize,
    r: usize,
    rows: Range<usize>,
    len: usize,
    o: *mut f32,
}

/// [`mix`] for `rv` query rows and `hv` vectors of columns: the full `RV x HV` register block,
/// or single rows or vectors at the edges of the tile.
#[inline(always)]
unsafe fn mix_block<L: Lanes, V: Elem, const RV: usize, const HV: usize, const AHEAD: bool>(
    rv: usize,
    hv: usize,
    job: MixJob<'_, V>,
) {
    // SAFETY: the caller's (see `mix`).
    unsafe {
        match (rv == RV, hv == HV) {
            (true, true) => mix::<L, V, RV, HV, AHEAD>(job),
            (true, false) => mix::<L, V, RV, 1, AHEAD>(job),
            (false, true) => mix::<L, V, 1, HV, AHEAD>(job),
            (false, false) => mix::<L, V, 1, 1, AHEAD>(job),
        }
    }
}

/// Output rows `r..r + RV`, `HV` vectors of columns of `job` ([`MixJob`]). The conversion
/// from f16 is exact, so the cache in place and the packed block give the same sums.
/// `AHEAD`: prefetch the row [`VALUE_AHEAD`] rows on (reading the cache in place).
#[inline(always)]
unsafe fn mix<L: Lanes, V: Elem, const RV: usize, const HV: usize, const AHEAD: bool>(
    job: MixJob<'_, V>,
) {
    let MixJob { v, stride, at } = job;
    let MixAt {
        s,
        mp,
        r,
        rows,
        len,
        o,
    } = at;
    // SAFETY: the caller's (see `tile`): `v` holds the rows of the block up to `rows.end`,
    // `HV * L::N` elements each from its start.
    unsafe {
        let sp = s.as_ptr().add(r);
        let first = rows.start / VALUE_BLOCK * VALUE_BLOCK;
        let mut acc = [[L::zero(); HV]; RV];
        for (i, a) in acc.iter_mut().enumerate() {
            for (h, x) in a.iter_mut().enumerate() {
                *x = L::load(o.add(i * len + h * L::N));
            }
        }
        for j in rows {
            let row = v.add((j - first) * stride);
            let mut vv = [L::zero(); HV];
            for (h, x) in vv.iter_mut().enumerate() {
                if AHEAD {
                    let ahead = row.wrapping_add(VALUE_AHEAD * stride + h * L::N);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                }
                *x = V::load::<L>(row.add(h * L::N));
            }
            let w = sp.add(j * mp);
            for (i, a) in acc.iter_mut().enumerate() {
                let wv = L::splat(*w.add(i));
                for (x, vx) in a.iter_mut().zip(vv) {
                    *x = L::fma(wv, vx, *x);
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            for (h, x) in a.iter().enumerate() {
                x.store(o.add(i * len + h * L::N));
            }
        }
    }
}
