//! AVX2 attention passes over f32 or f16 (`vcvtph2ps`) cached rows, with FMA, for up to
//! four query heads of one KV head at a time (a group of more is taken four at a time):
//!
//! - Scores: two rows at a time against every query of the group: each loaded (and
//!   converted) key vector feeds `2 x G` independent FMA chains, and two heads' two rows are
//!   reduced together (`hsum4`).
//! - Values: 16 output columns of every head of the group held in registers while all the
//!   rows pass (one load and conversion per 8 elements for all heads), then the next 16
//!   columns: one KV head's rows (a few hundred KiB to 1 MiB at long context) stay in L2
//!   between the passes.
//!
//! Intrinsics are only called from functions and loops, never from closures: a closure is
//! compiled without the enclosing function's target features, so they would not inline.

use super::Avx2;
use super::dense::{Load8, hsum_ps};
use crate::ops::attention::{check_mix, check_scores};
use crate::ops::{AttentionOps, KernelId, KvData, KvRows};
use std::arch::x86_64::*;

/// Id of [`kv_scores`] and [`kv_mix`].
pub(crate) const ID: KernelId = "kv/avx2";

/// The horizontal sum of `acc` plus the products of columns `whole..q.len()` of row `r`.
#[inline(always)]
unsafe fn finish<T: Load8 + Copy>(acc: __m256, r: *const T, q: &[f32], whole: usize) -> f32 {
    // SAFETY: `r` holds `q.len()` elements (the caller's row).
    unsafe {
        let mut s = hsum_ps(acc);
        for (c, qc) in q.iter().enumerate().skip(whole) {
            s += (*r.add(c)).to_f32() * qc;
        }
        s
    }
}

/// The horizontal sums of four vectors, `[sum a, sum b, sum c, sum d]`: two rounds of
/// `vhaddps` and one add of the halves, 4 instructions for 4 sums where one sum alone takes 4
/// (a score at head size 128 is 16 FMAs). Measured on pp1024, 2 threads, alternating: 59.6 /
/// 61.9 / 67.4 tokens/s before, 65.8 / 63.8 / 66.6 after (within this host's noise).
#[inline(always)]
unsafe fn hsum4(a: __m256, b: __m256, c: __m256, d: __m256) -> __m128 {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        // [a01 a23 b01 b23 | a45 a67 b45 b67], then [a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 ...].
        let x = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
        _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x))
    }
}

/// Scores of `G` queries `q: [G][len]` against every row of `k` into `out: [G][rows]`.
#[inline(always)]
unsafe fn scores<T: Load8 + Copy, const G: usize>(
    data: &[T],
    k: &KvRows<'_>,
    q: &[f32],
    scale: f32,
    out: &mut [f32],
) {
    // SAFETY: `KvRows::new` checked that every row `j < k.rows()` has `k.len()` elements
    // from `k.offset(j)` inside `data` (the slices below re-check it); the caller passes
    // `q` of `G * len` and `out` of `G * rows` elements; vector loads stay below
    // `whole <= len`.
    unsafe {
        let (len, rows) = (k.len(), k.rows());
        let whole = len / 8 * 8;
        let mut qp = [q.as_ptr(); G];
        for (h, p) in qp.iter_mut().enumerate() {
            *p = q[h * len..(h + 1) * len].as_ptr();
        }
        let mut j = 0;
        while j + 2 <= rows {
            let r0 = data[k.offset(j)..][..len].as_ptr();
            let r1 = data[k.offset(j + 1)..][..len].as_ptr();
            let mut a0 = [_mm256_setzero_ps(); G];
            let mut a1 = [_mm256_setzero_ps(); G];
            let mut c = 0;
            while c < whole {
                let (k0, k1) = (T::load8(r0.add(c)), T::load8(r1.add(c)));
                for h in 0..G {
                    let qv = _mm256_loadu_ps(qp[h].add(c));
                    a0[h] = _mm256_fmadd_ps(k0, qv, a0[h]);
                    a1[h] = _mm256_fmadd_ps(k1, qv, a1[h]);
                }
                c += 8;
            }
            if whole == len {
                // Two heads' two rows reduced together (see `hsum4`); an odd last head
                // pairs with itself.
                let mut h = 0;
                while h < G {
                    let h1 = if h + 1 < G { h + 1 } else { h };
                    let mut s = [0.0f32; 4];
                    _mm_storeu_ps(s.as_mut_ptr(), hsum4(a0[h], a1[h], a0[h1], a1[h1]));
                    out[h * rows + j] = s[0] * scale;
                    out[h * rows + j + 1] = s[1] * scale;
                    out[h1 * rows + j] = s[2] * scale;
                    out[h1 * rows + j + 1] = s[3] * scale;
                    h += 2;
                }
            } else {
                for h in 0..G {
                    let qh = &q[h * len..(h + 1) * len];
                    out[h * rows + j] = finish(a0[h], r0, qh, whole) * scale;
                    out[h * rows + j + 1] = finish(a1[h], r1, qh, whole) * scale;
                }
            }
            j += 2;
        }
        if j < rows {
            let r = data[k.offset(j)..][..len].as_ptr();
            let mut a = [_mm256_setzero_ps(); G];
            let mut c = 0;
            while c < whole {
                let kv = T::load8(r.add(c));
                for h in 0..G {
                    a[h] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(qp[h].add(c)), a[h]);
                }
                c += 8;
            }
            for h in 0..G {
                out[h * rows + j] = finish(a[h], r, &q[h * len..(h + 1) * len], whole) * scale;
            }
        }
    }
}

/// `out[h] += sum_j w[h][j] * row j` for `G` heads (`w: [G][rows]`, `out: [G][len]`).
#[inline(always)]
unsafe fn mix<T: Load8 + Copy, const G: usize>(
    data: &[T],
    v: &KvRows<'_>,
    w: &[f32],
    out: &mut [f32],
) {
    // SAFETY: as in `scores`; the caller passes `w` of `G * rows` and `out` of `G * len`
    // elements, and every column range below ends at or before `len`.
    unsafe {
        let (len, rows) = (v.len(), v.rows());
        let o = out.as_mut_ptr();
        let wp = w.as_ptr();
        let mut c = 0;
        while c + 16 <= len {
            let mut acc = [[_mm256_setzero_ps(); 2]; G];
            for (h, a) in acc.iter_mut().enumerate() {
                a[0] = _mm256_loadu_ps(o.add(h * len + c));
                a[1] = _mm256_loadu_ps(o.add(h * len + c + 8));
            }
            for j in 0..rows {
                let r = data[v.offset(j)..][..len].as_ptr().add(c);
                let (v0, v1) = (T::load8(r), T::load8(r.add(8)));
                for (h, a) in acc.iter_mut().enumerate() {
                    let wv = _mm256_set1_ps(*wp.add(h * rows + j));
                    a[0] = _mm256_fmadd_ps(wv, v0, a[0]);
                    a[1] = _mm256_fmadd_ps(wv, v1, a[1]);
                }
            }
            for (h, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.add(h * len + c), a[0]);
                _mm256_storeu_ps(o.add(h * len + c + 8), a[1]);
            }
            c += 16;
        }
        while c + 8 <= len {
            let mut acc = [_mm256_setzero_ps(); G];
            for (h, a) in acc.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(o.add(h * len + c));
            }
            for j in 0..rows {
                let vv = T::load8(data[v.offset(j)..][..len].as_ptr().add(c));
                for (h, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_set1_ps(*wp.add(h * rows + j)), vv, *a);
                }
            }
            for (h, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.add(h * len + c), *a);
            }
            c += 8;
        }
        for cc in c..len {
            for j in 0..rows {
                let x = data[v.offset(j) + cc].to_f32();
                for h in 0..G {
                    *o.add(h * len + cc) += *wp.add(h * rows + j) * x;
                }
            }
        }
    }
}

/// Runs `$f::<T, G>` over the group in chunks of up to four heads.
macro_rules! by_fours {
    ($g:expr, |$h0:ident, $gc:ident| $body:block) => {{
        let mut $h0 = 0;
        while $h0 < $g {
            let $gc = ($g - $h0).min(4);
            $body
            $h0 += $gc;
        }
    }};
}

/// The score pass.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn kv_scores(k: &KvRows<'_>, q: &[f32], scale: f32, out: &mut [f32]) -> KernelId {
    let g = check_scores(k, q, out);
    let (len, rows) = (k.len(), k.rows());
    by_fours!(g, |h0, gc| {
        let q = &q[h0 * len..(h0 + gc) * len];
        let out = &mut out[h0 * rows..(h0 + gc) * rows];
        macro_rules! go {
            ($n:literal) => {
                // SAFETY: the features are enabled on this function; `q` and `out` hold
                // `$n` heads (sliced above, lengths checked by `check_scores`).
                unsafe {
                    match k.data() {
                        KvData::F32(d) => scores::<f32, $n>(d, k, q, scale, out),
                        KvData::F16(d) => scores::<half::f16, $n>(d, k, q, scale, out),
                    }
                }
            };
        }
        match gc {
            4 => go!(4),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
    });
    ID
}

/// The value pass.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn kv_mix(v: &KvRows<'_>, w: &[f32], out: &mut [f32]) -> KernelId {
    let g = check_mix(v, w, out);
    let (len, rows) = (v.len(), v.rows());
    by_fours!(g, |h0, gc| {
        let w = &w[h0 * rows..(h0 + gc) * rows];
        let out = &mut out[h0 * len..(h0 + gc) * len];
        macro_rules! go {
            ($n:literal) => {
                // SAFETY: as in `kv_scores` (lengths checked by `check_mix`).
                unsafe {
                    match v.data() {
                        KvData::F32(d) => mix::<f32, $n>(d, v, w, out),
                        KvData::F16(d) => mix::<half::f16, $n>(d, v, w, out),
                    }
                }
            };
        }
        match gc {
            4 => go!(4),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
    });
    ID
}

impl AttentionOps for Avx2 {
    fn kv_scores(&self, k: &KvRows<'_>, q: &[f32], scale: f32, out: &mut [f32]) -> KernelId {
        // SAFETY: an `Avx2` exists only when `Avx2::get` saw AVX2, FMA and F16C.
        unsafe { kv_scores(k, q, scale, out) }
    }

    fn kv_mix(&self, v: &KvRows<'_>, w: &[f32], out: &mut [f32]) -> KernelId {
        // SAFETY: as above.
        unsafe { kv_mix(v, w, out) }
    }
}
