//! Seeded test data that several crates' tests and benchmarks generate alike.

/// `n` ternary values (-1, 0, +1) from a 64-bit LCG seeded with `seed` (Knuth's MMIX
/// constants): about a third each, reproducible from the seed alone, so a failing property
/// test names its case.
pub fn ternary_values(n: usize, seed: u64) -> Vec<i8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 3) as i8 - 1
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_ternary_balanced_and_reproducible() {
        let v = super::ternary_values(3000, 9);
        assert_eq!(v, super::ternary_values(3000, 9));
        for t in [-1i8, 0, 1] {
            let n = v.iter().filter(|&&x| x == t).count();
            assert!((800..1200).contains(&n), "{t}: {n}");
        }
    }
}
