//! The decoder-only transformer the families share, in candle's shape:
//! `Block`s of attention and a feed-forward layer between norms, over one
//! residual stream. A family's file (`llama.rs`, `gemma3.rs`, `gpt2.rs`)
//! checks its tensors and says how its blocks differ (`Layout`): the
//! gate, per-layer rotary embeddings and sliding windows, a scaled
//! embedding. What the weights hold decides the rest: norms after
//! attention and the feed-forward layer (Gemma), LayerNorm where norms
//! have biases, biases on the projections and an ungated feed-forward
//! layer, learned positions added to the embeddings (GPT-2).
//!
//! We own this (rather than using candle-transformers) because no library
//! model exposes the attention probabilities. Capturing them costs a copy
//! of each layer's post-RoPE queries into the cache, nothing else; the
//! rows themselves are recomputed on demand by [`Model::attention_rows`]
//! with the very function the forward pass uses.

use std::sync::Arc;

use candle_core::quantized::QMatMul;
use candle_core::{Device, Tensor};

use super::api::{Model, Rotary};
use super::cache::{KvCache, LayerCache};
use super::config::Config;
use super::layers::mlp::Gate;
use super::layers::norm::Norm;
use super::layers::{Attention, Embedding, Linear, Mlp, Rope, kernel_weight};
use super::probe::{probe, probe_layer};
use super::types::{Logits, Precision};
use crate::engine::error::EngineError;
use crate::engine::load::weights::Weights;
use crate::engine::types::Architecture;

type Result<T> = std::result::Result<T, EngineError>;

/// How a family's blocks differ from the plain Llama block.
pub(crate) struct Layout {
    /// The embedding rows are multiplied by this (Gemma: sqrt(d_model)).
    pub embed_scale: Option<f32>,
    pub gate: Gate,
    /// Each layer's rotary embedding; none where positions are learned.
    pub layer_rope: Vec<Option<Rope>>,
    /// Each layer's sliding window, if it has one.
    pub layer_window: Vec<Option<usize>>,
    /// How the model is built, for `info`.
    pub design: Architecture,
}

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Norm,
    attn: Attention,
    post_attn_norm: Option<Norm>,
    ffn_norm: Norm,
    mlp: Mlp,
    post_ffn_norm: Option<Norm>,
}

impl Block {
    fn load(
        weights: &mut dyn Weights,
        i: usize,
        cfg: &Config,
        p: Precision,
        layout: &Layout,
    ) -> Result<Self> {
        let prefix = format!("blk.{i}");
        let eps = cfg.rms_eps;
        let rope = layout.layer_rope[i].clone();
        let window = layout.layer_window[i];
        Ok(Self {
            attn_norm: Norm::load(weights, &format!("{prefix}.attn_norm"), eps)?,
            attn: Attention::load(weights, &prefix, cfg, p, i, rope, window)?,
            post_attn_norm: Norm::optional(weights, &format!("{prefix}.post_attention_norm"), eps)?,
            ffn_norm: Norm::load(weights, &format!("{prefix}.ffn_norm"), eps)?,
            mlp: Mlp::load(weights, &prefix, p, layout.gate)?,
            post_ffn_norm: Norm::optional(weights, &format!("{prefix}.post_ffw_norm"), eps)?,
        })
    }

    /// `out` = norm(`x`) where the block has that norm, else `x` unchanged.
    fn post_norm(norm: &Option<Norm>, x: Vec<f32>) -> Vec<f32> {
        match norm {
            Some(n) => {
                let mut out = vec![0f32; x.len()];
                n.forward(&x, &mut out);
                out
            }
            None => x,
        }
    }

    /// x: rows of d_model, updated in place (the residual stream).
    fn forward(
        &self,
        x: &mut [f32],
        norm: &mut [f32],
        seqs: &mut [(&mut LayerCache, usize)],
        ablated: &[usize],
    ) -> Result<()> {
        let m: usize = seqs.iter().map(|s| s.1).sum();
        let l = self.attn.layer;
        self.attn_norm.forward(x, norm);
        probe_layer("attn_norm", l, norm);
        let a = Self::post_norm(
            &self.post_attn_norm,
            self.attn.forward(norm, seqs, ablated)?,
        );
        for (x, a) in x.iter_mut().zip(a) {
            *x += a;
        }
        probe_layer("ffn_inp", l, x);
        self.ffn_norm.forward(x, norm);
        probe_layer("ffn_norm", l, norm);
        let f = Self::post_norm(&self.post_ffn_norm, self.mlp.forward(norm, m, l)?);
        for (x, f) in x.iter_mut().zip(f) {
            *x += f;
        }
        probe_layer("l_out", l, x);
        Ok(())
    }
}

/// A decoder-only transformer.
#[derive(Debug)]
pub struct Decoder {
    embed: Embedding,
    embed_scale: Option<f32>,
    /// Learned absolute positions (context_length, d_model), added to the
    /// token embeddings (GPT-2).
    positions: Option<Tensor>,
    blocks: Vec<Block>,
    norm: Norm,
    output: Linear,
    design: Architecture,
    pub cfg: Config,
    pub precision: Precision,
}

impl Decoder {
    /// Reads every weight (the family has checked their shapes), the
    /// blocks built as `layout` says.
    pub(crate) fn load(
        weights: &mut dyn Weights,
        cfg: Config,
        precision: Precision,
        layout: Layout,
    ) -> Result<Self> {
        // Weights stored in f32 run in f32, whatever was asked.
        let precision = if weights.quantized() {
            precision
        } else {
            Precision::F32
        };
        // Tied embeddings: without an output.weight, the output projection
        // is the embedding matrix itself (held once with our kernels).
        let tied = !weights.has_tensor("output.weight");
        let output_name = if tied {
            "token_embd.weight"
        } else {
            "output.weight"
        };
        let output = Linear::load(weights, output_name, precision)?;
        let embed = match &output {
            Linear::Kernel(w) if tied => Embedding::Kernel(w.clone()),
            Linear::Candle(QMatMul::Tensor(t)) if tied && !weights.quantized() => {
                Embedding::Dense(t.clone())
            }
            _ if !weights.quantized() => Embedding::Dense(weights.dense("token_embd.weight")?),
            _ => {
                let q = weights.tensor("token_embd.weight")?;
                match kernel_weight(&q)? {
                    Some(w) => Embedding::Kernel(Arc::new(w)),
                    None => Embedding::Candle(q),
                }
            }
        };
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::load(weights, i, &cfg, precision, &layout))
            .collect::<Result<Vec<_>>>()?;
        let norm = Norm::load(weights, "output_norm", cfg.rms_eps)?;
        let positions = if weights.has_tensor("position_embd.weight") {
            Some(weights.dense("position_embd.weight")?)
        } else {
            None
        };
        let design = Architecture {
            tied_embeddings: tied,
            ..layout.design
        };
        Ok(Self {
            embed,
            embed_scale: layout.embed_scale,
            positions,
            blocks,
            norm,
            output,
            design,
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
        self.run_blocks_keeping(tokens, seqs, None, &[])
    }

    /// [`Decoder::run_blocks`], with the residual rows after the embedding
    /// and after each block copied into `kept` when given, and the
    /// (layer, head) pairs of `ablated` contributing nothing.
    fn run_blocks_keeping(
        &self,
        tokens: &[u32],
        seqs: &mut [(&mut KvCache, usize)],
        kept: Option<&mut Vec<Vec<f32>>>,
        ablated: &[(usize, usize)],
    ) -> Result<Vec<f32>> {
        let x = self.embedded(tokens, seqs)?;
        self.blocks_from(0, x, tokens, seqs, kept, ablated)
    }

    /// The embedding rows of `tokens` (scaled, positions added).
    fn embedded(&self, tokens: &[u32], seqs: &mut [(&mut KvCache, usize)]) -> Result<Vec<f32>> {
        let mut x = self
            .embed
            .forward(tokens)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        if let Some(s) = self.embed_scale {
            x.iter_mut().for_each(|v| *v *= s);
        }
        if let Some(p) = &self.positions {
            // Each sequence's new rows from the position its cache is at.
            let d = self.cfg.d_model;
            let mut row = 0;
            for (cache, n) in seqs.iter() {
                let at = p
                    .narrow(0, cache.len(), *n)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                for (x, p) in x[row * d..(row + n) * d].iter_mut().zip(at) {
                    *x += p;
                }
                row += n;
            }
        }
        Ok(x)
    }

    /// Runs blocks `first..` on the residual rows `x` (what block `first`
    /// reads), appending to the caches' layers from `first` on.
    fn blocks_from(
        &self,
        first: usize,
        mut x: Vec<f32>,
        tokens: &[u32],
        seqs: &mut [(&mut KvCache, usize)],
        mut kept: Option<&mut Vec<Vec<f32>>>,
        ablated: &[(usize, usize)],
    ) -> Result<Vec<f32>> {
        let mut norm = vec![0f32; x.len()];
        if let Some(k) = kept.as_deref_mut() {
            k.push(x.clone());
        }
        for (l, block) in self.blocks.iter().enumerate().skip(first) {
            let mut layer: Vec<(&mut LayerCache, usize)> = seqs
                .iter_mut()
                .map(|(c, n)| (&mut c.layers[l], *n))
                .collect();
            let heads: Vec<usize> = ablated
                .iter()
                .filter(|(al, _)| *al == l)
                .map(|&(_, h)| h)
                .collect();
            block.forward(&mut x, &mut norm, &mut layer, &heads)?;
            if let Some(k) = kept.as_deref_mut() {
                k.push(x.clone());
            }
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

impl Model for Decoder {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn precision(&self) -> Precision {
        self.precision
    }

    fn architecture(&self) -> Architecture {
        self.design.clone()
    }

    fn learned_positions(&self, n: usize) -> Option<Vec<f32>> {
        let p = self.positions.as_ref()?;
        let n = n.min(p.dim(0).ok()?);
        p.narrow(0, 0, n).ok()?.flatten_all().ok()?.to_vec1().ok()
    }

    fn rotary(&self, layer: usize) -> Option<Rotary> {
        let rope = self.blocks.get(layer)?.attn.rope()?;
        Some(Rotary {
            base: rope.base,
            style: rope.style,
            head_dim: self.cfg.head_dim,
        })
    }

    fn head_vectors(
        &self,
        cache: &KvCache,
        layer: usize,
        head: usize,
        queries: std::ops::Range<usize>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let lc = cache.layers.get(layer).ok_or(EngineError::NoSuchLayer {
            layer,
            n_layer: self.cfg.n_layer,
        })?;
        self.blocks[layer].attn.head_vectors(lc, queries, head)
    }

    fn attention_window(&self, layer: usize) -> Option<usize> {
        self.blocks.get(layer).and_then(|b| b.attn.window())
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

    fn residual_stream(&self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let mut cache = self.new_cache(false);
        self.check_room(&cache, tokens.len())?;
        let mut kept = Vec::with_capacity(self.cfg.n_layer + 1);
        self.run_blocks_keeping(
            tokens,
            &mut [(&mut cache, tokens.len())],
            Some(&mut kept),
            &[],
        )?;
        Ok(kept)
    }

    fn forward_ablated(
        &self,
        tokens: &[u32],
        ablated: &[(usize, usize)],
        intact: Option<&[Vec<f32>]>,
    ) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        for &(layer, head) in ablated {
            if layer >= self.cfg.n_layer {
                return Err(EngineError::NoSuchLayer {
                    layer,
                    n_layer: self.cfg.n_layer,
                });
            }
            if head >= self.cfg.n_head {
                return Err(EngineError::NoSuchHead {
                    head,
                    n_head: self.cfg.n_head,
                });
            }
        }
        let mut cache = self.new_cache(false);
        self.check_room(&cache, tokens.len())?;
        let seqs = &mut [(&mut cache, tokens.len())];
        // Blocks before the first ablated one compute what the intact run
        // did: start from its residual stream there when it is given.
        let first = ablated.iter().map(|&(l, _)| l).min().unwrap_or(0);
        let x = match intact {
            Some(stream) if stream.len() > first => {
                self.blocks_from(first, stream[first].clone(), tokens, seqs, None, ablated)?
            }
            _ => self.run_blocks_keeping(tokens, seqs, None, ablated)?,
        };
        self.logits(&x[(tokens.len() - 1) * self.cfg.d_model..])
    }

    fn lens_logits(&self, rows: &[f32]) -> Result<Tensor> {
        self.logits(rows)
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
        self.blocks[layer].attn.captured_probs(lc, multi, queries)
    }
}
