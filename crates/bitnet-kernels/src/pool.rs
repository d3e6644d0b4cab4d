//! A small persistent thread pool that runs one borrowed job on every thread.
//!
//! Why not rayon: the kernels need "run this closure on threads 0..T, each takes a
//! contiguous row range, wait for all", with no heap allocation per call (a receipt-grade
//! claim we test). Rayon's injector queue allocates blocks as jobs are pushed, and
//! `scope` boxes its spawns. This pool instead publishes a pointer to a closure living on
//! the caller's stack, bumps an epoch, and the caller runs part 0 itself and waits until
//! every worker has finished, so the borrowed closure outlives all uses.
//!
//! GEMV calls take 20-500 us, so sleeping and waking through the kernel on every call
//! (futex wake-ups cost microseconds each, more in VMs) would be a visible part of each.
//! Both sides therefore spin briefly on atomics first (workers on the epoch, the caller on
//! the pending count) and only then sleep on a condvar; notifications are only sent when
//! somebody sleeps. `Mutex`/`Condvar` are futex based on Linux: no allocation.
//!
//! # Re-entrancy
//! A job that calls [`Pool::run`] on its own pool (a kernel called from inside
//! `run_parallel`, say) cannot wait for the pool: every worker is busy with the outer job,
//! and the outer caller holds the lock that serialises callers. Such a nested call runs its
//! parts inline instead, one after another on the calling thread (each index once, so the
//! result is the same). A thread-local records which pool's job a thread is running. Calls
//! that cycle through two pools (a job of A runs B, whose job runs A) are not detected and
//! must be avoided.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

type Job = dyn Fn(usize) + Sync;

/// Spin iterations (each a `pause`, ~10-50 ns) before a thread sleeps on a condvar.
const SPIN: u32 = 10_000;

/// A lifetime-erased pointer to the current job (valid until `pending` reaches 0).
#[derive(Clone, Copy)]
struct JobPtr(*const Job);
// SAFETY: the pointee is `Sync`, and `run` keeps it alive until every worker is done.
unsafe impl Send for JobPtr {}

struct State {
    job: Option<JobPtr>,
    /// Workers currently blocked on `start`.
    sleeping: usize,
    /// Whether the caller is (about to be) blocked on `done`.
    caller_sleeping: bool,
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
    /// Job generation; written under the lock, read by spinning workers without it.
    epoch: AtomicU64,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
}

thread_local! {
    /// The pool (address of its `Shared`) whose job this thread is running, 0 if none.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Persistent pool of `threads - 1` workers plus the calling thread.
pub(crate) struct Pool {
    threads: usize,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    /// Serialises `run` calls coming from different caller threads.
    caller: Mutex<()>,
}

impl Pool {
    /// Creates a pool running jobs on `threads` threads (at least 1; 1 spawns nothing).
    pub(crate) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                sleeping: 0,
                caller_sleeping: false,
                panicked: false,
                shutdown: false,
            }),
            start: Condvar::new(),
            done: Condvar::new(),
            epoch: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
        });
        let handles = (1..threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("bitnet-kernels-{i}"))
                    .spawn(move || worker(&shared, i))
                    .expect("failed to spawn a kernel worker thread")
            })
            .collect();
        Self {
            threads,
            shared,
            handles,
            caller: Mutex::new(()),
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `job(i)` for every `i in 0..threads` concurrently (`job(0)` on the caller) and
    /// returns when all are done. A panic in any part is re-raised here. Called from inside
    /// one of this pool's jobs, it runs the parts inline (see the module doc).
    pub(crate) fn run(&self, job: &(dyn Fn(usize) + Sync + '_)) {
        if self.threads == 1 {
            job(0);
            return;
        }
        let me = Arc::as_ptr(&self.shared) as usize;
        if RUNNING.with(Cell::get) == me {
            for i in 0..self.threads {
                job(i);
            }
            return;
        }
        let _serial = self.caller.lock().unwrap_or_else(|e| e.into_inner());
        let sh = &*self.shared;
        // SAFETY: lifetime erasure; we wait below until `pending == 0`, i.e. until no
        // worker uses the pointer any more, before returning (also when `job(0)` panics).
        let ptr: *const Job =
            unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync + '_), &'static Job>(job) };
        {
            let mut st = lock(&sh.state);
            st.job = Some(JobPtr(ptr));
            st.panicked = false;
            sh.pending.store(self.threads - 1, Ordering::Release);
            sh.epoch.fetch_add(1, Ordering::AcqRel);
            if st.sleeping > 0 {
                sh.start.notify_all();
            }
        }
        let outer = RUNNING.with(|r| r.replace(me));
        let mine = catch_unwind(AssertUnwindSafe(|| job(0)));
        RUNNING.with(|r| r.set(outer));
        let mut spins = 0;
        while sh.pending.load(Ordering::Acquire) > 0 && spins < SPIN {
            std::hint::spin_loop();
            spins += 1;
        }
        let mut st = lock(&sh.state);
        while sh.pending.load(Ordering::Acquire) > 0 {
            st.caller_sleeping = true;
            st = sh.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.caller_sleeping = false;
        st.job = None;
        let theirs = st.panicked;
        drop(st);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        assert!(!theirs, "a kernel worker thread panicked");
    }
}

fn worker(shared: &Shared, index: usize) {
    // A worker only ever runs this pool's jobs.
    RUNNING.with(|r| r.set(shared as *const Shared as usize));
    let mut seen = 0u64;
    loop {
        // Spin a little: the next call usually follows within microseconds.
        for _ in 0..SPIN {
            if shared.epoch.load(Ordering::Acquire) != seen {
                break;
            }
            std::hint::spin_loop();
        }
        let job = {
            let mut st = lock(&shared.state);
            while shared.epoch.load(Ordering::Acquire) == seen && !st.shutdown {
                st.sleeping += 1;
                st = shared.start.wait(st).unwrap_or_else(|e| e.into_inner());
                st.sleeping -= 1;
            }
            if st.shutdown {
                return;
            }
            seen = shared.epoch.load(Ordering::Acquire);
            st.job
        };
        let ok = match job {
            // SAFETY: `run` keeps the job alive until `pending` drops to 0 below.
            Some(JobPtr(p)) => catch_unwind(AssertUnwindSafe(|| unsafe { (*p)(index) })).is_ok(),
            None => true,
        };
        if !ok {
            lock(&shared.state).panicked = true;
        }
        if shared.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Last one out: wake the caller if it went to sleep. Taking the lock orders this
            // after the caller's check-then-wait, so the wake-up cannot be lost.
            let st = lock(&shared.state);
            if st.caller_sleeping {
                shared.done.notify_all();
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.start.notify_all();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// Contiguous chunk `part` of `0..total` split into `parts` near-equal pieces.
pub(crate) fn chunk(total: usize, parts: usize, part: usize) -> std::ops::Range<usize> {
    let base = total / parts;
    let extra = total % parts;
    let start = part * base + part.min(extra);
    let len = base + usize::from(part < extra);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn chunks_cover_exactly_once() {
        for total in [0, 1, 5, 64, 1001] {
            for parts in 1..6 {
                let mut next = 0;
                for p in 0..parts {
                    let r = chunk(total, parts, p);
                    assert_eq!(r.start, next);
                    assert!(r.len() <= total / parts + 1);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn every_part_runs_once_per_call() {
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            let hits: Vec<AtomicU32> = (0..threads).map(|_| AtomicU32::new(0)).collect();
            for _ in 0..500 {
                pool.run(&|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 500));
        }
    }

    #[test]
    fn worker_panic_reaches_caller_and_pool_survives() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| pool.run(&|i| assert!(i != 1, "boom"))));
        assert!(r.is_err());
        let r = catch_unwind(AssertUnwindSafe(|| pool.run(&|i| assert!(i != 0, "boom"))));
        assert!(r.is_err());
        let n = AtomicU32::new(0);
        pool.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn nested_run_on_the_same_pool_runs_inline() {
        // Each outer part runs the whole inner job: from the caller (part 0) and from a
        // worker (part 1). Waiting on the pool there would deadlock, so the test runs on a
        // thread of its own and fails after a timeout instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = Pool::new(2);
            let hits: Vec<AtomicU32> = (0..4).map(|_| AtomicU32::new(0)).collect();
            pool.run(&|i| {
                pool.run(&|j| {
                    hits[i * 2 + j].fetch_add(1, Ordering::Relaxed);
                })
            });
            // The pool is still usable normally afterwards.
            let n = AtomicU32::new(0);
            pool.run(&|_| {
                n.fetch_add(1, Ordering::Relaxed);
            });
            let hits: Vec<u32> = hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
            tx.send((hits, n.load(Ordering::Relaxed))).unwrap();
        });
        let (hits, n) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("a nested Pool::run deadlocked");
        assert_eq!(hits, [1, 1, 1, 1]);
        assert_eq!(n, 2);
    }
}
