//! Scalar reference implementation: obviously correct, any CPU.
//!
//! It decodes every code with shifts and masks straight from the packed layout and
//! accumulates `(code - 1) * q` in i32, one element at a time. Every SIMD implementation
//! is tested to produce exactly its results.

use crate::act_quant::finish;
use crate::op::{TernaryOps, check_ternary};
use crate::packed::{BLOCK, OutRows, PackedTernary};

/// The scalar reference ops (`"i2s/scalar"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Scalar;

/// Exact dot product of packed row `row` (codes `value + 1`) with `q` (`q.len()` = cols).
pub(crate) fn dot_row(row: &[u8], q: &[i8]) -> i32 {
    let cols = q.len();
    let mut acc = 0i32;
    for (b, block) in row.chunks_exact(32).enumerate() {
        for (k, &byte) in block.iter().enumerate() {
            for j in 0..4 {
                let c = b * BLOCK + 32 * j + k;
                if c < cols {
                    let v = ((byte >> (6 - 2 * j)) & 3) as i32 - 1;
                    acc += v * q[c] as i32;
                }
            }
        }
    }
    acc
}

impl TernaryOps for Scalar {
    fn id(&self) -> &'static str {
        "i2s/scalar"
    }

    fn isa(&self) -> &'static str {
        "scalar"
    }

    fn ternary_rows(&self, w: &PackedTernary, q: &[i8], scales: &[f32], out: &mut OutRows<'_>) {
        check_ternary(w, q, scales.len(), out);
        let cols = w.cols();
        let rows = out.rows();
        for (t, &s) in scales.iter().enumerate() {
            let qt = &q[t * cols..(t + 1) * cols];
            let y = out.token(t);
            for (yr, r) in y.iter_mut().zip(rows.clone()) {
                *yr = finish(dot_row(w.row(r), qt), s, w.scale());
            }
        }
    }
}
