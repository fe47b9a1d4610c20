//! DistilBERT from Hugging Face folders: BERT's blocks under other names,
//! no token types, and no next-sentence head (it was distilled without).

use super::bert::{config_activation, config_usize};
use super::encoder::{Encoder, EncoderConfig};
use crate::engine::error::Result;
use crate::engine::load::safetensors::HfFolder;

fn encoder_name(hf: &str) -> Option<String> {
    let body = hf.strip_prefix("distilbert.").unwrap_or(hf);
    let fixed = [
        ("embeddings.word_embeddings.weight", "token_embd.weight"),
        (
            "embeddings.position_embeddings.weight",
            "position_embd.weight",
        ),
        ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
        ("embeddings.LayerNorm.bias", "token_embd_norm.bias"),
        ("vocab_transform.weight", "mlm.dense.weight"),
        ("vocab_transform.bias", "mlm.dense.bias"),
        ("vocab_layer_norm.weight", "mlm.norm.weight"),
        ("vocab_layer_norm.bias", "mlm.norm.bias"),
        ("vocab_projector.weight", "mlm.decoder.weight"),
        ("vocab_projector.bias", "mlm.bias"),
    ];
    if let Some((_, ours)) = fixed.iter().find(|(theirs, _)| *theirs == body) {
        return Some(ours.to_string());
    }
    let rest = body.strip_prefix("transformer.layer.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let parts = [
        ("attention.q_lin.", "attn_q."),
        ("attention.k_lin.", "attn_k."),
        ("attention.v_lin.", "attn_v."),
        ("attention.out_lin.", "attn_output."),
        ("sa_layer_norm.", "attn_output_norm."),
        ("ffn.lin1.", "ffn_up."),
        ("ffn.lin2.", "ffn_down."),
        ("output_layer_norm.", "layer_output_norm."),
    ];
    parts.iter().find_map(|(theirs, ours)| {
        part.strip_prefix(theirs)
            .map(|tail| format!("blk.{layer}.{ours}{tail}"))
    })
}

pub fn load(folder: &mut HfFolder) -> Result<Encoder> {
    let cfg = EncoderConfig {
        n_layer: config_usize(folder, "n_layers")?,
        n_head: config_usize(folder, "n_heads")?,
        d_model: config_usize(folder, "dim")?,
        d_ff: config_usize(folder, "hidden_dim")?,
        vocab_size: config_usize(folder, "vocab_size")?,
        max_positions: config_usize(folder, "max_position_embeddings")?,
        type_vocab_size: 0,
        // transformers hard-codes DistilBERT's LayerNorm epsilon.
        norm_eps: 1e-12,
        activation: config_activation(folder, "activation")?,
        position_offset: 0,
    };
    folder.rename(encoder_name);
    Encoder::load(folder, cfg)
}
