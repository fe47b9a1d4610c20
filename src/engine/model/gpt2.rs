//! GPT-2 from a Hugging Face folder: learned absolute positions added to
//! the token embeddings, pre-LayerNorm blocks with biases, an ungated
//! feed-forward layer with tanh GELU (`gelu_new`), the output tied to the
//! embedding. Its checkpoint keeps `Conv1D` weights (in, out) and Q, K and
//! V fused in one `c_attn`: they are transposed and split here, once, into
//! the layers' (out, in) matrices.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use super::api::Model;
use super::config::Config;
use super::decoder::{Decoder, Layout};
use super::layers::mlp::Gate;
use super::llama::{check_tensors, heads_in_words};
use super::types::Precision;
use crate::engine::error::{EngineError, Result};
use crate::engine::load::safetensors::HfFolder;
use crate::engine::load::weights::TensorMap;
use crate::engine::types::Architecture;

/// Every weight the blocks read, with its shape (rows, columns).
fn shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (cfg.d_model, cfg.d_ff);
    let mut out = vec![
        ("token_embd.weight".to_string(), vec![cfg.vocab_size, d]),
        (
            "position_embd.weight".to_string(),
            vec![cfg.context_length, d],
        ),
        ("output_norm.weight".to_string(), vec![d]),
        ("output_norm.bias".to_string(), vec![d]),
    ];
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        for (name, shape) in [
            ("attn_norm.weight", vec![d]),
            ("attn_norm.bias", vec![d]),
            ("attn_q.weight", vec![d, d]),
            ("attn_k.weight", vec![d, d]),
            ("attn_v.weight", vec![d, d]),
            ("attn_q.bias", vec![d]),
            ("attn_k.bias", vec![d]),
            ("attn_v.bias", vec![d]),
            ("attn_output.weight", vec![d, d]),
            ("attn_output.bias", vec![d]),
            ("ffn_norm.weight", vec![d]),
            ("ffn_norm.bias", vec![d]),
            ("ffn_up.weight", vec![f, d]),
            ("ffn_up.bias", vec![f]),
            ("ffn_down.weight", vec![d, f]),
            ("ffn_down.bias", vec![d]),
        ] {
            out.push((format!("{p}.{name}"), shape));
        }
    }
    out
}

/// The checkpoint in GGUF's names and our layout.
fn rearrange(folder: &HfFolder, cfg: &Config) -> Result<TensorMap> {
    let names = folder.checkpoint_names();
    // `GPT2LMHeadModel` saves under `transformer.`; `GPT2Model` does not.
    let prefix = if names.iter().any(|n| n.starts_with("transformer.")) {
        "transformer."
    } else {
        ""
    };
    let read = |name: &str| -> Result<Tensor> {
        let (shape, values) = folder.read(&format!("{prefix}{name}"))?;
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    };
    // Conv1D (in, out) -> (out, in).
    let transposed = |name: &str| -> Result<Tensor> { Ok(read(name)?.t()?.contiguous()?) };
    let mut tensors = HashMap::new();
    let mut put = |name: String, t: Tensor| {
        tensors.insert(name, t);
    };
    put("token_embd.weight".into(), read("wte.weight")?);
    put("position_embd.weight".into(), read("wpe.weight")?);
    put("output_norm.weight".into(), read("ln_f.weight")?);
    put("output_norm.bias".into(), read("ln_f.bias")?);
    let d = cfg.d_model;
    for i in 0..cfg.n_layer {
        let (h, b) = (format!("h.{i}"), format!("blk.{i}"));
        for kind in ["weight", "bias"] {
            put(
                format!("{b}.attn_norm.{kind}"),
                read(&format!("{h}.ln_1.{kind}"))?,
            );
            put(
                format!("{b}.ffn_norm.{kind}"),
                read(&format!("{h}.ln_2.{kind}"))?,
            );
        }
        let qkv = transposed(&format!("{h}.attn.c_attn.weight"))?;
        let qkv_bias = read(&format!("{h}.attn.c_attn.bias"))?;
        if qkv.dims() != [3 * d, d] {
            return Err(EngineError::corrupt(
                folder.dir(),
                format!(
                    "`{h}.attn.c_attn.weight` has shape {:?}, but n_embd {d} makes it [{d}, {}]",
                    qkv.t()?.dims(),
                    3 * d
                ),
            ));
        }
        for (j, part) in ["attn_q", "attn_k", "attn_v"].iter().enumerate() {
            put(
                format!("{b}.{part}.weight"),
                qkv.narrow(0, j * d, d)?.contiguous()?,
            );
            put(
                format!("{b}.{part}.bias"),
                qkv_bias.narrow(0, j * d, d)?.contiguous()?,
            );
        }
        for (ours, theirs) in [
            ("attn_output", "attn.c_proj"),
            ("ffn_up", "mlp.c_fc"),
            ("ffn_down", "mlp.c_proj"),
        ] {
            put(
                format!("{b}.{ours}.weight"),
                transposed(&format!("{h}.{theirs}.weight"))?,
            );
            put(
                format!("{b}.{ours}.bias"),
                read(&format!("{h}.{theirs}.bias"))?,
            );
        }
    }
    Ok(TensorMap {
        path: folder.dir().to_path_buf(),
        tensors,
    })
}

/// The loader for `transformers`' GPT-2 checkpoints (`model::HF_ARCHITECTURES`).
pub fn load_hf(folder: &mut HfFolder, precision: Precision) -> Result<Box<dyn Model>> {
    let cfg = Config::from_hf(&folder.config, folder.dir())?;
    let activation = folder.config["activation_function"]
        .as_str()
        .unwrap_or("gelu_new");
    if !matches!(activation, "gelu_new" | "gelu_pytorch_tanh") {
        return Err(EngineError::corrupt(
            folder.dir(),
            format!("activation `{activation}` is not supported (GPT-2's `gelu_new` is)"),
        ));
    }
    let mut weights = rearrange(folder, &cfg)?;
    check_tensors(&weights, shapes(&cfg))?;
    let layout = Layout {
        embed_scale: None,
        gate: Gate::Gelu { ggml_table: false },
        layer_rope: vec![None; cfg.n_layer],
        layer_window: vec![None; cfg.n_layer],
        design: Architecture {
            family: "gpt2".into(),
            norm: format!("LayerNorm with bias, pre-norm, eps {:e}", cfg.rms_eps),
            activation: "GELU (tanh), ungated feed-forward with biases".into(),
            positions: format!(
                "learned absolute positions ({} x {}) added to the token embeddings",
                cfg.context_length, cfg.d_model
            ),
            attention: format!("{}, biases on Q, K, V and output", heads_in_words(&cfg)),
            tied_embeddings: true,
        },
    };
    Ok(Box::new(Decoder::load(
        &mut weights,
        cfg,
        precision,
        layout,
    )?))
}
