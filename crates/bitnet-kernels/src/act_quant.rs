//! Per-row int8 activation quantisation (BitNet "A8"), the reference every ISA matches.
//!
//! `s = 127 / max(max|x|, 1e-5)`, `q = clamp(round_half_even(x * s), -128, 127)`, as
//! transformers' `BitNetForCausalLM` does per token over the whole row (llama.cpp's per-256
//! block scheme does not match it). Rounding is half-to-even, like `torch.round`.
//!
//! The steps are deliberately spelled out in f32 so a SIMD version can do exactly the same
//! operations (multiply, round-to-nearest-even, clamp) and produce identical bits. Edge
//! cases follow Rust's float semantics: NaN entries are ignored by the max and quantise to 0
//! (`NaN as i8 == 0`).

/// The smallest `max|x|` used for the scale (avoids dividing by zero on all-zero rows).
pub const ACT_EPS: f32 = 1e-5;

/// Per-row scale `s = 127 / max(amax, 1e-5)`.
#[inline]
pub fn act_scale(amax: f32) -> f32 {
    127.0 / amax.max(ACT_EPS)
}

/// Quantises one value with scale `s`: `clamp(round_ties_even(x * s), -128, 127)`.
#[inline]
pub fn quantize_value(x: f32, s: f32) -> i8 {
    (x * s).round_ties_even().clamp(-128.0, 127.0) as i8
}

/// Quantises one activation row `x` into `q` and returns the scale `s` (so `x ~ q / s`).
///
/// # Panics
/// If `q.len() != x.len()`.
pub fn quantize_row_reference(x: &[f32], q: &mut [i8]) -> f32 {
    assert_eq!(x.len(), q.len(), "quantize_row: x and q lengths differ");
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let s = act_scale(amax);
    for (qi, &xi) in q.iter_mut().zip(x) {
        *qi = quantize_value(xi, s);
    }
    s
}

/// The last float step of every ternary kernel, shared so that all ISAs round identically:
/// `(acc as f32) / s * w_scale`, evaluated left to right.
#[inline(always)]
pub fn finish(acc: i32, s: f32, w_scale: f32) -> f32 {
    acc as f32 / s * w_scale
}
