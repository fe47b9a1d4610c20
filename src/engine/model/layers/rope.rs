//! Rotary position embeddings (RoPE), adjacent pairs rotated.

use crate::engine::kernels;
use crate::engine::model::config::Config;

/// Rotary tables for every position the model can see.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    cos: Vec<f32>, // (context, head_dim / 2)
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    /// Angles as ggml builds its rotary cache: theta_0 = position, each
    /// next pair's angle the previous times base^(-2 / head_dim), in f32.
    pub(crate) fn new(cfg: &Config) -> Self {
        let half = cfg.head_dim / 2;
        let theta_scale = cfg.rope_base.powf(-2.0 / cfg.head_dim as f32);
        let mut cos = Vec::with_capacity(cfg.context_length * half);
        let mut sin = Vec::with_capacity(cfg.context_length * half);
        for p in 0..cfg.context_length {
            let mut theta = p as f32;
            for _ in 0..half {
                cos.push(theta.cos());
                sin.push(theta.sin());
                theta *= theta_scale;
            }
        }
        Self { cos, sin, half }
    }

    /// GGUF stores Q and K permuted for llama.cpp's interleaved rotary form,
    /// so rotate adjacent pairs. x: rows (one per position from `offset`)
    /// of heads x head_dim, rotated in place.
    pub(crate) fn apply(&self, x: &mut [f32], width: usize, offset: usize) {
        let hd = 2 * self.half;
        for (i, row) in x.chunks_exact_mut(width).enumerate() {
            let at = (offset + i) * self.half;
            let (cos, sin) = (&self.cos[at..at + self.half], &self.sin[at..at + self.half]);
            debug_assert!(row.len().is_multiple_of(hd));
            kernels::rotate_pairs(row, cos, sin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Config;

    #[test]
    fn rope_rotates_adjacent_pairs() {
        let cfg = Config {
            n_layer: 1,
            n_head: 1,
            n_kv_head: 1,
            d_model: 4,
            d_ff: 4,
            head_dim: 4,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            vocab_size: 1,
            context_length: 8,
        };
        let rope = Rope::new(&cfg);
        let mut x = vec![1.0, 0.0, 1.0, 0.0];
        rope.apply(&mut x, 4, 3);
        // Pair 0 turns by 3 radians, pair 1 by 3 / 100.
        assert!((x[0] - 3f32.cos()).abs() < 1e-6 && (x[1] - 3f32.sin()).abs() < 1e-6);
        assert!((x[2] - 0.03f32.cos()).abs() < 1e-6 && (x[3] - 0.03f32.sin()).abs() < 1e-6);
    }
}
