//! BERT for pre-training (BertForPreTraining): post-LN encoder layers, the
//! masked-LM head tied to the word embeddings, and the pooler with the
//! next-sentence head. Loss = masked-LM mean + next-sentence mean, as
//! transformers computes it.

use candle_core::{Result, Tensor};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use serde_json::{Value, json};

use super::{Batch, Losses, Net, NetConfig, check_length, labelled, one_sequence};
use crate::train::ops::{self, Dropout, LayerNorm};

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    out_norm: LayerNorm,
    up: Linear,
    down: Linear,
    down_norm: LayerNorm,
}

pub struct Bert {
    cfg: NetConfig,
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    pooler: Linear,
    mlm_dense: Linear,
    mlm_norm: LayerNorm,
    mlm_bias: Tensor,
    nsp: Linear,
}

/// Segments BERT tells apart (sentence A and B).
const TYPE_VOCAB: usize = 2;

impl Bert {
    pub fn new(cfg: NetConfig, vb: VarBuilder) -> Result<Self> {
        let (d, eps) = (cfg.d_model, cfg.norm_eps);
        let e = vb.pp("bert.embeddings");
        let enc = vb.pp("bert.encoder.layer");
        let layers = (0..cfg.n_layer)
            .map(|i| {
                let l = enc.pp(i);
                Ok(Layer {
                    q: ops::linear(d, d, true, l.pp("attention.self.query"))?,
                    k: ops::linear(d, d, true, l.pp("attention.self.key"))?,
                    v: ops::linear(d, d, true, l.pp("attention.self.value"))?,
                    out: ops::linear(d, d, true, l.pp("attention.output.dense"))?,
                    out_norm: LayerNorm::new(d, eps, l.pp("attention.output.LayerNorm"))?,
                    up: ops::linear(d, cfg.d_ff, true, l.pp("intermediate.dense"))?,
                    down: ops::linear(cfg.d_ff, d, true, l.pp("output.dense"))?,
                    down_norm: LayerNorm::new(d, eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<_>>()?;
        let cls = vb.pp("cls");
        Ok(Self {
            words: ops::embedding(cfg.vocab_size, d, e.pp("word_embeddings"))?,
            positions: ops::embedding(cfg.max_positions, d, e.pp("position_embeddings"))?,
            types: ops::embedding(TYPE_VOCAB, d, e.pp("token_type_embeddings"))?,
            embed_norm: LayerNorm::new(d, eps, e.pp("LayerNorm"))?,
            layers,
            pooler: ops::linear(d, d, true, vb.pp("bert.pooler.dense"))?,
            mlm_dense: ops::linear(d, d, true, cls.pp("predictions.transform.dense"))?,
            mlm_norm: LayerNorm::new(d, eps, cls.pp("predictions.transform.LayerNorm"))?,
            mlm_bias: cls.get_with_hints(
                cfg.vocab_size,
                "predictions.bias",
                candle_nn::Init::Const(0.0),
            )?,
            nsp: ops::linear(d, 2, true, cls.pp("seq_relationship"))?,
            cfg,
        })
    }

    /// The last layer's hidden states `(batch, time, d)` and every layer's
    /// attention probabilities.
    fn encode(
        &self,
        ids: &[Vec<u32>],
        types: &[Vec<u32>],
        mask: &[Vec<u32>],
        dropout: &mut Dropout,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let dev = self.mlm_bias.device();
        let (b, t) = (ids.len(), ids.first().map_or(0, Vec::len));
        check_length(t, &self.cfg)?;
        let pos = Tensor::arange(0u32, t as u32, dev)?;
        let x = self
            .words
            .forward(&ops::ids_tensor(ids, dev)?)?
            .broadcast_add(&self.positions.forward(&pos)?)?
            .add(&self.types.forward(&ops::ids_tensor(types, dev)?)?)?;
        let mut x = dropout.apply(&self.embed_norm.forward(&x)?)?;
        let bias = ops::padding_bias(mask, dev)?;
        let (h, hd) = (self.cfg.n_head, self.cfg.head_dim());
        let heads = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, h, hd))?.transpose(1, 2)?.contiguous()
        };
        let mut attention = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let q = heads(l.q.forward(&x)?)?;
            let k = heads(l.k.forward(&x)?)?;
            let v = heads(l.v.forward(&x)?)?;
            let (ctx, probs) = ops::attend(&q, &k, &v, Some(&bias), dropout)?;
            attention.push(probs);
            let ctx = ctx.transpose(1, 2)?.reshape((b, t, h * hd))?;
            let a = dropout.apply(&l.out.forward(&ctx)?)?;
            x = l.out_norm.forward(&(a + &x)?)?;
            let f = dropout.apply(&l.down.forward(&l.up.forward(&x)?.gelu_erf()?)?)?;
            x = l.down_norm.forward(&(f + &x)?)?;
        }
        Ok((x, attention))
    }

    /// Masked-LM logits for hidden rows `(n, d)`.
    fn mlm_logits(&self, rows: &Tensor) -> Result<Tensor> {
        let y = self
            .mlm_norm
            .forward(&self.mlm_dense.forward(rows)?.gelu_erf()?)?;
        y.matmul(&self.words.embeddings().t()?)?
            .broadcast_add(&self.mlm_bias)
    }
}

impl Net for Bert {
    fn config(&self) -> &NetConfig {
        &self.cfg
    }

    fn loss(&self, batch: &Batch, dropout: &mut Dropout) -> Result<Losses> {
        let (x, _) = self.encode(&batch.ids, &batch.types, &batch.mask, dropout)?;
        let (at, targets) = labelled(&batch.labels, false);
        let mut parts = Vec::new();
        let mut total: Option<Tensor> = None;
        let mut logits = None;
        if !at.is_empty() {
            let l = self.mlm_logits(&ops::rows_at(&x, &at)?)?;
            let mlm = ops::cross_entropy(&l, &targets)?;
            logits = Some(l);
            parts.push(("mlm", ops::scalar(&mlm)?));
            total = Some(mlm);
        }
        if let Some(next) = &batch.next {
            let first = x.narrow(1, 0, 1)?.squeeze(1)?;
            let pooled = self.pooler.forward(&first)?.tanh()?;
            let nsp = ops::cross_entropy(&self.nsp.forward(&dropout.apply(&pooled)?)?, next)?;
            parts.push(("nsp", ops::scalar(&nsp)?));
            total = Some(match total {
                Some(t) => (t + nsp)?,
                None => nsp,
            });
        }
        match total {
            Some(total) => Ok(Losses {
                total,
                parts,
                logits,
            }),
            None => candle_core::bail!("the batch has no masked token and no sentence pair"),
        }
    }

    fn probe(&self, ids: &[u32]) -> Result<(Vec<Tensor>, Tensor)> {
        let n = ids.len();
        let one = [ids.to_vec()];
        let (x, attention) =
            self.encode(&one, &[vec![0; n]], &[vec![1; n]], &mut Dropout::off())?;
        one_sequence(&x, attention, |rows| self.mlm_logits(rows))
    }
}

pub fn hf_config(cfg: &NetConfig) -> Value {
    json!({
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "intermediate_size": cfg.d_ff,
        "hidden_act": "gelu",
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.dropout,
        "max_position_embeddings": cfg.max_positions,
        "type_vocab_size": TYPE_VOCAB,
        "initializer_range": crate::train::params::INIT_STD,
        "layer_norm_eps": cfg.norm_eps,
        "pad_token_id": cfg.special.pad.unwrap_or(0),
        "position_embedding_type": "absolute",
        "tie_word_embeddings": true,
        "dtype": "float32",
    })
}
