//! [`PartsMut`]: mutable slices cut into disjoint parts, one per job of a parallel run
//! ([`crate::Kernels::for_each_part_mut`]).
//!
//! Work besides the matmuls (attention over a long prompt, one token's attention split by
//! head) writes disjoint ranges of shared buffers from several threads. Rather than hand
//! each job a raw pointer and trust it to stay in its range, the caller describes how each
//! buffer is cut, this module checks the cut once, and each job receives `&mut` slices of
//! its own part that the borrow checker tracks from there on. The one `unsafe` block that
//! makes the slices is [`PartsMut::part`].

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};
use std::ptr::NonNull;

use crate::pool::chunk;

/// A mutable slice to be cut into one contiguous part per job (see the module doc).
///
/// Job `i` of `parts` jobs gets part `i`; parts are disjoint by construction (`chunks`,
/// `even`) or by a check (`at`).
pub struct PartsMut<'a, T> {
    ptr: NonNull<T>,
    len: usize,
    split: Split<'a>,
    _borrow: PhantomData<&'a mut [T]>,
}

#[derive(Debug, Clone, Copy)]
enum Split<'a> {
    /// Part `i` is `[i * len, (i + 1) * len)`, clamped to the slice.
    Chunks(usize),
    /// Whole units of this many elements, spread as evenly as possible.
    Even(usize),
    /// Part `i` is `[bounds[i], bounds[i + 1])`; parts past the bounds are empty.
    At(&'a [usize]),
}

// SAFETY: a shared `PartsMut` gives no access to the elements except through the
// crate-private, unsafe `part`, whose callers hand each part to one job; the parts then
// move to other threads, which `T: Send` permits.
unsafe impl<T: Send> Sync for PartsMut<'_, T> {}

impl<'a, T> PartsMut<'a, T> {
    fn new(data: &'a mut [T], split: Split<'a>) -> Self {
        Self {
            len: data.len(),
            ptr: NonNull::from(data).cast(),
            split,
            _borrow: PhantomData,
        }
    }

    /// Part `i` is `data[i * len..(i + 1) * len]` (clamped to `data`; empty past its end):
    /// e.g. one scratch row of `len` values per thread.
    pub fn chunks(data: &'a mut [T], len: usize) -> Self {
        Self::new(data, Split::Chunks(len))
    }

    /// `data.len() / unit` whole units of `unit` elements, split into contiguous parts whose
    /// unit counts differ by at most one (earlier parts get the extra units): e.g. the heads
    /// of one attention row.
    ///
    /// # Panics
    /// If `unit == 0` or `data.len()` is not a multiple of `unit`.
    pub fn even(data: &'a mut [T], unit: usize) -> Self {
        assert!(
            unit > 0 && data.len().is_multiple_of(unit),
            "PartsMut::even: {} elements are not whole units of {unit}",
            data.len()
        );
        Self::new(data, Split::Even(unit))
    }

    /// Part `i` is `data[bounds[i]..bounds[i + 1]]`, for boundaries the caller computed
    /// (e.g. token ranges of equal attention cost); parts past the last boundary are empty.
    ///
    /// # Panics
    /// If `bounds` decreases anywhere or its last entry exceeds `data.len()`.
    pub fn at(data: &'a mut [T], bounds: &'a [usize]) -> Self {
        let sorted = bounds.windows(2).all(|w| w[0] <= w[1]);
        let inside = bounds.last().is_none_or(|&b| b <= data.len());
        assert!(
            sorted && inside,
            "PartsMut::at: bounds {bounds:?} are not non-decreasing within 0..={}",
            data.len()
        );
        Self::new(data, Split::At(bounds))
    }

    /// Elements of the whole slice.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the whole slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that every element meant for a job reaches one when there are `parts` jobs.
    ///
    /// # Panics
    /// If the split has more parts than `parts` (only possible with `at`).
    pub(crate) fn check(&self, parts: usize) {
        if let Split::At(bounds) = self.split {
            assert!(
                bounds.len() <= parts + 1,
                "PartsMut::at: {} parts for {parts} jobs",
                bounds.len().saturating_sub(1)
            );
        }
    }

    /// The element range of part `i` of `parts`: inside `0..len`, and disjoint from the
    /// range of every other `i` (for the same `parts`).
    fn range(&self, i: usize, parts: usize) -> Range<usize> {
        let r = match self.split {
            Split::Chunks(len) => {
                let start = i.saturating_mul(len).min(self.len);
                start..start.saturating_add(len).min(self.len)
            }
            Split::Even(unit) => {
                let r = chunk(self.len / unit, parts, i);
                r.start * unit..r.end * unit
            }
            Split::At(bounds) => match (bounds.get(i), bounds.get(i + 1)) {
                (Some(&a), Some(&b)) => a..b,
                _ => self.len..self.len,
            },
        };
        debug_assert!(r.start <= r.end && r.end <= self.len);
        r
    }

    /// Part `i` of `parts`.
    ///
    /// # Safety
    /// While a returned part is alive, no other part with the same `i` (and the same
    /// `parts`) may be made from `self`.
    pub(crate) unsafe fn part(&self, i: usize, parts: usize) -> Part<'_, T> {
        let r = self.range(i, parts);
        // SAFETY: `r` lies inside the slice `ptr..ptr + len` borrowed mutably for `'a`
        // (which outlives `&self`), and is disjoint from the range of any other index
        // (`range`: chunks of a fixed length, `pool::chunk`'s consecutive ranges, or checked
        // non-decreasing bounds). The caller makes at most one part per index at a time, so
        // no two live `&mut` slices overlap.
        let data =
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(r.start), r.len()) };
        Part {
            start: r.start,
            data,
        }
    }
}

impl<T> std::fmt::Debug for PartsMut<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartsMut")
            .field("len", &self.len)
            .field("split", &self.split)
            .finish()
    }
}

/// One job's part of a [`PartsMut`]: a mutable slice that remembers where it starts in the
/// whole (so a job can tell which rows or heads it holds).
#[derive(Debug)]
pub struct Part<'a, T> {
    start: usize,
    data: &'a mut [T],
}

impl<'a, T> Part<'a, T> {
    /// Offset of the part's first element in the whole slice.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The part as a plain slice.
    pub fn into_slice(self) -> &'a mut [T] {
        self.data
    }
}

impl<T> Deref for Part<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.data
    }
}

impl<T> DerefMut for Part<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.data
    }
}
