//! The KV cache: per layer, the keys and values of every position so far,
//! and (when attention capture is on) the post-RoPE queries, from which any
//! attention row can be recomputed exactly.
//!
//! Rows are appended in place to growable buffers, position after position
//! (no concatenation per step). Buffers sit behind `Arc`s and are copied on
//! the first write after a clone, so forking a run (side by side,
//! branching) is cheap and the copies stay independent; going back to
//! position n drops the tail.
//!
//! Memory per token, f32: 2 x n_layer x n_kv_head x head_dim x 4 bytes for
//! K and V (SmolLM2-135M: 46 KB), plus n_layer x n_head x head_dim x 4 bytes
//! of queries with capture on (69 KB). At 2,048 tokens: 94 MB + 141 MB.

use std::sync::Arc;

use crate::engine::error::EngineError;

#[derive(Clone, Debug, Default)]
pub struct LayerCache {
    k: Arc<Vec<f32>>, // (t, n_kv_head * head_dim)
    v: Arc<Vec<f32>>, // (t, n_kv_head * head_dim)
    q: Arc<Vec<f32>>, // (t, n_head * head_dim), only with capture on
    kv_width: usize,
    q_width: usize,
    capture: bool,
}

fn push(buf: &mut Arc<Vec<f32>>, rows: &[f32]) {
    let buf = Arc::make_mut(buf);
    if buf.capacity() - buf.len() < rows.len() {
        // Grow by doubling (amortised), at least by what is appended.
        buf.reserve(rows.len().max(buf.len()));
    }
    buf.extend_from_slice(rows);
}

impl LayerCache {
    /// Positions held.
    pub(crate) fn len(&self) -> usize {
        self.k.len().checked_div(self.kv_width).unwrap_or(0)
    }

    /// Appends this step's keys, values (each `seq` rows of `kv_width`) and,
    /// when capturing, queries (rows of `q_width`).
    pub(crate) fn append(&mut self, k: &[f32], v: &[f32], q: &[f32], seq: usize) {
        debug_assert!(
            seq > 0
                && k.len().is_multiple_of(seq)
                && k.len() == v.len()
                && q.len().is_multiple_of(seq)
        );
        self.kv_width = k.len() / seq;
        self.q_width = q.len() / seq;
        push(&mut self.k, k);
        push(&mut self.v, v);
        if self.capture {
            push(&mut self.q, q);
        }
    }

    /// All keys and values so far: (t, kv_width) each.
    pub(crate) fn keys_values(&self) -> (&[f32], &[f32]) {
        (&self.k, &self.v)
    }

    /// Queries in `queries` and the keys they can see (0..queries.end).
    pub(crate) fn captured(
        &self,
        queries: std::ops::Range<usize>,
    ) -> Result<(&[f32], &[f32]), EngineError> {
        if !self.capture || self.q.is_empty() {
            return Err(EngineError::AttentionNotCaptured);
        }
        let len = self.len();
        if queries.start >= queries.end || queries.end > len {
            return Err(EngineError::PositionOutOfRange {
                position: queries.end,
                len,
            });
        }
        Ok((
            &self.q[queries.start * self.q_width..queries.end * self.q_width],
            &self.k[..queries.end * self.kv_width],
        ))
    }

    fn truncate(&mut self, len: usize) {
        for (buf, width) in [
            (&mut self.k, self.kv_width),
            (&mut self.v, self.kv_width),
            (&mut self.q, self.q_width),
        ] {
            if buf.len() > len * width {
                Arc::make_mut(buf).truncate(len * width);
            }
        }
    }

    /// Bytes held (capacity), for memory reports.
    pub(crate) fn capacity_bytes(&self) -> usize {
        (self.k.capacity() + self.v.capacity() + self.q.capacity()) * std::mem::size_of::<f32>()
    }
}

/// Everything a sequence has seen: its tokens and each layer's cache.
#[derive(Clone, Debug)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    tokens: Vec<u32>,
    /// Per position: computed in a step of 2+ tokens (it decides the order
    /// attention sums in, so recomputed rows match the computed ones).
    multi: Vec<bool>,
    capture: bool,
}

impl KvCache {
    pub fn new(n_layer: usize, capture_attention: bool) -> Self {
        let layer = LayerCache {
            capture: capture_attention,
            ..Default::default()
        };
        Self {
            layers: vec![layer; n_layer],
            tokens: Vec::new(),
            multi: Vec::new(),
            capture: capture_attention,
        }
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

    /// Bytes of keys, values and queries held.
    pub fn size_bytes(&self) -> usize {
        self.layers.iter().map(LayerCache::capacity_bytes).sum()
    }

    /// Records the tokens of a step (`multi`: of 2+ tokens).
    pub(crate) fn extend_tokens(&mut self, tokens: &[u32], multi: bool) {
        self.tokens.extend_from_slice(tokens);
        self.multi.extend(std::iter::repeat_n(multi, tokens.len()));
    }

    /// Per position: whether it was computed in a step of 2+ tokens.
    pub(crate) fn multi(&self) -> &[bool] {
        &self.multi
    }

    /// Forgets every position from `len` on (branching from an earlier token).
    pub fn truncate(&mut self, len: usize) -> std::result::Result<(), EngineError> {
        if len >= self.len() {
            return Ok(());
        }
        for layer in &mut self.layers {
            layer.truncate(len);
        }
        self.tokens.truncate(len);
        self.multi.truncate(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_is_independent_and_truncate_drops_the_tail() {
        let mut a = KvCache::new(1, true);
        a.layers[0].append(&[1., 2.], &[3., 4.], &[5., 6.], 2);
        a.extend_tokens(&[10, 11], true);
        let mut b = a.clone();
        b.truncate(1).unwrap();
        b.layers[0].append(&[9.], &[9.], &[9.], 1);
        b.extend_tokens(&[12], false);
        assert_eq!(a.layers[0].keys_values(), (&[1., 2.][..], &[3., 4.][..]));
        assert_eq!(b.layers[0].keys_values(), (&[1., 9.][..], &[3., 9.][..]));
        assert_eq!(b.tokens(), &[10, 12]);
        let (q, k) = b.layers[0].captured(1..2).unwrap();
        assert_eq!(q, &[9.]);
        assert_eq!(k.len(), 2);
        // The original still sees its own queries.
        assert_eq!(a.layers[0].captured(0..2).unwrap().0, &[5., 6.]);
        // Appending to the original does not show in the fork either.
        a.layers[0].append(&[7.], &[7.], &[7.], 1);
        assert_eq!(b.layers[0].len(), 2);
        assert_eq!(a.layers[0].len(), 3);
    }

    #[test]
    fn no_capture_no_rows() {
        let mut a = KvCache::new(1, false);
        a.layers[0].append(&[1.], &[1.], &[1.], 1);
        assert!(matches!(
            a.layers[0].captured(0..1),
            Err(EngineError::AttentionNotCaptured)
        ));
    }
}
