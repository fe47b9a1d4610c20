//! Rotary position embeddings (RoPE): each pair of a head's dimensions
//! turned by position x its frequency.

use crate::engine::kernels;

/// Which dimensions form a rotated pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeStyle {
    /// (2i, 2i + 1): llama.cpp's form, for which GGUF stores Llama's Q
    /// and K rows permuted.
    Adjacent,
    /// (i, i + d/2): GPT-NeoX's form, used as is by Gemma.
    Halves,
}

/// A rotary position embedding: its angles are computed for the rows
/// being rotated (a few hundred sines a position, nothing next to the
/// matrix products), not tabled for the whole context (64 MB for Gemma's
/// 32k), with the very arithmetic ggml's rope cache uses.
#[derive(Debug, Clone)]
pub struct Rope {
    head_dim: usize,
    pub style: RopeStyle,
    pub base: f32,
}

impl Rope {
    pub(crate) fn new(head_dim: usize, base: f32, style: RopeStyle) -> Self {
        Self {
            head_dim,
            style,
            base,
        }
    }

    /// Each pair's angle at `position`, in ggml's arithmetic: theta_0 =
    /// position, each next pair's angle the previous times
    /// base^(-2 / head_dim), in f32.
    pub fn angles(head_dim: usize, base: f32, position: usize) -> Vec<f32> {
        let theta_scale = base.powf(-2.0 / head_dim as f32);
        let mut theta = position as f32;
        (0..head_dim / 2)
            .map(|_| {
                let t = theta;
                theta *= theta_scale;
                t
            })
            .collect()
    }

    /// x: rows (one per position from `offset`) of heads x head_dim,
    /// rotated in place.
    pub(crate) fn apply(&self, x: &mut [f32], width: usize, offset: usize) {
        debug_assert!(width.is_multiple_of(self.head_dim));
        for (i, row) in x.chunks_exact_mut(width).enumerate() {
            let angles = Self::angles(self.head_dim, self.base, offset + i);
            let (sin, cos): (Vec<f32>, Vec<f32>) = angles.iter().map(|t| t.sin_cos()).unzip();
            match self.style {
                RopeStyle::Adjacent => kernels::rotate_pairs(row, &cos, &sin),
                RopeStyle::Halves => rotate_halves(row, &cos, &sin),
            }
        }
    }
}

/// Rotates dimension i with i + d/2 of each head, with the contraction
/// ggml's NeoX rope gets from gcc (the first product of each line fused).
fn rotate_halves(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(2 * half) {
        let (a, b) = head.split_at_mut(half);
        for (((x0, x1), &c), &s) in a.iter_mut().zip(b.iter_mut()).zip(cos).zip(sin) {
            let (v0, v1) = (*x0, *x1);
            *x0 = v0.mul_add(c, -(v1 * s));
            *x1 = v0.mul_add(s, v1 * c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_adjacent_pairs() {
        let rope = Rope::new(4, 10_000.0, RopeStyle::Adjacent);
        let mut x = vec![1.0, 0.0, 1.0, 0.0];
        rope.apply(&mut x, 4, 3);
        // Pair 0 turns by 3 radians, pair 1 by 3 / 100.
        assert!((x[0] - 3f32.cos()).abs() < 1e-6 && (x[1] - 3f32.sin()).abs() < 1e-6);
        assert!((x[2] - 0.03f32.cos()).abs() < 1e-6 && (x[3] - 0.03f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn rope_rotates_halves() {
        let rope = Rope::new(4, 10_000.0, RopeStyle::Halves);
        // Pairs (0, 2) and (1, 3).
        let mut x = vec![1.0, 1.0, 0.0, 0.0];
        rope.apply(&mut x, 4, 3);
        assert!((x[0] - 3f32.cos()).abs() < 1e-6 && (x[2] - 3f32.sin()).abs() < 1e-6);
        assert!((x[1] - 0.03f32.cos()).abs() < 1e-6 && (x[3] - 0.03f32.sin()).abs() < 1e-6);
    }
}
