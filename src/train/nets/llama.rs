//! Llama (LlamaForCausalLM; SmolLM2 is one): pre-RMSNorm blocks, rotary
//! positions (transformers' half-split layout), grouped-query attention,
//! the SwiGLU MLP, no biases; the head tied to the embeddings unless the
//! checkpoint has its own `lm_head.weight`.

use candle_core::{D, Result, Tensor};
use candle_nn::{Embedding, Module, VarBuilder};
use serde_json::{Value, json};

use super::{Decoder, NetConfig, check_length};
use crate::train::ops::{self, Dropout, Proj, RmsNorm};

struct Block {
    attn_norm: RmsNorm,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    mlp_norm: RmsNorm,
    gate: Proj,
    up: Proj,
    down: Proj,
}

pub struct Llama {
    cfg: NetConfig,
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    /// None: tied to the embeddings.
    lm_head: Option<Tensor>,
}

impl Llama {
    pub fn new(cfg: NetConfig, vb: VarBuilder) -> Result<Self> {
        let (d, eps, hd) = (cfg.d_model, cfg.norm_eps, cfg.head_dim());
        let kv = cfg.kv_heads() * hd;
        let m = vb.pp("model");
        let lora = cfg.lora.as_ref();
        let proj = |i: usize, o: usize, vb: VarBuilder| Proj::new(i, o, false, lora, vb);
        let blocks = (0..cfg.n_layer)
            .map(|i| {
                let l = m.pp("layers").pp(i);
                Ok(Block {
                    attn_norm: RmsNorm::new(d, eps, l.pp("input_layernorm"))?,
                    q: proj(d, cfg.n_head * hd, l.pp("self_attn.q_proj"))?,
                    k: proj(d, kv, l.pp("self_attn.k_proj"))?,
                    v: proj(d, kv, l.pp("self_attn.v_proj"))?,
                    o: proj(cfg.n_head * hd, d, l.pp("self_attn.o_proj"))?,
                    mlp_norm: RmsNorm::new(d, eps, l.pp("post_attention_layernorm"))?,
                    gate: proj(d, cfg.d_ff, l.pp("mlp.gate_proj"))?,
                    up: proj(d, cfg.d_ff, l.pp("mlp.up_proj"))?,
                    down: proj(cfg.d_ff, d, l.pp("mlp.down_proj"))?,
                })
            })
            .collect::<Result<_>>()?;
        let lm_head = if cfg.untied_head || vb.contains_tensor("lm_head.weight") {
            Some(vb.get((cfg.vocab_size, d), "lm_head.weight")?)
        } else {
            None
        };
        Ok(Self {
            embed: ops::embedding(cfg.vocab_size, d, m.pp("embed_tokens"))?,
            blocks,
            norm: RmsNorm::new(d, eps, m.pp("norm"))?,
            lm_head,
            cfg,
        })
    }

    /// `(time, head_dim)` cos and sin of each position's rotation, the
    /// frequencies repeated over both halves as transformers lays them.
    fn rotation(&self, t: usize) -> Result<(Tensor, Tensor)> {
        let hd = self.cfg.head_dim();
        let dev = self.norm.weight.device();
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / self.cfg.rope_theta.powf(2.0 * i as f64 / hd as f64) as f32)
            .collect();
        let angles: Vec<f32> = (0..t)
            .flat_map(|p| {
                let row: Vec<f32> = inv.iter().map(|f| p as f32 * f).collect();
                [row.clone(), row].concat()
            })
            .collect();
        let angles = Tensor::from_vec(angles, (t, hd), dev)?;
        Ok((angles.cos()?, angles.sin()?))
    }

    fn hidden(&self, ids: &[Vec<u32>], dropout: &mut Dropout) -> Result<(Tensor, Vec<Tensor>)> {
        let dev = self.norm.weight.device();
        let (b, t) = (ids.len(), ids.first().map_or(0, Vec::len));
        check_length(t, &self.cfg)?;
        let (h, kvh, hd) = (self.cfg.n_head, self.cfg.kv_heads(), self.cfg.head_dim());
        let (cos, sin) = self.rotation(t)?;
        let rotate = |x: Tensor| -> Result<Tensor> {
            let half = hd / 2;
            let x1 = x.narrow(D::Minus1, 0, half)?;
            let x2 = x.narrow(D::Minus1, half, half)?;
            let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
            x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
        };
        let split = |y: Tensor, n: usize| -> Result<Tensor> {
            y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()
        };
        // Each key/value head serves n_head / n_kv_head query heads.
        let widen = |y: Tensor| -> Result<Tensor> {
            if kvh == h {
                return Ok(y);
            }
            y.unsqueeze(2)?
                .broadcast_as((b, kvh, h / kvh, t, hd))?
                .contiguous()?
                .reshape((b, h, t, hd))
        };
        let bias = ops::causal_bias(t, dev)?;
        let mut x = self.embed.forward(&ops::ids_tensor(ids, dev)?)?;
        let mut attention = Vec::with_capacity(self.blocks.len());
        for blk in &self.blocks {
            let n = blk.attn_norm.forward(&x)?;
            let q = rotate(split(blk.q.forward(&n)?, h)?)?;
            let k = widen(rotate(split(blk.k.forward(&n)?, kvh)?)?)?;
            let v = widen(split(blk.v.forward(&n)?, kvh)?)?;
            let (ctx, probs) = ops::attend(&q, &k, &v, Some(&bias), dropout)?;
            attention.push(probs);
            let ctx = ctx.transpose(1, 2)?.reshape((b, t, h * hd))?;
            x = (&x + blk.o.forward(&ctx)?)?;
            let n = blk.mlp_norm.forward(&x)?;
            let m = (blk.gate.forward(&n)?.silu()? * blk.up.forward(&n)?)?;
            x = (&x + blk.down.forward(&m)?)?;
        }
        Ok((self.norm.forward(&x)?, attention))
    }
}

impl Decoder for Llama {
    fn cfg(&self) -> &NetConfig {
        &self.cfg
    }

    fn hidden(&self, ids: &[Vec<u32>], dropout: &mut Dropout) -> Result<(Tensor, Vec<Tensor>)> {
        Llama::hidden(self, ids, dropout)
    }

    fn logits(&self, rows: &Tensor) -> Result<Tensor> {
        let head = self.lm_head.as_ref().unwrap_or(self.embed.embeddings());
        rows.matmul(&head.t()?)
    }
}

pub fn hf_config(cfg: &NetConfig) -> Value {
    let eos = cfg.special.eos.unwrap_or(0);
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.kv_heads(),
        "head_dim": cfg.head_dim(),
        "intermediate_size": cfg.d_ff,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_positions,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_theta": cfg.rope_theta, "rope_type": "default"},
        "attention_bias": false,
        "mlp_bias": false,
        "attention_dropout": cfg.dropout,
        "initializer_range": crate::train::params::INIT_STD,
        "bos_token_id": cfg.special.bos.unwrap_or(eos),
        "eos_token_id": eos,
        "tie_word_embeddings": !cfg.untied_head,
        "dtype": "float32",
    })
}
