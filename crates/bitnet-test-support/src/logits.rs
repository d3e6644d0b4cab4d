//! Comparing logit matrices (`[positions][vocab]`, row-major).

/// Index of the largest value (the first on ties).
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// The argmax of each row of width `vocab`.
pub fn argmax_rows(logits: &[f32], vocab: usize) -> Vec<usize> {
    logits.chunks_exact(vocab).map(argmax).collect()
}

/// `(max |a - b|, fraction of rows whose argmax agrees)` for rows of width `vocab`.
///
/// # Panics
/// If the lengths differ or are not a multiple of `vocab`.
pub fn compare(a: &[f32], b: &[f32], vocab: usize) -> (f32, f64) {
    assert_eq!(a.len(), b.len(), "logit matrices of different sizes");
    assert!(
        vocab > 0 && a.len().is_multiple_of(vocab),
        "not whole rows of {vocab}"
    );
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let rows = a.len() / vocab;
    let agree = (0..rows)
        .filter(|&r| {
            let row = r * vocab..(r + 1) * vocab;
            argmax(&a[row.clone()]) == argmax(&b[row])
        })
        .count();
    (max, agree as f64 / rows.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_and_agreement() {
        let a = [0.0, 1.0, 5.0, 2.0];
        let b = [0.5, 1.0, 1.0, 2.0];
        assert_eq!(compare(&a, &b, 2), (4.0, 0.5));
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
