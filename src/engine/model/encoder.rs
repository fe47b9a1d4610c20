//! The bidirectional encoder BERT-style families share: token, learned
//! position and token-type embeddings summed and normalised, then blocks of
//! full (unmasked) self-attention and a GELU feed-forward layer, each added
//! to the residual and normalised after (post-LayerNorm); on top, the
//! masked-LM head (transform, LayerNorm, decoder tied to the embeddings)
//! and the next-sentence head (pooled `[CLS]`, tanh, two logits) where the
//! checkpoint has them.
//!
//! Weights are read by GGUF's BERT names (`token_types.weight`,
//! `blk.N.attn_output_norm`, ...); each family's file (`bert.rs`,
//! `distilbert.rs`) renames its checkpoint to them. The heads, which GGUF
//! does not name, are `mlm.*`, `pooler.*` and `nsp.*` here.
//!
//! Everything runs in f32, as transformers does in fp32: the dense layers,
//! attention and GELU on our pool (`kernels::dense`), each layer's
//! attention probabilities kept when asked.

use candle_core::{D, Device, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels;
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

    pub fn describe(self) -> &'static str {
        match self {
            Self::GeluErf => "GELU (exact, erf)",
            Self::GeluTanh => "GELU (tanh approximation)",
            Self::Relu => "ReLU",
        }
    }

    fn apply_in_place(self, x: &mut [f32]) {
        match self {
            Self::GeluErf => kernels::gelu_erf(x),
            Self::GeluTanh => x.iter_mut().for_each(|v| *v = kernels::gelu_tanh(*v)),
            Self::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
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
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

/// A LayerNorm over rows, in place (mean and variance in f64: a row's
/// few hundred values, summed once).
#[derive(Debug)]
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f64,
}

impl Norm {
    fn load(w: &mut dyn Weights, name: &str, eps: f64) -> Result<Self> {
        Ok(Self {
            weight: w.dense(&format!("{name}.weight"))?.to_vec1()?,
            bias: w.dense(&format!("{name}.bias"))?.to_vec1()?,
            eps,
        })
    }

    fn apply(&self, x: &mut [f32]) {
        let d = self.weight.len();
        for row in x.chunks_exact_mut(d) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = ((*v as f64 - mean) * inv) as f32 * g + b;
            }
        }
    }
}

fn add(a: &mut [f32], b: &[f32]) {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
}

/// The masked-LM head: dense, activation, LayerNorm, then the decoder.
#[derive(Debug)]
struct MlmHead {
    dense: Linear,
    norm: Norm,
    /// (vocab, d_model) with the output bias: the token embeddings where
    /// tied.
    decoder: Linear,
}

/// The next-sentence head: the pooler (dense + tanh on `[CLS]`) and the
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
    embed_norm: Norm,
    blocks: Vec<Block>,
    pooler: Option<Linear>,
    mlm: Option<MlmHead>,
    nsp: Option<NspHead>,
}

/// A dense layer y = x Wᵀ + b, run by our kernel (blocks of output
/// columns on the pool) rather than candle's, whose threading costs more
/// than it saves on a sentence's few rows.
#[derive(Debug)]
struct Linear {
    /// (out, in), row-major.
    weight: Vec<f32>,
    out: usize,
    bias: Option<Vec<f32>>,
}

impl Linear {
    /// x: (rows, in) -> (rows, out).
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        kernels::linear_f32(
            x,
            rows,
            &self.weight,
            self.out,
            self.bias.as_deref(),
            &mut y,
        );
        y
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.dims()[0];
        let y = self.apply(&x.flatten_all()?.to_vec1()?, rows);
        Ok(Tensor::from_vec(y, (rows, self.out), &Device::Cpu)?)
    }
}

fn linear(w: &mut dyn Weights, name: &str) -> Result<Linear> {
    let weight = w.dense(&format!("{name}.weight"))?;
    let out = weight.dims()[0];
    let bias_name = format!("{name}.bias");
    let bias = if w.has_tensor(&bias_name) {
        Some(w.dense(&bias_name)?.to_vec1()?)
    } else {
        None
    };
    Ok(Linear {
        weight: weight.flatten_all()?.to_vec1()?,
        out,
        bias,
    })
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
                attn_norm: Norm::load(w, &format!("{p}.attn_output_norm"), eps)?,
                up: linear(w, &format!("{p}.ffn_up"))?,
                down: linear(w, &format!("{p}.ffn_down"))?,
                out_norm: Norm::load(w, &format!("{p}.layer_output_norm"), eps)?,
            });
        }
        let embed = w.dense("token_embd.weight")?;
        let mlm = if w.has_tensor("mlm.dense.weight") {
            expect_shape(w, "mlm.dense.weight", &[d, d])?;
            let weight = if w.has_tensor("mlm.decoder.weight") {
                expect_shape(w, "mlm.decoder.weight", &[cfg.vocab_size, d])?;
                w.dense("mlm.decoder.weight")?
            } else {
                embed.clone()
            };
            let bias = if w.has_tensor("mlm.bias") {
                Some(w.dense("mlm.bias")?.to_vec1()?)
            } else {
                None
            };
            Some(MlmHead {
                dense: linear(w, "mlm.dense")?,
                norm: Norm::load(w, "mlm.norm", eps)?,
                decoder: Linear {
                    weight: weight.flatten_all()?.to_vec1()?,
                    out: cfg.vocab_size,
                    bias,
                },
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
            embed_norm: Norm::load(w, "token_embd_norm", eps)?,
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
        let (h, d) = (self.cfg.n_head, self.cfg.d_model);
        let mut x: Vec<f32> = x.flatten_all()?.to_vec1()?;
        self.embed_norm.apply(&mut x);
        let mut attention = Vec::new();
        let mut ctx = vec![0f32; n * d];
        for b in &self.blocks {
            let (q, k, v) = (b.q.apply(&x, n), b.k.apply(&x, n), b.v.apply(&x, n));
            let mut probs = capture.then(|| vec![0f32; h * n * n]);
            kernels::attend_full_f32([&q, &k, &v], n, h, d / h, &mut ctx, probs.as_deref_mut());
            if let Some(p) = probs {
                attention.push(Tensor::from_vec(p, (h, n, n), &dev)?);
            }
            let mut a = b.out.apply(&ctx, n);
            add(&mut a, &x);
            b.attn_norm.apply(&mut a);
            x = a;
            let mut up = b.up.apply(&x, n);
            self.cfg.activation.apply_in_place(&mut up);
            let mut f = b.down.apply(&up, n);
            add(&mut f, &x);
            b.out_norm.apply(&mut f);
            x = f;
        }
        let x = Tensor::from_vec(x, (n, d), &dev)?;
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
        let n = positions.len();
        let mut t = head.dense.apply(&rows.flatten_all()?.to_vec1()?, n);
        self.cfg.activation.apply_in_place(&mut t);
        head.norm.apply(&mut t);
        let logits = head.decoder.apply(&t, n);
        Ok(Some(Tensor::from_vec(
            logits,
            (n, self.cfg.vocab_size),
            &Device::Cpu,
        )?))
    }

    /// [P(IsNext), P(NotNext)] from the `[CLS]` position; None without the
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
