//! The model a fine-tuning run starts from: a Hugging Face folder of a
//! family the trainer builds, or a GGUF file dequantised to f32 with
//! llama.cpp's row order of Q and K undone; with the tokenizer and the
//! chat template inference uses, so the run sees prompts exactly as the
//! workbench renders them.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};

use super::nets::{Arch, NetConfig, Special};
use crate::engine::chat::{self, ChatTemplate};
use crate::engine::load::gguf::GgufFile;
use crate::engine::load::weights::Weights;
use crate::engine::model::config::Config;
use crate::engine::tokenizer::Tokenizer;

pub struct Base {
    pub cfg: NetConfig,
    pub tensors: HashMap<String, Tensor>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// The `tokenizer_config.json` its checkpoints carry (the chat
    /// template and the special tokens, so the workbench opens them as chat
    /// models).
    pub tok_config: Value,
}

/// Reads a base model (a folder or a `.gguf` file).
pub fn load(path: &Path) -> anyhow::Result<Base> {
    if path.is_dir() {
        from_folder(path)
    } else if path.is_file() {
        from_gguf(path)
    } else {
        bail!(
            "{} is neither a model folder nor a GGUF file",
            path.display()
        )
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    if !path.is_file() {
        return Ok(Value::Null);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The model's template, or the fallback the workbench would use; the
/// source is what checkpoints record, so the tuned model is prompted in
/// the form it was trained on.
fn template(tokenizer: &Tokenizer, source: Option<String>) -> (ChatTemplate, String) {
    let (_, fallback) = chat::fallback(|t| tokenizer.token_id(t).is_some());
    let source = source.unwrap_or_else(|| fallback.to_string());
    let text = |id: Option<u32>| id.map(|i| tokenizer.token_text(i)).unwrap_or_default();
    let t = ChatTemplate::new(
        Some(&source),
        fallback,
        &text(tokenizer.bos),
        &text(tokenizer.eos),
    );
    (t, source)
}

fn special(tokenizer: &Tokenizer, pad: Option<u32>) -> Special {
    Special {
        pad: pad.or(tokenizer.eos),
        bos: tokenizer.bos,
        eos: tokenizer.eos,
    }
}

fn from_folder(dir: &Path) -> anyhow::Result<Base> {
    let config = read_json(&dir.join("config.json"))?;
    if config.is_null() {
        bail!("{} has no config.json", dir.display());
    }
    let mut cfg =
        NetConfig::from_hf(&config).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let weights = dir.join("model.safetensors");
    if !weights.is_file() {
        bail!(
            "{} has no model.safetensors (a sharded checkpoint is not read for training)",
            dir.display()
        );
    }
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .with_context(|| format!("reading {}", weights.display()))?
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<candle_core::Result<HashMap<_, _>>>()?;
    let tok_config = read_json(&dir.join("tokenizer_config.json"))?;
    let generation = read_json(&dir.join("generation_config.json"))?;
    let tokenizer = Tokenizer::from_hf_folder(dir, &config, &tok_config, &generation)?;
    cfg.special = special(&tokenizer, cfg.special.pad);
    let (template, source) = template(
        &tokenizer,
        crate::engine::hf_chat_template(dir, &tok_config),
    );
    let mut tok_config = if tok_config.is_object() {
        tok_config
    } else {
        json!({})
    };
    tok_config["chat_template"] = json!(source);
    Ok(Base {
        template,
        cfg,
        tensors,
        tokenizer,
        tok_config,
    })
}

/// GGUF's Llama names, as the Hugging Face names the net uses.
fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let hf = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}"))
}

/// Undoes the permutation llama.cpp's converter applies to Q and K
/// (`reshape(heads, 2, d/2, in).swapaxes(1, 2)`), so each head's rows
/// are back in the half-split order transformers' rotation expects.
pub fn unpermute(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    let half = rows / heads / 2;
    w.reshape((heads, half, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))
}

fn from_gguf(path: &Path) -> anyhow::Result<Base> {
    let mut gguf = GgufFile::open(path)?;
    let arch = gguf.architecture()?.to_string();
    if arch != "llama" {
        bail!(
            "{}: lmscope fine-tunes GGUF files of the llama architecture (SmolLM2, Llama, TinyLlama); this one is `{arch}`; give a Hugging Face folder instead",
            path.display()
        );
    }
    let c = Config::from_gguf(&gguf)?;
    if c.head_dim * c.n_head != c.d_model {
        bail!(
            "{}: heads of width {} do not divide the model's {}",
            path.display(),
            c.head_dim,
            c.d_model
        );
    }
    let tokenizer = Tokenizer::load(&gguf)?;
    let names: Vec<String> = gguf.content.tensor_infos.keys().cloned().collect();
    let mut tensors = HashMap::new();
    for name in names {
        let Some(hf) = hf_name(&name) else { continue };
        let mut t = gguf.tensor(&name)?.dequantize(&Device::Cpu)?;
        if hf.ends_with("q_proj.weight") {
            t = unpermute(&t, c.n_head)?;
        } else if hf.ends_with("k_proj.weight") {
            t = unpermute(&t, c.n_kv_head)?;
        }
        tensors.insert(hf, t);
    }
    let pad = gguf
        .meta_usize("tokenizer.ggml.padding_token_id")
        .ok()
        .map(|p| p as u32);
    let cfg = NetConfig {
        arch: Arch::Llama,
        vocab_size: c.vocab_size,
        d_model: c.d_model,
        n_layer: c.n_layer,
        n_head: c.n_head,
        n_kv_head: Some(c.n_kv_head),
        d_ff: c.d_ff,
        max_positions: c.context_length,
        dropout: 0.0,
        norm_eps: c.rms_eps as f64,
        rope_theta: c.rope_base as f64,
        special: special(&tokenizer, pad),
        lora: None,
        untied_head: gguf.has_tensor("output.weight"),
    };
    cfg.check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let source = gguf
        .meta_str("tokenizer.chat_template")
        .ok()
        .map(str::to_string);
    let (template, source) = template(&tokenizer, source);
    let text = |id: Option<u32>| id.map(|i| tokenizer.token_text(i));
    let tok_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": text(tokenizer.bos),
        "eos_token": text(tokenizer.eos),
        "add_bos_token": tokenizer.add_bos,
        "model_max_length": c.context_length,
        "chat_template": source,
    });
    Ok(Base {
        template,
        cfg,
        tensors,
        tokenizer,
        tok_config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's converter, as its Python writes it, inverted by ours.
    #[test]
    fn unpermute_inverts_the_converters_permutation() {
        let (heads, hd, cols) = (3, 4, 2);
        let rows = heads * hd;
        let hf: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
        let hf = Tensor::from_vec(hf, (rows, cols), &Device::Cpu).unwrap();
        let permuted = hf
            .reshape((heads, 2, hd / 2, cols))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((rows, cols))
            .unwrap();
        assert_ne!(
            permuted.to_vec2::<f32>().unwrap(),
            hf.to_vec2::<f32>().unwrap()
        );
        let back = unpermute(&permuted, heads).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), hf.to_vec2::<f32>().unwrap());
    }
}
