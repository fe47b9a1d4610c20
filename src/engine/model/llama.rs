//! The Llama architecture (SmolLM2, Llama 2/3, TinyLlama, ...) over GGUF
//! weights, in candle's shape: `Attention`, `Mlp`, `Block`, `Llama`, each
//! loaded from the checkpoint's own tensor names.
//!
//! We own this file (rather than using candle-transformers) because no
//! library model exposes the attention probabilities. Capturing them costs a
//! copy of each layer's post-RoPE queries into the cache, nothing else; the
//! rows themselves are recomputed on demand by [`Llama::attention_rows`]
//! with the very function the forward pass uses.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::api::Model;
use super::cache::{KvCache, LayerCache};
use super::config::Config;
use super::layers::{Attention, Embedding, Linear, Mlp, RmsNorm, Rope, kernel_weight};
use super::probe::{probe, probe_layer};
use super::types::{Logits, Precision};
use crate::engine::error::EngineError;
use crate::engine::load::gguf::GgufFile;
use crate::engine::types::Architecture;

type Result<T> = std::result::Result<T, EngineError>;

/// Every weight a Llama-layout model reads, with the shape (rows,
/// columns) its config implies; `output.weight` only when the file has
/// it (else the embedding is tied).
fn tensor_shapes(cfg: &Config, untied_output: bool) -> Vec<(String, Vec<usize>)> {
    let (d, q, kv) = (
        cfg.d_model,
        cfg.n_head * cfg.head_dim,
        cfg.n_kv_head * cfg.head_dim,
    );
    let mut out = vec![
        ("token_embd.weight".to_string(), vec![cfg.vocab_size, d]),
        ("output_norm.weight".to_string(), vec![d]),
    ];
    if untied_output {
        out.push(("output.weight".into(), vec![cfg.vocab_size, d]));
    }
    for i in 0..cfg.n_layer {
        let p = format!("blk.{i}");
        out.extend([
            (format!("{p}.attn_norm.weight"), vec![d]),
            (format!("{p}.attn_q.weight"), vec![q, d]),
            (format!("{p}.attn_k.weight"), vec![kv, d]),
            (format!("{p}.attn_v.weight"), vec![kv, d]),
            (format!("{p}.attn_output.weight"), vec![d, q]),
            (format!("{p}.ffn_norm.weight"), vec![d]),
            (format!("{p}.ffn_gate.weight"), vec![cfg.d_ff, d]),
            (format!("{p}.ffn_up.weight"), vec![cfg.d_ff, d]),
            (format!("{p}.ffn_down.weight"), vec![d, cfg.d_ff]),
        ]);
    }
    out
}

/// Every weight present with the shape the config implies, before any
/// is read.
fn check_tensors(cfg: &Config, gguf: &GgufFile) -> Result<()> {
    for (name, want) in tensor_shapes(cfg, gguf.has_tensor("output.weight")) {
        let found = gguf.tensor_shape(&name)?;
        if found != want {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!(
                    "tensor `{name}` has shape {found:?}, but the model's settings make it {want:?}"
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Block {
    attn_norm: RmsNorm,
    attn: Attention,
    ffn_norm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn load(gguf: &mut GgufFile, i: usize, cfg: &Config, p: Precision) -> Result<Self> {
        let prefix = format!("blk.{i}");
        Ok(Self {
            attn_norm: RmsNorm::load(gguf, &format!("{prefix}.attn_norm.weight"), cfg.rms_eps)?,
            attn: Attention::load(gguf, &prefix, cfg, p, i)?,
            ffn_norm: RmsNorm::load(gguf, &format!("{prefix}.ffn_norm.weight"), cfg.rms_eps)?,
            mlp: Mlp::load(gguf, &prefix, p)?,
        })
    }

    /// x: rows of d_model, updated in place (the residual stream).
    fn forward(
        &self,
        x: &mut [f32],
        norm: &mut [f32],
        rope: &Rope,
        seqs: &mut [(&mut LayerCache, usize)],
    ) -> Result<()> {
        let m: usize = seqs.iter().map(|s| s.1).sum();
        let l = self.attn.layer;
        self.attn_norm.forward(x, norm);
        probe_layer("attn_norm", l, norm);
        for (x, a) in x.iter_mut().zip(self.attn.forward(norm, rope, seqs)?) {
            *x += a;
        }
        probe_layer("ffn_inp", l, x);
        self.ffn_norm.forward(x, norm);
        probe_layer("ffn_norm", l, norm);
        for (x, f) in x.iter_mut().zip(self.mlp.forward(norm, m, l)?) {
            *x += f;
        }
        probe_layer("l_out", l, x);
        Ok(())
    }
}

#[derive(Debug)]
pub struct Llama {
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: Linear,
    rope: Rope,
    /// The output projection is the embedding matrix.
    tied: bool,
    pub cfg: Config,
    pub precision: Precision,
}

impl Llama {
    pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Self> {
        let cfg = Config::from_gguf(gguf)?;
        check_tensors(&cfg, gguf)?;
        // Tied embeddings: without an output.weight, the output projection
        // is the embedding matrix itself (held once with our kernels).
        let tied = !gguf.has_tensor("output.weight");
        let output_name = if tied {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        let output = Linear::load(gguf, output_name, precision)?;
        let embed = match &output {
            Linear::Kernel(w) if tied => Embedding::Kernel(w.clone()),
            _ => {
                let q = gguf.tensor("token_embd.weight")?;
                match kernel_weight(&q)? {
                    Some(w) => Embedding::Kernel(Arc::new(w)),
                    None => Embedding::Candle(q),
                }
            }
        };
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::load(gguf, i, &cfg, precision))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(gguf, "output_norm.weight", cfg.rms_eps)?;
        let rope = Rope::new(&cfg);
        Ok(Self {
            embed,
            blocks,
            norm,
            output,
            rope,
            tied,
            cfg,
            precision,
        })
    }

    fn check_room(&self, cache: &KvCache, seq: usize) -> Result<()> {
        if cache.len() + seq > self.cfg.context_length {
            return Err(EngineError::ContextOverflow {
                tokens: cache.len() + seq,
                limit: self.cfg.context_length,
            });
        }
        Ok(())
    }

    /// Embeds `tokens` (the sequences' new positions, in order) and runs
    /// every block, appending to the caches: the final residual rows.
    fn run_blocks(&self, tokens: &[u32], seqs: &mut [(&mut KvCache, usize)]) -> Result<Vec<f32>> {
        let mut x = self
            .embed
            .forward(tokens)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut norm = vec![0f32; x.len()];
        for (l, block) in self.blocks.iter().enumerate() {
            let mut layer: Vec<(&mut LayerCache, usize)> = seqs
                .iter_mut()
                .map(|(c, n)| (&mut c.layers[l], *n))
                .collect();
            block.forward(&mut x, &mut norm, &self.rope, &mut layer)?;
        }
        let mut at = 0;
        for (cache, n) in seqs.iter_mut() {
            cache.extend_tokens(&tokens[at..at + *n], *n >= 2);
            at += *n;
        }
        Ok(x)
    }

    /// Final norm and vocabulary projection of residual rows: (n, vocab).
    fn logits(&self, x: &[f32]) -> Result<Tensor> {
        let n = x.len() / self.cfg.d_model;
        let mut normed = vec![0f32; x.len()];
        self.norm.forward(x, &mut normed);
        probe("result_norm", &mut normed);
        let mut out = Linear::forward_rows(&[&self.output], &normed, n)?
            .pop()
            .expect("one output");
        probe("result_output", &mut out);
        let vocab = out.len() / n;
        Ok(Tensor::from_vec(out, (n, vocab), &Device::Cpu)?)
    }
}

impl Model for Llama {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn architecture(&self) -> Architecture {
        let cfg = &self.cfg;
        Architecture {
            family: "llama".into(),
            norm: format!("RMSNorm, pre-norm, eps {:e}", cfg.rms_eps),
            activation: "SwiGLU (SiLU-gated feed-forward)".into(),
            positions: format!(
                "RoPE on adjacent pairs, base {}, {} of {} dims",
                cfg.rope_base, cfg.head_dim, cfg.head_dim
            ),
            attention: if cfg.n_kv_head == cfg.n_head {
                format!("causal multi-head, {} heads", cfg.n_head)
            } else {
                format!(
                    "causal grouped-query, {} query heads over {} key/value heads",
                    cfg.n_head, cfg.n_kv_head
                )
            },
            tied_embeddings: self.tied,
        }
    }

    fn new_cache(&self, capture_attention: bool) -> KvCache {
        KvCache::new(
            self.cfg.n_layer,
            self.cfg.n_kv_head,
            capture_attention,
            self.precision == Precision::Quantized,
        )
    }

    /// Runs `tokens` after what `cache` already holds, appending to it.
    /// Returns logits (n, vocab) as f32: n = 1 for `Logits::Last`, else the
    /// number of tokens.
    fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        let seq = tokens.len();
        if seq == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        self.check_room(cache, seq)?;
        let x = self.run_blocks(tokens, &mut [(cache, seq)])?;
        let x = match logits {
            Logits::Last => &x[(seq - 1) * self.cfg.d_model..],
            Logits::All => &x[..],
        };
        self.logits(x)
    }

    /// One token for each of several sequences at once (side-by-side runs):
    /// every weight is read once for all of them. Returns logits
    /// (n_sequences, vocab), row i for `caches[i]`, each cache advanced by
    /// its token.
    fn forward_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
        if tokens.is_empty() || tokens.len() != caches.len() {
            return Err(EngineError::EmptyPrompt);
        }
        for c in caches.iter() {
            self.check_room(c, 1)?;
        }
        let mut seqs: Vec<(&mut KvCache, usize)> =
            caches.iter_mut().map(|c| (&mut **c, 1)).collect();
        let x = self.run_blocks(tokens, &mut seqs)?;
        self.logits(&x)
    }

    /// Attention probabilities of queries `queries` (absolute positions) in
    /// `layer`, over all keys up to the last query: (n_head, nq, nk) with
    /// nk = queries.end, recomputed from the cached queries and keys.
    fn attention_rows(
        &self,
        cache: &KvCache,
        layer: usize,
        queries: std::ops::Range<usize>,
    ) -> Result<Tensor> {
        let lc = cache.layers.get(layer).ok_or(EngineError::NoSuchLayer {
            layer,
            n_layer: self.cfg.n_layer,
        })?;
        let multi = &cache.multi()[queries.clone()];
        self.blocks[layer]
            .attn
            .captured_probs(lc, multi, &self.rope, queries)
    }
}

/// The registry's loader (`model::ARCHITECTURES`).
pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Box<dyn Model>> {
    Ok(Box::new(Llama::load(gguf, precision)?))
}
