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
        let qp = q.as_ptr();
        let mut j = 0;
        // Plain loops and inline fns, not closures: a closure is compiled without the
        // caller's target features, so intrinsics in it would not inline.
        while j + 4 <= k.rows() {
            let r: [*const T; 4] = [
                data[k.offset(j)..][..len].as_ptr(),
                data[k.offset(j + 1)..][..len].as_ptr(),
                data[k.offset(j + 2)..][..len].as_ptr(),
                data[k.offset(j + 3)..][..len].as_ptr(),
            ];
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c < whole {
                let qv = _mm256_loadu_ps(qp.add(c));
                for i in 0..4 {
                    acc[i] = _mm256_fmadd_ps(T::load8(r[i].add(c)), qv, acc[i]);
                }
                c += 8;
            }
            for i in 0..4 {
                out[j + i] = finish(acc[i], r[i], q, whole) * scale;
            }
            j += 4;
        }
        while j < k.rows() {
            let r = data[k.offset(j)..][..len].as_ptr();
            let mut acc = _mm256_setzero_ps();
            let mut c = 0;
            while c < whole {
                acc = _mm256_fmadd_ps(T::load8(r.add(c)), _mm256_loadu_ps(qp.add(c)), acc);
                c += 8;
            }
            out[j] = finish(acc, r, q, whole) * scale;
            j += 1;
        }
    }
}

/// The horizontal sum of `acc` plus the products of columns `whole..q.len()`.
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

/// `out += sum_j w[j] * row j` over `data`.
#[inline(always)]
unsafe fn mix<T: Load8 + Copy>(data: &[T], v: &KvRows<'_>, w: &[f32], out: &mut [f32]) {
    // SAFETY: as in `scores`; `check_mix` checked `w` against the rows and `out` against
    // the row length, and every column range below ends at or before it.
    unsafe {
        let len = v.len();
        let o = out.as_mut_ptr();
        let mut c = 0;
        while c + 32 <= len {
            let mut acc = [
                _mm256_loadu_ps(o.add(c)),
                _mm256_loadu_ps(o.add(c + 8)),
                _mm256_loadu_ps(o.add(c + 16)),
                _mm256_loadu_ps(o.add(c + 24)),
            ];
            for (j, &wj) in w.iter().enumerate() {
                let r = data[v.offset(j)..][..len].as_ptr().add(c);
                let wv = _mm256_set1_ps(wj);
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
                let r = data[v.offset(j)..][..len].as_ptr().add(c);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(wj), T::load8(r), acc);
            }
            _mm256_storeu_ps(o.add(c), acc);
            c += 8;
        }
        for (cc, oc) in out.iter_mut().enumerate().skip(c) {
            for (j, &wj) in w.iter().enumerate() {
                *oc += wj * data[v.offset(j) + cc].to_f32();
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
