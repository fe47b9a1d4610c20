//! The KV cache: per layer, the keys and values of every position so far,
//! and (when attention capture is on) what the queries are recomputed from,
//! so that any attention row can be recomputed exactly.
//!
//! Rows are appended in place to growable buffers, position after position
//! (no concatenation per step); keys and values in a buffer per key/value
//! head, so that attention, which reads one head's rows at a time, walks
//! one contiguous stream (interleaved with the other heads' rows it was a
//! strided walk that the hardware prefetcher followed poorly: the fused
//! decode attention took 1.8x as long on rows fresh from memory,
//! `examples/attn_ab`). Buffers sit behind `Arc`s, so forking a run
//! (side by side, branching) copies nothing: the first write after a fork
//! freezes the rows so far as a prefix the forks go on sharing, and each
//! writes its own rows after it. Forked runs so read their common prefix
//! from the same memory (side-by-side columns attend over it together,
//! while it is in cache) and keep one copy of it. Going back to position n
//! drops the tail (or shortens the shared prefix, without a copy).
//!
//! Rows are f16 in quantised mode (llama.cpp's numerics round them to f16
//! anyway) and f32 in f32 mode. With capture on, quantised mode keeps the
//! query projection's 8-bit inputs (the queries are recomputed from them,
//! bit for bit), f32 mode the queries. Per token, SmolLM2-135M: K and V
//! 23 KB (f16), inputs 22 KB; at 2,048 tokens 47 MB + 44 MB. (f32 mode:
//! 46 KB + 69 KB of queries.)

use std::sync::Arc;

use half::f16;

use crate::engine::error::EngineError;
use crate::engine::kernels::{ActBlock, CacheElem, RowParts};

/// Appends `rows` to `own`, growing it by doubling (amortised), at least
/// by what is appended.
fn push_rows<T: CacheElem>(own: &mut Vec<T>, rows: &[f32]) {
    if own.capacity() - own.len() < rows.len() {
        own.reserve(rows.len().max(own.len()));
    }
    T::extend_from_f32(own, rows);
}

/// Rows of one kind (a head's keys or values, or queries), position after
/// position, in element type T: a frozen prefix shared with forks (its
/// first `shared_len` elements are this cache's), then this cache's own rows,
/// written in place (copied on write while a fork still shares them: only
/// what was written since the last fork).
#[derive(Clone, Debug, Default)]
struct Buf<T> {
    shared: Option<Arc<Vec<T>>>,
    shared_len: usize,
    own: Arc<Vec<T>>,
}

impl<T: CacheElem> Buf<T> {
    fn len(&self) -> usize {
        self.shared_len + self.own.len()
    }

    fn push(&mut self, rows: &[f32]) {
        push_rows(self.own_mut(), rows);
    }

    /// This cache's own rows, to append to.
    fn own_mut(&mut self) -> &mut Vec<T> {
        if self.shared.is_none() && Arc::strong_count(&self.own) > 1 {
            // The first write after a fork: what there is becomes the
            // shared prefix (no copy), this cache goes on in a buffer of
            // its own.
            self.shared_len = self.own.len();
            self.shared = Some(std::mem::take(&mut self.own));
        }
        Arc::make_mut(&mut self.own)
    }

    fn truncate(&mut self, len: usize) {
        if len >= self.len() {
            return;
        }
        if len >= self.shared_len {
            Arc::make_mut(&mut self.own).truncate(len - self.shared_len);
        } else {
            self.own = Arc::default();
            self.shared_len = len;
            if len == 0 {
                self.shared = None;
            }
        }
    }

    /// The first `len` elements, in at most two slices.
    fn parts(&self, len: usize) -> (&[T], &[T]) {
        assert!(len <= self.len());
        let shared = self
            .shared
            .as_deref()
            .map_or(&[][..], |s| &s[..self.shared_len]);
        if len <= shared.len() {
            (&shared[..len], &[])
        } else {
            (shared, &self.own[..len - shared.len()])
        }
    }

    fn capacity_bytes(&self) -> usize {
        let shared = self.shared.as_ref().map_or(0, |s| s.capacity());
        (shared + self.own.capacity()) * std::mem::size_of::<T>()
    }
}

/// Keys or values: per key/value head, that head's rows.
#[derive(Clone, Debug)]
enum HeadBufs {
    F32(Vec<Buf<f32>>),
    F16(Vec<Buf<f16>>),
}

impl HeadBufs {
    fn new(heads: usize, f16: bool) -> Self {
        if f16 {
            HeadBufs::F16(vec![Buf::default(); heads])
        } else {
            HeadBufs::F32(vec![Buf::default(); heads])
        }
    }

    fn heads(&self) -> usize {
        match self {
            HeadBufs::F32(b) => b.len(),
            HeadBufs::F16(b) => b.len(),
        }
    }

    /// Elements held per head.
    fn len(&self) -> usize {
        match self {
            HeadBufs::F32(b) => b.first().map_or(0, Buf::len),
            HeadBufs::F16(b) => b.first().map_or(0, Buf::len),
        }
    }

    /// Appends `k` to `keys` and `v` to `values`: positions of each head's
    /// `d` elements in turn. Every buffer is made writable before any row
    /// is written: that check is an atomic operation, which waits for the
    /// stores before it (rows written to memory no cache holds); one after
    /// each head's rows made a four-sequence step wait a quarter of its
    /// serial time.
    fn push(keys: &mut Self, values: &mut Self, k: &[f32], v: &[f32], d: usize) {
        fn push<T: CacheElem>(
            keys: &mut [Buf<T>],
            values: &mut [Buf<T>],
            k: &[f32],
            v: &[f32],
            d: usize,
        ) {
            let (heads, width) = (keys.len(), keys.len() * d);
            let mut own: Vec<&mut Vec<T>> =
                keys.iter_mut().chain(values).map(Buf::own_mut).collect();
            let (ko, vo) = own.split_at_mut(heads);
            for (rows, own) in [(k, ko), (v, vo)] {
                for (h, own) in own.iter_mut().enumerate() {
                    for row in rows.chunks_exact(width) {
                        push_rows(own, &row[h * d..(h + 1) * d]);
                    }
                }
            }
        }
        match (keys, values) {
            (HeadBufs::F32(kb), HeadBufs::F32(vb)) => push(kb, vb, k, v, d),
            (HeadBufs::F16(kb), HeadBufs::F16(vb)) => push(kb, vb, k, v, d),
            _ => unreachable!("keys and values are stored alike"),
        }
    }

    /// Keeps each head's first `len` elements.
    fn truncate(&mut self, len: usize) {
        match self {
            HeadBufs::F32(b) => b.iter_mut().for_each(|b| b.truncate(len)),
            HeadBufs::F16(b) => b.iter_mut().for_each(|b| b.truncate(len)),
        }
    }

    fn capacity_bytes(&self) -> usize {
        match self {
            HeadBufs::F32(b) => b.iter().map(Buf::capacity_bytes).sum(),
            HeadBufs::F16(b) => b.iter().map(Buf::capacity_bytes).sum(),
        }
    }
}

/// Captured queries (f32 mode), position after position.
#[derive(Clone, Debug)]
enum Rows {
    F32(Buf<f32>),
    F16(Buf<f16>),
}

impl Rows {
    fn new(f16: bool) -> Self {
        if f16 {
            Rows::F16(Buf::default())
        } else {
            Rows::F32(Buf::default())
        }
    }

    fn push(&mut self, rows: &[f32]) {
        match self {
            Rows::F32(b) => b.push(rows),
            Rows::F16(b) => b.push(rows),
        }
    }

    fn truncate(&mut self, len: usize) {
        match self {
            Rows::F32(b) => b.truncate(len),
            Rows::F16(b) => b.truncate(len),
        }
    }

    /// Elements `range` as f32.
    fn to_f32(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        fn get<T: CacheElem>(b: &Buf<T>, range: std::ops::Range<usize>) -> Vec<f32> {
            let (a, c) = b.parts(b.len());
            a.iter()
                .chain(c)
                .skip(range.start)
                .take(range.len())
                .map(|x| x.to_f32())
                .collect()
        }
        match self {
            Rows::F32(b) => get(b, range),
            Rows::F16(b) => get(b, range),
        }
    }

    fn capacity_bytes(&self) -> usize {
        match self {
            Rows::F32(b) => b.capacity_bytes(),
            Rows::F16(b) => b.capacity_bytes(),
        }
    }
}

/// The captured source of some positions' queries.
#[derive(Debug)]
pub(crate) enum CapturedRows<'a> {
    Queries(Vec<f32>),
    Inputs(&'a [ActBlock]),
}

/// One layer's keys or values as attention reads them: per key/value head,
/// that head's rows (each in up to two parts, see `RowParts`).
#[derive(Clone, Debug)]
pub(crate) struct HeadRows<'a, T>(Vec<RowParts<'a, T>>);

impl<'a, T: Copy> HeadRows<'a, T> {
    /// Positions of `heads` x `d` elements in one slice, each head's `d`
    /// in turn (the layout of a projection's output rows).
    #[cfg(test)]
    pub(crate) fn interleaved(rows: &'a [T], heads: usize, d: usize) -> Self {
        let parts = (0..heads).map(|h| RowParts::contiguous(rows, heads * d).columns(h * d));
        Self(parts.collect())
    }

    /// Each head's rows.
    #[cfg(test)]
    pub(crate) fn new(heads: Vec<RowParts<'a, T>>) -> Self {
        Self(heads)
    }

    /// Key/value head h's rows.
    pub(crate) fn head(&self, h: usize) -> RowParts<'a, T> {
        self.0[h]
    }
}

/// A layer's keys and values as stored.
#[derive(Clone, Debug)]
pub(crate) enum KeysValues<'a> {
    F32(HeadRows<'a, f32>, HeadRows<'a, f32>),
    F16(HeadRows<'a, f16>, HeadRows<'a, f16>),
}

impl<'a> KeysValues<'a> {
    /// The first `len` elements of each head's, rows of `d`.
    fn new(k: &'a HeadBufs, v: &'a HeadBufs, len: usize, d: usize) -> Self {
        fn heads<T: CacheElem>(bufs: &[Buf<T>], len: usize, d: usize) -> HeadRows<'_, T> {
            let parts = bufs.iter().map(|b| {
                let (a, c) = b.parts(len);
                RowParts::new(a, c, d.max(1))
            });
            HeadRows(parts.collect())
        }
        match (k, v) {
            (HeadBufs::F32(k), HeadBufs::F32(v)) => {
                KeysValues::F32(heads(k, len, d), heads(v, len, d))
            }
            (HeadBufs::F16(k), HeadBufs::F16(v)) => {
                KeysValues::F16(heads(k, len, d), heads(v, len, d))
            }
            _ => unreachable!("keys and values are stored alike"),
        }
    }
}

/// What a capturing cache keeps to recompute attention rows: each
/// position's queries, or (with our quantised kernels) the 8-bit
/// activations the query projection read, from which the same kernels give
/// the same queries bit for bit, in 40 bytes per 32 values instead of 64.
#[derive(Clone, Debug)]
pub(crate) enum Captured<'a> {
    Queries(&'a [f32]),
    Inputs(&'a [ActBlock]),
}

#[derive(Clone, Debug)]
enum QueryStore {
    Queries(Rows),
    Inputs(Arc<Vec<ActBlock>>),
}

#[derive(Clone, Debug)]
pub struct LayerCache {
    k: HeadBufs, // n_kv_head x (t, head_dim)
    v: HeadBufs, // n_kv_head x (t, head_dim)
    /// Only with capture on; its kind is set by the first append.
    q: Option<QueryStore>,
    /// With inputs captured: the last one-token step's position and query
    /// row, so that the row a decode step shows needs no recomputation.
    last_query: Option<(usize, Vec<f32>)>,
    /// Set by the first append.
    head_dim: usize,
    /// Elements of `q` per position.
    q_width: usize,
    capture: bool,
    f16: bool,
}

impl LayerCache {
    fn new(kv_heads: usize, capture: bool, f16: bool) -> Self {
        Self {
            k: HeadBufs::new(kv_heads, f16),
            v: HeadBufs::new(kv_heads, f16),
            q: None,
            last_query: None,
            head_dim: 0,
            q_width: 0,
            capture,
            f16,
        }
    }

    pub(crate) fn captures(&self) -> bool {
        self.capture
    }

    /// Positions held.
    pub(crate) fn len(&self) -> usize {
        self.k.len().checked_div(self.head_dim).unwrap_or(0)
    }

    /// Appends this step's keys, values (each `seq` rows of n_kv_head x
    /// head_dim) and, when capturing, what recomputes its queries (`seq`
    /// rows).
    pub(crate) fn append(&mut self, k: &[f32], v: &[f32], q: Captured<'_>, seq: usize) {
        let heads = self.k.heads();
        debug_assert!(seq > 0 && k.len().is_multiple_of(seq * heads) && k.len() == v.len());
        self.head_dim = k.len() / (seq * heads);
        HeadBufs::push(&mut self.k, &mut self.v, k, v, self.head_dim);
        if !self.capture {
            return;
        }
        let f16 = self.f16;
        match (q, &mut self.q) {
            (Captured::Queries(q), None) => {
                self.q = Some(QueryStore::Queries(Rows::new(f16)));
                self.q_width = q.len() / seq;
                self.append_captured(Captured::Queries(q));
            }
            (Captured::Inputs(a), None) => {
                self.q = Some(QueryStore::Inputs(Arc::default()));
                self.q_width = a.len() / seq;
                self.append_captured(Captured::Inputs(a));
            }
            (q, Some(_)) => self.append_captured(q),
        }
    }

    /// Keeps `query`, the row of the position just appended by a one-token
    /// step whose inputs were captured (see `last_query`).
    pub(crate) fn keep_last_query(&mut self, query: &[f32]) {
        if self.capture {
            let pos = self.len() - 1;
            match &mut self.last_query {
                Some((p, q)) => {
                    *p = pos;
                    q.clear();
                    q.extend_from_slice(query);
                }
                None => self.last_query = Some((pos, query.to_vec())),
            }
        }
    }

    fn append_captured(&mut self, q: Captured<'_>) {
        match (q, &mut self.q) {
            (Captured::Queries(q), Some(QueryStore::Queries(rows))) => rows.push(q),
            (Captured::Inputs(a), Some(QueryStore::Inputs(blocks))) => {
                let blocks = Arc::make_mut(blocks);
                if blocks.capacity() - blocks.len() < a.len() {
                    blocks.reserve(a.len().max(blocks.len()));
                }
                blocks.extend_from_slice(a);
            }
            _ => unreachable!("a layer captures one kind of query source"),
        }
    }

    /// All keys and values so far: per head, (t, head_dim) each.
    pub(crate) fn keys_values(&self) -> KeysValues<'_> {
        KeysValues::new(&self.k, &self.v, self.k.len(), self.head_dim)
    }

    /// What recomputes the queries in `queries` (f16 queries come back as
    /// f32), and the keys they can see (0..queries.end; with the values,
    /// which they do not need).
    pub(crate) fn captured(
        &self,
        queries: std::ops::Range<usize>,
    ) -> Result<(CapturedRows<'_>, KeysValues<'_>), EngineError> {
        let Some(store) = self.q.as_ref().filter(|_| self.capture) else {
            return Err(EngineError::AttentionNotCaptured);
        };
        let len = self.len();
        if queries.start >= queries.end || queries.end > len {
            return Err(EngineError::PositionOutOfRange {
                position: queries.end,
                len,
            });
        }
        let range = queries.start * self.q_width..queries.end * self.q_width;
        let rows = match (store, &self.last_query) {
            (QueryStore::Inputs(_), Some((p, q))) if queries == (*p..*p + 1) => {
                CapturedRows::Queries(q.clone())
            }
            (store, _) => match store {
                QueryStore::Queries(q) => CapturedRows::Queries(q.to_f32(range)),
                QueryStore::Inputs(a) => CapturedRows::Inputs(&a[range]),
            },
        };
        Ok((
            rows,
            KeysValues::new(&self.k, &self.v, queries.end * self.head_dim, self.head_dim),
        ))
    }

    fn truncate(&mut self, len: usize) {
        if self.last_query.as_ref().is_some_and(|(p, _)| *p >= len) {
            self.last_query = None;
        }
        self.k.truncate(len * self.head_dim);
        self.v.truncate(len * self.head_dim);
        match &mut self.q {
            Some(QueryStore::Queries(q)) => q.truncate(len * self.q_width),
            Some(QueryStore::Inputs(a)) if a.len() > len * self.q_width => {
                Arc::make_mut(a).truncate(len * self.q_width)
            }
            _ => {}
        }
    }

    /// Bytes held (capacity), for memory reports.
    pub(crate) fn capacity_bytes(&self) -> usize {
        let q = match &self.q {
            Some(QueryStore::Queries(q)) => q.capacity_bytes(),
            Some(QueryStore::Inputs(a)) => a.capacity() * std::mem::size_of::<ActBlock>(),
            None => 0,
        };
        self.k.capacity_bytes() + self.v.capacity_bytes() + q
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
    /// For a model of `n_layer` layers with `kv_heads` key/value heads;
    /// `f16`: store rows as f16 (they must already be f16 values for the
    /// cache to be exact, as in quantised mode); f32 otherwise.
    pub fn new(n_layer: usize, kv_heads: usize, capture_attention: bool, f16: bool) -> Self {
        Self {
            layers: vec![LayerCache::new(kv_heads, capture_attention, f16); n_layer],
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

    fn kv(c: &KvCache) -> (Vec<f32>, Vec<f32>) {
        fn f<T: CacheElem>(x: RowParts<'_, T>) -> Vec<f32> {
            x.iter().map(|x| x.to_f32()).collect()
        }
        match c.layers[0].keys_values() {
            KeysValues::F32(k, v) => (f(k.head(0)), f(v.head(0))),
            KeysValues::F16(k, v) => (f(k.head(0)), f(v.head(0))),
        }
    }

    #[test]
    fn clone_is_independent_and_truncate_drops_the_tail() {
        for f16 in [false, true] {
            let mut a = KvCache::new(1, 1, true, f16);
            a.layers[0].append(&[1., 2.], &[3., 4.], Captured::Queries(&[5., 6.]), 2);
            a.extend_tokens(&[10, 11], true);
            let mut b = a.clone();
            b.truncate(1).unwrap();
            b.layers[0].append(&[9.], &[9.], Captured::Queries(&[9.]), 1);
            b.extend_tokens(&[12], false);
            assert_eq!(kv(&a), (vec![1., 2.], vec![3., 4.]));
            assert_eq!(kv(&b), (vec![1., 9.], vec![3., 9.]));
            assert_eq!(b.tokens(), &[10, 12]);
            let (q, k) = b.layers[0].captured(1..2).unwrap();
            assert!(matches!(q, CapturedRows::Queries(q) if q == [9.]));
            let visible = match k {
                KeysValues::F32(k, _) => k.head(0).iter().count(),
                KeysValues::F16(k, _) => k.head(0).iter().count(),
            };
            assert_eq!(visible, 2);
            // The original still sees its own queries.
            let q = a.layers[0].captured(0..2).unwrap().0;
            assert!(matches!(q, CapturedRows::Queries(q) if q == [5., 6.]));
            // Appending to the original does not show in the fork either.
            a.layers[0].append(&[7.], &[7.], Captured::Queries(&[7.]), 1);
            assert_eq!(b.layers[0].len(), 2);
            assert_eq!(a.layers[0].len(), 3);
        }
    }

    #[test]
    fn forks_share_their_prefix_and_write_their_own_rows() {
        let mut a = KvCache::new(1, 1, false, true);
        a.layers[0].append(&[1., 2., 3.], &[4., 5., 6.], Captured::Queries(&[]), 3);
        a.extend_tokens(&[1, 2, 3], true);
        let mut b = a.clone();
        for (c, x) in [(&mut a, 7.), (&mut b, 8.)] {
            c.layers[0].append(&[x], &[x], Captured::Queries(&[]), 1);
            c.extend_tokens(&[9], false);
        }
        assert_eq!(kv(&a), (vec![1., 2., 3., 7.], vec![4., 5., 6., 7.]));
        assert_eq!(kv(&b), (vec![1., 2., 3., 8.], vec![4., 5., 6., 8.]));
        // One copy of the prefix, held by both.
        let shared = |c: &KvCache| match &c.layers[0].k {
            HeadBufs::F16(b) => b[0].shared.clone().expect("a shared prefix"),
            HeadBufs::F32(_) => unreachable!(),
        };
        assert!(Arc::ptr_eq(&shared(&a), &shared(&b)));
        // Going back into the prefix copies nothing and forgets the rest.
        b.truncate(2).unwrap();
        b.layers[0].append(&[0.], &[0.], Captured::Queries(&[]), 1);
        assert_eq!(kv(&b), (vec![1., 2., 0.], vec![4., 5., 0.]));
        assert!(Arc::ptr_eq(&shared(&a), &shared(&b)));
        assert_eq!(kv(&a), (vec![1., 2., 3., 7.], vec![4., 5., 6., 7.]));
        // A fork of a fork shares the prefix and copies its parent's own rows.
        let mut c = a.clone();
        c.layers[0].append(&[5.], &[5.], Captured::Queries(&[]), 1);
        a.layers[0].append(&[6.], &[6.], Captured::Queries(&[]), 1);
        assert_eq!(kv(&c).0, vec![1., 2., 3., 7., 5.]);
        assert_eq!(kv(&a).0, vec![1., 2., 3., 7., 6.]);
        b.truncate(0).unwrap();
        assert_eq!(kv(&b), (vec![], vec![]));
    }

    #[test]
    fn each_head_keeps_its_rows_together() {
        // Two heads of two: positions (k0 k0 | k1 k1).
        let mut c = KvCache::new(1, 2, false, false);
        let k = [1., 2., 10., 20., 3., 4., 30., 40.];
        let v = k.map(|x| -x);
        c.layers[0].append(&k, &v, Captured::Queries(&[]), 2);
        c.layers[0].append(&[5., 6., 50., 60.], &[0.; 4], Captured::Queries(&[]), 1);
        c.extend_tokens(&[1, 2, 3], true);
        assert_eq!(c.layers[0].len(), 3);
        let KeysValues::F32(k, v) = c.layers[0].keys_values() else {
            unreachable!()
        };
        let rows = |r: RowParts<'_, f32>| r.iter().copied().collect::<Vec<_>>();
        assert_eq!(rows(k.head(0)), [1., 2., 3., 4., 5., 6.]);
        assert_eq!(rows(k.head(1)), [10., 20., 30., 40., 50., 60.]);
        assert_eq!(rows(v.head(1)), [-10., -20., -30., -40., 0., 0.]);
        assert_eq!(k.head(1).row(2, 2), [50., 60.]);
        c.truncate(1).unwrap();
        let KeysValues::F32(k, _) = c.layers[0].keys_values() else {
            unreachable!()
        };
        assert_eq!(rows(k.head(1)), [10., 20.]);
    }

    #[test]
    fn f16_rows_take_half_the_bytes_and_round() {
        let (mut a, mut b) = (
            KvCache::new(1, 1, true, false),
            KvCache::new(1, 1, true, true),
        );
        let row = [0.1f32; 64];
        for c in [&mut a, &mut b] {
            c.layers[0].append(&row, &row, Captured::Queries(&row), 1);
        }
        assert_eq!(a.size_bytes(), 2 * b.size_bytes());
        assert_eq!(kv(&a).0[0], 0.1);
        assert_eq!(kv(&b).0[0], half::f16::from_f32(0.1).to_f32());
    }

    #[test]
    fn no_capture_no_rows() {
        let mut a = KvCache::new(1, 1, false, true);
        a.layers[0].append(&[1.], &[1.], Captured::Queries(&[1.]), 1);
        assert!(matches!(
            a.layers[0].captured(0..1),
            Err(EngineError::AttentionNotCaptured)
        ));
    }
}
