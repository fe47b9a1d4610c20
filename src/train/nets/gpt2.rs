//! GPT-2 (GPT2LMHeadModel): learned positions, pre-LN blocks, the tanh
//! GELU, Conv1D weights stored `(in, out)`, the head tied to the token
//! embeddings; residual projections initialised with std 0.02/sqrt(2L) as
//! transformers does.

use candle_core::{D, Result, Tensor};
use candle_nn::{Embedding, Module, VarBuilder};
use serde_json::{Value, json};

use super::{Decoder, NetConfig, check_length};
use crate::train::ops::{self, Dropout, LayerNorm};
use crate::train::params::INIT_STD;

/// GPT-2's Conv1D: `x @ w + b` with `w` `(in, out)`.
struct Conv1D {
    w: Tensor,
    b: Tensor,
}

impl Conv1D {
    fn new(d_in: usize, d_out: usize, std: f32, vb: VarBuilder) -> Result<Self> {
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: std as f64,
        };
        Ok(Self {
            w: vb.get_with_hints((d_in, d_out), "weight", init)?,
            b: vb.get_with_hints(d_out, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.w)?.broadcast_add(&self.b)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
}

pub struct Gpt2 {
    cfg: NetConfig,
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt2 {
    pub fn new(cfg: NetConfig, vb: VarBuilder) -> Result<Self> {
        let (d, eps) = (cfg.d_model, cfg.norm_eps);
        let t = vb.pp("transformer");
        let resid_std = INIT_STD / (2.0 * cfg.n_layer as f32).sqrt();
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let h = t.pp("h").pp(i);
                Ok(Block {
                    ln_1: LayerNorm::new(d, eps, h.pp("ln_1"))?,
                    c_attn: Conv1D::new(d, 3 * d, INIT_STD, h.pp("attn.c_attn"))?,
                    attn_proj: Conv1D::new(d, d, resid_std, h.pp("attn.c_proj"))?,
                    ln_2: LayerNorm::new(d, eps, h.pp("ln_2"))?,
                    c_fc: Conv1D::new(d, cfg.d_ff, INIT_STD, h.pp("mlp.c_fc"))?,
                    mlp_proj: Conv1D::new(cfg.d_ff, d, resid_std, h.pp("mlp.c_proj"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            wte: ops::embedding(cfg.vocab_size, d, t.pp("wte"))?,
            wpe: ops::embedding(cfg.max_positions, d, t.pp("wpe"))?,
            blocks,
            ln_f: LayerNorm::new(d, eps, t.pp("ln_f"))?,
            cfg,
        })
    }

    /// The final hidden states `(batch, time, d)` and each block's attention.
    fn hidden(&self, ids: &[Vec<u32>], dropout: &mut Dropout) -> Result<(Tensor, Vec<Tensor>)> {
        let dev = self.ln_f.weight.device();
        let (b, t) = (ids.len(), ids.first().map_or(0, Vec::len));
        check_length(t, &self.cfg)?;
        let pos = Tensor::arange(0u32, t as u32, dev)?;
        let x = self
            .wte
            .forward(&ops::ids_tensor(ids, dev)?)?
            .broadcast_add(&self.wpe.forward(&pos)?)?;
        let mut x = dropout.apply(&x)?;
        // Right padding: real positions never see a padded one, so the
        // causal mask is the whole mask.
        let bias = ops::causal_bias(t, dev)?;
        let (h, hd, d) = (self.cfg.n_head, self.cfg.head_dim(), self.cfg.d_model);
        let mut attention = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let qkv = blk.c_attn.forward(&blk.ln_1.forward(&x)?)?;
            let heads = |i: usize| -> Result<Tensor> {
                qkv.narrow(D::Minus1, i * d, d)?
                    .reshape((b, t, h, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (ctx, probs) =
                ops::attend(&heads(0)?, &heads(1)?, &heads(2)?, Some(&bias), dropout)?;
            attention.push(probs);
            let ctx = ctx.transpose(1, 2)?.reshape((b, t, d))?;
            x = (&x + dropout.apply(&blk.attn_proj.forward(&ctx)?)?)?;
            let m = blk.c_fc.forward(&blk.ln_2.forward(&x)?)?.gelu()?;
            x = (&x + dropout.apply(&blk.mlp_proj.forward(&m)?)?)?;
        }
        Ok((self.ln_f.forward(&x)?, attention))
    }
}

impl Decoder for Gpt2 {
    fn cfg(&self) -> &NetConfig {
        &self.cfg
    }

    fn hidden(&self, ids: &[Vec<u32>], dropout: &mut Dropout) -> Result<(Tensor, Vec<Tensor>)> {
        Gpt2::hidden(self, ids, dropout)
    }

    fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        rows.matmul(&self.wte.embeddings().t()?)
    }
}

pub fn hf_config(cfg: &NetConfig) -> Value {
    let eos = cfg.special.eos.unwrap_or(0);
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": cfg.d_ff,
        "n_positions": cfg.max_positions,
        "activation_function": "gelu_new",
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": cfg.norm_eps,
        "initializer_range": INIT_STD,
        "bos_token_id": cfg.special.bos.unwrap_or(eos),
        "eos_token_id": eos,
        "tie_word_embeddings": true,
        "dtype": "float32",
    })
}
