//! The hyper-parameters of a decoder, read from its GGUF metadata under
//! the architecture's own key prefix (`llama.block_count`, ...) or from a
//! Hugging Face `config.json`.

use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;
use crate::engine::load::weights::Weights;

/// Hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub head_dim: usize,
    pub rope_base: f32,
    /// The norms' epsilon (RMS norms, or GPT-2's LayerNorms).
    pub rms_eps: f32,
    pub vocab_size: usize,
    pub context_length: usize,
    /// Keys each query sees in the sliding-window layers (Gemma 3), when
    /// the model has such layers.
    pub sliding_window: Option<usize>,
}

impl Config {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let arch = gguf.architecture()?;
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = gguf.meta_usize(&key("attention.head_count"))?;
        let d_model = gguf.meta_usize(&key("embedding_length"))?;
        let vocab_size = match gguf.meta_usize(&key("vocab_size")) {
            Ok(v) => v,
            Err(_) => gguf.tensor_shape("token_embd.weight")?[0],
        };
        let cfg = Self {
            n_layer: gguf.meta_usize(&key("block_count"))?,
            n_head,
            n_kv_head: gguf
                .meta_usize(&key("attention.head_count_kv"))
                .unwrap_or(n_head),
            d_model,
            d_ff: gguf.meta_usize(&key("feed_forward_length"))?,
            // A head's width is its own (Gemma's 4 x 256 exceed its 640).
            head_dim: gguf
                .meta_usize(&key("attention.key_length"))
                .or_else(|_| gguf.meta_usize(&key("rope.dimension_count")))
                .unwrap_or(d_model / n_head.max(1)),
            rope_base: gguf.meta_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: gguf
                .meta_f32(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            vocab_size,
            context_length: gguf.meta_usize(&key("context_length")).unwrap_or(2048),
            sliding_window: gguf.meta_usize(&key("attention.sliding_window")).ok(),
        };
        cfg.check_ranges(gguf.path())?;
        if !cfg.n_head.is_multiple_of(cfg.n_kv_head) {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!(
                    "head counts {} / {} are inconsistent",
                    cfg.n_head, cfg.n_kv_head
                ),
            ));
        }
        if !cfg.head_dim.is_multiple_of(2) {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!("head width {} is odd (rotary pairs)", cfg.head_dim),
            ));
        }
        if cfg.sliding_window == Some(0) {
            return Err(EngineError::corrupt(
                gguf.path(),
                "`attention.sliding_window` is 0",
            ));
        }
        Ok(cfg)
    }

    /// From a Hugging Face `config.json` (Llama-family or GPT-2 keys).
    pub fn from_hf(json: &serde_json::Value, path: &std::path::Path) -> Result<Self> {
        let num = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| json[*k].as_u64().map(|v| v as usize))
        };
        let need = |keys: &[&str]| {
            num(keys).ok_or_else(|| {
                EngineError::corrupt(path, format!("config.json has no `{}`", keys[0]))
            })
        };
        let float = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| json[*k].as_f64().map(|v| v as f32))
        };
        let d_model = need(&["hidden_size", "n_embd"])?;
        let n_head = need(&["num_attention_heads", "n_head"])?;
        let cfg = Self {
            n_layer: need(&["num_hidden_layers", "n_layer"])?,
            n_head,
            n_kv_head: num(&["num_key_value_heads"]).unwrap_or(n_head),
            d_model,
            d_ff: num(&["intermediate_size", "n_inner"]).unwrap_or(4 * d_model),
            head_dim: num(&["head_dim"]).unwrap_or(d_model / n_head.max(1)),
            rope_base: float(&["rope_theta"])
                .or_else(|| {
                    json["rope_parameters"]["rope_theta"]
                        .as_f64()
                        .map(|v| v as f32)
                })
                .unwrap_or(10_000.0),
            rms_eps: float(&["rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps"])
                .unwrap_or(1e-5),
            vocab_size: need(&["vocab_size"])?,
            context_length: num(&["max_position_embeddings", "n_positions", "n_ctx"])
                .unwrap_or(2048),
            sliding_window: None,
        };
        cfg.check_ranges(path)?;
        if !n_head.is_multiple_of(cfg.n_kv_head) || !cfg.head_dim.is_multiple_of(2) {
            return Err(EngineError::corrupt(
                path,
                format!(
                    "{} heads over {} key/value heads of width {} do not fit together",
                    n_head, cfg.n_kv_head, cfg.head_dim
                ),
            ));
        }
        Ok(cfg)
    }

    /// Each number within what a model on one machine can have, so that
    /// the products below and the buffers sized from them cannot overflow.
    pub fn check_ranges(&self, path: &std::path::Path) -> Result<()> {
        let limits: [(&str, usize, usize); 7] = [
            ("block_count", self.n_layer, 1 << 10),
            ("attention.head_count", self.n_head, 1 << 10),
            ("attention.head_count_kv", self.n_kv_head, 1 << 10),
            ("embedding_length", self.d_model, 1 << 17),
            ("feed_forward_length", self.d_ff, 1 << 20),
            ("rope.dimension_count", self.head_dim, 1 << 12),
            ("context_length", self.context_length, 1 << 24),
        ];
        for (key, value, most) in limits {
            if value == 0 || value > most {
                return Err(EngineError::corrupt(
                    path,
                    format!("`{key}` is {value} (1 to {most})"),
                ));
            }
        }
        if self.vocab_size == 0 || self.vocab_size > 1 << 24 {
            return Err(EngineError::corrupt(
                path,
                format!(
                    "the vocabulary size is {} (1 to {})",
                    self.vocab_size,
                    1 << 24
                ),
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return Err(EngineError::corrupt(
                path,
                format!("`rope.freq_base` is {}", self.rope_base),
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0 && self.rms_eps < 1.0) {
            return Err(EngineError::corrupt(
                path,
                format!("`attention.layer_norm_rms_epsilon` is {}", self.rms_eps),
            ));
        }
        Ok(())
    }
}
