//! Masked language models (BERT, RoBERTa, DistilBERT): what lmscope asks
//! of an encoder. Fill-mask, next-sentence prediction, sentence
//! embeddings, every layer's bidirectional attention, pseudo-log-likelihoods
//! (each token masked in turn) and masked text generation
//! ([`generate::MaskedGeneration`]).

pub mod generate;
pub mod handle;
pub mod tokenizer;

use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::engine::error::{EngineError, Result};
use crate::engine::load::safetensors::HfFolder;
use crate::engine::model::encoder::{Encoder, EncoderConfig, EncoderOutput};
use crate::engine::model::hf_encoder_loader;
use crate::engine::types::AttentionRows;
pub use tokenizer::{Encoded, MaskTokenizer};

/// What `info` shows of an encoder.
#[derive(Clone, Debug, Serialize)]
pub struct EncoderInfo {
    pub path: String,
    pub name: String,
    /// `config.json`'s `model_type`.
    pub architecture: String,
    pub file_bytes: u64,
    pub parameters: u64,
    pub tensor_types: Vec<(String, usize)>,
    pub config: EncoderConfig,
    pub mlm_head: bool,
    pub nsp_head: bool,
    pub mask_token: Option<(u32, String)>,
    pub cls_token: Option<(u32, String)>,
    pub sep_token: Option<(u32, String)>,
}

/// One candidate for a masked position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FillCandidate {
    pub token_id: u32,
    pub text: String,
    pub p: f32,
}

/// The candidates for one mask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskFill {
    /// Position in the tokens (special tokens counted).
    pub position: usize,
    pub top: Vec<FillCandidate>,
}

/// A token of the input, for display.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    pub token_id: u32,
    pub text: String,
    pub special: bool,
}

/// Every mask of a text filled independently, as BERT was trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FillResult {
    pub masks: Vec<MaskFill>,
    pub tokens: Vec<TokenView>,
}

pub struct MaskedEngine {
    encoder: Encoder,
    tokenizer: MaskTokenizer,
    info: EncoderInfo,
}

/// Softmax of one row, in f64 for the sum.
pub(crate) fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&l| (l as f64 - max).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| (v / z) as f32).collect()
}

/// ln softmax(row)[id], in f64.
fn log_prob(row: &[f32], id: u32) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
    row[id as usize] as f64 - max - z.ln()
}

impl MaskedEngine {
    /// Loads a Hugging Face folder holding an encoder.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut folder = HfFolder::open(dir)?;
        let load = hf_encoder_loader(&folder)?;
        let tok_config = folder.sidecar("tokenizer_config.json")?;
        let tokenizer = MaskTokenizer::load(dir, &tok_config)?;
        let encoder = load(&mut folder)?;
        if tokenizer.vocab_size() > encoder.cfg.vocab_size {
            return Err(EngineError::corrupt(
                dir,
                format!(
                    "the tokenizer has {} tokens but the model's embedding has {} rows",
                    tokenizer.vocab_size(),
                    encoder.cfg.vocab_size
                ),
            ));
        }
        let named = |id: Option<u32>| id.map(|i| (i, tokenizer.token_text(i)));
        let info = EncoderInfo {
            path: dir.display().to_string(),
            name: crate::engine::folder_name(dir),
            architecture: folder.model_type()?.to_string(),
            file_bytes: folder.file_bytes,
            parameters: folder.parameters(),
            tensor_types: folder.dtype_counts(),
            config: encoder.cfg.clone(),
            mlm_head: encoder.has_mlm_head(),
            nsp_head: encoder.has_nsp_head(),
            mask_token: named(tokenizer.mask),
            cls_token: named(tokenizer.cls),
            sep_token: named(tokenizer.sep),
        };
        Ok(Self {
            encoder,
            tokenizer,
            info,
        })
    }

    pub fn info(&self) -> &EncoderInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &MaskTokenizer {
        &self.tokenizer
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// `text` (and the pair's second sentence) as the model reads them,
    /// checked against the model's length.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let e = self.tokenizer.encode(text, pair)?;
        let limit = self.encoder.cfg.max_positions;
        if e.ids.len() > limit {
            return Err(EngineError::Input(format!(
                "the input is {} tokens, special tokens included; {} reads at most {limit}: shorten it",
                e.ids.len(),
                self.info.name
            )));
        }
        Ok(e)
    }

    pub fn tokens(&self, ids: &[u32]) -> Vec<TokenView> {
        ids.iter()
            .map(|&id| TokenView {
                token_id: id,
                text: self.tokenizer.token_text(id),
                special: self.tokenizer.is_special(id),
            })
            .collect()
    }

    pub fn forward(&self, e: &Encoded, capture: bool) -> Result<EncoderOutput> {
        self.encoder.forward(&e.ids, &e.types, capture)
    }

    /// Why this model cannot fill masks, if it cannot.
    pub fn mlm_missing(&self) -> Option<String> {
        if !self.encoder.has_mlm_head() {
            Some(format!(
                "{} has no masked-LM head (its checkpoint is the bare encoder, as sentence-transformers saves it): fill-mask needs a *ForMaskedLM or BertForPreTraining checkpoint; attention and `lmscope embed` work on it",
                self.info.name
            ))
        } else if self.tokenizer.mask.is_none() {
            Some(format!("{}'s tokenizer has no mask token", self.info.name))
        } else {
            None
        }
    }

    fn require_mlm(&self) -> Result<u32> {
        match self.mlm_missing() {
            Some(why) => Err(EngineError::Input(why)),
            None => Ok(self.tokenizer.mask.expect("checked")),
        }
    }

    /// The masked-LM logits at `positions` (rows of vocab).
    pub fn logits_at(&self, hidden: &Tensor, positions: &[usize]) -> Result<Vec<Vec<f32>>> {
        self.require_mlm()?;
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let t = self
            .encoder
            .mlm_logits(hidden, positions)?
            .expect("checked");
        Ok(t.to_vec2()?)
    }

    /// Where `ids` hold the mask token.
    pub fn mask_positions(&self, ids: &[u32]) -> Vec<usize> {
        let mask = self.tokenizer.mask;
        ids.iter()
            .enumerate()
            .filter(|(_, id)| Some(**id) == mask)
            .map(|(i, _)| i)
            .collect()
    }

    /// Each mask in `text` filled on its own: its `top_k` candidates.
    pub fn fill(&self, text: &str, top_k: usize) -> Result<FillResult> {
        let mask = self.require_mlm()?;
        let e = self.encode(text, None)?;
        let positions = self.mask_positions(&e.ids);
        if positions.is_empty() {
            return Err(EngineError::Input(format!(
                "the text has no mask; write {} where a word should be filled in",
                self.tokenizer.token_text(mask)
            )));
        }
        let out = self.forward(&e, false)?;
        Ok(FillResult {
            masks: self.fills_at(&out.hidden, &positions, top_k)?,
            tokens: self.tokens(&e.ids),
        })
    }

    /// The `top_k` candidates at each of `positions` from a pass's hidden
    /// states.
    pub fn fills_at(
        &self,
        hidden: &Tensor,
        positions: &[usize],
        top_k: usize,
    ) -> Result<Vec<MaskFill>> {
        let rows = self.logits_at(hidden, positions)?;
        Ok(positions
            .iter()
            .zip(rows)
            .map(|(&position, row)| MaskFill {
                position,
                top: self.top(&softmax(&row), top_k),
            })
            .collect())
    }

    /// The `k` most probable tokens of a distribution.
    pub fn top(&self, p: &[f32], k: usize) -> Vec<FillCandidate> {
        let mut idx: Vec<usize> = (0..p.len()).collect();
        let by = |a: &usize, b: &usize| p[*b].total_cmp(&p[*a]).then(a.cmp(b));
        let k = k.min(idx.len());
        if k > 0 && k < idx.len() {
            idx.select_nth_unstable_by(k - 1, by);
        }
        idx.truncate(k);
        idx.sort_by(by);
        idx.into_iter()
            .map(|i| FillCandidate {
                token_id: i as u32,
                text: self.tokenizer.token_text(i as u32),
                p: p[i],
            })
            .collect()
    }

    /// P(IsNext) of `b` following `a`, from the next-sentence head.
    pub fn next_sentence(&self, a: &str, b: &str) -> Result<f32> {
        if !self.encoder.has_nsp_head() {
            return Err(EngineError::Input(format!(
                "{} has no next-sentence head: only BERT checkpoints saved with it (BertForPreTraining, BertForNextSentencePrediction) can score sentence pairs; RoBERTa and DistilBERT were trained without",
                self.info.name
            )));
        }
        let e = self.encode(a, Some(b))?;
        let out = self.forward(&e, false)?;
        Ok(self.encoder.nsp_probs(&out.hidden)?.expect("checked")[0])
    }

    /// The sentence embedding (mean of the last hidden states, length 1).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let e = self.encode(text, None)?;
        let out = self.forward(&e, false)?;
        self.encoder.mean_pooled(&out.hidden)
    }

    /// Every layer's and head's attention over the whole input, each query
    /// over every key (both directions).
    pub fn attention(&self, e: &Encoded) -> Result<AttentionRows> {
        let out = self.forward(e, true)?;
        attention_rows(&out.attention, e.ids.len())
    }

    /// ln P(token at p | the rest) for each of `positions`, the token at p
    /// replaced by the mask: the terms of a pseudo-log-likelihood.
    pub fn masked_log_probs(&self, e: &Encoded, positions: &[usize]) -> Result<Vec<f64>> {
        let mask = self.require_mlm()?;
        positions
            .iter()
            .map(|&p| {
                let mut m = e.clone();
                let original = *m.ids.get(p).ok_or(EngineError::PositionOutOfRange {
                    position: p,
                    len: e.ids.len(),
                })?;
                m.ids[p] = mask;
                let out = self.forward(&m, false)?;
                let row = &self.logits_at(&out.hidden, &[p])?[0];
                Ok(log_prob(row, original))
            })
            .collect()
    }
}

/// Whether `path` is a Hugging Face folder holding an encoder lmscope runs
/// (its `config.json` names one of [`crate::engine::model::HF_ENCODERS`]).
pub fn is_masked_model(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path.join("config.json")) else {
        return false;
    };
    let config: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let model_type = config["model_type"].as_str().unwrap_or_default();
    crate::engine::model::HF_ENCODERS
        .iter()
        .any(|(name, _)| *name == model_type)
}

/// Per-layer (n_head, n, n) probabilities as one [`AttentionRows`].
pub fn attention_rows(layers: &[Tensor], n: usize) -> Result<AttentionRows> {
    let n_head = layers.first().map(|t| t.dims()[0]).unwrap_or(0);
    let mut data = Vec::with_capacity(layers.len() * n_head * n * n);
    for l in layers {
        data.extend(l.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(AttentionRows {
        n_layer: layers.len(),
        n_head,
        n_query: n,
        n_key: n,
        first_query: 0,
        data,
    })
}
