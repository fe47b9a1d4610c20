//! Model architectures behind one trait, the layers they share, and their
//! caches. Adding a GGUF decoder family: a file beside `llama.rs` that
//! checks its tensors and describes its blocks to [`Decoder`] (or
//! implements [`Model`] itself), and one line in [`ARCHITECTURES`].

pub mod api;
pub mod cache;
pub mod config;
pub mod decoder;
pub mod gemma3;
pub(crate) mod layers;
pub mod llama;
mod probe;
pub mod types;

use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;

pub use api::{Loader, Model, Rotary};
pub use cache::KvCache;
pub use config::Config;
pub use decoder::Decoder;
pub use layers::RopeStyle;
pub use types::{Logits, Precision};

/// The architectures lmscope runs, by GGUF `general.architecture`.
pub const ARCHITECTURES: &[(&str, Loader)] = &[("llama", llama::load), ("gemma3", gemma3::load)];

/// Reads the model in `gguf` with its architecture's loader.
pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Box<dyn Model>> {
    loader(gguf)?(gguf, precision)
}

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
