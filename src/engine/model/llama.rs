//! The Llama family (SmolLM2, Llama 2/3, TinyLlama, ...) in GGUF: the
//! plain pre-norm block, SwiGLU, RoPE on adjacent pairs (GGUF stores Q and
//! K permuted for it).

use super::api::Model;
use super::config::Config;
use super::decoder::{Decoder, Layout};
use super::layers::Rope;
use super::layers::mlp::Gate;
use super::layers::rope::RopeStyle;
use super::types::Precision;
use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;
use crate::engine::types::Architecture;

/// Every weight a Llama-layout model reads, with the shape (rows,
/// columns) its config implies; `output.weight` only when the file has
/// it (else the embedding is tied).
pub(crate) fn tensor_shapes(cfg: &Config, untied_output: bool) -> Vec<(String, Vec<usize>)> {
    let (d, q, kv) = (
        cfg.d_model,
        cfg.n_head * cfg.head_dim,
        cfg.n_kv_head * cfg.head_dim,
    );
    let mut out = vec![
        ("token_embd.weight".to_string(), vec![cfg.vocab_size, d]),
        ("output_norm.weight".to_string(), vec![d]),
    ];
    if untied_output {
        out.push(("output.weight".into(), vec![cfg.vocab_size, d]));
    }
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        out.extend([
            (format!("{p}.attn_norm.weight"), vec![d]),
            (format!("{p}.attn_q.weight"), vec![q, d]),
            (format!("{p}.attn_k.weight"), vec![kv, d]),
            (format!("{p}.attn_v.weight"), vec![kv, d]),
            (format!("{p}.attn_output.weight"), vec![d, q]),
            (format!("{p}.ffn_norm.weight"), vec![d]),
            (format!("{p}.ffn_gate.weight"), vec![cfg.d_ff, d]),
            (format!("{p}.ffn_up.weight"), vec![cfg.d_ff, d]),
            (format!("{p}.ffn_down.weight"), vec![d, cfg.d_ff]),
        ]);
    }
    out
}

/// Every weight in `shapes` present with the shape the config implies,
/// before any is read.
pub(crate) fn check_tensors(gguf: &GgufFile, shapes: Vec<(String, Vec<usize>)>) -> Result<()> {
    for (name, want) in shapes {
        let found = gguf.tensor_shape(&name)?;
        if found != want {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!(
                    "tensor `{name}` has shape {found:?}, but the model's settings make it {want:?}"
                ),
            ));
        }
    }
    Ok(())
}

/// Query heads over key/value heads, in words.
pub(crate) fn heads_in_words(cfg: &Config) -> String {
    if cfg.n_kv_head == cfg.n_head {
        format!("causal multi-head, {} heads", cfg.n_head)
    } else {
        format!(
            "causal grouped-query, {} query heads over {} key/value heads",
            cfg.n_head, cfg.n_kv_head
        )
    }
}

/// The registry's loader (`model::ARCHITECTURES`).
pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Box<dyn Model>> {
    let cfg = Config::from_gguf(gguf)?;
    let untied = gguf.has_tensor("output.weight");
    check_tensors(gguf, tensor_shapes(&cfg, untied))?;
    let layout = Layout {
        embed_scale: None,
        gate: Gate::Silu,
        ropes: vec![Rope::new(cfg.head_dim, cfg.rope_base, RopeStyle::Adjacent)],
        layer_rope: vec![0; cfg.n_layer],
        layer_window: vec![None; cfg.n_layer],
        design: Architecture {
            family: "llama".into(),
            norm: format!("RMSNorm, pre-norm, eps {:e}", cfg.rms_eps),
            activation: "SwiGLU (SiLU-gated feed-forward)".into(),
            positions: format!(
                "RoPE on adjacent pairs, base {}, {} of {} dims",
                cfg.rope_base, cfg.head_dim, cfg.head_dim
            ),
            attention: heads_in_words(&cfg),
            tied_embeddings: !untied,
        },
    };
    Ok(Box::new(Decoder::load(gguf, cfg, precision, layout)?))
}
