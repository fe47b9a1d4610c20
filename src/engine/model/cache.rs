//! The KV cache: per layer, the keys and values of every position so far,
//! and (when attention capture is on) the post-RoPE queries, from which any
//! attention row can be recomputed exactly.
//!
//! Tensors are immutable and appended by concatenation, so a clone shares
//! storage safely: forking a run (side by side, branching) is a cheap clone,
//! and going back to position n is a `narrow`, not a recomputation.
//!
//! Memory per token, f32: 2 x n_layer x n_kv_head x head_dim x 4 bytes for
//! K and V (SmolLM2-135M: 46 KB), plus n_layer x n_head x head_dim x 4 bytes
//! of queries with capture on (69 KB). At 2,048 tokens: 94 MB + 141 MB.

use candle_core::{Result, Tensor};

use crate::engine::error::EngineError;

#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    k: Option<Tensor>, // (1, n_kv_head, t, head_dim)
    v: Option<Tensor>, // (1, n_kv_head, t, head_dim)
    q: Option<Tensor>, // (1, n_head, t, head_dim), only with capture on
    capture: bool,
}

fn cat(old: &Option<Tensor>, new: &Tensor) -> Result<Tensor> {
    match old {
        Some(old) => Tensor::cat(&[old, new], 2),
        None => Ok(new.clone()),
    }
}

impl LayerCache {
    /// Appends this step's keys, values (and queries, when capturing);
    /// returns all keys and values so far.
    pub(crate) fn append(&mut self, k: &Tensor, v: &Tensor, q: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = cat(&self.k, k)?;
        let v = cat(&self.v, v)?;
        if self.capture {
            self.q = Some(cat(&self.q, q)?);
        }
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        Ok((k, v))
    }

    /// Queries in `queries` and the keys they can see (0..queries.end).
    pub(crate) fn captured(
        &self,
        queries: std::ops::Range<usize>,
    ) -> std::result::Result<(Tensor, Tensor), EngineError> {
        let (Some(q), Some(k)) = (&self.q, &self.k) else {
            return Err(EngineError::AttentionNotCaptured);
        };
        let len = k.dim(2)?;
        if queries.start >= queries.end || queries.end > len {
            return Err(EngineError::PositionOutOfRange { position: queries.end, len });
        }
        Ok((q.narrow(2, queries.start, queries.len())?, k.narrow(2, 0, queries.end)?))
    }

    fn truncate(&mut self, len: usize) -> Result<()> {
        for t in [&mut self.k, &mut self.v, &mut self.q] {
            if let Some(x) = t {
                *t = if len == 0 { None } else { Some(x.narrow(2, 0, len)?) };
            }
        }
        Ok(())
    }
}

/// Everything a sequence has seen: its tokens and each layer's cache.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    tokens: Vec<u32>,
    capture: bool,
}

impl KvCache {
    pub fn new(n_layer: usize, capture_attention: bool) -> Self {
        let layer = LayerCache { capture: capture_attention, ..Default::default() };
        Self { layers: vec![layer; n_layer], tokens: Vec::new(), capture: capture_attention }
    }

    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn captures_attention(&self) -> bool {
        self.capture
    }

    pub(crate) fn extend_tokens(&mut self, tokens: &[u32]) {
        self.tokens.extend_from_slice(tokens);
    }

    /// Forgets every position from `len` on (branching from an earlier token).
    pub fn truncate(&mut self, len: usize) -> std::result::Result<(), EngineError> {
        if len >= self.len() {
            return Ok(());
        }
        for layer in &mut self.layers {
            layer.truncate(len)?;
        }
        self.tokens.truncate(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(vals: &[f32], heads: usize) -> Tensor {
        Tensor::from_slice(vals, (1, heads, vals.len() / heads, 1), &Device::Cpu).unwrap()
    }

    #[test]
    fn clone_is_independent_and_truncate_drops_the_tail() {
        let mut a = KvCache::new(1, true);
        a.layers[0].append(&t(&[1., 2.], 1), &t(&[3., 4.], 1), &t(&[5., 6.], 1)).unwrap();
        a.extend_tokens(&[10, 11]);
        let mut b = a.clone();
        b.truncate(1).unwrap();
        b.layers[0].append(&t(&[9.], 1), &t(&[9.], 1), &t(&[9.], 1)).unwrap();
        b.extend_tokens(&[12]);
        let keys = |c: &KvCache| c.layers[0].k.as_ref().unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(keys(&a), vec![1., 2.]);
        assert_eq!(keys(&b), vec![1., 9.]);
        assert_eq!(b.tokens(), &[10, 12]);
        let (q, k) = b.layers[0].captured(1..2).unwrap();
        assert_eq!(q.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![9.]);
        assert_eq!(k.dim(2).unwrap(), 2);
    }

    #[test]
    fn no_capture_no_rows() {
        let mut a = KvCache::new(1, false);
        a.layers[0].append(&t(&[1.], 1), &t(&[1.], 1), &t(&[1.], 1)).unwrap();
        assert!(matches!(a.layers[0].captured(0..1), Err(EngineError::AttentionNotCaptured)));
    }
}
