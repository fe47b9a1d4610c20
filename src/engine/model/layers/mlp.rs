//! The gated feed-forward layer (SwiGLU).

use super::linear::Linear;
use crate::engine::error::Result;
use crate::engine::kernels;
use crate::engine::load::gguf::GgufFile;
use crate::engine::model::probe::probe_layer;
use crate::engine::model::types::Precision;

#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    pub(crate) fn load(gguf: &mut GgufFile, prefix: &str, p: Precision) -> Result<Self> {
        Ok(Self {
            gate: Linear::load(gguf, &format!("{prefix}.ffn_gate.weight"), p)?,
            up: Linear::load(gguf, &format!("{prefix}.ffn_up.weight"), p)?,
            down: Linear::load(gguf, &format!("{prefix}.ffn_down.weight"), p)?,
        })
    }

    /// x: m rows of d_model -> m rows of d_model.
    pub(crate) fn forward(&self, x: &[f32], m: usize, l: usize) -> Result<Vec<f32>> {
        let [mut gate, mut up]: [Vec<f32>; 2] =
            Linear::forward_rows(&[&self.gate, &self.up], x, m)?
                .try_into()
                .expect("two outputs");
        probe_layer("ffn_gate", l, &mut gate);
        probe_layer("ffn_up", l, &mut up);
        let row = gate.len() / m;
        if m >= 2 && row.is_multiple_of(16) {
            // Rows in parallel (a whole number of 16-value steps each, so
            // every value takes the path it takes in one call).
            kernels::par_chunks_mut(&mut gate, row, &|i, g| {
                kernels::silu_mul(g, &up[i * row..i * row + g.len()])
            });
        } else {
            kernels::silu_mul(&mut gate, &up);
        }
        probe_layer("ffn_swiglu", l, &mut gate);
        let mut out = Linear::forward_rows(&[&self.down], &gate, m)?
            .pop()
            .expect("one output");
        probe_layer("ffn_out", l, &mut out);
        Ok(out)
    }
}
