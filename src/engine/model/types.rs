//! How a model is run: its precision, and which positions need logits.

/// What the forward pass is computed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Quantised weights against 8-bit activations, as llama.cpp does.
    #[default]
    Quantized,
    /// Weights dequantised to f32 at load, activations in f32 (as HF
    /// transformers does): slower and ~4x the memory, free of activation
    /// rounding.
    F32,
}

/// Which positions of a forward pass need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (generation): skips the vocabulary projection
    /// for the rest of the prompt.
    Last,
    /// Every position (scoring a text).
    All,
}
