//! The Llama family (SmolLM2, Llama 2/3, TinyLlama, ...), in GGUF or a
//! Hugging Face folder: the plain pre-norm block, SwiGLU, RoPE. GGUF
//! stores Q and K permuted for rotation of adjacent pairs; Hugging Face
//! checkpoints rotate halves.

use super::api::Model;
use super::config::Config;
use super::decoder::{Decoder, Layout};
use super::layers::Rope;
use super::layers::mlp::Gate;
use super::layers::rope::RopeStyle;
use super::types::Precision;
use crate::engine::error::{EngineError, Result};
use crate::engine::load::gguf::GgufFile;
use crate::engine::load::safetensors::HfFolder;
use crate::engine::load::weights::Weights;
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
pub(crate) fn check_tensors(gguf: &dyn Weights, shapes: Vec<(String, Vec<usize>)>) -> Result<()> {
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
    build(gguf, cfg, precision, untied, RopeStyle::Adjacent)
}

/// A checkpoint tensor's GGUF name, in `transformers`' Llama layout.
fn gguf_name(hf: &str, tied: bool) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" if !tied => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (i, name) = rest.split_once('.')?;
    let (module, kind) = name.rsplit_once('.')?;
    let ours = match module {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{i}.{ours}.{kind}"))
}

/// The loader for `transformers`' Llama checkpoints (`model::HF_ARCHITECTURES`).
pub fn load_hf(folder: &mut HfFolder, precision: Precision) -> Result<Box<dyn Model>> {
    let cfg = Config::from_hf(&folder.config, folder.dir())?;
    let tied = folder.config["tie_word_embeddings"]
        .as_bool()
        .unwrap_or(false)
        || !folder
            .checkpoint_names()
            .iter()
            .any(|n| n == "lm_head.weight");
    folder.rename(|hf| gguf_name(hf, tied));
    build(folder, cfg, precision, !tied, RopeStyle::Halves)
}

fn build(
    weights: &mut dyn Weights,
    cfg: Config,
    precision: Precision,
    untied: bool,
    style: RopeStyle,
) -> Result<Box<dyn Model>> {
    check_tensors(weights, tensor_shapes(&cfg, untied))?;
    let pairs = match style {
        RopeStyle::Adjacent => "adjacent pairs",
        RopeStyle::Halves => "halves (NeoX)",
    };
    let layout = Layout {
        embed_scale: None,
        gate: Gate::Silu,
        layer_rope: vec![Some(Rope::new(cfg.head_dim, cfg.rope_base, style)); cfg.n_layer],
        layer_window: vec![None; cfg.n_layer],
        design: Architecture {
            family: "llama".into(),
            norm: format!("RMSNorm, pre-norm, eps {:e}", cfg.rms_eps),
            activation: "SwiGLU (SiLU-gated feed-forward)".into(),
            positions: format!(
                "RoPE on {pairs}, base {}, {} of {} dims",
                cfg.rope_base, cfg.head_dim, cfg.head_dim
            ),
            attention: heads_in_words(&cfg),
            tied_embeddings: !untied,
        },
    };
    Ok(Box::new(Decoder::load(weights, cfg, precision, layout)?))
}
