//! Causal self-attention over the KV cache, grouped-query heads; the
//! same row function serves the forward pass and the attention shown.

use candle_core::{Device, Tensor};

use super::linear::Linear;
use super::norm::{RmsNorm, add_bias, optional_vector};
use super::rope::Rope;
use crate::engine::error::Result;
use crate::engine::kernels::{self, ActBlock, CacheElem, RowParts, SumOrder};
use crate::engine::load::weights::Weights;
use crate::engine::model::cache::{Captured, CapturedRows, HeadRows, KeysValues, LayerCache};
use crate::engine::model::config::Config;
use crate::engine::model::probe::{self, probe_layer};
use crate::engine::model::types::Precision;

#[derive(Debug, Clone)]
pub(crate) struct Attention {
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    /// Biases of the four projections, where the model has them (GPT-2).
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    bo: Option<Vec<f32>>,
    /// The rotary embedding of queries and keys; none where positions are
    /// added to the embeddings instead (GPT-2).
    rope: Option<Rope>,
    /// RMS norms of each query and key head before the rotation (Gemma 3).
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    window: Option<usize>,
    f16: bool,
    /// The block's index (names the debug probes).
    pub(crate) layer: usize,
}

/// Shapes of one attention computation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    /// Round as llama.cpp's attention does with its default f16 KV cache
    /// (no flash attention): queries, keys and values to f16, and the
    /// probabilities to f16 before they weight the values.
    f16: bool,
    /// A sliding-window layer's span: a query sees itself and the
    /// window - 1 keys before it.
    window: Option<usize>,
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
/// later keys and for keys before a sliding window. `out` has one entry
/// per key. The forward pass and the on-demand attention rows both go
/// through here, so what is shown is what was computed.
///
/// `multi`: whether the query was computed in a step of 2+ tokens, which
/// decides the order ggml sums q.k in (see [`SumOrder`]).
pub(crate) fn probs_row<T: CacheElem>(
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
    // Keys left of the window masked as ggml masks them (-inf, then the
    // softmax over the whole row, so that its sums run in the same order).
    if let Some(w) = hs.window {
        out[..visible.saturating_sub(w)].fill(f32::NEG_INFINITY);
    }
    kernels::softmax(&mut out[..visible]);
    out[visible..].fill(0.0);
}

/// Query rows per attention task.
pub(crate) const QUERY_BLOCK: usize = 16;

/// One sequence's part of an attention step: its `nq` queries (rows of
/// n_head x head_dim, at positions offset..) and its cache's keys and
/// values (per key/value head, the queries' own included).
#[derive(Clone)]
pub(crate) struct SeqAttention<'a, T> {
    q: &'a [f32],
    keys: HeadRows<'a, T>,
    values: HeadRows<'a, T>,
    nq: usize,
    offset: usize,
}

impl<'a, T> SeqAttention<'a, T> {
    pub(crate) fn new(
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
pub(crate) fn attend<T: CacheElem>(hs: Heads, seqs: &[SeqAttention<T>]) -> Vec<f32> {
    let group = hs.n_head / hs.n_kv_head;
    if seqs.iter().all(|s| s.nq == 1)
        && hs.window.is_none()
        && kernels::attend_group_supported(group, hs.head_dim)
    {
        attend_decode(hs, seqs)
    } else {
        attend_heads(hs, seqs)
    }
}

/// [`attend`] head by head (any step; the reference for the fused path).
pub(crate) fn attend_heads<T: CacheElem>(hs: Heads, seqs: &[SeqAttention<T>]) -> Vec<f32> {
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
pub(crate) fn attend_decode<T: CacheElem>(hs: Heads, seqs: &[SeqAttention<T>]) -> Vec<f32> {
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
pub(crate) fn attention_probs<T: CacheElem>(
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
    /// Attention probabilities (n_head, nq, nk) of the queries at
    /// positions `queries`, over every key up to the last, from what the
    /// cache captured, through the forward pass's own row function.
    pub(crate) fn captured_probs(
        &self,
        lc: &LayerCache,
        multi: &[bool],
        queries: std::ops::Range<usize>,
    ) -> Result<Tensor> {
        let (rows, k) = lc.captured(queries.clone())?;
        let hs = self.heads();
        let (nq, offset) = (queries.len(), queries.start);
        let q = match rows {
            CapturedRows::Queries(q) => q,
            CapturedRows::Inputs(a) => self.queries_from(a, offset, nq),
        };
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

    /// Query head `head`'s rows at positions `queries` and its key/value
    /// head's keys up to the last query, as computed (rotated), in f32.
    pub(crate) fn head_vectors(
        &self,
        lc: &LayerCache,
        queries: std::ops::Range<usize>,
        head: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        if head >= self.n_head {
            return Err(crate::engine::error::EngineError::NoSuchHead {
                head,
                n_head: self.n_head,
            });
        }
        let (rows, k) = lc.captured(queries.clone())?;
        let hs = self.heads();
        let (nq, nk, d) = (queries.len(), queries.end, hs.head_dim);
        let q = match rows {
            CapturedRows::Queries(q) => q,
            CapturedRows::Inputs(a) => self.queries_from(a, queries.start, nq),
        };
        let qw = hs.q_width();
        let q = (0..nq)
            .flat_map(|i| {
                q[i * qw + head * d..i * qw + (head + 1) * d]
                    .iter()
                    .copied()
            })
            .collect();
        fn rows_f32<T: CacheElem>(rows: RowParts<'_, T>, n: usize, d: usize) -> Vec<f32> {
            (0..n)
                .flat_map(|j| rows.row(j, d).iter().map(|x| x.to_f32()))
                .collect()
        }
        let kh = hs.kv_head(head);
        let k = match k {
            KeysValues::F32(k, _) => rows_f32(k.head(kh), nk, d),
            KeysValues::F16(k, _) => rows_f32(k.head(kh), nk, d),
        };
        Ok((q, k))
    }

    /// The block's attention weights; biases and query and key norms
    /// where the weights have them; `rope` unless positions are added to
    /// the embeddings; `window` for a sliding-window layer.
    pub(crate) fn load(
        weights: &mut dyn Weights,
        prefix: &str,
        cfg: &Config,
        p: Precision,
        layer: usize,
        rope: Option<Rope>,
        window: Option<usize>,
    ) -> Result<Self> {
        let mut norm = |name: &str| -> Result<Option<RmsNorm>> {
            let name = format!("{prefix}.{name}.weight");
            if weights.has_tensor(&name) {
                Ok(Some(RmsNorm::load(weights, &name, cfg.rms_eps)?))
            } else {
                Ok(None)
            }
        };
        let (q_norm, k_norm) = (norm("attn_q_norm")?, norm("attn_k_norm")?);
        let mut bias = |name: &str| optional_vector(weights, &format!("{prefix}.{name}.bias"));
        let (bq, bk, bv, bo) = (
            bias("attn_q")?,
            bias("attn_k")?,
            bias("attn_v")?,
            bias("attn_output")?,
        );
        Ok(Self {
            wq: Linear::load(weights, &format!("{prefix}.attn_q.weight"), p)?,
            wk: Linear::load(weights, &format!("{prefix}.attn_k.weight"), p)?,
            wv: Linear::load(weights, &format!("{prefix}.attn_v.weight"), p)?,
            wo: Linear::load(weights, &format!("{prefix}.attn_output.weight"), p)?,
            bq,
            bk,
            bv,
            bo,
            rope,
            q_norm,
            k_norm,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            head_dim: cfg.head_dim,
            window,
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
            window: self.window,
        }
    }

    /// The rotary embedding, where the layer rotates queries and keys.
    pub(crate) fn rope(&self) -> Option<&Rope> {
        self.rope.as_ref()
    }

    /// Rotates query or key rows of `width` from position `offset`, where
    /// the layer has a rotary embedding.
    fn rotate(&self, x: &mut [f32], width: usize, offset: usize) {
        if let Some(r) = &self.rope {
            r.apply(x, width, offset);
        }
    }

    /// A sliding-window layer's span, if it is one.
    pub(crate) fn window(&self) -> Option<usize> {
        self.window
    }

    /// Per-head RMS norm of query or key rows, where the model has one.
    fn norm_heads(norm: &Option<RmsNorm>, x: &mut [f32]) {
        if let Some(n) = norm {
            let raw = x.to_vec();
            n.forward(&raw, x);
        }
    }

    /// x: rows of d_model for `seqs`, each (cache, rows): a sequence's
    /// positions after what its cache holds. Returns rows of d_model. The
    /// heads in `ablated` contribute nothing (their outputs are zeroed
    /// before the output projection).
    pub(crate) fn forward(
        &self,
        x: &[f32],
        seqs: &mut [(&mut LayerCache, usize)],
        ablated: &[usize],
    ) -> Result<Vec<f32>> {
        let hs = self.heads();
        let (qw, kw) = (hs.q_width(), hs.kv_width());
        let m: usize = seqs.iter().map(|s| s.1).sum();
        let [mut q, mut k, mut v]: [Vec<f32>; 3] =
            Linear::forward_rows(&[&self.wq, &self.wk, &self.wv], x, m)?
                .try_into()
                .expect("three outputs");
        add_bias(&mut q, &self.bq);
        add_bias(&mut k, &self.bk);
        add_bias(&mut v, &self.bv);
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
        Self::norm_heads(&self.q_norm, &mut q);
        Self::norm_heads(&self.k_norm, &mut k);
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
            self.rotate(qs, qw, offset);
            self.rotate(ks, kw, offset);
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
        for &h in ablated {
            for row in y.chunks_exact_mut(qw) {
                row[h * hs.head_dim..(h + 1) * hs.head_dim].fill(0.0);
            }
        }
        let mut out = Linear::forward_rows(&[&self.wo], &y, m)?
            .pop()
            .expect("one output");
        add_bias(&mut out, &self.bo);
        probe_layer("attn_out", l, &mut out);
        Ok(out)
    }

    /// The queries of `n` positions from offset on, recomputed from the
    /// query projection's cached 8-bit inputs exactly as `forward` made them.
    fn queries_from(&self, inputs: &[ActBlock], offset: usize, n: usize) -> Vec<f32> {
        let Linear::Kernel(w) = &self.wq else {
            unreachable!("inputs are cached only for our kernels")
        };
        let qw = self.heads().q_width();
        let mut q = vec![0f32; n * qw];
        kernels::matmul_quantized(&[w], inputs, n, &mut [&mut q]);
        add_bias(&mut q, &self.bq);
        Self::norm_heads(&self.q_norm, &mut q);
        self.rotate(&mut q, qw, offset);
        if self.f16 {
            kernels::round_f16(&mut q);
        }
        q
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
        window: None,
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
            window: None,
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
}
