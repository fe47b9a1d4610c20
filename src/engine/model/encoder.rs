//! The bidirectional encoder BERT-style families share: token, learned
//! position and token-type embeddings summed and normalised, then blocks of
//! full (unmasked) self-attention and a GELU feed-forward layer, each added
//! to the residual and normalised after (post-LayerNorm); on top, the
//! masked-LM head (transform, LayerNorm, decoder tied to the embeddings)
//! and the next-sentence head (pooled [CLS], tanh, two logits) where the
//! checkpoint has them.
//!
//! Weights are read by GGUF's BERT names (`token_types.weight`,
//! `blk.N.attn_output_norm`, ...); each family's file (`bert.rs`,
//! `distilbert.rs`) renames its checkpoint to them. The heads, which GGUF
//! does not name, are `mlm.*`, `pooler.*` and `nsp.*` here.
//!
//! Everything runs in f32 through candle's matmuls, as transformers does
//! in fp32; each layer's attention probabilities are kept when asked.

use candle_core::{D, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};

use crate::engine::error::{EngineError, Result};
use crate::engine::load::weights::Weights;

/// Hyper-parameters of an encoder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EncoderConfig {
    pub n_layer: usize,
    pub n_head: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub vocab_size: usize,
    /// Positions the learned table holds (after `position_offset`).
    pub max_positions: usize,
    /// Rows of the token-type table (0 when there is none: DistilBERT).
    pub type_vocab_size: usize,
    pub norm_eps: f64,
    pub activation: Activation,
    /// The first position's row in the table (RoBERTa: padding id + 1).
    pub position_offset: usize,
}

/// The feed-forward layer's (and the MLM transform's) nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The exact GELU, x Φ(x) (transformers' `gelu`).
    GeluErf,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl Activation {
    /// From transformers' `hidden_act` / `activation` name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::GeluErf => x.gelu_erf()?,
            Self::GeluTanh => x.gelu()?,
            Self::Relu => x.relu()?,
        })
    }
}

/// What one pass over a sequence gives.
pub struct EncoderOutput {
    /// The last layer's hidden states (n, d_model).
    pub hidden: Tensor,
    /// Per layer, the attention probabilities (n_head, n, n), when asked.
    pub attention: Vec<Tensor>,
}

#[derive(Debug)]
struct Block {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

/// The masked-LM head: dense, activation, LayerNorm, then the decoder.
#[derive(Debug)]
struct MlmHead {
    dense: Linear,
    norm: LayerNorm,
    /// (vocab, d_model): the token embeddings where tied.
    decoder: Tensor,
    bias: Tensor,
}

/// The next-sentence head: the pooler (dense + tanh on [CLS]) and the
/// two-way classifier (IsNext first).
#[derive(Debug)]
struct NspHead {
    output: Linear,
}

#[derive(Debug)]
pub struct Encoder {
    pub cfg: EncoderConfig,
    embed: Tensor,
    positions: Tensor,
    types: Option<Tensor>,
    embed_norm: LayerNorm,
    blocks: Vec<Block>,
    pooler: Option<Linear>,
    mlm: Option<MlmHead>,
    nsp: Option<NspHead>,
}

fn linear(w: &mut dyn Weights, name: &str) -> Result<Linear> {
    let weight = w.dense(&format!("{name}.weight"))?;
    let bias_name = format!("{name}.bias");
    let bias = if w.has_tensor(&bias_name) {
        Some(w.dense(&bias_name)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

fn layer_norm(w: &mut dyn Weights, name: &str, eps: f64) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        w.dense(&format!("{name}.weight"))?,
        w.dense(&format!("{name}.bias"))?,
        eps,
    ))
}

/// Checks that `name` has `shape`, so a damaged or mislabelled checkpoint
/// is refused at load with the tensor named, not deep in a matmul.
fn expect_shape(w: &dyn Weights, name: &str, shape: &[usize]) -> Result<()> {
    let got = w.tensor_shape(name)?;
    if got != shape {
        return Err(EngineError::corrupt(
            w.path(),
            format!("tensor `{name}` has shape {got:?}, the config implies {shape:?}"),
        ));
    }
    Ok(())
}

impl Encoder {
    /// Reads every weight; the heads where the checkpoint has them.
    pub fn load(w: &mut dyn Weights, cfg: EncoderConfig) -> Result<Self> {
        let (d, f) = (cfg.d_model, cfg.d_ff);
        if cfg.n_head == 0 || !d.is_multiple_of(cfg.n_head) {
            return Err(EngineError::corrupt(
                w.path(),
                format!("width {d} does not split into {} heads", cfg.n_head),
            ));
        }
        expect_shape(w, "token_embd.weight", &[cfg.vocab_size, d])?;
        expect_shape(
            w,
            "position_embd.weight",
            &[cfg.max_positions + cfg.position_offset, d],
        )?;
        let types = if cfg.type_vocab_size > 0 && w.has_tensor("token_types.weight") {
            expect_shape(w, "token_types.weight", &[cfg.type_vocab_size, d])?;
            Some(w.dense("token_types.weight")?)
        } else {
            None
        };
        let eps = cfg.norm_eps;
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blk.{i}");
            for (name, shape) in [
                ("attn_q", [d, d]),
                ("attn_k", [d, d]),
                ("attn_v", [d, d]),
                ("attn_output", [d, d]),
                ("ffn_up", [f, d]),
                ("ffn_down", [d, f]),
            ] {
                expect_shape(w, &format!("{p}.{name}.weight"), &shape)?;
            }
            blocks.push(Block {
                q: linear(w, &format!("{p}.attn_q"))?,
                k: linear(w, &format!("{p}.attn_k"))?,
                v: linear(w, &format!("{p}.attn_v"))?,
                out: linear(w, &format!("{p}.attn_output"))?,
                attn_norm: layer_norm(w, &format!("{p}.attn_output_norm"), eps)?,
                up: linear(w, &format!("{p}.ffn_up"))?,
                down: linear(w, &format!("{p}.ffn_down"))?,
                out_norm: layer_norm(w, &format!("{p}.layer_output_norm"), eps)?,
            });
        }
        let embed = w.dense("token_embd.weight")?;
        let mlm = if w.has_tensor("mlm.dense.weight") {
            expect_shape(w, "mlm.dense.weight", &[d, d])?;
            let decoder = if w.has_tensor("mlm.decoder.weight") {
                expect_shape(w, "mlm.decoder.weight", &[cfg.vocab_size, d])?;
                w.dense("mlm.decoder.weight")?
            } else {
                embed.clone()
            };
            let bias = if w.has_tensor("mlm.bias") {
                w.dense("mlm.bias")?
            } else {
                Tensor::zeros(cfg.vocab_size, candle_core::DType::F32, &Device::Cpu)?
            };
            Some(MlmHead {
                dense: linear(w, "mlm.dense")?,
                norm: layer_norm(w, "mlm.norm", eps)?,
                decoder,
                bias,
            })
        } else {
            None
        };
        let pooler = if w.has_tensor("pooler.weight") {
            Some(linear(w, "pooler")?)
        } else {
            None
        };
        let nsp = match (&pooler, w.has_tensor("nsp.output.weight")) {
            (Some(_), true) => {
                expect_shape(w, "nsp.output.weight", &[2, d])?;
                Some(NspHead {
                    output: linear(w, "nsp.output")?,
                })
            }
            _ => None,
        };
        Ok(Self {
            positions: w.dense("position_embd.weight")?,
            embed_norm: layer_norm(w, "token_embd_norm", eps)?,
            embed,
            types,
            blocks,
            pooler,
            mlm,
            nsp,
            cfg,
        })
    }

    pub fn has_mlm_head(&self) -> bool {
        self.mlm.is_some()
    }

    pub fn has_nsp_head(&self) -> bool {
        self.nsp.is_some()
    }

    /// The learned position embeddings of positions 0..n (rows of d_model).
    pub fn learned_positions(&self, n: usize) -> Result<Vec<f32>> {
        let n = n.min(self.cfg.max_positions);
        Ok(self
            .positions
            .narrow(0, self.cfg.position_offset, n)?
            .flatten_all()?
            .to_vec1()?)
    }

    /// One sequence through every layer: `types` gives each token's
    /// segment (0 for the first sentence, 1 for the second). Attention
    /// sees every token both ways.
    pub fn forward(&self, ids: &[u32], types: &[u32], capture: bool) -> Result<EncoderOutput> {
        let n = ids.len();
        if n == 0 {
            return Err(EngineError::Input("the input has no tokens".into()));
        }
        if n > self.cfg.max_positions {
            return Err(EngineError::Input(format!(
                "the input is {n} tokens; this encoder reads at most {} (shorten it)",
                self.cfg.max_positions
            )));
        }
        let dev = Device::Cpu;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= self.cfg.vocab_size) {
            return Err(EngineError::Input(format!(
                "token id {bad} is outside the vocabulary ({})",
                self.cfg.vocab_size
            )));
        }
        let idx = Tensor::new(ids, &dev)?;
        let mut x = self.embed.index_select(&idx, 0)?;
        x = (x + self.positions.narrow(0, self.cfg.position_offset, n)?)?;
        if let Some(table) = &self.types {
            let rows = self.cfg.type_vocab_size as u32;
            let t: Vec<u32> = (0..n)
                .map(|i| types.get(i).copied().unwrap_or(0).min(rows - 1))
                .collect();
            x = (x + table.index_select(&Tensor::new(t.as_slice(), &dev)?, 0)?)?;
        }
        x = self.embed_norm.forward(&x)?;
        let (h, d) = (self.cfg.n_head, self.cfg.d_model);
        let hd = d / h;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut attention = Vec::new();
        for b in &self.blocks {
            let heads = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((n, h, hd))?.transpose(0, 1)?.contiguous()?)
            };
            let q = heads(b.q.forward(&x)?)?;
            let k = heads(b.k.forward(&x)?)?;
            let v = heads(b.v.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let p = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = p.matmul(&v)?.transpose(0, 1)?.reshape((n, d))?;
            if capture {
                attention.push(p);
            }
            let a = b.out.forward(&ctx)?;
            x = b.attn_norm.forward(&(a + &x)?)?;
            let up = self.cfg.activation.apply(&b.up.forward(&x)?)?;
            let f = b.down.forward(&up)?;
            x = b.out_norm.forward(&(f + &x)?)?;
        }
        Ok(EncoderOutput {
            hidden: x,
            attention,
        })
    }

    /// The masked-LM logits (positions.len(), vocab) at `positions` of the
    /// hidden states; None without an MLM head.
    pub fn mlm_logits(&self, hidden: &Tensor, positions: &[usize]) -> Result<Option<Tensor>> {
        let Some(head) = &self.mlm else {
            return Ok(None);
        };
        let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
        let rows = hidden.index_select(&Tensor::new(idx.as_slice(), &Device::Cpu)?, 0)?;
        let t = self.cfg.activation.apply(&head.dense.forward(&rows)?)?;
        let t = head.norm.forward(&t)?;
        let logits = t.matmul(&head.decoder.t()?)?.broadcast_add(&head.bias)?;
        Ok(Some(logits))
    }

    /// [P(IsNext), P(NotNext)] from the [CLS] position; None without the
    /// head.
    pub fn nsp_probs(&self, hidden: &Tensor) -> Result<Option<[f32; 2]>> {
        let (Some(pooler), Some(head)) = (&self.pooler, &self.nsp) else {
            return Ok(None);
        };
        let cls = hidden.narrow(0, 0, 1)?;
        let pooled = pooler.forward(&cls)?.tanh()?;
        let logits = head.output.forward(&pooled)?;
        let p: Vec<f32> = candle_nn::ops::softmax(&logits, D::Minus1)?
            .flatten_all()?
            .to_vec1()?;
        Ok(Some([p[0], p[1]]))
    }

    /// The sentence embedding sentence-transformers gives: the hidden
    /// states averaged over the tokens, then scaled to length 1.
    pub fn mean_pooled(&self, hidden: &Tensor) -> Result<Vec<f32>> {
        let mean: Vec<f32> = hidden.mean(0)?.to_vec1()?;
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        Ok(mean.iter().map(|v| v / norm).collect())
    }
}
