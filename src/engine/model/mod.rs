//! Model architectures behind one trait, the layers they share, and their
//! caches. Adding an architecture: a file beside `llama.rs` that implements
//! [`Model`], and one line in [`ARCHITECTURES`].

pub mod cache;
pub mod config;
pub(crate) mod layers;
pub mod llama;
mod probe;
pub mod types;

use std::ops::Range;

use candle_core::Tensor;

use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;
use crate::engine::types::Architecture;

pub use cache::KvCache;
pub use config::Config;
pub use llama::Llama;
pub use types::{Logits, Precision};

/// What the engine, its thread, `bench` and the interface use of a model.
pub trait Model: Send + Sync {
    /// Dimensions and hyper-parameters.
    fn config(&self) -> &Config;
    fn precision(&self) -> Precision;
    /// How the model is built, in its own words (for `info`).
    fn architecture(&self) -> Architecture;
    /// An empty cache for one sequence; `capture_attention` keeps what the
    /// attention rows are recomputed from.
    fn new_cache(&self, capture_attention: bool) -> KvCache;
    /// Runs `tokens` after what `cache` holds, appending to it: logits
    /// (n, vocab), n = 1 for [`Logits::Last`], else the number of tokens.
    fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor>;
    /// One token for each of several sequences at once, every weight read
    /// once for all: logits (n_sequences, vocab), row i for `caches[i]`.
    fn forward_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor>;
    /// Attention probabilities (n_head, queries, keys up to the last query)
    /// of `layer`, from what a capturing cache kept.
    fn attention_rows(
        &self,
        cache: &KvCache,
        layer: usize,
        queries: Range<usize>,
    ) -> Result<Tensor>;
}

/// Reads a model's weights from an opened GGUF file.
pub type Loader = fn(&mut GgufFile, Precision) -> Result<Box<dyn Model>>;

/// The architectures lmscope runs, by GGUF `general.architecture`.
pub const ARCHITECTURES: &[(&str, Loader)] = &[("llama", llama::load)];

/// The loader for `gguf`'s architecture, or why there is none.
pub fn loader(gguf: &GgufFile) -> Result<Loader> {
    let arch = gguf.architecture()?;
    ARCHITECTURES
        .iter()
        .find(|(name, _)| *name == arch)
        .map(|&(_, load)| load)
        .ok_or_else(|| EngineError::UnsupportedArchitecture {
            found: arch.to_string(),
            supported: ARCHITECTURES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })
}
