//! [`Kernels`]: what the engine calls. The chosen ops, a persistent thread pool, and
//! per-kernel call counters for receipts.

use crate::TernaryWeights;
use crate::dispatch::detect;
use crate::op::TernaryOps;
use crate::packed::{OutRows, PackedTernary};
use crate::pool::{Pool, chunk};
use crate::q8::{Q8Activations, Q8Matrix};
use half::f16;
use std::sync::atomic::{AtomicU64, Ordering};

/// Below this many weight elements per call a second thread costs more than it saves.
const MIN_PARALLEL_WORK: usize = 1 << 16;

#[derive(Clone, Copy)]
enum Op {
    Quantize,
    Gemv,
    Gemm,
    TernaryF32,
    F16Gemv,
    F16Gemm,
    F32Gemv,
    F32Gemm,
    Q8Gemv,
    Q8Gemm,
}

const OPS: [Op; 10] = [
    Op::Quantize,
    Op::Gemv,
    Op::Gemm,
    Op::TernaryF32,
    Op::F16Gemv,
    Op::F16Gemm,
    Op::F32Gemv,
    Op::F32Gemm,
    Op::Q8Gemv,
    Op::Q8Gemm,
];

impl Op {
    fn name(self, ops: &dyn TernaryOps) -> String {
        let (id, isa) = (ops.id(), ops.isa());
        match self {
            Op::Quantize => format!("act_i8/{isa}:quantize"),
            Op::Gemv => format!("{id}:gemv"),
            Op::Gemm => format!("{id}:gemm"),
            Op::TernaryF32 => format!("{id}:f32"),
            Op::F16Gemv => format!("f16/{isa}:gemv"),
            Op::F16Gemm => format!("f16/{isa}:gemm"),
            Op::F32Gemv => format!("f32/{isa}:gemv"),
            Op::F32Gemm => format!("f32/{isa}:gemm"),
            Op::Q8Gemv => format!("q8_0/{isa}:gemv"),
            Op::Q8Gemm => format!("q8_0/{isa}:gemm"),
        }
    }
}

/// The ops chosen for this CPU, a persistent thread pool, and per-kernel call counters.
///
/// Every matmul splits the output rows into one contiguous chunk per thread (the caller's
/// thread runs the first); with `threads == 1` everything runs inline. No method allocates
/// on the heap (tested with a counting allocator).
pub struct Kernels {
    ops: &'static dyn TernaryOps,
    pool: Pool,
    counts: [AtomicU64; OPS.len()],
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("ops", &self.ops.id())
            .field("threads", &self.pool.threads())
            .finish()
    }
}

impl Kernels {
    /// The best ops for this CPU ([`detect`]) on `threads` threads (0 is taken as 1).
    pub fn new(threads: usize) -> Self {
        Self::with_ops(detect(), threads)
    }

    /// Explicit ops (e.g. from [`crate::by_id`]) on `threads` threads (0 is taken as 1).
    pub fn with_ops(ops: &'static dyn TernaryOps, threads: usize) -> Self {
        Self {
            ops,
            pool: Pool::new(threads),
            counts: Default::default(),
        }
    }

    /// The ops in use.
    pub fn ops(&self) -> &'static dyn TernaryOps {
        self.ops
    }

    /// Threads used per call (including the caller's).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Packs weights for these ops (once, at load time).
    ///
    /// # Panics
    /// If `w` breaks its invariants (`values.len() != rows * cols`, non-ternary values).
    pub fn pack(&self, w: &TernaryWeights) -> PackedTernary {
        self.ops.pack(w)
    }

    fn count(&self, op: Op) {
        self.counts[op as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `f` on one contiguous chunk of `out`'s rows per thread.
    fn split_rows(
        &self,
        out: &mut OutRows<'_>,
        work: usize,
        f: &(dyn Fn(&mut OutRows<'_>) + Sync),
    ) {
        let rows = out.stride();
        let threads = self.pool.threads().min(rows.max(1));
        if threads <= 1 || work < MIN_PARALLEL_WORK {
            f(out);
            return;
        }
        let shared: &OutRows<'_> = out;
        self.pool.run(&|i| {
            if i >= threads {
                return;
            }
            // SAFETY: `chunk` gives each thread a disjoint row range, and `out` is only
            // reached through these views until `run` returns.
            let mut part = unsafe { shared.sub(chunk(rows, threads, i)) };
            f(&mut part);
        });
    }

    /// Runs `job(i)` for every `i in 0..self.threads()` on the pool (`job(0)` on the calling
    /// thread) and returns when all are done: for work besides the matmuls that is worth
    /// splitting, such as attention over a long prompt. Allocates nothing.
    pub fn run_parallel(&self, job: &(dyn Fn(usize) + Sync)) {
        self.pool.run(job);
    }

    /// Quantises `n` activation rows: `x: [n][cols]` f32 -> `q: [n][cols]` i8 and
    /// `scales: [n]` (per-row `s`), identical to [`crate::quantize_row_reference`].
    ///
    /// # Panics
    /// If `n == 0` with non-empty `x`, `x.len() % n != 0`, `q.len() != x.len()` or
    /// `scales.len() != n`.
    pub fn quantize_rows(&self, x: &[f32], n: usize, q: &mut [i8], scales: &mut [f32]) {
        assert_eq!(q.len(), x.len(), "quantize_rows: q and x lengths differ");
        assert_eq!(scales.len(), n, "quantize_rows: scales.len() != n");
        if n == 0 {
            assert!(x.is_empty(), "quantize_rows: n == 0 with non-empty x");
            return;
        }
        assert_eq!(
            x.len() % n,
            0,
            "quantize_rows: x.len() is not a multiple of n"
        );
        self.count(Op::Quantize);
        let cols = x.len() / n;
        // Quantisation is O(n * cols), negligible next to the matmul: run it inline.
        for (t, s) in scales.iter_mut().enumerate() {
            let span = t * cols..(t + 1) * cols;
            *s = self.ops.quantize_row(&x[span.clone()], &mut q[span]);
        }
    }

    /// Ternary matmul on quantised activations:
    /// `y[t][r] = (sum_c values[r][c] * q[t][c]) as f32 / scales[t] * w.scale()`, the sum
    /// exact in i32 and the float steps in exactly this order. `q: [n][w.cols()]`,
    /// `scales: [n]`, `y: [n][w.rows()]`. `n == 1` counts as GEMV, `n > 1` as GEMM.
    ///
    /// # Panics
    /// On wrong slice lengths, or weights packed for a layout these ops do not stream.
    pub fn ternary_matmul(
        &self,
        w: &PackedTernary,
        q: &[i8],
        scales: &[f32],
        n: usize,
        y: &mut [f32],
    ) {
        let mut out = OutRows::new(y, n, w.rows());
        crate::op::check_ternary(w, q, scales.len(), &out);
        self.count(if n == 1 { Op::Gemv } else { Op::Gemm });
        let ops = self.ops;
        self.split_rows(&mut out, w.rows() * w.cols() * n.max(1), &|part| {
            ops.ternary_rows(w, q, scales, part)
        });
    }

    /// Ternary matmul without activation quantisation (cross-checking):
    /// `y[t][r] = (sum_c values[r][c] * x[t][c]) * w.scale()` in f32.
    ///
    /// # Panics
    /// On wrong slice lengths.
    pub fn ternary_matmul_f32(&self, w: &PackedTernary, x: &[f32], n: usize, y: &mut [f32]) {
        let mut out = OutRows::new(y, n, w.rows());
        crate::op::check_ternary(w, x, n, &out);
        self.count(Op::TernaryF32);
        let ops = self.ops;
        self.split_rows(&mut out, w.rows() * w.cols() * n.max(1), &|part| {
            ops.ternary_f32_rows(w, x, part)
        });
    }

    /// Dense f16 head: `w: [rows][cols]` f16 row-major, `y[t][r] = sum_c f32(w[r][c]) * x[t][c]`
    /// (any summation order). `x: [n][cols]`, `y: [n][rows]`.
    ///
    /// # Panics
    /// On wrong slice lengths.
    pub fn f16_matmul(
        &self,
        w: &[f16],
        rows: usize,
        cols: usize,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) {
        let mut out = OutRows::new(y, n, rows);
        crate::op::check_dense(w, cols, x, &out);
        self.count(if n == 1 { Op::F16Gemv } else { Op::F16Gemm });
        let ops = self.ops;
        self.split_rows(&mut out, rows * cols * n.max(1), &|part| {
            ops.f16_rows(w, cols, x, part)
        });
    }

    /// Dense f32 matmul, like [`Kernels::f16_matmul`].
    ///
    /// # Panics
    /// On wrong slice lengths.
    pub fn f32_matmul(
        &self,
        w: &[f32],
        rows: usize,
        cols: usize,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) {
        let mut out = OutRows::new(y, n, rows);
        crate::op::check_dense(w, cols, x, &out);
        self.count(if n == 1 { Op::F32Gemv } else { Op::F32Gemm });
        let ops = self.ops;
        self.split_rows(&mut out, rows * cols * n.max(1), &|part| {
            ops.f32_rows(w, cols, x, part)
        });
    }

    /// Q8_0 matmul (the 8-bit head): quantises `x: [n][w.cols()]` into `act` per block of
    /// 32, then `y[t][r] = sum_b isum * dw[r][b] * dx[t][b]` (see [`crate::q8`]).
    /// `y: [n][w.rows()]`. `act` is caller-owned so that decoding allocates nothing.
    ///
    /// # Panics
    /// On wrong slice lengths, or `n` beyond `act`'s capacity.
    pub fn q8_matmul(
        &self,
        w: &Q8Matrix,
        x: &[f32],
        n: usize,
        act: &mut Q8Activations,
        y: &mut [f32],
    ) {
        let mut out = OutRows::new(y, n, w.rows());
        act.quantize(x, n);
        crate::q8::check_q8(w, act, &out);
        self.count(if n == 1 { Op::Q8Gemv } else { Op::Q8Gemm });
        let ops = self.ops;
        let act: &Q8Activations = act;
        self.split_rows(&mut out, w.rows() * w.cols() * n.max(1), &|part| {
            ops.q8_rows(w, act, part)
        });
    }

    /// Kernel ids actually dispatched, with call counts, e.g.
    /// `[("i2s/avx2:gemv", 123), ("f16/avx2:gemv", 16)]` (zero counts omitted).
    pub fn dispatch_counts(&self) -> Vec<(String, u64)> {
        OPS.iter()
            .filter_map(|&op| {
                let c = self.counts[op as usize].load(Ordering::Relaxed);
                (c > 0).then(|| (op.name(self.ops), c))
            })
            .collect()
    }
}
