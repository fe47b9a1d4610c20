//! A run's settings: what `trainer.json` keeps beside the net's config.

use std::path::PathBuf;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::optim::Schedule;

/// A run's settings (what `trainer.json` keeps with the net's config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub corpus: PathBuf,
    pub out: PathBuf,
    pub steps: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub lr: f64,
    pub warmup: usize,
    /// The rate at the last step, as a fraction of the peak.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    /// Gradient clipping: the most the joint gradient norm may be.
    pub clip: f64,
    pub seed: u64,
    pub eval_every: usize,
    pub val_fraction: f64,
    /// Learned tokenizer's size (ignored with an existing tokenizer).
    pub vocab_size: usize,
    /// The text whose predictions and attention each evaluation reports.
    pub probe: Option<String>,
    /// Set for a fine-tuning run (then `corpus` is its JSONL task data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finetune: Option<Finetune>,
}

/// What a fine-tuning run adds to the settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finetune {
    /// The base model: a Hugging Face folder or a GGUF file.
    pub model: PathBuf,
    /// Stop after this many evaluations without a better validation loss.
    pub patience: Option<usize>,
}

impl TrainConfig {
    pub fn check(&self) -> anyhow::Result<()> {
        let positive = [
            ("steps", self.steps),
            ("batch", self.batch),
            ("eval-every", self.eval_every),
        ];
        if let Some((k, _)) = positive.iter().find(|(_, v)| *v == 0) {
            bail!("--{k} must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a positive number");
        }
        if self.clip.is_nan() || self.clip <= 0.0 {
            bail!("--clip must be above 0");
        }
        if self
            .finetune
            .as_ref()
            .is_some_and(|f| f.patience == Some(0))
        {
            bail!("--patience must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            bail!("the final rate ratio must be in [0, 1]");
        }
        Ok(())
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            peak: self.lr,
            warmup: self.warmup,
            total: self.steps,
            min_ratio: self.min_lr_ratio,
        }
    }
}
