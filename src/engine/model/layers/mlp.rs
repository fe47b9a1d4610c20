//! The feed-forward layer: gated, act(gate x) * (up x) then down (Llama,
//! Gemma); or plain, act(up x + b) then down + b (GPT-2).

use super::linear::Linear;
use super::norm::{add_bias, optional_vector};
use crate::engine::error::Result;
use crate::engine::kernels;
use crate::engine::load::weights::Weights;
use crate::engine::model::probe::probe_layer;
use crate::engine::model::types::Precision;

/// The feed-forward layer's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// SiLU: SwiGLU when gated (Llama).
    Silu,
    /// Tanh GELU: GeGLU when gated (Gemma), GPT-2's `gelu_new` when not;
    /// `ggml_table`: through ggml's f16 table, as llama.cpp's CPU backend
    /// computes it.
    Gelu { ggml_table: bool },
}

#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    /// None for a plain (ungated) layer.
    gate_proj: Option<Linear>,
    up: Linear,
    down: Linear,
    up_bias: Option<Vec<f32>>,
    down_bias: Option<Vec<f32>>,
    gate: Gate,
}

impl Mlp {
    /// Gated where the weights have `ffn_gate`; biases where they have them.
    pub(crate) fn load(
        weights: &mut dyn Weights,
        prefix: &str,
        p: Precision,
        gate: Gate,
    ) -> Result<Self> {
        let gate_name = format!("{prefix}.ffn_gate.weight");
        let gate_proj = if weights.has_tensor(&gate_name) {
            Some(Linear::load(weights, &gate_name, p)?)
        } else {
            None
        };
        Ok(Self {
            gate_proj,
            up: Linear::load(weights, &format!("{prefix}.ffn_up.weight"), p)?,
            down: Linear::load(weights, &format!("{prefix}.ffn_down.weight"), p)?,
            up_bias: optional_vector(weights, &format!("{prefix}.ffn_up.bias"))?,
            down_bias: optional_vector(weights, &format!("{prefix}.ffn_down.bias"))?,
            gate,
        })
    }

    /// x: m rows of d_model -> m rows of d_model.
    pub(crate) fn forward(&self, x: &[f32], m: usize, l: usize) -> Result<Vec<f32>> {
        let hidden = match &self.gate_proj {
            Some(gate_proj) => self.gated_hidden(gate_proj, x, m, l)?,
            None => {
                let mut up = Linear::forward_rows(&[&self.up], x, m)?
                    .pop()
                    .expect("one output");
                add_bias(&mut up, &self.up_bias);
                match self.gate {
                    Gate::Silu => up.iter_mut().for_each(|v| *v /= 1.0 + (-*v).exp()),
                    Gate::Gelu { .. } => up.iter_mut().for_each(|v| *v = kernels::gelu_tanh(*v)),
                }
                up
            }
        };
        let mut out = Linear::forward_rows(&[&self.down], &hidden, m)?
            .pop()
            .expect("one output");
        add_bias(&mut out, &self.down_bias);
        probe_layer("ffn_out", l, &mut out);
        Ok(out)
    }

    /// act(gate x) * (up x).
    fn gated_hidden(&self, gate_proj: &Linear, x: &[f32], m: usize, l: usize) -> Result<Vec<f32>> {
        let [mut gate, mut up]: [Vec<f32>; 2] = Linear::forward_rows(&[gate_proj, &self.up], x, m)?
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
        Ok(gate)
    }
}
