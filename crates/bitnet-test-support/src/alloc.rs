//! A counting global allocator, for tests that prove a hot path does not touch the heap.
//!
//! Install it in the test binary that needs it:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: bitnet_test_support::alloc::Counting = bitnet_test_support::alloc::Counting;
//! ```
//!
//! and measure with [`fewest_allocations`] (or read [`allocations`] before and after the code
//! under test). The counter is process-wide, so keep such tests alone in their binary; even
//! then the test harness's own threads may allocate now and then, which is why
//! [`fewest_allocations`] takes the quietest of several windows: an allocation per call shows
//! in every window, a stray one from another thread does not.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// Forwards to the system allocator, counting `alloc` and `realloc` calls.
#[derive(Debug, Clone, Copy)]
pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// is a relaxed atomic increment, which neither allocates nor touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, checked by its contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (and reallocations) counted so far in this process.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// The fewest allocations seen over `windows` runs of `f` (at least one).
pub fn fewest_allocations(windows: usize, mut f: impl FnMut()) -> usize {
    (0..windows.max(1))
        .map(|_| {
            let before = allocations();
            f();
            allocations() - before
        })
        .min()
        .unwrap_or(0)
}
