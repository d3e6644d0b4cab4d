//! AVX2 attention passes over f32 or f16 (`vcvtph2ps`) cached rows, with FMA.
//!
//! - Scores: four rows at a time against one query, four independent FMA chains (one per
//!   row) sharing each query load.
//! - Values: 32 output columns held in four registers while every row passes (one FMA per
//!   8 elements, nothing stored until the end), then the next 32 columns: the rows of one
//!   head (a few hundred KiB at long context) stay in L2 between the passes.

use super::Avx2;
use super::dense::{Load8, hsum_ps};
use crate::ops::attention::{check_mix, check_scores};
use crate::ops::{AttentionOps, KernelId, KvData, KvRows};
use std::arch::x86_64::*;

/// Id of [`kv_scores`] and [`kv_mix`].
pub(crate) const ID: KernelId = "kv/avx2";

/// Scores of rows `rows` of `k` over `data`.
#[inline(always)]
unsafe fn scores<T: Load8 + Copy>(
    data: &[T],
    k: &KvRows<'_>,
    q: &[f32],
    scale: f32,
    out: &mut [f32],
) {
    // SAFETY: `KvRows::new` checked that every row `j < k.rows()` has `k.len()` elements
    // from `k.offset(j)` inside `data` (the slices below re-check it), and `check_scores`
    // that `q` has `k.len()` elements; vector loads stay below `whole <= len`.
    unsafe {
        let len = k.len();
        let whole = len / 8 * 8;
        let row = |j: usize| data[k.offset(j)..][..len].as_ptr();
        let finish = |acc: __m256, r: *const T| {
            let mut s = hsum_ps(acc);
            for (c, qc) in q.iter().enumerate().skip(whole) {
                s += (*r.add(c)).to_f32() * qc;
            }
            s * scale
        };
        let mut j = 0;
        while j + 4 <= k.rows() {
            let r: [*const T; 4] = std::array::from_fn(|i| row(j + i));
            let mut acc = [_mm256_setzero_ps(); 4];
            for c in (0..whole).step_by(8) {
                let qv = _mm256_loadu_ps(q.as_ptr().add(c));
                for i in 0..4 {
                    acc[i] = _mm256_fmadd_ps(T::load8(r[i].add(c)), qv, acc[i]);
                }
            }
            for i in 0..4 {
                out[j + i] = finish(acc[i], r[i]);
            }
            j += 4;
        }
        for (j, o) in out.iter_mut().enumerate().skip(j) {
            let r = row(j);
            let mut acc = _mm256_setzero_ps();
            for c in (0..whole).step_by(8) {
                let qv = _mm256_loadu_ps(q.as_ptr().add(c));
                acc = _mm256_fmadd_ps(T::load8(r.add(c)), qv, acc);
            }
            *o = finish(acc, r);
        }
    }
}

/// `out += sum_j w[j] * row j` over `data`.
#[inline(always)]
unsafe fn mix<T: Load8 + Copy>(data: &[T], v: &KvRows<'_>, w: &[f32], out: &mut [f32]) {
    // SAFETY: as in `scores`; `check_mix` checked `w` against the rows and `out` against
    // the row length, and every column range below ends at or before it.
    unsafe {
        let len = v.len();
        let rows: usize = v.rows();
        let row = |j: usize| data[v.offset(j)..][..len].as_ptr();
        let o = out.as_mut_ptr();
        let mut c = 0;
        while c + 32 <= len {
            let mut acc: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(o.add(c + 8 * i)));
            for (j, &wj) in w.iter().enumerate().take(rows) {
                let (wv, r) = (_mm256_set1_ps(wj), row(j).add(c));
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(wv, T::load8(r.add(8 * i)), *a);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.add(c + 8 * i), *a);
            }
            c += 32;
        }
        while c + 8 <= len {
            let mut acc = _mm256_loadu_ps(o.add(c));
            for (j, &wj) in w.iter().enumerate() {
                acc = _mm256_fmadd_ps(_mm256_set1_ps(wj), T::load8(row(j).add(c)), acc);
            }
            _mm256_storeu_ps(o.add(c), acc);
            c += 8;
        }
        for (cc, oc) in out.iter_mut().enumerate().skip(c) {
            for (j, &wj) in w.iter().enumerate() {
                *oc += wj * (*row(j).add(cc)).to_f32();
            }
        }
    }
}

/// The score pass.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn kv_scores(k: &KvRows<'_>, q: &[f32], scale: f32, out: &mut [f32]) -> KernelId {
    check_scores(k, q, out);
    // SAFETY: the features are enabled on this function; lengths checked above.
    unsafe {
        match k.data() {
            KvData::F32(d) => scores(d, k, q, scale, out),
            KvData::F16(d) => scores(d, k, q, scale, out),
        }
    }
    ID
}

/// The value pass.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn kv_mix(v: &KvRows<'_>, w: &[f32], out: &mut [f32]) -> KernelId {
    check_mix(v, w, out);
    // SAFETY: the features are enabled on this function; lengths checked above.
    unsafe {
        match v.data() {
            KvData::F32(d) => mix(d, v, w, out),
            KvData::F16(d) => mix(d, v, w, out),
        }
    }
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
