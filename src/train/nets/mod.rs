//! The trainable nets: each family in its own file, written on candle's
//! autograd with candle-nn's layers, its parameters under the Hugging Face
//! names so that a checkpoint is a folder both lmscope and transformers
//! open. These are not the inference engine's models (those run on our
//! own kernels and keep no graph); a trained folder is loaded there.

pub mod bert;
pub mod gpt2;
pub mod llama;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lora::LoraConfig;
use super::ops::{self, Dropout};
use super::params::Params;

/// The families the trainer builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// A BERT encoder: masked LM (15% of tokens, 80/10/10) + next-sentence prediction
    Bert,
    /// GPT-2: learned positions, LayerNorm, GELU, causal LM
    Gpt2,
    /// Llama: rotary positions, RMSNorm, SwiGLU, grouped-query attention, causal LM
    Llama,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::Gpt2 => "gpt2",
            Arch::Llama => "llama",
        }
    }

    /// Whether the objective is masked LM (+ NSP) rather than next-token.
    pub fn is_masked(self) -> bool {
        self == Arch::Bert
    }
}

/// A net's shape and regularisation: the fields of a `--size` TOML file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    #[serde(default = "default_arch")]
    pub arch: Arch,
    /// Filled from the tokenizer when 0.
    #[serde(default)]
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Key/value heads (Llama's grouped-query attention); n_head when absent.
    #[serde(default)]
    pub n_kv_head: Option<usize>,
    pub d_ff: usize,
    pub max_positions: usize,
    #[serde(default = "default_dropout")]
    pub dropout: f32,
    #[serde(default = "default_eps")]
    pub norm_eps: f64,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Special token ids, from the tokenizer.
    #[serde(default)]
    pub special: Special,
    /// LoRA adapters on these layers (fine-tuning); the rest frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Llama with its own output matrix (`lm_head.weight`) rather than the
    /// embeddings'.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untied_head: bool,
}

/// The token ids a config names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Special {
    pub pad: Option<u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
}

fn default_arch() -> Arch {
    Arch::Bert
}
fn default_dropout() -> f32 {
    0.1
}
fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}

impl NetConfig {
    /// The named sizes: `tiny` trains in minutes on two cores, `small` is
    /// four times the width of its layers.
    pub fn preset(arch: Arch, size: &str) -> Option<Self> {
        let (d_model, n_layer, n_head, d_ff, max_positions) = match size {
            "tiny" => (128, 2, 4, 512, 128),
            "small" => (256, 4, 4, 1024, 256),
            _ => return None,
        };
        Some(Self {
            arch,
            vocab_size: 0,
            d_model,
            n_layer,
            n_head,
            n_kv_head: (arch == Arch::Llama).then_some(n_head / 2),
            d_ff,
            max_positions,
            dropout: if arch == Arch::Llama { 0.0 } else { 0.1 },
            norm_eps: if arch == Arch::Bert { 1e-12 } else { 1e-5 },
            rope_theta: default_theta(),
            special: Special::default(),
            lora: None,
            untied_head: false,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_head
    }

    pub fn kv_heads(&self) -> usize {
        self.n_kv_head.unwrap_or(self.n_head)
    }

    /// Why these numbers cannot make a net, if they cannot.
    pub fn check(&self) -> std::result::Result<(), String> {
        let zero = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("d_ff", self.d_ff),
            ("max_positions", self.max_positions),
        ];
        if let Some((k, _)) = zero.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{k} must be above 0"));
        }
        if !self.d_model.is_multiple_of(self.n_head) {
            return Err(format!(
                "d_model {} is not a multiple of n_head {}",
                self.d_model, self.n_head
            ));
        }
        if !self.n_head.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "n_head {} is not a multiple of n_kv_head {}",
                self.n_head,
                self.kv_heads()
            ));
        }
        if self.arch == Arch::Llama && self.head_dim() % 2 == 1 {
            return Err("rotary positions need an even head size".into());
        }
        if let Some(l) = &self.lora {
            if self.arch != Arch::Llama {
                return Err(format!(
                    "LoRA is built for Llama's layers; fine-tune {} in full",
                    self.arch.name()
                ));
            }
            l.check()?;
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout {} is not in [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// The `config.json` transformers (and lmscope) read for this net.
    pub fn hf_config(&self) -> Value {
        match self.arch {
            Arch::Bert => bert::hf_config(self),
            Arch::Gpt2 => gpt2::hf_config(self),
            Arch::Llama => llama::hf_config(self),
        }
    }

    /// A folder's `config.json` as a net config, for the families we train.
    pub fn from_hf(config: &Value) -> std::result::Result<Self, String> {
        let model_type = config["model_type"].as_str().unwrap_or("");
        let n = |k: &str| -> std::result::Result<usize, String> {
            config[k]
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| format!("config.json has no `{k}`"))
        };
        let id = |k: &str| config[k].as_u64().map(|v| v as u32);
        let special = Special {
            pad: id("pad_token_id"),
            bos: id("bos_token_id"),
            eos: id("eos_token_id"),
        };
        let cfg = match model_type {
            "bert" => Self {
                arch: Arch::Bert,
                vocab_size: n("vocab_size")?,
                d_model: n("hidden_size")?,
                n_layer: n("num_hidden_layers")?,
                n_head: n("num_attention_heads")?,
                n_kv_head: None,
                d_ff: n("intermediate_size")?,
                max_positions: n("max_position_embeddings")?,
                dropout: config["hidden_dropout_prob"].as_f64().unwrap_or(0.1) as f32,
                norm_eps: config["layer_norm_eps"].as_f64().unwrap_or(1e-12),
                rope_theta: default_theta(),
                special: special.clone(),
                lora: None,
                untied_head: false,
            },
            "gpt2" => Self {
                arch: Arch::Gpt2,
                vocab_size: n("vocab_size")?,
                d_model: n("n_embd")?,
                n_layer: n("n_layer")?,
                n_head: n("n_head")?,
                n_kv_head: None,
                d_ff: config["n_inner"]
                    .as_u64()
                    .map(|v| v as usize)
                    .unwrap_or(4 * n("n_embd")?),
                max_positions: n("n_positions")?,
                dropout: config["resid_pdrop"].as_f64().unwrap_or(0.1) as f32,
                norm_eps: config["layer_norm_epsilon"].as_f64().unwrap_or(1e-5),
                rope_theta: default_theta(),
                special: special.clone(),
                lora: None,
                untied_head: false,
            },
            "llama" => Self {
                arch: Arch::Llama,
                vocab_size: n("vocab_size")?,
                d_model: n("hidden_size")?,
                n_layer: n("num_hidden_layers")?,
                n_head: n("num_attention_heads")?,
                n_kv_head: config["num_key_value_heads"].as_u64().map(|v| v as usize),
                d_ff: n("intermediate_size")?,
                max_positions: n("max_position_embeddings")?,
                dropout: config["attention_dropout"].as_f64().unwrap_or(0.0) as f32,
                norm_eps: config["rms_norm_eps"].as_f64().unwrap_or(1e-5),
                rope_theta: config["rope_parameters"]["rope_theta"]
                    .as_f64()
                    .or(config["rope_theta"].as_f64())
                    .unwrap_or(default_theta()),
                special: special.clone(),
                lora: None,
                untied_head: config["tie_word_embeddings"] == false,
            },
            other => {
                return Err(format!(
                    "lmscope trains bert, gpt2 and llama; this folder's model_type is `{other}`"
                ));
            }
        };
        cfg.check()?;
        Ok(cfg)
    }
}

/// A batch of padded sequences and what the loss asks of each position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub ids: Vec<Vec<u32>>,
    /// 1 for a real token, 0 for padding.
    pub mask: Vec<Vec<u32>>,
    /// Each token's segment (BERT's sentence A = 0, B = 1).
    pub types: Vec<Vec<u32>>,
    /// The token each position must predict, or -100 for none. Masked LM:
    /// the original token at a masked position. Causal: transformers'
    /// convention, the label at `i` is what position `i - 1` predicts.
    pub labels: Vec<Vec<i64>>,
    /// Next-sentence labels: 0 when B follows A, 1 when B is random.
    pub next: Option<Vec<u32>>,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    pub fn width(&self) -> usize {
        self.ids.first().map_or(0, Vec::len)
    }

    /// Tokens that are not padding.
    pub fn tokens(&self) -> usize {
        self.mask.iter().flatten().filter(|&&m| m == 1).count()
    }
}

/// A batch's loss, and its parts by name (`mlm`, `nsp`, `lm`).
pub struct Losses {
    pub total: Tensor,
    pub parts: Vec<(&'static str, f32)>,
    /// The token logits at the labelled positions, in [`labelled`]'s
    /// order (what a task metric reads the model's guesses from).
    pub logits: Option<Tensor>,
}

/// A trainable net.
pub trait Net: Send {
    fn config(&self) -> &NetConfig;

    /// The batch's loss as transformers computes it for this family.
    fn loss(&self, batch: &Batch, dropout: &mut Dropout) -> Result<Losses>;

    /// One sequence's attention, per layer `(heads, time, time)`, and the
    /// next-token (causal) or per-position (masked) log-probabilities
    /// `(time, vocab)`, without dropout.
    fn probe(&self, ids: &[u32]) -> Result<(Vec<Tensor>, Tensor)>;
}

/// A next-token net (GPT-2, Llama): its final hidden states and attention,
/// and its head; the loss and the probe follow from those.
pub(crate) trait Decoder: Send {
    fn cfg(&self) -> &NetConfig;
    fn hidden(&self, ids: &[Vec<u32>], dropout: &mut Dropout) -> Result<(Tensor, Vec<Tensor>)>;
    fn logits(&self, rows: &Tensor) -> Result<Tensor>;
}

impl<T: Decoder> Net for T {
    fn config(&self) -> &NetConfig {
        self.cfg()
    }

    fn loss(&self, batch: &Batch, dropout: &mut Dropout) -> Result<Losses> {
        let (x, _) = self.hidden(&batch.ids, dropout)?;
        causal_loss(&x, batch, |rows| self.logits(rows))
    }

    fn probe(&self, ids: &[u32]) -> Result<(Vec<Tensor>, Tensor)> {
        let (x, attention) = self.hidden(&[ids.to_vec()], &mut Dropout::off())?;
        one_sequence(&x, attention, |rows| self.logits(rows))
    }
}

/// The mean next-token loss over the labelled positions (the head run on
/// those rows only).
fn causal_loss(
    x: &Tensor,
    batch: &Batch,
    head: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Losses> {
    let (at, targets) = labelled(&batch.labels, true);
    if at.is_empty() {
        candle_core::bail!("the batch has no token to predict")
    }
    let logits = head(&ops::rows_at(x, &at)?)?;
    let lm = ops::cross_entropy(&logits, &targets)?;
    let value = ops::scalar(&lm)?;
    Ok(Losses {
        total: lm,
        parts: vec![("lm", value)],
        logits: Some(logits),
    })
}

/// A one-sequence pass's attention `(heads, time, time)` per layer and
/// log-probabilities `(time, vocab)`, from its `(1, time, d)` states.
pub(crate) fn one_sequence(
    x: &Tensor,
    attention: Vec<Tensor>,
    head: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<(Vec<Tensor>, Tensor)> {
    let logits = head(&x.squeeze(0)?)?;
    let attention = attention
        .into_iter()
        .map(|a| a.squeeze(0))
        .collect::<Result<_>>()?;
    Ok((
        attention,
        candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?,
    ))
}

/// Refuses a sequence longer than the net's position table.
pub(crate) fn check_length(t: usize, cfg: &NetConfig) -> Result<()> {
    if t > cfg.max_positions {
        candle_core::bail!(
            "{t} tokens is more than this model's {} positions",
            cfg.max_positions
        )
    }
    Ok(())
}

/// The net `cfg` describes, on `params` (read or freshly initialised).
pub fn build(cfg: &NetConfig, params: &Params) -> Result<Box<dyn Net>> {
    if let Err(why) = cfg.check() {
        candle_core::bail!("{why}")
    }
    let vb = params.builder();
    Ok(match cfg.arch {
        Arch::Bert => Box::new(bert::Bert::new(cfg.clone(), vb)?),
        Arch::Gpt2 => Box::new(gpt2::Gpt2::new(cfg.clone(), vb)?),
        Arch::Llama => Box::new(llama::Llama::new(cfg.clone(), vb)?),
    })
}

/// The flat positions (row * width + col) whose label is a token, and
/// those tokens.
pub fn labelled(labels: &[Vec<i64>], shift: bool) -> (Vec<u32>, Vec<u32>) {
    let width = labels.first().map_or(0, Vec::len);
    let mut at = Vec::new();
    let mut targets = Vec::new();
    for (r, row) in labels.iter().enumerate() {
        for (c, &l) in row.iter().enumerate() {
            if l < 0 {
                continue;
            }
            // Causal: position c - 1 predicts the label at c.
            let from = if shift {
                match c.checked_sub(1) {
                    Some(p) => p,
                    None => continue,
                }
            } else {
                c
            };
            at.push((r * width + from) as u32);
            targets.push(l as u32);
        }
    }
    (at, targets)
}
