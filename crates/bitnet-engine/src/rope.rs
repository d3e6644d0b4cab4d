//! Rotary position embedding, NEOX ("rotate half") style as transformers' Llama/BitNet use it:
//! dimension `i` pairs with `i + rope_dim/2`.
//!
//! The cos/sin table is computed once per model, in f32 with the same operations transformers
//! performs (`inv_freq = 1 / theta^(2i/d)`, `angle = pos * inv_freq`), so the decode loop only
//! reads it. It covers the first [`TABLE_POSITIONS`] positions at most, not the model's whole
//! context: a file claiming a 16 M context must not cost gigabytes and seconds at load (issue
//! 14). Positions beyond the table compute the same expressions on the fly, so the result does
//! not depend on where the table ends, and nothing allocates.

/// Most positions precomputed (2 x 8192 x `rope_dim/2` floats: 2 MiB for 64-wide heads).
pub const TABLE_POSITIONS: usize = 8192;

/// Precomputed cos/sin for the first positions and every rotated pair.
pub struct RopeTable {
    half: usize,
    inv_freq: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Table for `positions` positions (at most [`TABLE_POSITIONS`] are stored), `rope_dim`
    /// rotated dimensions and base `theta`.
    pub fn new(positions: usize, rope_dim: usize, theta: f32) -> Self {
        let positions = positions.min(TABLE_POSITIONS);
        let half = rope_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0f32 / theta.powf((2 * i) as f32 / rope_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Self {
            half,
            inv_freq,
            cos,
            sin,
        }
    }

    /// Number of positions in the precomputed table (later positions are computed on use).
    pub fn positions(&self) -> usize {
        self.cos.len().checked_div(self.half).unwrap_or(usize::MAX)
    }

    /// Rotates every head of `x` (`heads` consecutive vectors of `head_dim`) in place for `pos`.
    #[inline]
    pub fn apply(&self, x: &mut [f32], heads: usize, head_dim: usize, pos: usize) {
        let h = self.half;
        if (pos + 1) * h > self.cos.len() {
            return self.apply_computed(x, heads, head_dim, pos);
        }
        let cos = &self.cos[pos * h..(pos + 1) * h];
        let sin = &self.sin[pos * h..(pos + 1) * h];
        for head in x.chunks_exact_mut(head_dim).take(heads) {
            let (a, b) = head[..2 * h].split_at_mut(h);
            for i in 0..h {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos[i] - x2 * sin[i];
                b[i] = x2 * cos[i] + x1 * sin[i];
            }
        }
    }
}

impl RopeTable {
    /// [`Self::apply`] for a position past the table: the table's expressions, evaluated here.
    #[cold]
    fn apply_computed(&self, x: &mut [f32], heads: usize, head_dim: usize, pos: usize) {
        let h = self.half;
        for head in x.chunks_exact_mut(head_dim).take(heads) {
            let (a, b) = head[..2 * h].split_at_mut(h);
            for (i, &f) in self.inv_freq.iter().enumerate() {
                let angle = pos as f32 * f;
                let (sin, cos) = (angle.sin(), angle.cos());
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos - x2 * sin;
                b[i] = x2 * cos + x1 * sin;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_context_does_not_size_the_table_and_late_positions_match() {
        // A 16 M context used to allocate 2 x 16 M x 32 floats (4 GiB) at load.
        let huge = RopeTable::new(1 << 24, 64, 10_000.0);
        assert_eq!(huge.positions(), TABLE_POSITIONS);
        let full = RopeTable::new(TABLE_POSITIONS + 10, 64, 10_000.0);
        let x0: Vec<f32> = (0..128).map(|i| i as f32 * 0.01 - 0.5).collect();
        // Positions inside the table and just past it rotate exactly as a table would.
        let small = RopeTable::new(100, 64, 10_000.0);
        for pos in [0, 99, 100, 5000] {
            let (mut a, mut b) = (x0.clone(), x0.clone());
            small.apply(&mut a, 2, 64, pos);
            full.apply(&mut b, 2, 64, pos);
            assert_eq!(a, b, "position {pos}");
        }
        let mut far = x0.clone();
        huge.apply(&mut far, 2, 64, (1 << 24) - 1);
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((norm(&far) - norm(&x0)).abs() < 1e-3);
    }

    #[test]
    fn position_zero_is_identity_and_rotation_preserves_norm() {
        let t = RopeTable::new(8, 4, 10_000.0);
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        t.apply(&mut x, 1, 4, 0);
        assert_eq!(x, vec![1.0, 2.0, 3.0, 4.0]);
        t.apply(&mut x, 1, 4, 5);
        let norm: f32 = x.iter().map(|v| v * v).sum();
        assert!((norm - 30.0).abs() < 1e-4);
        // Pair (0, 2) rotates by angle 5 * 1.0: [1, 3] -> [cos5 - 3 sin5, 3 cos5 + sin5].
        let (c, s) = (5.0f32.cos(), 5.0f32.sin());
        assert!((x[0] - (c - 3.0 * s)).abs() < 1e-5);
        assert!((x[2] - (3.0 * c + s)).abs() < 1e-5);
    }
}
