//! Plain data that leaves the engine: no tensors, only vectors with their
//! shapes, ready to serialise, draw or store.

use serde::{Deserialize, Serialize};

use crate::engine::sampling::Stage;

/// One alternative at a generated position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopToken {
    pub token_id: u32,
    pub text: String,
    /// Softmax of the raw logits.
    pub p_raw: f32,
    /// Probability after the sampler chain (0 when a stage removed it).
    pub p_final: f32,
    /// The sampler stage that removed it; None for survivors.
    pub removed_by: Option<Stage>,
}

/// Attention probabilities, `[layer][head][query][key]` flattened, for queries
/// `first_query..first_query + n_query` over keys `0..n_key`. A query at
/// position p has weights only on keys 0..=p; the rest of its row is 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionRows {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_query: usize,
    pub n_key: usize,
    pub first_query: usize,
    pub data: Vec<f32>,
}

impl AttentionRows {
    pub fn row(&self, layer: usize, head: usize, query: usize) -> &[f32] {
        let start = ((layer * self.n_head + head) * self.n_query + query) * self.n_key;
        &self.data[start..start + self.n_key]
    }

    /// Weights of one row up to and including its own position.
    pub fn causal_row(&self, layer: usize, head: usize, query: usize) -> &[f32] {
        let row = self.row(layer, head, query);
        &row[..(self.first_query + query + 1).min(row.len())]
    }

    /// `[layer][head][key]` for a single query (the per-token JSON form).
    pub fn for_query(&self, query: usize) -> Vec<Vec<Vec<f32>>> {
        (0..self.n_layer)
            .map(|l| {
                (0..self.n_head)
                    .map(|h| self.causal_row(l, h, query).to_vec())
                    .collect()
            })
            .collect()
    }
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The token limit was reached.
    Length,
    /// The model produced an end-of-generation token.
    Eos,
    /// A stop sequence appeared.
    Stop,
    /// The model's context is full.
    Context,
    Cancelled,
    /// A server's stream broke off (the text so far is kept).
    CutOff,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Eos => "eos",
            Self::Stop => "stop",
            Self::Context => "context",
            Self::Cancelled => "cancelled",
            Self::CutOff => "cut_off",
        }
    }
}

/// Everything known about one generated token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0-based index among the generated tokens.
    pub step: usize,
    /// Absolute position in the sequence (prompt included).
    pub position: usize,
    pub token_id: u32,
    /// The token's own text (a piece of a character shows as U+FFFD).
    pub text: String,
    pub p_raw: f32,
    pub p_final: f32,
    /// ln p_raw.
    pub logprob: f32,
    /// 1-based rank among the raw probabilities.
    pub rank: usize,
    /// Entropy of the raw next-token distribution, in nats.
    pub entropy: f32,
    pub top: Vec<TopToken>,
    /// With capture on: the attention of the query that predicted this
    /// token (position - 1) over keys 0..position, one query.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attention: Option<AttentionRows>,
}

impl StepRecord {
    /// The record of what the sampler decided at `step`, for the token at
    /// `position`; `text` names tokens.
    pub fn from_sampled(
        s: &crate::engine::sampling::Sampled,
        step: usize,
        position: usize,
        text: &dyn Fn(u32) -> String,
        attention: Option<AttentionRows>,
    ) -> Self {
        Self {
            step,
            position,
            token_id: s.token_id,
            text: text(s.token_id),
            p_raw: s.p_raw,
            p_final: s.p_final,
            logprob: s.logprob,
            rank: s.rank,
            entropy: s.entropy,
            top: s
                .top
                .iter()
                .map(|c| TopToken {
                    token_id: c.token_id,
                    text: text(c.token_id),
                    p_raw: c.p_raw,
                    p_final: c.p_final,
                    removed_by: c.removed_by,
                })
                .collect(),
            attention,
        }
    }
}

/// The prompt as the model saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    pub token_ids: Vec<u32>,
    pub texts: Vec<String>,
    /// With capture on: every prompt query over every prompt key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attention: Option<AttentionRows>,
}

/// Throughput of one run, in tokens per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub prompt_tokens: usize,
    pub generated: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
}

impl Timings {
    pub fn prefill_tok_s(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_s)
    }
    pub fn decode_tok_s(&self) -> f64 {
        rate(self.generated, self.decode_s)
    }
}

fn rate(n: usize, s: f64) -> f64 {
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// A model's own account of how it is built, for `lmscope info`: each
/// architecture fills it in, so nothing here is assumed of all models.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Architecture {
    /// The GGUF architecture name (`llama`, ...).
    pub family: String,
    pub norm: String,
    pub activation: String,
    pub positions: String,
    pub attention: String,
    /// The output projection is the token embedding matrix.
    pub tied_embeddings: bool,
}

/// Facts about a loaded model, for `lmscope info` and the status bar.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub path: String,
    pub name: String,
    pub architecture: String,
    pub file_bytes: u64,
    pub file_type: String,
    pub parameters: u64,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub vocab_size: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// How the model is built, as it describes itself.
    pub design: Architecture,
    pub tensor_types: Vec<(String, usize)>,
    pub bos: Option<(u32, String)>,
    pub eos: Option<(u32, String)>,
    pub end_of_generation: Vec<(u32, String)>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
    /// The template used when the file has none.
    pub chat_fallback: String,
    /// Each layer's sliding attention window, if it has one.
    pub layer_windows: Vec<Option<usize>>,
    pub precision: crate::engine::model::types::Precision,
    /// Where the model runs when it is not here: a server's kind and
    /// address (`None`: loaded in this process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}
