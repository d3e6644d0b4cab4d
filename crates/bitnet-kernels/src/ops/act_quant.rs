//! [`ActQuantOps`]: per-row int8 activation quantisation (BitNet's "A8").

use super::KernelId;

/// Per-row int8 activation quantisation, bit-identical to
/// [`crate::quantize_row_reference`] in every backend.
pub trait ActQuantOps {
    /// Quantises the rows of `x: [rows][cols]` into `q: [rows][cols]` and writes each row's
    /// scale `s` to `scales: [rows]` (`rows = scales.len()`), so that `x ~ q / s`. Returns
    /// the id of the code that ran.
    ///
    /// # Panics
    /// If `x.len()` or `q.len()` is not `cols * scales.len()`.
    fn quantize_rows(&self, x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId;
}

/// Runs `row` on each row of `x` and `q`, storing its scale (the loop every backend's
/// `quantize_rows` shares).
///
/// # Panics
/// If the lengths do not hold `scales.len()` rows of `cols` (checked slicing).
#[inline]
pub(crate) fn for_each_row(
    x: &[f32],
    cols: usize,
    q: &mut [i8],
    scales: &mut [f32],
    mut row: impl FnMut(&[f32], &mut [i8]) -> f32,
) {
    assert!(
        cols.checked_mul(scales.len()) == Some(x.len()) && q.len() == x.len(),
        "quantize_rows: x ({}) and q ({}) must hold {} rows of {cols}",
        x.len(),
        q.len(),
        scales.len()
    );
    for (t, s) in scales.iter_mut().enumerate() {
        let span = t * cols..(t + 1) * cols;
        *s = row(&x[span.clone()], &mut q[span]);
    }
}
