//! The op trait every ISA implements.
//!
//! Like a Burn backend, [`TernaryOps`] is one trait with one implementation per instruction
//! set (`scalar`, `avx2`, `avx512vnni`, `neon`), picked once at run time by
//! [`crate::detect`]. Methods work on a *row range* (an [`OutRows`] view) so that the
//! caller ([`crate::Kernels`]) can split rows across its thread pool; the ops themselves
//! never allocate and never spawn.
//!
//! Exactness contract: for the same packed weights and int8 activations every
//! implementation returns bit-identical results to the scalar one. Integer dot products are
//! exact (i32), and the one float step is the shared [`crate::act_quant::finish`].
//! [`TernaryOps::quantize_row`] must equal [`crate::quantize_row_reference`] bit for bit.
//! The float paths (`*_f32`, `f16_*`) may sum in any order.
//!
//! Unlike Burn's `Backend`, the trait has no associated types: it must be object safe so
//! that the choice is a run-time value (`&'static dyn TernaryOps`), made once. The packed
//! weights are therefore one concrete type, [`PackedTernary`], which carries a layout id
//! that every implementation checks before streaming it.

use crate::TernaryWeights;
use crate::act_quant::quantize_row_reference;
use crate::packed::{BLOCK, OutRows, PackedTernary};
use crate::q8::{Q8Activations, Q8Matrix};
use half::f16;

/// Ternary (and dense head) kernels for one instruction set. See the module doc.
pub trait TernaryOps: Send + Sync + 'static {
    /// Stable id `"<packed layout family>/<isa>"`, e.g. `"i2s/avx2"`; reported in receipts.
    fn id(&self) -> &'static str;

    /// The instruction set alone, e.g. `"avx2"` (used for the ids of the dense kernels).
    fn isa(&self) -> &'static str;

    /// Packs weights into the layout this implementation streams (done once at load).
    fn pack(&self, w: &TernaryWeights) -> PackedTernary {
        PackedTernary::pack_i2s128(w)
    }

    /// Quantises one activation row; identical to [`quantize_row_reference`].
    ///
    /// # Panics
    /// If `q.len() != x.len()`.
    fn quantize_row(&self, x: &[f32], q: &mut [i8]) -> f32 {
        quantize_row_reference(x, q)
    }

    /// Ternary GEMV/GEMM on the rows of `out`: for every token `t < out.n()` and row `r`,
    /// `y[t][r] = finish(sum_c values[r][c] * q[t][c], scales[t], w.scale())`.
    ///
    /// `q: [n][w.cols()]`, `scales: [n]`.
    ///
    /// # Panics
    /// On wrong slice lengths or a layout this implementation does not stream.
    fn ternary_rows(&self, w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>);

    /// Ternary matmul without activation quantisation (cross-checks):
    /// `y[t][r] = (sum_c values[r][c] * x[t][c]) * w.scale()` in f32, any summation order.
    ///
    /// # Panics
    /// On wrong slice lengths.
    fn ternary_f32_rows(&self, w: &PackedTernary, x: &[f32], out: &mut OutRows<'_>) {
        scalar_ternary_f32_rows(w, x, out);
    }

    /// Dense f16 matmul on the rows of `out`: `w: [stride][cols]` f16 row-major,
    /// `y[t][r] = sum_c f32(w[r][c]) * x[t][c]`, any summation order.
    ///
    /// # Panics
    /// On wrong slice lengths.
    fn f16_rows(&self, w: &[f16], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        scalar_f16_rows(w, cols, x, out);
    }

    /// Q8_0 matmul on the rows of `out` (the 8-bit head, see [`crate::q8`]):
    /// `y[t][r] = sum_b isum(w[r][b], x[t][b]) * dw[r][b] * dx[t][b]`, each block's integer
    /// dot exact, the float sum in any order.
    ///
    /// # Panics
    /// On mismatched shapes.
    fn q8_rows(&self, w: &Q8Matrix, x: &Q8Activations, out: &mut OutRows<'_>) {
        crate::q8::scalar_q8_rows(w, x, out);
    }

    /// Dense f32 matmul on the rows of `out`, like [`TernaryOps::f16_rows`].
    ///
    /// # Panics
    /// On wrong slice lengths.
    fn f32_rows(&self, w: &[f32], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
        scalar_f32_rows(w, cols, x, out);
    }
}

impl std::fmt::Debug for dyn TernaryOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// Checks the lengths shared by every ternary entry point (SIMD code relies on them).
pub(crate) fn check_ternary<T>(w: &PackedTernary, act: &[T], scales_len: usize, out: &OutRows<'_>) {
    assert_eq!(
        out.stride(),
        w.rows(),
        "output rows ({}) != weight rows ({})",
        out.stride(),
        w.rows()
    );
    assert_eq!(
        act.len(),
        out.n() * w.cols(),
        "activations: expected n * cols = {} * {} values, got {}",
        out.n(),
        w.cols(),
        act.len()
    );
    assert_eq!(
        scales_len,
        out.n(),
        "scales: expected n = {} values",
        out.n()
    );
    assert_eq!(
        w.layout_id(),
        crate::packed::LAYOUT_I2S128,
        "packed layout {} is not streamed by these kernels",
        w.layout_id()
    );
}

pub(crate) fn check_dense<T>(w: &[T], cols: usize, x: &[f32], out: &OutRows<'_>) {
    assert_eq!(
        w.len(),
        out.stride() * cols,
        "dense weights: expected rows * cols = {} * {cols} values, got {}",
        out.stride(),
        w.len()
    );
    assert_eq!(
        x.len(),
        out.n() * cols,
        "activations: expected n * cols = {} * {cols} values, got {}",
        out.n(),
        x.len()
    );
}

/// f32 ternary reference, shared as the default for every ISA.
pub(crate) fn scalar_ternary_f32_rows(w: &PackedTernary, x: &[f32], out: &mut OutRows<'_>) {
    check_ternary(w, x, out.n(), out);
    let cols = w.cols();
    let rows = out.rows();
    for t in 0..out.n() {
        let xt = &x[t * cols..(t + 1) * cols];
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            let row = w.row(r);
            let mut acc = 0.0f32;
            for (b, block) in row.chunks_exact(32).enumerate() {
                for (k, &byte) in block.iter().enumerate() {
                    for j in 0..4 {
                        let c = b * BLOCK + 32 * j + k;
                        if c < cols {
                            let v = ((byte >> (6 - 2 * j)) & 3) as i32 - 1;
                            if v != 0 {
                                acc += v as f32 * xt[c];
                            }
                        }
                    }
                }
            }
            *yr = acc * w.scale();
        }
    }
}

pub(crate) fn scalar_f16_rows(w: &[f16], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
    use half::slice::HalfFloatSliceExt;
    check_dense(w, cols, x, out);
    const CHUNK: usize = 256;
    let mut buf = [0.0f32; CHUNK];
    let rows = out.rows();
    for r in rows.clone() {
        let wr = &w[r * cols..(r + 1) * cols];
        // Convert a chunk once (hardware conversion where `half` detects it), then use it
        // for every token.
        for t in 0..out.n() {
            out.token(t)[r - rows.start] = 0.0;
        }
        for (ci, chunk) in wr.chunks(CHUNK).enumerate() {
            let b = &mut buf[..chunk.len()];
            chunk.convert_to_f32_slice(b);
            for t in 0..out.n() {
                let xt = &x[t * cols + ci * CHUNK..t * cols + ci * CHUNK + chunk.len()];
                let s: f32 = b.iter().zip(xt).map(|(a, b)| a * b).sum();
                out.token(t)[r - rows.start] += s;
            }
        }
    }
}

pub(crate) fn scalar_f32_rows(w: &[f32], cols: usize, x: &[f32], out: &mut OutRows<'_>) {
    check_dense(w, cols, x, out);
    let rows = out.rows();
    for t in 0..out.n() {
        let xt = &x[t * cols..(t + 1) * cols];
        let y = out.token(t);
        for (yr, r) in y.iter_mut().zip(rows.clone()) {
            let wr = &w[r * cols..(r + 1) * cols];
            *yr = wr.iter().zip(xt).map(|(a, b)| a * b).sum();
        }
    }
}
