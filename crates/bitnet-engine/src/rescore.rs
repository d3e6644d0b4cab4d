//! The rescored 4-bit head (`HeadType::Q4KRescored`): every logit from the Q4_K head, then the
//! [`RESCORE_TOP`] largest recomputed from the stored float head's rows.
//!
//! Why: a 2B4T head streams 0.66 GB per token in F16 and 0.18 GB in Q4_K, but Q4_K's error
//! moves the top of the distribution: on the embedded model, greedy 32-token continuations of
//! held-out prompts match the F16 head's in 12 of 40 (docs/performance.md). The token F16
//! picks is nearly always among Q4_K's few best (rank <= 3 at all 15,360 held-out positions
//! measured), so recomputing the best 32 from the F16 rows (32 rows: 160 KB, not 0.66 GB)
//! gives those tokens the F16 head's own logits, bit for bit (the same kernel on the same
//! rows), at Q4_K's cost. The other logits stay Q4_K's.
//!
//! The top is found with a sorted array of 32 (a partial selection: most logits are rejected
//! by one comparison with the smallest kept), on the stack: no allocation per token.

/// How many of the best Q4_K logits are recomputed from the exact rows.
pub(crate) const RESCORE_TOP: usize = 32;

/// The indices of the `top.len()` largest values of `v` (NaN never counts as large), in
/// decreasing order of value, ties broken by the lower index; returns how many were found
/// (`min(top.len(), v.len())` less any NaN).
fn top_indices(v: &[f32], top: &mut [usize]) -> usize {
    let mut len = 0;
    for (i, &x) in v.iter().enumerate() {
        if x.is_nan() || (len == top.len() && x <= v[top[len - 1]]) {
            continue;
        }
        // Insertion point after every kept value >= x (earlier indices win ties).
        let at = top[..len].partition_point(|&j| v[j] >= x);
        if len < top.len() {
            len += 1;
        }
        top.copy_within(at..len - 1, at + 1);
        top[at] = i;
    }
    len
}

/// Replaces the [`RESCORE_TOP`] largest of `logits` (one token's, from the quantised head)
/// with `exact(c)`, the exact head's logit of row `c`.
pub(crate) fn rescore_top(logits: &mut [f32], exact: impl Fn(usize) -> f32) {
    let mut top = [0usize; RESCORE_TOP];
    let k = top_indices(logits, &mut top);
    for &c in &top[..k] {
        logits[c] = exact(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_indices_are_the_largest_in_order_with_ties_to_the_lower_index() {
        let v = [0.5, 3.0, f32::NAN, -1.0, 3.0, 2.0, 7.0, 0.5];
        let mut top = [0usize; 4];
        assert_eq!(top_indices(&v, &mut top), 4);
        assert_eq!(top, [6, 1, 4, 5]);
        let mut all = [0usize; 10];
        assert_eq!(top_indices(&v, &mut all), 7);
        assert_eq!(&all[..7], &[6, 1, 4, 5, 0, 7, 3]);
        assert_eq!(top_indices(&[], &mut top), 0);
    }

    #[test]
    fn top_indices_agree_with_a_full_sort() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let v: Vec<f32> = (0..5000)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 1000) as f32 / 7.0
            })
            .collect();
        let mut want: Vec<usize> = (0..v.len()).collect();
        want.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
        let mut top = [0usize; RESCORE_TOP];
        assert_eq!(top_indices(&v, &mut top), RESCORE_TOP);
        assert_eq!(&top[..], &want[..RESCORE_TOP]);
    }
}
