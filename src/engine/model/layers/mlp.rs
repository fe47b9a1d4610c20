//! The gated feed-forward layer: act(gate x) * (up x), then down.

use super::linear::Linear;
use crate::engine::error::Result;
use crate::engine::kernels;
use crate::engine::load::gguf::GgufFile;
use crate::engine::model::probe::probe_layer;
use crate::engine::model::types::Precision;

/// What gates the feed-forward layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// SwiGLU (Llama).
    Silu,
    /// GeGLU, tanh GELU (Gemma); `ggml_table`: through ggml's f16 table,
    /// as llama.cpp's CPU backend computes it.
    Gelu { ggml_table: bool },
}

#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    gate_proj: Linear,
    up: Linear,
    down: Linear,
    gate: Gate,
}

impl Mlp {
    pub(crate) fn load(
        gguf: &mut GgufFile,
        prefix: &str,
        p: Precision,
        gate: Gate,
    ) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::load(gguf, &format!("{prefix}.ffn_gate.weight"), p)?,
            up: Linear::load(gguf, &format!("{prefix}.ffn_up.weight"), p)?,
            down: Linear::load(gguf, &format!("{prefix}.ffn_down.weight"), p)?,
            gate,
        })
    }

    /// x: m rows of d_model -> m rows of d_model.
    pub(crate) fn forward(&self, x: &[f32], m: usize, l: usize) -> Result<Vec<f32>> {
        let [mut gate, mut up]: [Vec<f32>; 2] =
            Linear::forward_rows(&[&self.gate_proj, &self.up], x, m)?
                .try_into()
                .expect("two outputs");
        probe_layer("ffn_gate", l, &mut gate);
        probe_layer("ffn_up", l, &mut up);
        let act = |g: &mut [f32], u: &[f32]| match self.gate {
            Gate::Silu => kernels::silu_mul(g, u),
            Gate::Gelu { ggml_table } => kernels::gelu_mul(g, u, ggml_table),
        };
        let row = gate.len() / m;
        if m >= 2 && row.is_multiple_of(16) {
            // Rows in parallel (a whole number of 16-value steps each, so
            // every value takes the path it takes in one call).
            kernels::par_chunks_mut(&mut gate, row, &|i, g| {
                act(g, &up[i * row..i * row + g.len()])
            });
        } else {
            act(&mut gate, &up);
        }
        probe_layer("ffn_swiglu", l, &mut gate);
        let mut out = Linear::forward_rows(&[&self.down], &gate, m)?
            .pop()
            .expect("one output");
        probe_layer("ffn_out", l, &mut out);
        Ok(out)
    }
}
