//! BERT and RoBERTa from Hugging Face folders (MiniLM is a BERT): the
//! checkpoint's names turned into the encoder's, with or without the
//! `bert.` / `roberta.` prefix (a bare `BertModel`, as sentence-transformers
//! saves it, has none), old `gamma`/`beta` LayerNorm names accepted.
//! RoBERTa differs only in its names, in having no next-sentence head and
//! in numbering positions from the padding id + 1.

use super::encoder::{Activation, Encoder, EncoderConfig};
use crate::engine::error::{EngineError, Result};
use crate::engine::load::safetensors::HfFolder;

/// A whole number from `config.json`, or an error naming the key.
pub(crate) fn config_usize(folder: &HfFolder, key: &str) -> Result<usize> {
    folder.config[key]
        .as_u64()
        .map(|v| v as usize)
        .ok_or_else(|| EngineError::corrupt(folder.dir(), format!("config.json has no `{key}`")))
}

/// The nonlinearity `config.json` names under `key`.
pub(crate) fn config_activation(folder: &HfFolder, key: &str) -> Result<Activation> {
    let name = folder.config[key].as_str().unwrap_or("gelu");
    Activation::from_name(name).ok_or_else(|| {
        EngineError::corrupt(
            folder.dir(),
            format!("activation `{name}` is not one lmscope runs (gelu, gelu_new, relu)"),
        )
    })
}

/// The encoder's name for a BERT/RoBERTa checkpoint tensor.
fn encoder_name(hf: &str) -> Option<String> {
    let hf = hf.replace(".gamma", ".weight").replace(".beta", ".bias");
    let body = hf
        .strip_prefix("bert.")
        .or_else(|| hf.strip_prefix("roberta."))
        .unwrap_or(&hf);
    let fixed = [
        ("embeddings.word_embeddings.weight", "token_embd.weight"),
        (
            "embeddings.position_embeddings.weight",
            "position_embd.weight",
        ),
        (
            "embeddings.token_type_embeddings.weight",
            "token_types.weight",
        ),
        ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
        ("embeddings.LayerNorm.bias", "token_embd_norm.bias"),
        ("pooler.dense.weight", "pooler.weight"),
        ("pooler.dense.bias", "pooler.bias"),
        // BertForPreTraining / BertForMaskedLM
        ("cls.predictions.transform.dense.weight", "mlm.dense.weight"),
        ("cls.predictions.transform.dense.bias", "mlm.dense.bias"),
        (
            "cls.predictions.transform.LayerNorm.weight",
            "mlm.norm.weight",
        ),
        ("cls.predictions.transform.LayerNorm.bias", "mlm.norm.bias"),
        ("cls.predictions.decoder.weight", "mlm.decoder.weight"),
        ("cls.predictions.bias", "mlm.bias"),
        ("cls.seq_relationship.weight", "nsp.output.weight"),
        ("cls.seq_relationship.bias", "nsp.output.bias"),
        // RobertaForMaskedLM
        ("lm_head.dense.weight", "mlm.dense.weight"),
        ("lm_head.dense.bias", "mlm.dense.bias"),
        ("lm_head.layer_norm.weight", "mlm.norm.weight"),
        ("lm_head.layer_norm.bias", "mlm.norm.bias"),
        ("lm_head.decoder.weight", "mlm.decoder.weight"),
        ("lm_head.bias", "mlm.bias"),
    ];
    if let Some((_, ours)) = fixed.iter().find(|(theirs, _)| *theirs == body) {
        return Some(ours.to_string());
    }
    let rest = body.strip_prefix("encoder.layer.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let parts = [
        ("attention.self.query.", "attn_q."),
        ("attention.self.key.", "attn_k."),
        ("attention.self.value.", "attn_v."),
        ("attention.output.dense.", "attn_output."),
        ("attention.output.LayerNorm.", "attn_output_norm."),
        ("intermediate.dense.", "ffn_up."),
        ("output.dense.", "ffn_down."),
        ("output.LayerNorm.", "layer_output_norm."),
    ];
    parts.iter().find_map(|(theirs, ours)| {
        part.strip_prefix(theirs)
            .map(|tail| format!("blk.{layer}.{ours}{tail}"))
    })
}

/// BERT's (or RoBERTa's) hyper-parameters from `config.json`.
fn config(folder: &HfFolder, roberta: bool) -> Result<EncoderConfig> {
    let positions = config_usize(folder, "max_position_embeddings")?;
    // RoBERTa's table starts at padding id + 1: its first rows are unused.
    let position_offset = if roberta {
        config_usize(folder, "pad_token_id").unwrap_or(1) + 1
    } else {
        0
    };
    Ok(EncoderConfig {
        n_layer: config_usize(folder, "num_hidden_layers")?,
        n_head: config_usize(folder, "num_attention_heads")?,
        d_model: config_usize(folder, "hidden_size")?,
        d_ff: config_usize(folder, "intermediate_size")?,
        vocab_size: config_usize(folder, "vocab_size")?,
        max_positions: positions.checked_sub(position_offset).ok_or_else(|| {
            EngineError::corrupt(
                folder.dir(),
                "max_position_embeddings is below the padding id",
            )
        })?,
        type_vocab_size: config_usize(folder, "type_vocab_size").unwrap_or(2),
        norm_eps: folder.config["layer_norm_eps"].as_f64().unwrap_or(1e-12),
        activation: config_activation(folder, "hidden_act")?,
        position_offset,
    })
}

pub fn load_bert(folder: &mut HfFolder) -> Result<Encoder> {
    let cfg = config(folder, false)?;
    folder.rename(encoder_name);
    Encoder::load(folder, cfg)
}

pub fn load_roberta(folder: &mut HfFolder) -> Result<Encoder> {
    let cfg = config(folder, true)?;
    folder.rename(encoder_name);
    Encoder::load(folder, cfg)
}

#[cfg(test)]
mod tests {
    use super::encoder_name;

    #[test]
    fn names_map_with_and_without_prefix() {
        let n = |s: &str| encoder_name(s);
        assert_eq!(
            n("bert.encoder.layer.3.attention.self.query.weight").as_deref(),
            Some("blk.3.attn_q.weight")
        );
        assert_eq!(
            n("encoder.layer.0.output.LayerNorm.gamma").as_deref(),
            Some("blk.0.layer_output_norm.weight")
        );
        assert_eq!(
            n("encoder.layer.0.attention.output.LayerNorm.bias").as_deref(),
            Some("blk.0.attn_output_norm.bias")
        );
        assert_eq!(n("lm_head.bias").as_deref(), Some("mlm.bias"));
        assert_eq!(
            n("roberta.embeddings.position_ids"),
            None,
            "buffers are not read"
        );
    }
}
