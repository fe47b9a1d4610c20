//! The Gemma 3 family in GGUF (Gemma 3 270M, ...): the Llama block with an
//! RMS norm after attention and after the feed-forward layer too, RMS
//! norms on each query and key head, GeGLU, the embedding scaled by
//! sqrt(d_model), and two kinds of layer: sliding-window layers (RoPE base
//! 10 000) and, every sixth, global ones (the file's base). RoPE on halves.
//! (llama.cpp's converter stores the norms' weights with Gemma's +1 added.)

use super::api::Model;
use super::config::Config;
use super::decoder::{Decoder, Layout};
use super::layers::Rope;
use super::layers::mlp::Gate;
use super::layers::rope::RopeStyle;
use super::llama::{check_tensors, heads_in_words, tensor_shapes};
use super::types::Precision;
use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;
use crate::engine::load::weights::Weights;
use crate::engine::types::Architecture;

/// Every `PATTERN`th layer is global, the others slide (llama.cpp's
/// `set_swa_pattern(6)` for Gemma 3), unless the file says otherwise.
const PATTERN: usize = 6;
/// The sliding-window layers' RoPE base (fixed by the architecture).
const LOCAL_ROPE_BASE: f32 = 10_000.0;

fn shapes(cfg: &Config, untied: bool) -> Vec<(String, Vec<usize>)> {
    let (d, hd) = (cfg.d_model, cfg.head_dim);
    let mut out = tensor_shapes(cfg, untied);
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        out.extend([
            (format!("{p}.attn_q_norm.weight"), vec![hd]),
            (format!("{p}.attn_k_norm.weight"), vec![hd]),
            (format!("{p}.post_attention_norm.weight"), vec![d]),
            (format!("{p}.post_ffw_norm.weight"), vec![d]),
        ]);
    }
    out
}

/// The registry's loader (`model::ARCHITECTURES`).
pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Box<dyn Model>> {
    let cfg = Config::from_gguf(gguf)?;
    let untied = gguf.has_tensor("output.weight");
    check_tensors(gguf, shapes(&cfg, untied))?;
    if gguf
        .meta_f32("gemma3.rope.scaling.factor")
        .is_ok_and(|f| f != 1.0)
    {
        return Err(EngineError::corrupt(
            gguf.path(),
            "RoPE scaling (larger Gemma 3 models) is not supported yet",
        ));
    }
    let window = cfg.sliding_window.ok_or_else(|| {
        EngineError::corrupt(
            gguf.path(),
            "a Gemma 3 model needs `gemma3.attention.sliding_window`",
        )
    })?;
    let pattern = gguf
        .meta_usize("gemma3.attention.sliding_window_pattern")
        .unwrap_or(PATTERN)
        .max(1);
    let global = |l: usize| l % pattern == pattern - 1;
    let (n, hd) = (cfg.n_layer, cfg.head_dim);
    let n_global = (0..n).filter(|&l| global(l)).count();
    let layout = Layout {
        embed_scale: Some((cfg.d_model as f32).sqrt()),
        gate: Gate::Gelu {
            ggml_table: precision == Precision::Quantized,
        },
        layer_rope: (0..n)
            .map(|l| {
                let base = if global(l) {
                    cfg.rope_base
                } else {
                    LOCAL_ROPE_BASE
                };
                Some(Rope::new(hd, base, RopeStyle::Halves))
            })
            .collect(),
        layer_window: (0..n).map(|l| (!global(l)).then_some(window)).collect(),
        design: Architecture {
            family: "gemma3".into(),
            norm: format!(
                "RMSNorm before and after attention and the feed-forward layer, and on each query and key head; eps {:e}",
                cfg.rms_eps
            ),
            activation: "GeGLU (tanh-GELU-gated feed-forward)".into(),
            positions: format!(
                "RoPE on halves (NeoX), base {LOCAL_ROPE_BASE} in sliding-window layers, {} in global ones; embedding x sqrt({})",
                cfg.rope_base, cfg.d_model
            ),
            attention: format!(
                "{}; {} sliding-window layers of {window} keys, {n_global} global (every {pattern}th)",
                heads_in_words(&cfg),
                n - n_global
            ),
            tied_embeddings: !untied,
        },
    };
    Ok(Box::new(Decoder::load(gguf, cfg, precision, layout)?))
}
