//! Errors the engine can report. Each one a user can cause says what was
//! wrong and what to do about it, in one line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file {0} does not exist; pass the path of a .gguf file, or run `lmscope pull`")]
    ModelNotFound(PathBuf),
    #[error(
        "{0} is not a GGUF model file (it does not start with the bytes \"GGUF\"); pass a .gguf file"
    )]
    NotGguf(PathBuf),
    #[error(
        "{path} is truncated or corrupt ({detail}); download it again (`lmscope pull --force` for the default model)"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("unsupported model architecture `{found}`: lmscope runs these: {supported}")]
    UnsupportedArchitecture { found: String, supported: String },
    #[error(
        "tensor `{name}` has type {dtype}, which lmscope cannot run; supported types: {supported}"
    )]
    UnsupportedTensorType {
        name: String,
        dtype: String,
        supported: &'static str,
    },
    #[error("the model file has no `{0}` entry; it is not a complete GGUF model")]
    MissingMetadata(String),
    #[error(
        "the sequence needs {tokens} tokens but the model's context holds {limit}; shorten the prompt or lower --max-tokens"
    )]
    ContextOverflow { tokens: usize, limit: usize },
    #[error("the prompt is empty; give some text to continue")]
    EmptyPrompt,
    #[error("invalid sampler setting: {0}")]
    InvalidSampler(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("attention was not captured for this run; ask for it before generating (--attention)")]
    AttentionNotCaptured,
    #[error("position {position} is outside the sequence (length {len})")]
    PositionOutOfRange { position: usize, len: usize },
    #[error("layer {layer} does not exist (the model has {n_layer})")]
    NoSuchLayer { layer: usize, n_layer: usize },
    #[error("head {head} does not exist (the layer has {n_head}, 0 to {})", n_head - 1)]
    NoSuchHead { head: usize, n_head: usize },
    #[error(
        "{path} holds a masked language model ({model_type}), which does not continue text; use `lmscope fill`, `nsp`, `embed` or `bias --pairs` on it, or the workbench's encoder mode"
    )]
    EncoderOnly { path: PathBuf, model_type: String },
    #[error(
        "{path} holds a decoder ({model_type}); `fill`, `nsp` and `embed` need a masked language model (BERT, RoBERTa, DistilBERT)"
    )]
    NotAnEncoder { path: PathBuf, model_type: String },
    /// An input the model cannot take, said in full (what and what to do).
    #[error("{0}")]
    Input(String),
    #[error("generation cancelled")]
    Cancelled,
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl EngineError {
    pub fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
