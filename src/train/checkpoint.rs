//! Checkpoints are Hugging Face folders (config.json, model.safetensors,
//! tokenizer.json, tokenizer_config.json) that lmscope and transformers
//! both open; a resumable one also holds the optimiser's moments
//! (optimizer.safetensors) and the run's state (trainer.json). Each is
//! written whole or not at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::nets::NetConfig;
use super::settings::TrainConfig;
use crate::store::atomic;

/// What `trainer.json` records: enough to carry on exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: usize,
    pub train: TrainConfig,
    pub net: NetConfig,
    pub corpus_sha256: String,
    pub best: Option<Best>,
    /// Every step's training loss and rate, and every evaluation, so a
    /// resumed run's charts start where they stopped.
    pub history: History,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub step: usize,
    pub val_loss: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct History {
    pub train_loss: Vec<f32>,
    pub rate: Vec<f64>,
    /// (step, validation loss)
    pub val_loss: Vec<(usize, f64)>,
}

/// The folders a run writes under its output folder.
pub fn last_dir(out: &Path) -> PathBuf {
    out.join("last")
}

pub fn best_dir(out: &Path) -> PathBuf {
    out.join("best")
}

/// What a resumable checkpoint keeps beyond the model.
pub struct ResumeParts<'a> {
    pub moments: &'a HashMap<String, Tensor>,
    pub state: &'a TrainerState,
    /// A LoRA run's adapters (the model file has them merged in).
    pub adapters: Option<&'a HashMap<String, Tensor>>,
}

/// The adapters' file in a LoRA run's resumable checkpoint (PEFT's name).
pub const ADAPTERS: &str = "adapter_model.safetensors";

/// The model as a Hugging Face folder at `dir` (its `tokenizer_config.json`
/// `tok_config`, or the trainer's own), with the optimiser's state and the
/// run's when `resumable` is given.
pub fn write(
    dir: &Path,
    net: &NetConfig,
    tensors: &HashMap<String, Tensor>,
    tokenizer: &Tokenizer,
    tok_config: Option<&serde_json::Value>,
    resumable: Option<ResumeParts>,
) -> anyhow::Result<()> {
    atomic::write_dir(dir, |tmp| {
        let json =
            |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("JSON values serialise");
        std::fs::write(tmp.join("config.json"), json(&net.hf_config()))?;
        candle_core::safetensors::save(tensors, tmp.join("model.safetensors"))?;
        let tok = tokenizer
            .to_string(true)
            .map_err(|e| anyhow::anyhow!("saving the tokenizer: {e}"))?;
        std::fs::write(tmp.join("tokenizer.json"), tok)?;
        let tok_config = tok_config
            .cloned()
            .unwrap_or_else(|| super::tokenizer::tokenizer_config(net.arch.is_masked()));
        std::fs::write(tmp.join("tokenizer_config.json"), json(&tok_config))?;
        if let Some(r) = resumable {
            candle_core::safetensors::save(r.moments, tmp.join("optimizer.safetensors"))?;
            std::fs::write(
                tmp.join("trainer.json"),
                serde_json::to_vec_pretty(r.state)?,
            )?;
            if let Some(a) = r.adapters {
                candle_core::safetensors::save(a, tmp.join(ADAPTERS))?;
            }
        }
        Ok(())
    })
}

/// A resumable checkpoint read back: the run's state, the weights, the
/// optimiser's moments and the tokenizer.
pub struct Resumable {
    pub state: TrainerState,
    pub tensors: HashMap<String, Tensor>,
    pub moments: HashMap<String, Tensor>,
    pub adapters: Option<HashMap<String, Tensor>>,
    pub tokenizer: Tokenizer,
}

/// Reads the resumable checkpoint of a run's output folder (or of a
/// `last` folder named directly).
pub fn read_resumable(dir: &Path) -> anyhow::Result<Resumable> {
    let last = if dir.join("trainer.json").is_file() {
        dir.to_path_buf()
    } else {
        atomic::recover_dir(&last_dir(dir)).with_context(|| {
            format!(
                "{} holds no resumable checkpoint (a `last` folder with trainer.json); resume names a run's --out folder",
                dir.display()
            )
        })?
    };
    let state: TrainerState = serde_json::from_slice(
        &std::fs::read(last.join("trainer.json")).context("reading trainer.json")?,
    )
    .with_context(|| format!("{}/trainer.json is not a trainer state", last.display()))?;
    let load = |name: &str| {
        candle_core::safetensors::load(last.join(name), &Device::Cpu)
            .with_context(|| format!("reading {}/{name}", last.display()))
    };
    let tokenizer = Tokenizer::from_file(last.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("reading {}/tokenizer.json: {e}", last.display()))?;
    Ok(Resumable {
        tensors: load("model.safetensors")?,
        moments: load("optimizer.safetensors")?,
        adapters: match last.join(ADAPTERS).is_file() {
            true => Some(load(ADAPTERS)?),
            false => None,
        },
        state,
        tokenizer,
    })
}
