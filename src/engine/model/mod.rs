//! Model architectures behind one trait, the layers they share, and their
//! caches. Adding a decoder family: a file beside `llama.rs` that checks
//! its tensors and describes its blocks to [`Decoder`] (or implements
//! [`Model`] itself), and one line in [`ARCHITECTURES`] (GGUF) or
//! [`HF_ARCHITECTURES`] (Hugging Face folders).

pub mod api;
pub mod bert;
pub mod cache;
pub mod config;
pub mod decoder;
pub mod distilbert;
pub mod encoder;
pub mod gemma3;
pub mod gpt2;
pub(crate) mod layers;
pub mod llama;
mod probe;
pub mod types;

use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;
use crate::engine::load::safetensors::HfFolder;

pub use api::{HfLoader, Loader, Model, Rotary};
pub use cache::KvCache;
pub use config::Config;
pub use decoder::Decoder;
pub use layers::RopeStyle;
pub use types::{Logits, Precision};

/// The architectures lmscope runs, by GGUF `general.architecture`.
pub const ARCHITECTURES: &[(&str, Loader)] = &[("llama", llama::load), ("gemma3", gemma3::load)];

/// The architectures lmscope runs from Hugging Face folders, by
/// `config.json`'s `model_type`.
pub const HF_ARCHITECTURES: &[(&str, HfLoader)] =
    &[("llama", llama::load_hf), ("gpt2", gpt2::load_hf)];

/// Reads an encoder (a masked language model) from a Hugging Face folder.
pub type EncoderLoader = fn(&mut HfFolder) -> Result<encoder::Encoder>;

/// The encoders lmscope runs from Hugging Face folders, by `model_type`.
pub const HF_ENCODERS: &[(&str, EncoderLoader)] = &[
    ("bert", bert::load_bert),
    ("roberta", bert::load_roberta),
    ("distilbert", distilbert::load),
];

/// The loader for a Hugging Face folder's `model_type`, or why there is
/// none (an encoder's folder says so: it has its own commands).
pub fn hf_loader(folder: &HfFolder) -> Result<HfLoader> {
    let model_type = folder.model_type()?;
    if HF_ENCODERS.iter().any(|(n, _)| *n == model_type) {
        return Err(EngineError::EncoderOnly {
            path: folder.dir().to_path_buf(),
            model_type: model_type.to_string(),
        });
    }
    find(HF_ARCHITECTURES, model_type).map_err(|_| unsupported_folder(model_type))
}

/// A folder's `model_type` that is neither a decoder nor an encoder we run.
fn unsupported_folder(model_type: &str) -> EngineError {
    let decoders: Vec<&str> = HF_ARCHITECTURES.iter().map(|(n, _)| *n).collect();
    let encoders: Vec<&str> = HF_ENCODERS.iter().map(|(n, _)| *n).collect();
    EngineError::UnsupportedArchitecture {
        found: model_type.to_string(),
        supported: format!(
            "{} (decoders); {} (encoders)",
            decoders.join(", "),
            encoders.join(", ")
        ),
    }
}

/// The encoder loader for a Hugging Face folder's `model_type`, or why
/// there is none (a decoder's folder says so).
pub fn hf_encoder_loader(folder: &HfFolder) -> Result<EncoderLoader> {
    let model_type = folder.model_type()?;
    if HF_ARCHITECTURES.iter().any(|(n, _)| *n == model_type) {
        return Err(EngineError::NotAnEncoder {
            path: folder.dir().to_path_buf(),
            model_type: model_type.to_string(),
        });
    }
    find(HF_ENCODERS, model_type).map_err(|_| unsupported_folder(model_type))
}

/// `arch`'s loader in `table`, or an error naming it and the supported ones.
fn find<L: Copy>(table: &[(&str, L)], arch: &str) -> Result<L> {
    table
        .iter()
        .find(|(name, _)| *name == arch)
        .map(|&(_, load)| load)
        .ok_or_else(|| EngineError::UnsupportedArchitecture {
            found: arch.to_string(),
            supported: table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        })
}

/// Reads the model in `gguf` with its architecture's loader.
pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Box<dyn Model>> {
    loader(gguf)?(gguf, precision)
}

/// The loader for `gguf`'s architecture, or why there is none.
pub fn loader(gguf: &GgufFile) -> Result<Loader> {
    find(ARCHITECTURES, gguf.architecture()?)
}
