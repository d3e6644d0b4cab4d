//! Rotary position embedding, NEOX ("rotate half") style as transformers' Llama/BitNet use it:
//! dimension `i` pairs with `i + rope_dim/2`.
//!
//! The cos/sin table is computed once per model for every position of the context, in f32 with
//! the same operations transformers performs (`inv_freq = 1 / theta^(2i/d)`, `angle = pos *
//! inv_freq`), so the decode loop only reads it.

/// Precomputed cos/sin for every position and rotated pair.
pub struct RopeTable {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Table for `positions` positions, `rope_dim` rotated dimensions and base `theta`.
    pub fn new(positions: usize, rope_dim: usize, theta: f32) -> Self {
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
        Self { half, cos, sin }
    }

    /// Number of positions in the table.
    pub fn positions(&self) -> usize {
        self.cos.len().checked_div(self.half).unwrap_or(usize::MAX)
    }

    /// Rotates every head of `x` (`heads` consecutive vectors of `head_dim`) in place for `pos`.
    #[inline]
    pub fn apply(&self, x: &mut [f32], heads: usize, head_dim: usize, pos: usize) {
        let h = self.half;
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

#[cfg(test)]
mod tests {
    use super::*;

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
