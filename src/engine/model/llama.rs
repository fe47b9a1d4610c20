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

use super::cache::{Captured, CapturedRows, HeadRows, KeysValues, KvCache, LayerCache};
use super::probe::{self, probe, probe_layer};
use crate::engine::error::EngineError;
use crate::engine::kernels::{self, ActBlock, CacheElem, QWeight, RowParts, SumOrder, WeightKind};
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
            n_kv_head: gguf
                .meta_usize(&key("attention.head_count_kv"))
                .unwrap_or(n_head),
            d_model,
            d_ff: gguf.meta_usize(&key("feed_forward_length"))?,
            head_dim: gguf
                .meta_usize(&key("rope.dimension_count"))
                .unwrap_or(d_model / n_head.max(1)),
            rope_base: gguf.meta_f32(&key("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: gguf
                .meta_f32(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            vocab_size,
            context_length: gguf.meta_usize(&key("context_length")).unwrap_or(2048),
        };
        cfg.check_ranges(gguf.path())?;
        if !cfg.n_head.is_multiple_of(cfg.n_kv_head) {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!(
                    "head counts {} / {} are inconsistent",
                    cfg.n_head, cfg.n_kv_head
                ),
            ));
        }
        if cfg.head_dim * cfg.n_head != cfg.d_model || !cfg.head_dim.is_multiple_of(2) {
            return Err(EngineError::corrupt(
                gguf.path(),
                format!(
                    "head_dim {} x {} heads != width {}",
                    cfg.head_dim, cfg.n_head, cfg.d_model
                ),
            ));
        }
        Ok(cfg)
    }

    /// Each number within what a model on one machine can have, so that
    /// the products below and the buffers sized from them cannot overflow.
    fn check_ranges(&self, path: &std::path::Path) -> Result<()> {
        let limits: [(&str, usize, usize); 7] = [
            ("block_count", self.n_layer, 1 << 10),
            ("attention.head_count", self.n_head, 1 << 10),
            ("attention.head_count_kv", self.n_kv_head, 1 << 10),
            ("embedding_length", self.d_model, 1 << 17),
            ("feed_forward_length", self.d_ff, 1 << 20),
            ("rope.dimension_count", self.head_dim, 1 << 12),
            ("context_length", self.context_length, 1 << 24),
        ];
        for (key, value, most) in limits {
            if value == 0 || value > most {
                return Err(EngineError::corrupt(
                    path,
                    format!("`{key}` is {value} (1 to {most})"),
                ));
            }
        }
        if self.vocab_size == 0 || self.vocab_size > 1 << 24 {
            return Err(EngineError::corrupt(
                path,
                format!(
                    "the vocabulary size is {} (1 to {})",
                    self.vocab_size,
                    1 << 24
                ),
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return Err(EngineError::corrupt(
                path,
                format!("`rope.freq_base` is {}", self.rope_base),
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0 && self.rms_eps < 1.0) {
            return Err(EngineError::corrupt(
                path,
                format!("`attention.layer_norm_rms_epsilon` is {}", self.rms_eps),
            ));
        }
        Ok(())
    }

    /// Every weight a Llama-layout model reads, with the shape (rows,
    /// columns) its config implies; `output.weight` only when the file has
    /// it (else the embedding is tied).
    fn tensor_shapes(&self, untied_output: bool) -> Vec<(String, Vec<usize>)> {
        let (d, q, kv) = (
            self.d_model,
            self.n_head * self.head_dim,
            self.n_kv_head * self.head_dim,
        );
        let mut out = vec![
            ("token_embd.weight".to_string(), vec![self.vocab_size, d]),
            ("output_norm.weight".to_string(), vec![d]),
        ];
        if untied_output {
            out.push(("output.weight".into(), vec![self.vocab_size, d]));
        }
        for i in 0..self.n_layer {
            let p = format!("blk.{i}");
            out.extend([
                (format!("{p}.attn_norm.weight"), vec![d]),
                (format!("{p}.attn_q.weight"), vec![q, d]),
                (format!("{p}.attn_k.weight"), vec![kv, d]),
                (format!("{p}.attn_v.weight"), vec![kv, d]),
                (format!("{p}.attn_output.weight"), vec![d, q]),
                (format!("{p}.ffn_norm.weight"), vec![d]),
                (format!("{p}.ffn_gate.weight"), vec![self.d_ff, d]),
                (format!("{p}.ffn_up.weight"), vec![self.d_ff, d]),
                (format!("{p}.ffn_down.weight"), vec![d, self.d_ff]),
            ]);
        }
        out
    }

    /// Every weight present with the shape the config implies, before any
    /// is read.
    fn check_tensors(&self, gguf: &GgufFile) -> Result<()> {
        for (name, want) in self.tensor_shapes(gguf.has_tensor("output.weight")) {
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

    /// Several layers over the same m rows of input (Q, K, V; gate, up):
    /// with our kernels the input is quantised once and one parallel region
    /// covers them all. Returns m rows of out_i for each layer.
    fn forward_rows(layers: &[&Linear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        let kernels: Option<Vec<&QWeight>> = layers
            .iter()
            .map(|l| match l {
                Linear::Kernel(w) => Some(&**w),
                Linear::Candle(_) => None,
            })
            .collect();
        match kernels {
            Some(ws)
                if ws
                    .iter()
                    .all(|w| w.kind() == ws[0].kind() && w.cols() == ws[0].cols()) =>
            {
                Ok(kernels::matmul_new(&ws, x, m))
            }
            _ => {
                let xt = Tensor::from_slice(x, (m, x.len() / m), &Device::Cpu)?;
                layers
                    .iter()
                    .map(|l| {
                        Ok(l.forward(&xt)?
                            .flatten_all()?
                            .to_dtype(DType::F32)?
                            .to_vec1::<f32>()?)
                    })
                    .collect()
            }
        }
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
        let fusable = kernels.as_ref().is_some_and(|ws| {
            ws.iter()
                .all(|w| w.kind() == ws[0].kind() && w.cols() == ws[0].cols())
        });
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
        kernels::matmul_new(&ws, &data, m)
            .into_iter()
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
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn load(gguf: &mut GgufFile, name: &str, eps: f32) -> Result<Self> {
        let weight = gguf
            .tensor(name)?
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(Self { weight, eps })
    }

    /// Each row of x (rows of d_model) -> x / rms(x) * weight, into `out`.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let d = self.weight.len();
        // Four rows at a time: each row's sum of squares is summed in order
        // in f64, as ggml's rms_norm sums it, and the rows' chains run side
        // by side (one alone waits on each addition's latency).
        for (xs, os) in x.chunks(4 * d).zip(out.chunks_mut(4 * d)) {
            let sum2 = match xs.len() / d {
                4 => sum_squares::<4>(xs, d),
                3 => sum_squares::<3>(xs, d),
                2 => sum_squares::<2>(xs, d),
                _ => sum_squares::<1>(xs, d),
            };
            for ((xr, or), s) in xs.chunks_exact(d).zip(os.chunks_exact_mut(d)).zip(sum2) {
                let scale = 1.0 / ((s / d as f64) as f32 + self.eps).sqrt();
                for ((o, &v), &w) in or.iter_mut().zip(xr).zip(&self.weight) {
                    *o = v * scale * w;
                }
            }
        }
    }
}

/// Each of the R rows of `d` in `xs`: its sum of squares, in order, in f64
/// (four in the array; R a constant, so that the chains stay in registers
/// side by side rather than going through memory every addition).
fn sum_squares<const R: usize>(xs: &[f32], d: usize) -> [f64; 4] {
    let rows: [&[f32]; R] = std::array::from_fn(|r| &xs[r * d..(r + 1) * d]);
    let mut sum2 = [0f64; R];
    for i in 0..d {
        for (s, row) in sum2.iter_mut().zip(&rows) {
            let v = row[i];
            *s += (v * v) as f64;
        }
    }
    std::array::from_fn(|r| if r < R { sum2[r] } else { 0.0 })
}

/// Rotary tables for every position the model can see.
#[derive(Debug, Clone)]
struct Rope {
    cos: Vec<f32>, // (context, head_dim / 2)
    sin: Vec<f32>,
    half: usize,
}

impl Rope {
    /// Angles as ggml builds its rotary cache: theta_0 = position, each
    /// next pair's angle the previous times base^(-2 / head_dim), in f32.
    fn new(cfg: &Config) -> Self {
        let half = cfg.head_dim / 2;
        let theta_scale = cfg.rope_base.powf(-2.0 / cfg.head_dim as f32);
        let mut cos = Vec::with_capacity(cfg.context_length * half);
        let mut sin = Vec::with_capacity(cfg.context_length * half);
        for p in 0..cfg.context_length {
            let mut theta = p as f32;
            for _ in 0..half {
                cos.push(theta.cos());
                sin.push(theta.sin());
                theta *= theta_scale;
            }
        }
        Self { cos, sin, half }
    }

    /// GGUF stores Q and K permuted for llama.cpp's interleaved rotary form,
    /// so rotate adjacent pairs. x: rows (one per position from `offset`)
    /// of heads x head_dim, rotated in place.
    fn apply(&self, x: &mut [f32], width: usize, offset: usize) {
        let hd = 2 * self.half;
        for (i, row) in x.chunks_exact_mut(width).enumerate() {
            let at = (offset + i) * self.half;
            let (cos, sin) = (&self.cos[at..at + self.half], &self.sin[at..at + self.half]);
            debug_assert!(row.len().is_multiple_of(hd));
            kernels::rotate_pairs(row, cos, sin);
        }
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
    f16: bool,
    /// The block's index (names the debug probes).
    layer: usize,
}

/// Shapes of one attention computation.
#[derive(Clone, Copy, Debug)]
struct Heads {
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    /// Round as llama.cpp's attention does with its default f16 KV cache
    /// (no flash attention): queries, keys and values to f16, and the
    /// probabilities to f16 before they weight the values.
    f16: bool,
}

impl Heads {
    fn q_width(&self) -> usize {
        self.n_head * self.head_dim
    }

    fn kv_width(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// The key/value head that query head h reads (each serves
    /// n_head / n_kv_head consecutive query heads).
    fn kv_head(&self, h: usize) -> usize {
        h / (self.n_head / self.n_kv_head)
    }
}

/// One row of attention probabilities: softmax(q k_j / sqrt(d)) over the
/// `keys` j < `visible` (the query head's key/value head's), zeros for
/// later keys. `out` has one entry
/// per key. The forward pass and the on-demand attention rows both go
/// through here, so what is shown is what was computed.
///
/// `multi`: whether the query was computed in a step of 2+ tokens, which
/// decides the order ggml sums q.k in (see [`SumOrder`]).
fn probs_row<T: CacheElem>(
    hs: Heads,
    q: &[f32],
    keys: RowParts<'_, T>,
    visible: usize,
    multi: bool,
    out: &mut [f32],
) {
    let d = hs.head_dim;
    let order = SumOrder::for_step(if multi { 2 } else { 1 }, d);
    let scale = 1.0 / (d as f32).sqrt();
    kernels::dots(order, q, keys, &mut out[..visible]);
    for o in &mut out[..visible] {
        *o *= scale;
    }
    kernels::softmax(&mut out[..visible]);
    out[visible..].fill(0.0);
}

/// Query rows per attention task.
const QUERY_BLOCK: usize = 16;

/// One sequence's part of an attention step: its `nq` queries (rows of
/// n_head x head_dim, at positions offset..) and its cache's keys and
/// values (per key/value head, the queries' own included).
#[derive(Clone)]
struct SeqAttention<'a, T> {
    q: &'a [f32],
    keys: HeadRows<'a, T>,
    values: HeadRows<'a, T>,
    nq: usize,
    offset: usize,
}

impl<'a, T> SeqAttention<'a, T> {
    fn new(
        q: &'a [f32],
        keys: HeadRows<'a, T>,
        values: HeadRows<'a, T>,
        nq: usize,
        offset: usize,
    ) -> Self {
        Self {
            q,
            keys,
            values,
            nq,
            offset,
        }
    }
}

/// Causal attention for each sequence: its y, rows of n_head x head_dim,
/// the sequences' rows one after another.
/// The sequences' heads share one parallel region (a batched step would
/// otherwise open one per sequence, each too small to be worth it).
fn attend<T: CacheElem>(hs: Heads, seqs: &[SeqAttention<T>]) -> Vec<f32> {
    let group = hs.n_head / hs.n_kv_head;
    if seqs.iter().all(|s| s.nq == 1) && kernels::attend_group_supported(group, hs.head_dim) {
        attend_decode(hs, seqs)
    } else {
        attend_heads(hs, seqs)
    }
}

/// [`attend`] head by head (any step; the reference for the fused path).
fn attend_heads<T: CacheElem>(hs: Heads, seqs: &[SeqAttention<T>]) -> Vec<f32> {
    let (d, qw) = (hs.head_dim, hs.q_width());
    // Tasks: (sequence, head, block of queries), sequence by sequence;
    // each writes (QUERY_BLOCK, d) outputs.
    let blocks: Vec<usize> = seqs.iter().map(|s| s.nq.div_ceil(QUERY_BLOCK)).collect();
    let first: Vec<usize> = blocks
        .iter()
        .scan(0, |n, &b| {
            let f = *n;
            *n += hs.n_head * b;
            Some(f)
        })
        .collect();
    let n_tasks: usize = blocks.iter().map(|b| hs.n_head * b).sum();
    let mut yh = vec![0f32; n_tasks * QUERY_BLOCK * d];
    let task = |t: usize, out: &mut [f32]| {
        let si = first.partition_point(|&f| f <= t) - 1;
        let seq = &seqs[si];
        let (h, b) = ((t - first[si]) / blocks[si], (t - first[si]) % blocks[si]);
        let kh = hs.kv_head(h);
        let mut p = vec![0f32; seq.offset + seq.nq];
        for (r, yr) in out.chunks_exact_mut(d).enumerate() {
            let i = b * QUERY_BLOCK + r;
            if i >= seq.nq {
                break;
            }
            let visible = seq.offset + i + 1;
            probs_row(
                hs,
                &seq.q[i * qw + h * d..i * qw + (h + 1) * d],
                seq.keys.head(kh),
                visible,
                seq.nq >= 2,
                &mut p[..visible],
            );
            if hs.f16 {
                kernels::round_f16(&mut p[..visible]);
            }
            // Probabilities x values in ggml's order: tinyBLAS for steps of
            // 2+ tokens, its f16 dot product for one (llama.cpp pads the
            // keys to 256, a multiple of 16, so tinyBLAS always takes it).
            let order = if seq.nq >= 2 {
                SumOrder::Lanes16
            } else {
                SumOrder::Lanes64
            };
            kernels::weighted_rows(order, &p[..visible], seq.values.head(kh), yr);
        }
    };
    let work: usize = seqs
        .iter()
        .map(|s| hs.n_head * s.nq * (s.offset + s.nq) * d)
        .sum();
    if work < 1 << 16 {
        for (t, out) in yh.chunks_exact_mut(QUERY_BLOCK * d).enumerate() {
            task(t, out);
        }
    } else {
        kernels::par_chunks_mut(&mut yh, QUERY_BLOCK * d, &task);
    }
    let mut y = vec![0f32; seqs.iter().map(|s| s.nq).sum::<usize>() * qw];
    let mut row = 0;
    for (si, seq) in seqs.iter().enumerate() {
        for h in 0..hs.n_head {
            for i in 0..seq.nq {
                let src = ((first[si] + h * blocks[si]) * QUERY_BLOCK + i) * d;
                let at = (row + i) * qw + h * d;
                y[at..at + d].copy_from_slice(&yh[src..src + d]);
            }
        }
        row += seq.nq;
    }
    y
}

/// [`attend`] for a single-token step of every sequence: a task per
/// (sequence, key/value head), whose query heads are attended together by
/// one fused kernel (each key and value row read once for the group), or
/// per (sequence, head) when that gives the threads too few tasks. The
/// same numbers as head by head.
fn attend_decode<T: CacheElem>(hs: Heads, seqs: &[SeqAttention<T>]) -> Vec<f32> {
    let (d, qw) = (hs.head_dim, hs.q_width());
    let n = seqs.len();
    // A task attends the heads of one key/value head together, or (when
    // that gives too few tasks to keep every thread busy, as one sequence
    // does) one head alone.
    let group = hs.n_head / hs.n_kv_head;
    let heads = if n * hs.n_kv_head >= 2 * kernels::pool().threads() {
        group
    } else {
        1
    };
    // Tasks unit by unit (a unit: `heads` consecutive heads), so that
    // sequences forked from one another read their shared rows one after
    // the other (while those are in cache): task t = unit * n + sequence.
    let task = |t: usize, out: &mut [f32]| {
        let (seq, unit) = (&seqs[t % n], t / n);
        let h = unit * heads;
        let visible = seq.offset + 1;
        let mut probs = vec![0f32; heads * visible];
        kernels::attend_group(
            &seq.q[h * d..(h + heads) * d],
            seq.keys.head(hs.kv_head(h)),
            seq.values.head(hs.kv_head(h)),
            visible,
            hs.f16,
            &mut probs,
            out,
        );
    };
    let uw = heads * d;
    let mut y = vec![0f32; n * qw];
    let work: usize = seqs.iter().map(|s| hs.n_head * (s.offset + 1) * d).sum();
    if work < 1 << 16 {
        for (t, out) in y.chunks_exact_mut(uw).enumerate() {
            task(t, out);
        }
    } else {
        kernels::par_chunks_mut(&mut y, uw, &task);
    }
    // Back to a row of qw per sequence.
    let units = hs.n_head / heads;
    let mut rows = Vec::with_capacity(n * qw);
    for i in 0..n {
        for u in 0..units {
            rows.extend_from_slice(&y[(u * n + i) * uw..(u * n + i + 1) * uw]);
        }
    }
    rows
}

/// Attention probabilities (n_head, nq, nk) of `nq` captured queries at
/// positions offset.., over the first nk = offset + nq keys; `multi[i]`:
/// whether query i was computed in a step of 2+ tokens.
fn attention_probs<T: CacheElem>(
    hs: Heads,
    q: &[f32],
    keys: &HeadRows<'_, T>,
    nq: usize,
    offset: usize,
    multi: &[bool],
) -> Vec<f32> {
    assert_eq!(multi.len(), nq);
    let nk = offset + nq;
    let qw = hs.q_width();
    let d = hs.head_dim;
    let mut out = vec![0f32; hs.n_head * nq * nk];
    let row = |r: usize, o: &mut [f32]| {
        let (h, i) = (r / nq, r % nq);
        probs_row(
            hs,
            &q[i * qw + h * d..i * qw + (h + 1) * d],
            keys.head(hs.kv_head(h)),
            offset + i + 1,
            multi[i],
            o,
        );
    };
    if hs.n_head * nq * nk * d < 1 << 16 {
        for (r, o) in out.chunks_exact_mut(nk).enumerate() {
            row(r, o);
        }
    } else {
        let rows_per_task = (hs.n_head * nq).div_ceil(64).max(1);
        kernels::par_chunks_mut(&mut out, rows_per_task * nk, &|t, chunk| {
            for (r, o) in chunk.chunks_exact_mut(nk).enumerate() {
                row(t * rows_per_task + r, o);
            }
        });
    }
    out
}

impl Attention {
    fn load(
        gguf: &mut GgufFile,
        prefix: &str,
        cfg: &Config,
        p: Precision,
        layer: usize,
    ) -> Result<Self> {
        Ok(Self {
            wq: Linear::load(gguf, &format!("{prefix}.attn_q.weight"), p)?,
            wk: Linear::load(gguf, &format!("{prefix}.attn_k.weight"), p)?,
            wv: Linear::load(gguf, &format!("{prefix}.attn_v.weight"), p)?,
            wo: Linear::load(gguf, &format!("{prefix}.attn_output.weight"), p)?,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            head_dim: cfg.head_dim,
            // llama.cpp's numerics (its default f16 KV cache, no flash
            // attention) in quantised mode; exact f32 in f32 mode.
            f16: p == Precision::Quantized,
            layer,
        })
    }

    fn heads(&self) -> Heads {
        Heads {
            n_head: self.n_head,
            n_kv_head: self.n_kv_head,
            head_dim: self.head_dim,
            f16: self.f16,
        }
    }

    /// x: rows of d_model for `seqs`, each (cache, rows): a sequence's
    /// positions after what its cache holds. Returns rows of d_model.
    fn forward(
        &self,
        x: &[f32],
        rope: &Rope,
        seqs: &mut [(&mut LayerCache, usize)],
    ) -> Result<Vec<f32>> {
        let hs = self.heads();
        let (qw, kw) = (hs.q_width(), hs.kv_width());
        let m: usize = seqs.iter().map(|s| s.1).sum();
        let [mut q, mut k, mut v]: [Vec<f32>; 3] =
            Linear::forward_rows(&[&self.wq, &self.wk, &self.wv], x, m)?
                .try_into()
                .expect("three outputs");
        // A capturing cache keeps the query projection's 8-bit inputs when
        // our kernels run it (smaller than the queries; see `Captured`).
        let inputs = match &self.wq {
            Linear::Kernel(w) if seqs.iter().any(|(c, _)| c.captures()) => {
                let mut a = vec![ActBlock::default(); m * w.cols() / kernels::QK];
                kernels::quantize_acts(w.kind(), x, &mut a);
                Some((a, w.cols() / kernels::QK))
            }
            _ => None,
        };
        // Debug probes (off unless LMSCOPE_PROBE_* is set), one sequence
        // at a time in llama.cpp's graph names.
        let l = self.layer;
        probe_layer("Qcur_mm", l, &mut q);
        probe_layer("Kcur_mm", l, &mut k);
        probe_layer("Vcur", l, &mut v);
        // Each sequence's rotation and cache append, then every sequence's
        // attention at once.
        let mut row = 0;
        for (cache, n) in seqs.iter_mut() {
            let n = *n;
            let offset = cache.len();
            let (qs, ks, vs) = (
                &mut q[row * qw..(row + n) * qw],
                &mut k[row * kw..(row + n) * kw],
                &v[row * kw..(row + n) * kw],
            );
            rope.apply(qs, qw, offset);
            rope.apply(ks, kw, offset);
            probe_layer("Qcur", l, qs);
            probe_layer("Kcur", l, ks);
            let mut vs = std::borrow::Cow::Borrowed(vs);
            if hs.f16 {
                kernels::round_f16(qs);
                kernels::round_f16(ks);
                kernels::round_f16(vs.to_mut());
            }
            let captured = match &inputs {
                Some((a, nb)) => Captured::Inputs(&a[row * nb..(row + n) * nb]),
                None => Captured::Queries(qs),
            };
            cache.append(ks, &vs, captured, n);
            if n == 1 && inputs.is_some() {
                cache.keep_last_query(qs);
            }
            if probe::enabled() {
                let multi = vec![n >= 2; n];
                let mut p = match cache.keys_values() {
                    KeysValues::F32(k, _) => attention_probs(hs, qs, &k, n, offset, &multi),
                    KeysValues::F16(k, _) => attention_probs(hs, qs, &k, n, offset, &multi),
                };
                probe_layer("kq_soft_max", l, &mut p);
            }
            row += n;
        }
        // The caches of one model all hold f16 rows or all f32.
        let (mut f32s, mut f16s) = (Vec::new(), Vec::new());
        let mut row = 0;
        for (cache, n) in seqs.iter() {
            let (qs, offset) = (&q[row * qw..(row + n) * qw], cache.len() - n);
            match cache.keys_values() {
                KeysValues::F32(k, v) => f32s.push(SeqAttention::new(qs, k, v, *n, offset)),
                KeysValues::F16(k, v) => f16s.push(SeqAttention::new(qs, k, v, *n, offset)),
            }
            row += n;
        }
        assert!(
            f32s.is_empty() || f16s.is_empty(),
            "the caches of one model hold their rows alike"
        );
        let mut y = if f16s.is_empty() {
            attend(hs, &f32s)
        } else {
            attend(hs, &f16s)
        };
        probe_layer("kqv_out", l, &mut y);
        let mut out = Linear::forward_rows(&[&self.wo], &y, m)?
            .pop()
            .expect("one output");
        probe_layer("attn_out", l, &mut out);
        Ok(out)
    }

    /// The queries of `n` positions from offset on, recomputed from the
    /// query projection's cached 8-bit inputs exactly as `forward` made them.
    fn queries_from(&self, inputs: &[ActBlock], rope: &Rope, offset: usize, n: usize) -> Vec<f32> {
        let Linear::Kernel(w) = &self.wq else {
            unreachable!("inputs are cached only for our kernels")
        };
        let qw = self.heads().q_width();
        let mut q = vec![0f32; n * qw];
        kernels::matmul_quantized(&[w], inputs, n, &mut [&mut q]);
        rope.apply(&mut q, qw, offset);
        if self.f16 {
            kernels::round_f16(&mut q);
        }
        q
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

    /// x: m rows of d_model -> m rows of d_model.
    fn forward(&self, x: &[f32], m: usize, l: usize) -> Result<Vec<f32>> {
        let [mut gate, mut up]: [Vec<f32>; 2] =
            Linear::forward_rows(&[&self.gate, &self.up], x, m)?
                .try_into()
                .expect("two outputs");
        probe_layer("ffn_gate", l, &mut gate);
        probe_layer("ffn_up", l, &mut up);
        let row = gate.len() / m;
        if m >= 2 && row.is_multiple_of(16) {
            // Rows in parallel (a whole number of 16-value steps each, so
            // every value takes the path it takes in one call).
            kernels::par_chunks_mut(&mut gate, row, &|i, g| {
                kernels::silu_mul(g, &up[i * row..i * row + g.len()])
            });
        } else {
            kernels::silu_mul(&mut gate, &up);
        }
        probe_layer("ffn_swiglu", l, &mut gate);
        let mut out = Linear::forward_rows(&[&self.down], &gate, m)?
            .pop()
            .expect("one output");
        probe_layer("ffn_out", l, &mut out);
        Ok(out)
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
        cfg.check_tensors(gguf)?;
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
            cfg,
            precision,
        })
    }

    /// Runs `tokens` after what `cache` already holds, appending to it.
    /// Returns logits (n, vocab) as f32: n = 1 for `Logits::Last`, else the
    /// number of tokens.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Tensor> {
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
    pub fn forward_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Tensor> {
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

    /// Attention probabilities of queries `queries` (absolute positions) in
    /// `layer`, over all keys up to the last query: (n_head, nq, nk) with
    /// nk = queries.end, recomputed from the cached queries and keys.
    pub fn attention_rows(
        &self,
        cache: &KvCache,
        layer: usize,
        queries: std::ops::Range<usize>,
    ) -> Result<Tensor> {
        let lc = cache.layers.get(layer).ok_or(EngineError::NoSuchLayer {
            layer,
            n_layer: self.cfg.n_layer,
        })?;
        let (rows, k) = lc.captured(queries.clone())?;
        let attn = &self.blocks[layer].attn;
        let hs = attn.heads();
        let (nq, offset) = (queries.len(), queries.start);
        let q = match rows {
            CapturedRows::Queries(q) => q,
            CapturedRows::Inputs(a) => attn.queries_from(a, &self.rope, offset, nq),
        };
        let multi = &cache.multi()[queries.clone()];
        let probs = match k {
            KeysValues::F32(k, _) => attention_probs(hs, &q, &k, nq, offset, multi),
            KeysValues::F16(k, _) => attention_probs(hs, &q, &k, nq, offset, multi),
        };
        Ok(Tensor::from_vec(
            probs,
            (hs.n_head, queries.len(), queries.end),
            &Device::Cpu,
        )?)
    }

    pub fn new_cache(&self, capture_attention: bool) -> KvCache {
        KvCache::new(
            self.cfg.n_layer,
            self.cfg.n_kv_head,
            capture_attention,
            self.precision == Precision::Quantized,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HS: Heads = Heads {
        n_head: 4,
        n_kv_head: 2,
        head_dim: 8,
        f16: false,
    };

    /// Keys or values of `hs`'s heads, positions in one slice.
    fn rows<T: Copy>(x: &[T], hs: Heads) -> HeadRows<'_, T> {
        HeadRows::interleaved(x, hs.n_kv_head, hs.head_dim)
    }

    fn random(n: usize, seed: u64) -> Vec<f32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1f32..1.0)).collect()
    }

    /// The plain definition: softmax(q k^T / sqrt(d) + causal mask) V, in
    /// f64, with consecutive query heads sharing a KV head.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        nq: usize,
        offset: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let (d, qw, kw) = (HS.head_dim, HS.q_width(), HS.kv_width());
        let nk = offset + nq;
        let mut probs = vec![0f64; HS.n_head * nq * nk];
        let mut y = vec![0f64; nq * qw];
        for h in 0..HS.n_head {
            let kh = h / (HS.n_head / HS.n_kv_head);
            for i in 0..nq {
                let s: Vec<f64> = (0..=offset + i)
                    .map(|j| {
                        (0..d)
                            .map(|c| q[i * qw + h * d + c] as f64 * k[j * kw + kh * d + c] as f64)
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
                for (j, x) in s.iter().enumerate() {
                    let p = (x - max).exp() / z;
                    probs[(h * nq + i) * nk + j] = p;
                    for c in 0..d {
                        y[i * qw + h * d + c] += p * v[j * kw + kh * d + c] as f64;
                    }
                }
            }
        }
        (probs, y)
    }

    #[test]
    fn attention_matches_the_definition_and_rows_are_causal() {
        for &(nq, offset) in &[(1usize, 0usize), (1, 6), (3, 2), (37, 0), (5, 40)] {
            let nk = offset + nq;
            let q = random(nq * HS.q_width(), 1);
            let k = random(nk * HS.kv_width(), 2);
            let v = random(nk * HS.kv_width(), 3);
            let (want_p, want_y) = reference(&q, &k, &v, nq, offset);
            let p = attention_probs(HS, &q, &rows(&k, HS), nq, offset, &vec![nq >= 2; nq]);
            let y = attend(
                HS,
                &[SeqAttention::new(
                    &q,
                    rows(&k, HS),
                    rows(&v, HS),
                    nq,
                    offset,
                )],
            );
            for (a, b) in p.iter().zip(&want_p) {
                assert!((*a as f64 - b).abs() < 1e-5, "probs {a} vs {b}");
            }
            for (a, b) in y.iter().zip(&want_y) {
                assert!((*a as f64 - b).abs() < 1e-5, "y {a} vs {b}");
            }
            for h in 0..HS.n_head {
                for i in 0..nq {
                    let row = &p[(h * nq + i) * nk..(h * nq + i + 1) * nk];
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                    assert!(
                        row[offset + i + 1..].iter().all(|&w| w == 0.0),
                        "no weight on future keys"
                    );
                }
            }
        }
    }

    #[test]
    fn sequences_attended_together_equal_each_alone() {
        // Small and large enough to take the parallel path, with several
        // query blocks in one of them.
        let shapes = [(1usize, 5usize), (1, 300), (37, 0), (3, 60)];
        let data: Vec<_> = shapes
            .iter()
            .enumerate()
            .map(|(s, &(nq, offset))| {
                let nk = offset + nq;
                let seed = 10 * s as u64;
                (
                    random(nq * HS.q_width(), seed),
                    random(nk * HS.kv_width(), seed + 1),
                    random(nk * HS.kv_width(), seed + 2),
                )
            })
            .collect();
        let seqs: Vec<_> = shapes
            .iter()
            .zip(&data)
            .map(|(&(nq, offset), (q, k, v))| {
                SeqAttention::new(q, rows(k, HS), rows(v, HS), nq, offset)
            })
            .collect();
        let together = attend(HS, &seqs);
        let mut at = 0;
        for seq in &seqs {
            let len = seq.nq * HS.q_width();
            assert_eq!(
                attend(HS, std::slice::from_ref(seq)),
                together[at..at + len]
            );
            at += len;
        }
        assert_eq!(at, together.len());
    }

    #[test]
    fn fused_decode_attention_equals_head_by_head_bit_for_bit() {
        // SmolLM2's heads (three query heads a KV head, 64 wide), one query
        // a sequence, contexts around the 16-key and 64-lane boundaries.
        // (Where the CPU has no fused kernel both sides take the same path.)
        let hs = |f16| Heads {
            n_head: 9,
            n_kv_head: 3,
            head_dim: 64,
            f16,
        };
        let offsets = [0usize, 4, 15, 16, 40, 63, 64, 65, 127, 200, 301];
        for f16 in [false, true] {
            let data: Vec<_> = offsets
                .iter()
                .map(|&offset| {
                    let seed = 100 + offset as u64;
                    let (mut q, mut k, mut v) = (
                        random(hs(f16).q_width(), seed),
                        random((offset + 1) * hs(f16).kv_width(), seed + 1),
                        random((offset + 1) * hs(f16).kv_width(), seed + 2),
                    );
                    if f16 {
                        for x in q.iter_mut().chain(&mut k).chain(&mut v) {
                            *x = half::f16::from_f32(*x).to_f32();
                        }
                    }
                    (q, k, v)
                })
                .collect();
            let seqs: Vec<_> = offsets
                .iter()
                .zip(&data)
                .map(|(&offset, (q, k, v))| {
                    SeqAttention::new(&q[..], rows(k, hs(f16)), rows(v, hs(f16)), 1, offset)
                })
                .collect();
            let bits = |y: Vec<f32>| -> Vec<u32> { y.iter().map(|x| x.to_bits()).collect() };
            assert_eq!(
                bits(attend(hs(f16), &seqs)),
                bits(attend_heads(hs(f16), &seqs))
            );
            // The same rows held as f16, as the quantised cache holds them.
            let halves: Vec<_> = data
                .iter()
                .map(|(_, k, v)| {
                    let h = |x: &Vec<f32>| {
                        x.iter()
                            .map(|&x| half::f16::from_f32(x))
                            .collect::<Vec<_>>()
                    };
                    (h(k), h(v))
                })
                .collect();
            let seqs: Vec<_> = offsets
                .iter()
                .zip(&data)
                .zip(&halves)
                .map(|((&offset, (q, _, _)), (k, v))| {
                    SeqAttention::new(&q[..], rows(k, hs(f16)), rows(v, hs(f16)), 1, offset)
                })
                .collect();
            let want = bits(attend_heads(hs(f16), &seqs));
            assert_eq!(bits(attend(hs(f16), &seqs)), want);
            // One sequence alone (a task a head, not a group).
            let qw = hs(f16).q_width();
            for (seq, want) in seqs.iter().zip(want.chunks_exact(qw)) {
                assert_eq!(bits(attend(hs(f16), std::slice::from_ref(seq))), want);
            }
            // And each head's rows apart, as the cache holds them, split
            // into a shared prefix and the sequence's own rows (as a forked
            // cache holds them) anywhere: the same bits.
            let d = hs(f16).head_dim;
            let by_head = |x: &[half::f16]| -> Vec<Vec<half::f16>> {
                (0..hs(f16).n_kv_head)
                    .map(|h| {
                        x.chunks_exact(hs(f16).kv_width())
                            .flat_map(|row| &row[h * d..(h + 1) * d])
                            .copied()
                            .collect()
                    })
                    .collect()
            };
            let apart: Vec<_> = halves
                .iter()
                .map(|(k, v)| (by_head(k), by_head(v)))
                .collect();
            for split in [0usize, 1, 16, 40, 64, 65, 200, usize::MAX] {
                fn parts(
                    heads: &[Vec<half::f16>],
                    split: usize,
                    d: usize,
                ) -> HeadRows<'_, half::f16> {
                    let heads = heads.iter().map(|x| {
                        let at = split.min(x.len() / d) * d;
                        RowParts::new(&x[..at], &x[at..], d)
                    });
                    HeadRows::new(heads.collect())
                }
                let seqs: Vec<_> = offsets
                    .iter()
                    .zip(&data)
                    .zip(&apart)
                    .map(|((&offset, (q, _, _)), (k, v))| {
                        SeqAttention::new(&q[..], parts(k, split, d), parts(v, split, d), 1, offset)
                    })
                    .collect();
                assert_eq!(bits(attend(hs(f16), &seqs)), want, "split at {split}");
                assert_eq!(bits(attend_heads(hs(f16), &seqs)), want, "split at {split}");
            }
        }
    }

    #[test]
    fn rope_rotates_adjacent_pairs() {
        let cfg = Config {
            n_layer: 1,
            n_head: 1,
            n_kv_head: 1,
            d_model: 4,
            d_ff: 4,
            head_dim: 4,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            vocab_size: 1,
            context_length: 8,
        };
        let rope = Rope::new(&cfg);
        let mut x = vec![1.0, 0.0, 1.0, 0.0];
        rope.apply(&mut x, 4, 3);
        // Pair 0 turns by 3 radians, pair 1 by 3 / 100.
        assert!((x[0] - 3f32.cos()).abs() < 1e-6 && (x[1] - 3f32.sin()).abs() < 1e-6);
        assert!((x[2] - 0.03f32.cos()).abs() < 1e-6 && (x[3] - 0.03f32.sin()).abs() < 1e-6);
    }
}
