//! [`Kernels`]: what the engine calls. The chosen backend, a persistent thread pool, and
//! per-kernel call counters for receipts.
//!
//! Every public method is an entry point that checks its operands once (by building the
//! checked operand types of [`crate::ops`], panicking with the [`ShapeError`] message on a
//! mismatch) and then hands row ranges of the output to the backend on each thread. The
//! counters are per op and per GEMV/GEMM, and a receipt names each with the id the backend
//! declares for that op ([`Backend::kernel_id`]). The backend's methods return the id of the
//! code that actually ran; debug builds compare the two on every call, so a test that runs an
//! op on a backend fails if the backend declares a kernel that did not run.

use crate::TernaryWeights;
use crate::backend::{Backend, OpKind};
use crate::dispatch::detect;
use crate::error::{ShapeError, check_len};
use crate::kquant::{KBlock, KQuantMatrix, Q8KActivations};
use crate::ops::{
    CausalTile, DenseMatmul, KQuantMatmul, KernelId, KvKeys, KvRows, Q8Matmul, TernaryF32Matmul,
    TernaryMatmul,
};
use crate::packed::{OutRows, PackedLayout, PackedTernary};
use crate::parts::{Part, PartsMut};
use crate::pool::{Pool, chunk};
use crate::q8::{Q8Activations, Q8Matrix};
use half::{bf16, f16};
use std::sync::atomic::{AtomicU64, Ordering};

/// Below this many weight elements per call a second thread costs more than it saves.
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// A dispatch counter: an op, split into GEMV (`n == 1`) and GEMM for the matmuls.
#[derive(Clone, Copy)]
enum Counter {
    Quantize,
    TernaryGemv,
    TernaryGemm,
    TernaryF32,
    F16Gemv,
    F16Gemm,
    BF16Gemv,
    BF16Gemm,
    F32Gemv,
    F32Gemm,
    Q8Gemv,
    Q8Gemm,
    Q6KGemv,
    Q6KGemm,
    Q4KGemv,
    Q4KGemm,
    KvCausal,
}

const COUNTERS: [Counter; 17] = [
    Counter::Quantize,
    Counter::TernaryGemv,
    Counter::TernaryGemm,
    Counter::TernaryF32,
    Counter::F16Gemv,
    Counter::F16Gemm,
    Counter::BF16Gemv,
    Counter::BF16Gemm,
    Counter::F32Gemv,
    Counter::F32Gemm,
    Counter::Q8Gemv,
    Counter::Q8Gemm,
    Counter::Q6KGemv,
    Counter::Q6KGemm,
    Counter::Q4KGemv,
    Counter::Q4KGemm,
    Counter::KvCausal,
];

impl Counter {
    /// The counter of matmul `op` on `n` tokens.
    fn matmul(op: OpKind, n: usize) -> Self {
        let gemv = n == 1;
        match op {
            OpKind::Quantize => Counter::Quantize,
            OpKind::Ternary if gemv => Counter::TernaryGemv,
            OpKind::Ternary => Counter::TernaryGemm,
            OpKind::TernaryF32 => Counter::TernaryF32,
            OpKind::F16 if gemv => Counter::F16Gemv,
            OpKind::F16 => Counter::F16Gemm,
            OpKind::BF16 if gemv => Counter::BF16Gemv,
            OpKind::BF16 => Counter::BF16Gemm,
            OpKind::F32 if gemv => Counter::F32Gemv,
            OpKind::F32 => Counter::F32Gemm,
            OpKind::Q8_0 if gemv => Counter::Q8Gemv,
            OpKind::Q8_0 => Counter::Q8Gemm,
            OpKind::Q6K if gemv => Counter::Q6KGemv,
            OpKind::Q6K => Counter::Q6KGemm,
            OpKind::Q4K if gemv => Counter::Q4KGemv,
            OpKind::Q4K => Counter::Q4KGemm,
            OpKind::KvCausal => Counter::KvCausal,
        }
    }

    fn op(self) -> OpKind {
        match self {
            Counter::Quantize => OpKind::Quantize,
            Counter::TernaryGemv | Counter::TernaryGemm => OpKind::Ternary,
            Counter::TernaryF32 => OpKind::TernaryF32,
            Counter::F16Gemv | Counter::F16Gemm => OpKind::F16,
            Counter::BF16Gemv | Counter::BF16Gemm => OpKind::BF16,
            Counter::F32Gemv | Counter::F32Gemm => OpKind::F32,
            Counter::Q8Gemv | Counter::Q8Gemm => OpKind::Q8_0,
            Counter::Q6KGemv | Counter::Q6KGemm => OpKind::Q6K,
            Counter::Q4KGemv | Counter::Q4KGemm => OpKind::Q4K,
            Counter::KvCausal => OpKind::KvCausal,
        }
    }

    /// The part of the receipt name after the kernel id.
    fn suffix(self) -> &'static str {
        match self {
            Counter::Quantize => "quantize",
            Counter::TernaryF32 => "f32",
            Counter::TernaryGemv
            | Counter::F16Gemv
            | Counter::BF16Gemv
            | Counter::F32Gemv
            | Counter::Q8Gemv
            | Counter::Q6KGemv
            | Counter::Q4KGemv => "gemv",
            Counter::TernaryGemm
            | Counter::F16Gemm
            | Counter::BF16Gemm
            | Counter::F32Gemm
            | Counter::Q8Gemm
            | Counter::Q6KGemm
            | Counter::Q4KGemm => "gemm",
            Counter::KvCausal => "causal",
        }
    }
}

/// Unwraps checked operands; a mismatch is a programming error of the caller.
#[track_caller]
fn checked<T>(r: Result<T, ShapeError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The backend chosen for this CPU, a persistent thread pool, and per-kernel call counters.
///
/// Every matmul splits the output rows into one contiguous chunk per thread (the caller's
/// thread runs the first); with `threads == 1` everything runs inline. No method allocates
/// on the heap (tested with a counting allocator). A parallel method called from inside a
/// job of the same `Kernels` (e.g. a matmul inside [`Kernels::run_parallel`]) runs inline
/// on the calling thread rather than waiting for the busy pool.
pub struct Kernels {
    backend: &'static dyn Backend,
    pool: Pool,
    counts: [AtomicU64; COUNTERS.len()],
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("backend", &self.backend.id())
            .field("threads", &self.pool.threads())
            .finish()
    }
}

impl Kernels {
    /// The best backend for this CPU ([`detect`]) on `threads` threads (0 is taken as 1).
    pub fn new(threads: usize) -> Self {
        Self::with_backend(detect(), threads)
    }

    /// An explicit backend (e.g. from [`crate::by_id`]) on `threads` threads (0 is taken
    /// as 1).
    pub fn with_backend(backend: &'static dyn Backend, threads: usize) -> Self {
        Self {
            backend,
            pool: Pool::new(threads),
            counts: Default::default(),
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> &'static dyn Backend {
        self.backend
    }

    /// Threads used per call (including the caller's).
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// The packed layout this backend streams (what [`Kernels::pack`] produces).
    pub fn layout(&self) -> PackedLayout {
        self.backend.layout()
    }

    /// Packs weights in the layout this backend streams (once, at load time).
    ///
    /// # Panics
    /// If `w` breaks its invariants (`values.len() != rows * cols`, non-ternary values).
    pub fn pack(&self, w: &TernaryWeights) -> PackedTernary {
        PackedTernary::pack(w, self.backend.layout())
    }

    fn count(&self, c: Counter) {
        self.counts[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Checks in debug builds that the code that ran for `op` is the one the backend
    /// declares (what receipts report).
    #[inline]
    fn witness(&self, op: OpKind, ran: KernelId) {
        debug_assert_eq!(
            ran,
            self.backend.kernel_id(op),
            "backend {} declares kernel {} for {op:?}, but {ran} ran",
            self.backend.id(),
            self.backend.kernel_id(op),
        );
    }

    /// Runs `f` on one contiguous chunk of `out`'s rows per thread.
    fn split_rows(
        &self,
        op: OpKind,
        out: &mut OutRows<'_>,
        work: usize,
        f: &(dyn Fn(&mut OutRows<'_>) -> KernelId + Sync),
    ) {
        self.split_rows_of(op, [out], work, &|_, part| f(part));
    }

    /// Runs `f(k, part)` on one contiguous chunk of each of the `K` outputs' rows per
    /// thread, all in one pool run (each thread does its chunk of output 0, then of output 1,
    /// ...), or on the calling thread when `work` (weight elements times tokens, all outputs
    /// together) is too small to share.
    fn split_rows_of<const K: usize>(
        &self,
        op: OpKind,
        mut outs: [&mut OutRows<'_>; K],
        work: usize,
        f: &(dyn Fn(usize, &mut OutRows<'_>) -> KernelId + Sync),
    ) {
        let most_rows = outs.iter().map(|out| out.stride()).max().unwrap_or(0);
        let threads = self.pool.threads();
        if threads.min(most_rows) <= 1 || work < MIN_PARALLEL_WORK {
            for (k, out) in outs.iter_mut().enumerate() {
                self.witness(op, f(k, out));
            }
            return;
        }
        let outs = outs.each_ref().map(|out| &**out);
        self.pool.run(&|i| {
            for (k, out) in outs.iter().enumerate() {
                let rows = out.stride();
                let threads = threads.min(rows.max(1));
                if i < threads {
                    // SAFETY: `chunk` gives each thread a disjoint row range of each output,
                    // and the outputs are only reached through these views until `run`
                    // returns.
                    let mut part = unsafe { out.sub(chunk(rows, threads, i)) };
                    self.witness(op, f(k, &mut part));
                }
            }
        });
    }

    /// Runs `job(i)` for every `i in 0..self.threads()` on the pool (`job(0)` on the calling
    /// thread) and returns when all are done: for work besides the matmuls that is worth
    /// splitting. Allocates nothing. To write disjoint parts of buffers from the jobs, use
    /// [`Kernels::for_each_part_mut`].
    pub fn run_parallel(&self, job: &(dyn Fn(usize) + Sync)) {
        self.pool.run(job);
    }

    /// Runs `f(i, parts_i)` for every `i in 0..self.threads()` on the pool (`i == 0` on the
    /// calling thread), where `parts_i[k]` is part `i` of buffer `k` as `bufs[k]` cuts it, and
    /// returns when all are done. The parts of one buffer are disjoint, so each job gets
    /// exclusive `&mut` access to its own; allocates nothing.
    ///
    /// ```
    /// use bitnet_kernels::{Kernels, PartsMut};
    /// let k = Kernels::new(2);
    /// let (mut rows, mut scratch) = (vec![0u32; 10], vec![0u32; 2 * 4]);
    /// k.for_each_part_mut(
    ///     [PartsMut::even(&mut rows, 5), PartsMut::chunks(&mut scratch, 4)],
    ///     &|i, [mut rows, mut scratch]| {
    ///         scratch.fill(i as u32);
    ///         let first = rows.start();
    ///         for (j, r) in rows.iter_mut().enumerate() {
    ///             *r = (first + j) as u32 + scratch[0];
    ///         }
    ///     },
    /// );
    /// assert_eq!(rows, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10]);
    /// ```
    ///
    /// # Panics
    /// If a [`PartsMut::at`] buffer has more parts than there are threads, or `f` panics.
    pub fn for_each_part_mut<T: Send, const K: usize>(
        &self,
        bufs: [PartsMut<'_, T>; K],
        f: &(dyn Fn(usize, [Part<'_, T>; K]) + Sync),
    ) {
        let threads = self.pool.threads();
        for b in &bufs {
            b.check(threads);
        }
        let bufs = &bufs;
        self.pool.run(&|i| {
            // SAFETY: the pool runs the job once per index `i` (inline, one after another,
            // when nested), so part `i` of each buffer is made once and lives only during
            // this call.
            let parts: [Part<'_, T>; K] =
                std::array::from_fn(|k| unsafe { bufs[k].part(i, threads) });
            f(i, parts);
        });
    }

    /// Quantises `n` activation rows: `x: [n][cols]` f32 -> `q: [n][cols]` i8 and
    /// `scales: [n]` (per-row `s`), identical to [`crate::quantize_row_reference`].
    ///
    /// # Panics
    /// If `n == 0` with non-empty `x`, `x.len() % n != 0`, `q.len() != x.len()` or
    /// `scales.len() != n`.
    pub fn quantize_rows(&self, x: &[f32], n: usize, q: &mut [i8], scales: &mut [f32]) {
        const OP: &str = "quantize_rows";
        checked(check_len(OP, "q", "x.len()", x.len(), q.len()));
        checked(check_len(OP, "scales", "n", n, scales.len()));
        if n == 0 {
            checked(check_len(OP, "x", "0 when n == 0", 0, x.len()));
            return;
        }
        assert!(
            x.len().is_multiple_of(n),
            "shape mismatch in {OP}: x holds {} values, not a multiple of n = {n}",
            x.len()
        );
        self.count(Counter::Quantize);
        // Quantisation is O(n * cols), negligible next to the matmul: run it inline.
        let ran = self.backend.quantize_rows(x, x.len() / n, q, scales);
        self.witness(OpKind::Quantize, ran);
    }

    /// Ternary matmul on quantised activations:
    /// `y[t][r] = (sum_c values[r][c] * q[t][c]) as f32 / scales[t] * w.scale()`, the sum
    /// exact in i32 and the float steps in exactly this order. `q: [n][w.cols()]`,
    /// `scales: [n]`, `y: [n][w.rows()]`. `n == 1` counts as GEMV, `n > 1` as GEMM.
    ///
    /// # Panics
    /// On wrong slice lengths, or weights packed in a layout this backend does not stream.
    pub fn ternary_matmul(
        &self,
        w: &PackedTernary,
        q: &[i8],
        scales: &[f32],
        n: usize,
        y: &mut [f32],
    ) {
        self.ternary_matmuls([w], q, scales, n, [y]);
    }

    /// [`Kernels::ternary_matmul`] of `K` matrices taking the same activations (a layer's
    /// q, k and v, or gate and up) in one pool run: each thread computes its share of every
    /// matrix's rows in turn, so the threads meet once instead of `K` times. Decoding runs
    /// about 200 of these hand-offs per token, and each costs the wake-up and the wait for
    /// the slower thread. Results are those of `K` separate calls, bit for bit.
    ///
    /// # Panics
    /// As [`Kernels::ternary_matmul`], for any of the matrices.
    pub fn ternary_matmuls<const K: usize>(
        &self,
        ws: [&PackedTernary; K],
        q: &[i8],
        scales: &[f32],
        n: usize,
        ys: [&mut [f32]; K],
    ) {
        let ms = ws.map(|w| checked(TernaryMatmul::new(w, q, scales, n)));
        let mut i = 0;
        let mut outs: [OutRows<'_>; K] = ys.map(|y| {
            let out = self.output("ternary_matmul", ws[i], n, y);
            i += 1;
            out
        });
        for _ in 0..K {
            self.count(Counter::matmul(OpKind::Ternary, n));
        }
        let work = ws.iter().map(|w| w.rows() * w.cols() * n.max(1)).sum();
        let b = self.backend;
        self.split_rows_of(OpKind::Ternary, outs.each_mut(), work, &|k, part| {
            b.ternary_rows(&ms[k], part)
        });
    }

    /// Ternary matmul without activation quantisation (cross-checking):
    /// `y[t][r] = (sum_c values[r][c] * x[t][c]) * w.scale()` in f32.
    ///
    /// # Panics
    /// On wrong slice lengths, or weights packed in a layout this backend does not stream.
    pub fn ternary_matmul_f32(&self, w: &PackedTernary, x: &[f32], n: usize, y: &mut [f32]) {
        let m = checked(TernaryF32Matmul::new(w, x, n));
        let mut out = self.output("ternary_matmul_f32", w, n, y);
        self.count(Counter::TernaryF32);
        let b = self.backend;
        self.split_rows(
            OpKind::TernaryF32,
            &mut out,
            w.rows() * w.cols() * n.max(1),
            &|part| b.ternary_f32_rows(&m, part),
        );
    }

    /// The output view of a ternary matmul, after checking `y` and the weights' layout.
    fn output<'y>(
        &self,
        op: &'static str,
        w: &PackedTernary,
        n: usize,
        y: &'y mut [f32],
    ) -> OutRows<'y> {
        assert_eq!(
            w.layout(),
            self.backend.layout(),
            "{op}: weights packed in layout {}, but backend {} streams {}",
            w.layout(),
            self.backend.id(),
            self.backend.layout()
        );
        dense_output(op, w.rows(), n, y)
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
        let m = checked(DenseMatmul::new(w, rows, cols, x, n));
        let b = self.backend;
        self.dense_matmul(OpKind::F16, "f16_matmul", &m, y, &|part| {
            b.f16_rows(&m, part)
        });
    }

    /// Dense bf16 head (a bf16 checkpoint's, kept as it is), like [`Kernels::f16_matmul`];
    /// the result equals [`Kernels::f32_matmul`] on the widened weights bit for bit.
    ///
    /// # Panics
    /// On wrong slice lengths.
    pub fn bf16_matmul(
        &self,
        w: &[bf16],
        rows: usize,
        cols: usize,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) {
        let m = checked(DenseMatmul::new(w, rows, cols, x, n));
        let b = self.backend;
        self.dense_matmul(OpKind::BF16, "bf16_matmul", &m, y, &|part| {
            b.bf16_rows(&m, part)
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
        let m = checked(DenseMatmul::new(w, rows, cols, x, n));
        let b = self.backend;
        self.dense_matmul(OpKind::F32, "f32_matmul", &m, y, &|part| {
            b.f32_rows(&m, part)
        });
    }

    /// The float matmuls' shared tail: checks `y`, counts the call, splits the rows.
    fn dense_matmul<T>(
        &self,
        op: OpKind,
        name: &'static str,
        m: &DenseMatmul<'_, T>,
        y: &mut [f32],
        rows_fn: &(dyn Fn(&mut OutRows<'_>) -> KernelId + Sync),
    ) {
        let (rows, n) = (m.rows(), m.n());
        let mut out = dense_output(name, rows, n, y);
        self.count(Counter::matmul(op, n));
        self.split_rows(op, &mut out, rows * m.cols() * n.max(1), rows_fn);
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
        let mut out = dense_output("q8_matmul", w.rows(), n, y);
        act.quantize(x, n);
        let act: &Q8Activations = act;
        let m = checked(Q8Matmul::new(w, act));
        self.count(Counter::matmul(OpKind::Q8_0, n));
        let b = self.backend;
        self.split_rows(
            OpKind::Q8_0,
            &mut out,
            w.rows() * w.cols() * n.max(1),
            &|part| b.q8_rows(&m, part),
        );
    }

    /// K-quant matmul (Q6_K or Q4_K blocks, the heads bitnet.cpp and ik_llama.cpp files
    /// carry): quantises `x: [n][w.cols()]` into `act` per block of 256 (ggml's Q8_K), then
    /// `y[t][r]` = the sum over the row's super-blocks, in order, of each block's exact
    /// integer dot turned into a float by the format's fixed step (see [`crate::kquant`]).
    /// `y: [n][w.rows()]`. `act` is caller-owned so that decoding allocates nothing.
    ///
    /// # Panics
    /// On wrong slice lengths, or `n` beyond `act`'s capacity.
    pub fn kquant_matmul<B: KBlock>(
        &self,
        w: &KQuantMatrix<B>,
        x: &[f32],
        n: usize,
        act: &mut Q8KActivations,
        y: &mut [f32],
    ) {
        let mut out = dense_output("kquant_matmul", w.rows(), n, y);
        act.quantize(x, n);
        let act: &Q8KActivations = act;
        let m = checked(KQuantMatmul::new(w, act));
        self.count(Counter::matmul(B::OP, n));
        let b = self.backend;
        self.split_rows(B::OP, &mut out, w.rows() * w.cols() * n.max(1), &|part| {
            B::rows(b, &m, part)
        });
    }

    /// Causal attention of a tile of tokens over one KV head (see
    /// [`crate::AttentionOps::kv_causal`]), on the calling thread: the engine splits tokens
    /// and heads across the pool itself. Counted as `kv/<isa>:causal`.
    ///
    /// # Panics
    /// On the shape errors [`crate::AttentionOps::kv_causal`] names.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_causal(
        &self,
        k: &KvKeys<'_>,
        v: &KvRows<'_>,
        q: &[f32],
        g: usize,
        scale: f32,
        work: &mut [f32],
        out: &mut [f32],
    ) {
        self.count(Counter::KvCausal);
        let tile = CausalTile::new(*k, *v, q, g, scale);
        let ran = self.backend.kv_causal(&tile, work, out);
        self.witness(OpKind::KvCausal, ran);
    }

    /// Kernel ids actually dispatched, with call counts, e.g.
    /// `[("i2s/avx2:gemv", 123), ("f16/avx2:gemv", 16)]` (zero counts omitted). Each name is
    /// `<kernel id>:<quantize|gemv|gemm|f32|causal>`, the kernel id being that of the code that ran
    /// ([`Backend::kernel_id`]): a backend without its own version of an op names the
    /// fallback, e.g. `i2s/scalar:f32` on AVX2.
    pub fn dispatch_counts(&self) -> Vec<(String, u64)> {
        COUNTERS
            .iter()
            .filter_map(|&c| {
                let n = self.counts[c as usize].load(Ordering::Relaxed);
                let id = self.backend.kernel_id(c.op());
                (n > 0).then(|| (format!("{id}:{}", c.suffix()), n))
            })
            .collect()
    }
}

/// The output view `y: [n][rows]` of `op`, after checking `y`'s length.
fn dense_output<'y>(op: &'static str, rows: usize, n: usize, y: &'y mut [f32]) -> OutRows<'y> {
    let expected = checked(crate::error::product(
        op,
        "output",
        "n * rows",
        n,
        rows,
        y.len(),
    ));
    checked(check_len(op, "output", "n * rows", expected, y.len()));
    OutRows::new(y, n, rows)
}
