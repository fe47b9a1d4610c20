//! What the engine, its thread, `bench` and the interface use of a model:
//! one trait every architecture implements.

use std::ops::Range;

use candle_core::Tensor;

use super::cache::KvCache;
use super::config::Config;
use super::types::{Logits, Precision};
use crate::engine::error::Result;
use crate::engine::load::gguf::GgufFile;
use crate::engine::load::safetensors::HfFolder;
use crate::engine::types::Architecture;

/// What the engine, its thread, `bench` and the interface use of a model.
pub trait Model: Send + Sync {
    /// Dimensions and hyper-parameters.
    fn config(&self) -> &Config;
    fn precision(&self) -> Precision;
    /// How the model is built, in its own words (for `info`).
    fn architecture(&self) -> Architecture;
    /// The sliding window of `layer`'s attention (keys a query sees,
    /// itself included), for layers that have one.
    fn attention_window(&self, _layer: usize) -> Option<usize> {
        None
    }
    /// The learned position embeddings of positions 0..n (rows of
    /// d_model), when positions are added to the token embeddings.
    fn learned_positions(&self, _n: usize) -> Option<Vec<f32>> {
        None
    }
    /// How `layer` encodes positions, when it rotates queries and keys.
    fn rotary(&self, _layer: usize) -> Option<Rotary> {
        None
    }
    /// Query head `head`'s rows at positions `queries` (rows of head_dim)
    /// and its key/value head's keys at every position up to the last
    /// query, as the forward pass computed them (rotated), from what a
    /// capturing cache kept.
    fn head_vectors(
        &self,
        cache: &KvCache,
        layer: usize,
        head: usize,
        queries: Range<usize>,
    ) -> Result<(Vec<f32>, Vec<f32>)>;
    /// An empty cache for one sequence; `capture_attention` keeps what the
    /// attention rows are recomputed from.
    fn new_cache(&self, capture_attention: bool) -> KvCache;
    /// Runs `tokens` after what `cache` holds, appending to it: logits
    /// (n, vocab), n = 1 for [`Logits::Last`], else the number of tokens.
    fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor>;
    /// One token for each of several sequences at once, every weight read
    /// once for all: logits (n_sequences, vocab), row i for `caches[i]`.
    fn forward_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor>;
    /// The residual stream of a fresh sequence `tokens`: the rows (n x
    /// d_model) after the embedding, then after each block, as the
    /// forward pass computes them (the logit lens reads these).
    fn residual_stream(&self, tokens: &[u32]) -> Result<Vec<Vec<f32>>>;
    /// The model's own final norm and vocabulary projection applied to
    /// residual rows: (rows, vocab). On the last block's rows it gives the
    /// model's logits; on an earlier block's, the logit lens.
    fn lens_logits(&self, rows: &[f32]) -> Result<Tensor>;
    /// The next-token logits (1, vocab) of a fresh sequence `tokens` with
    /// the (layer, head) pairs of `ablated` switched off: their outputs
    /// zeroed before the output projection. With the intact run's
    /// `residual_stream`, the blocks before the first ablated layer are not
    /// run again (a scan of every head costs half as much).
    fn forward_ablated(
        &self,
        tokens: &[u32],
        ablated: &[(usize, usize)],
        intact: Option<&[Vec<f32>]>,
    ) -> Result<Tensor>;
    /// Attention probabilities (n_head, queries, keys up to the last query)
    /// of `layer`, from what a capturing cache kept.
    fn attention_rows(
        &self,
        cache: &KvCache,
        layer: usize,
        queries: Range<usize>,
    ) -> Result<Tensor>;
}

/// A layer's rotary position embedding.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Rotary {
    pub base: f32,
    pub style: super::layers::RopeStyle,
    pub head_dim: usize,
}

impl Rotary {
    /// Each pair's angle at `position`, as the model computes it.
    pub fn angles(&self, position: usize) -> Vec<f32> {
        super::layers::Rope::angles(self.head_dim, self.base, position)
    }
}

/// Reads a model's weights from an opened GGUF file.
pub type Loader = fn(&mut GgufFile, Precision) -> Result<Box<dyn Model>>;

/// Reads a model's weights from an opened Hugging Face folder.
pub type HfLoader = fn(&mut HfFolder, Precision) -> Result<Box<dyn Model>>;
