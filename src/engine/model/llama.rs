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

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::cache::{KvCache, LayerCache};
use crate::engine::error::EngineError;
use crate::engine::kernels::{self, QWeight, WeightKind};
use crate::engine::load::gguf::GgufFile;

type Result<T> = std::result::Result<T, EngineError>;

/// What the forward pass is computed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Quantised weights against 8-bit activations, as llama.cpp does.
    #[default]
    Quantized,
    /// Weights dequantised to f32 at load, activations in f32 (as HF
    /// transformers does): slower and ~4x the memory, free of activation
    /// rounding.
    F32,
}

/// Hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub d_model: usize,
    pub d_ff: usize,
    pub head_dim: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub vocab_size: usize,
    pub context_length: usize,
}

impl Config {
    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let arch = gguf.architecture()?;
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = gguf.meta_usize(&key("attention.head_count"))?;
        let d_model = gguf.meta_usize(&key("embedding_length"))?;
        let vocab_size = match gguf.meta_usize(&key("vocab_size")) {
            Ok(v) => v,
            Err(_) => gguf.tensor_shape("token_embd.weight")?[0],
        };
        let cfg = Self {
            n_layer: gguf.meta_usize(&key("block_count"))?,
            n_head,
            n_kv_head: gguf.meta_usize(&key("attention.head_count_kv")).unwrap_or(n_head),
            d_model,
            d_ff: gguf.meta_usize(&key("feed_forward_length"))?,
            head_dim: gguf.meta_usize(&key("rope.dimension_count")).unwrap_or(d_model / n_head.max(1)),
            rope_base: gguf.meta_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: gguf.meta_f32(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            vocab_size,
            context_length: gguf.meta_usize(&key("context_length")).unwrap_or(2048),
        };
        if cfg.n_head == 0 || cfg.n_kv_head == 0 || cfg.n_head % cfg.n_kv_head != 0 {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!("head counts {} / {} are inconsistent", cfg.n_head, cfg.n_kv_head),
            ));
        }
        if cfg.head_dim * cfg.n_head != cfg.d_model || cfg.head_dim % 2 != 0 {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!("head_dim {} x {} heads != width {}", cfg.head_dim, cfg.n_head, cfg.d_model),
            ));
        }
        Ok(cfg)
    }
}

/// A linear layer over a GGUF weight of shape (out, in): our own kernels
/// for Q4_1 and Q8_0 weights, candle's `QMatMul` for other types and for
/// `Precision::F32`.
#[derive(Debug, Clone)]
enum Linear {
    Kernel(Arc<QWeight>),
    Candle(QMatMul),
}

impl Linear {
    fn load(gguf: &mut GgufFile, name: &str, precision: Precision) -> Result<Self> {
        let q = gguf.tensor(name)?;
        Ok(match precision {
            Precision::Quantized => match kernel_weight(&q)? {
                Some(w) => Linear::Kernel(Arc::new(w)),
                None => Linear::Candle(QMatMul::from_qtensor(q)?),
            },
            Precision::F32 => Linear::Candle(QMatMul::Tensor(q.dequantize(&Device::Cpu)?)),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Self::forward_fused(&[self], x)?.pop().expect("one output"))
    }

    /// Several layers over the same input (Q, K, V; gate, up): with our
    /// kernels the input is quantised once and one parallel region covers
    /// them all. x: (.., in) -> [(.., out_i)].
    fn forward_fused(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        let kernels: Option<Vec<&QWeight>> = layers
            .iter()
            .map(|l| match l {
                Linear::Kernel(w) => Some(&**w),
                Linear::Candle(_) => None,
            })
            .collect();
        let fusable =
            kernels.as_ref().is_some_and(|ws| ws.iter().all(|w| w.kind() == ws[0].kind() && w.cols() == ws[0].cols()));
        let Some(ws) = kernels.filter(|_| fusable) else {
            return layers
                .iter()
                .map(|l| match l {
                    Linear::Kernel(_) => Self::forward_fused(&[l], x).map(|mut v| v.remove(0)),
                    Linear::Candle(mm) => Ok(mm.forward(x)?),
                })
                .collect();
        };
        let dims = x.dims().to_vec();
        let cols = *dims.last().expect("rank >= 1");
        let m = x.elem_count() / cols;
        let data = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| vec![0f32; m * w.rows()]).collect();
        {
            let mut slices: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            kernels::matmul(&ws, &data, m, &mut slices);
        }
        outs.into_iter()
            .zip(&ws)
            .map(|(o, w)| {
                let mut shape = dims.clone();
                *shape.last_mut().expect("rank >= 1") = w.rows();
                Ok(Tensor::from_vec(o, shape, &Device::Cpu)?)
            })
            .collect()
    }
}

/// The weight in our kernels' layout, when they handle its type.
fn kernel_weight(q: &QTensor) -> Result<Option<QWeight>> {
    let kind = match q.dtype() {
        GgmlDType::Q4_1 => WeightKind::Q4_1,
        GgmlDType::Q8_0 => WeightKind::Q8_0,
        _ => return Ok(None),
    };
    let (rows, cols) = q.shape().dims2()?;
    let w = QWeight::new(kind, rows, cols, q.data()?.into_owned())
        .map_err(|e| EngineError::corrupt(std::path::Path::new("(weights)"), e))?;
    Ok(Some(w))
}

/// Token embeddings: rows of our kernels' weight (shared with a tied output
/// projection, so the matrix is held once), or candle's lookup.
#[derive(Debug)]
enum Embedding {
    Kernel(Arc<QWeight>),
    Candle(QTensor),
}

impl Embedding {
    /// ids -> (seq, d_model)
    fn forward(&self, tokens: &[u32]) -> Result<Tensor> {
        match self {
            Embedding::Kernel(w) => {
                let d = w.cols();
                let mut out = vec![0f32; tokens.len() * d];
                for (row, &t) in out.chunks_exact_mut(d).zip(tokens) {
                    w.dequantize_row(t as usize, row);
                }
                Ok(Tensor::from_vec(out, (tokens.len(), d), &Device::Cpu)?)
            }
            Embedding::Candle(q) => Ok(q.embedding(&Tensor::new(tokens, &Device::Cpu)?)?),
        }
    }
}

#[derive(Debug, Clone)]
struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn load(gguf: &mut GgufFile, name: &str, eps: f32) -> Result<Self> {
        let weight = gguf.tensor(name)?.dequantize(&Device::Cpu)?;
        Ok(Self { weight, eps })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps)?)
    }
}

/// Rotary tables for every position the model can see.
#[derive(Debug, Clone)]
struct Rope {
    cos: Tensor, // (context, head_dim / 2)
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &Config) -> Result<Self> {
        let half = cfg.head_dim / 2;
        let inv_freq: Vec<f32> =
            (0..half).map(|i| 1.0 / cfg.rope_base.powf(2.0 * i as f32 / cfg.head_dim as f32)).collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, half), &Device::Cpu)?;
        let pos = Tensor::arange(0u32, cfg.context_length as u32, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .reshape((cfg.context_length, 1))?;
        let angles = pos.broadcast_mul(&inv_freq)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()? })
    }

    /// GGUF stores Q and K permuted for llama.cpp's interleaved rotary form,
    /// so rotate adjacent pairs. x: (1, heads, seq, head_dim).
    fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, offset, seq)?;
        let sin = self.sin.narrow(0, offset, seq)?;
        Ok(candle_nn::rotary_emb::rope_i(&x.contiguous()?, &cos, &sin)?)
    }
}

#[derive(Debug, Clone)]
struct Attention {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
}

/// Softmax(q k^T / sqrt(d)) with the causal mask for queries that start at
/// position `offset`. q: (1, n_head, nq, d); k: (1, n_kv_head, nk, d).
/// Returns (1, n_head, nq, nk). The forward pass and the on-demand attention
/// rows both go through here, so what is shown is what was computed.
fn attention_probs(q: &Tensor, k: &Tensor, offset: usize) -> Result<Tensor> {
    let (_, n_head, nq, d) = q.dims4()?;
    let n_kv = k.dim(1)?;
    let nk = k.dim(2)?;
    let k = repeat_kv(k, n_head / n_kv)?;
    let scores = (q.contiguous()?.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?;
    let scores = if nq > 1 || offset + nq < nk { scores.broadcast_add(&causal_mask(nq, nk, offset)?)? } else { scores };
    Ok(candle_nn::ops::softmax_last_dim(&scores)?)
}

/// (nq, nk) additive mask: query i (at absolute position offset + i) sees
/// keys 0..=offset + i.
fn causal_mask(nq: usize, nk: usize, offset: usize) -> Result<Tensor> {
    let mask: Vec<f32> =
        (0..nq).flat_map(|i| (0..nk).map(move |j| if j <= offset + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Ok(Tensor::from_vec(mask, (nq, nk), &Device::Cpu)?)
}

/// (1, n_kv, t, d) -> (1, n_kv * n_rep, t, d), each KV head serving n_rep
/// consecutive query heads (grouped-query attention).
fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, n_kv, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?.expand((b, n_kv, n_rep, t, d))?.reshape((b, n_kv * n_rep, t, d))?)
}

impl Attention {
    fn load(gguf: &mut GgufFile, prefix: &str, cfg: &Config, p: Precision) -> Result<Self> {
        Ok(Self {
            wq: Linear::load(gguf, &format!("{prefix}.attn_q.weight"), p)?,
            wk: Linear::load(gguf, &format!("{prefix}.attn_k.weight"), p)?,
            wv: Linear::load(gguf, &format!("{prefix}.attn_v.weight"), p)?,
            wo: Linear::load(gguf, &format!("{prefix}.attn_output.weight"), p)?,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            head_dim: cfg.head_dim,
        })
    }

    /// x: (1, seq, d_model) at positions offset.. -> (1, seq, d_model).
    fn forward(&self, x: &Tensor, rope: &Rope, cache: &mut LayerCache, offset: usize) -> Result<Tensor> {
        let (b, seq, _) = x.dims3()?;
        let heads =
            |t: Tensor, n: usize| -> Result<Tensor> { Ok(t.reshape((b, seq, n, self.head_dim))?.transpose(1, 2)?) };
        let [q, k, v]: [Tensor; 3] =
            Linear::forward_fused(&[&self.wq, &self.wk, &self.wv], x)?.try_into().expect("three outputs");
        let q = rope.apply(&heads(q, self.n_head)?, offset)?;
        let k = rope.apply(&heads(k, self.n_kv_head)?, offset)?;
        let v = heads(v, self.n_kv_head)?.contiguous()?;
        let (k, v) = cache.append(&k, &v, &q)?;
        let probs = attention_probs(&q, &k, offset)?;
        let v = repeat_kv(&v, self.n_head / self.n_kv_head)?;
        let y = probs.matmul(&v.contiguous()?)?; // (1, n_head, seq, head_dim)
        let y = y.transpose(1, 2)?.reshape((b, seq, self.n_head * self.head_dim))?;
        self.wo.forward(&y)
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    fn load(gguf: &mut GgufFile, prefix: &str, p: Precision) -> Result<Self> {
        Ok(Self {
            gate: Linear::load(gguf, &format!("{prefix}.ffn_gate.weight"), p)?,
            up: Linear::load(gguf, &format!("{prefix}.ffn_up.weight"), p)?,
            down: Linear::load(gguf, &format!("{prefix}.ffn_down.weight"), p)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [gate, up]: [Tensor; 2] =
            Linear::forward_fused(&[&self.gate, &self.up], x)?.try_into().expect("two outputs");
        let gated = (candle_nn::ops::silu(&gate)? * up)?;
        self.down.forward(&gated)
    }
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
            attn: Attention::load(gguf, &prefix, cfg, p)?,
            ffn_norm: RmsNorm::load(gguf, &format!("{prefix}.ffn_norm.weight"), cfg.rms_eps)?,
            mlp: Mlp::load(gguf, &prefix, p)?,
        })
    }

    fn forward(&self, x: &Tensor, rope: &Rope, cache: &mut LayerCache, offset: usize) -> Result<Tensor> {
        let h = (x + self.attn.forward(&self.attn_norm.forward(x)?, rope, cache, offset)?)?;
        Ok((&h + self.mlp.forward(&self.ffn_norm.forward(&h)?)?)?)
    }
}

/// Which positions of a forward pass need logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (generation): skips the vocabulary projection
    /// for the rest of the prompt.
    Last,
    /// Every position (scoring a text).
    All,
}

#[derive(Debug)]
pub struct Llama {
    embed: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: Linear,
    rope: Rope,
    pub cfg: Config,
    pub precision: Precision,
}

impl Llama {
    pub fn load(gguf: &mut GgufFile, precision: Precision) -> Result<Self> {
        let cfg = Config::from_gguf(gguf)?;
        // Tied embeddings: without an output.weight, the output projection
        // is the embedding matrix itself (held once with our kernels).
        let tied = !gguf.has_tensor("output.weight");
        let output_name = if tied { "token_embd.weight" } else { "output.weight" };
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
        let blocks = (0..cfg.n_layer).map(|i| Block::load(gguf, i, &cfg, precision)).collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(gguf, "output_norm.weight", cfg.rms_eps)?;
        let rope = Rope::new(&cfg)?;
        Ok(Self { embed, blocks, norm, output, rope, cfg, precision })
    }

    /// Runs `tokens` after what `cache` already holds, appending to it.
    /// Returns logits (n, vocab) as f32: n = 1 for `Logits::Last`, else the
    /// number of tokens.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
        let offset = cache.len();
        let seq = tokens.len();
        if seq == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if offset + seq > self.cfg.context_length {
            return Err(EngineError::ContextOverflow { tokens: offset + seq, limit: self.cfg.context_length });
        }
        let mut x = self.embed.forward(tokens)?.unsqueeze(0)?; // (1, seq, d_model)
        for (block, layer_cache) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(&x, &self.rope, layer_cache, offset)?;
        }
        cache.extend_tokens(tokens);
        let x = match logits {
            Logits::Last => x.narrow(1, seq - 1, 1)?,
            Logits::All => x,
        };
        let x = self.norm.forward(&x)?;
        let out = self.output.forward(&x)?.squeeze(0)?; // (n, vocab)
        Ok(out.to_dtype(DType::F32)?)
    }

    /// Attention probabilities of queries `queries` (absolute positions) in
    /// `layer`, over all keys up to the last query: (n_head, nq, nk) with
    /// nk = queries.end, recomputed from the cached queries and keys.
    pub fn attention_rows(&self, cache: &KvCache, layer: usize, queries: std::ops::Range<usize>) -> Result<Tensor> {
        let lc = cache.layers.get(layer).ok_or(EngineError::NoSuchLayer { layer, n_layer: self.cfg.n_layer })?;
        let (q, k) = lc.captured(queries.clone())?;
        let probs = attention_probs(&q, &k, queries.start)?;
        Ok(probs.squeeze(0)?)
    }

    pub fn new_cache(&self, capture_attention: bool) -> KvCache {
        KvCache::new(self.cfg.n_layer, capture_attention)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_mask_respects_offset() {
        let m = causal_mask(2, 4, 2).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(m[0], vec![0.0, 0.0, 0.0, f32::NEG_INFINITY]);
        assert_eq!(m[1], vec![0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn repeat_kv_groups_consecutive_heads() {
        let x = Tensor::arange(0f32, 4.0, &Device::Cpu).unwrap().reshape((1, 2, 1, 2)).unwrap();
        let y = repeat_kv(&x, 2).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![0., 1., 0., 1., 2., 3., 2., 3.]);
    }

    #[test]
    fn attention_rows_sum_to_one() {
        let q = Tensor::randn(0f32, 1.0, (1, 4, 3, 8), &Device::Cpu).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, 2, 5, 8), &Device::Cpu).unwrap();
        let p = attention_probs(&q, &k, 2).unwrap().squeeze(0).unwrap().to_vec3::<f32>().unwrap();
        for head in &p {
            for (i, row) in head.iter().enumerate() {
                let s: f32 = row.iter().sum();
                assert!((s - 1.0).abs() < 1e-5);
                assert!(row[3 + i..].iter().all(|&w| w == 0.0), "no weight on future keys");
            }
        }
    }
}
