//! Hand-written CPU kernels for the quantised forward pass: 8-bit
//! activation quantisation, Q4_1 x Q8_1 and Q8_0 x Q8_0 dot products (AVX2,
//! with AVX-VNNI or AVX-512 VNNI where present, chosen at run time; a
//! portable scalar fallback otherwise), and a matrix product parallel over
//! weight rows on a persistent pool.
//!
//! The float ops around them (SiLU, softmax, RoPE, attention's products
//! over the KV cache's f16 or f32 rows, which may lie in two parts:
//! [`RowParts`]) are here too, in ggml's arithmetic order (`float.rs`),
//! scalar and AVX2 computing the same bits, and with AVX-512 a fused
//! single-token attention kernel for the query heads that share a key/value
//! head ([`attend_group`]), the same bits again.
//!
//! All of the crate's `unsafe` lives in this module, each block with the
//! reason it holds.
//!
//! `LMSCOPE_KERNELS=scalar` forces the portable kernels (to test them on a
//! machine that has AVX2); `avx2` and `avxvnni` the narrower x86 ones.

mod dense;
mod elem;
mod f16;
mod float;
mod isa;
mod pool;
mod quant;
mod rows;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use dense::{attend_full_f32, gelu_erf, linear_f32};
pub use elem::CacheElem;
pub use f16::{round_f16, to_f16};
pub use float::{
    SumOrder, dot_scalar, dots_scalar, expf, gelu_mul, gelu_tanh, silu_mul_scalar, softmax_scalar,
    weighted_rows_scalar,
};
pub use isa::{Isa, isa};
pub use pool::{Pool, default_threads, pool, set_threads};
pub use quant::{ActBlock, QK, WeightKind, dequantize_row, dot_q4_1_scalar, dot_q8_0_scalar};
use quant::{dot_q4_1_blocks, dot_q8_0_blocks, f16_at, q4_1_element};
pub use rows::RowParts;

/// Weight rows per packed group.
const GROUP: usize = 4;

/// A quantised weight matrix (rows x cols), held in groups of four rows
/// (the last padded with zero rows) so that a kernel reads four rows' blocks
/// from one place and runs their sums side by side.
///
/// A group of `nb` blocks a row is first the quants of each block index b in
/// turn, then the scales of each b:
/// - Q4_1: 64 bytes of quants a block, rows 0 and 1 in the first 32 (byte
///   j holds element j of row 0 in its low nibble and of row 1 in its high
///   nibble), rows 2 and 3 likewise in the next 32; then 16 bytes of
///   scales a block: d of rows 0..4, then m of rows 0..4 (f16).
/// - Q8_0: 4 x 32 quants a block, row after row; then d of rows 0..4 (f16).
///
/// The bytes are the file's, moved; [`QWeight::row`] gives a row back in
/// the GGUF layout.
#[derive(Clone)]
pub struct QWeight {
    kind: WeightKind,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl std::fmt::Debug for QWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QWeight({:?}, {}x{})", self.kind, self.rows, self.cols)
    }
}

impl QWeight {
    /// From GGUF blocks, row after row.
    pub fn new(kind: WeightKind, rows: usize, cols: usize, data: Vec<u8>) -> Result<Self, String> {
        if cols == 0 || !cols.is_multiple_of(QK) {
            return Err(format!(
                "{cols} columns is not a whole number of {QK}-value blocks"
            ));
        }
        let want = rows * cols / QK * kind.block_bytes();
        if data.len() != want {
            return Err(format!(
                "{:?} {rows}x{cols} needs {want} bytes, got {}",
                kind,
                data.len()
            ));
        }
        let nb = cols / QK;
        let bb = kind.block_bytes();
        let mut packed = vec![0u8; rows.div_ceil(GROUP) * GROUP * nb * bb];
        for (r, row) in data.chunks_exact(nb * bb).enumerate() {
            let group = &mut packed[r / GROUP * GROUP * nb * bb..][..GROUP * nb * bb];
            for (b, blk) in row.chunks_exact(bb).enumerate() {
                pack_block(kind, group, nb, b, r % GROUP, blk);
            }
        }
        Ok(Self {
            kind,
            rows,
            cols,
            data: packed,
        })
    }

    pub fn kind(&self) -> WeightKind {
        self.kind
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn blocks_per_row(&self) -> usize {
        self.cols / QK
    }

    fn group_bytes(&self) -> usize {
        GROUP * self.blocks_per_row() * self.kind.block_bytes()
    }

    fn groups(&self) -> usize {
        self.rows.div_ceil(GROUP)
    }

    /// Packed group `g` (rows 4g..4g + 4).
    fn group(&self, g: usize) -> &[u8] {
        let gb = self.group_bytes();
        &self.data[g * gb..(g + 1) * gb]
    }

    /// Row `r` in the GGUF layout (blocks of `kind.block_bytes()`).
    pub fn row(&self, r: usize) -> Vec<u8> {
        assert!(r < self.rows);
        let nb = self.blocks_per_row();
        let mut out = vec![0u8; nb * self.kind.block_bytes()];
        unpack_row(self.kind, self.group(r / GROUP), nb, r % GROUP, &mut out);
        out
    }

    /// Row `r` as floats (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        assert_eq!(out.len(), self.cols);
        dequantize_row(self.kind, &self.row(r), out);
    }

    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }
}

/// Writes GGUF block `blk` (block `b` of row `w` of the group) into a
/// packed group of `nb` blocks a row.
fn pack_block(kind: WeightKind, group: &mut [u8], nb: usize, b: usize, w: usize, blk: &[u8]) {
    match kind {
        WeightKind::Q4_1 => {
            let scales = &mut group[nb * 64 + b * 16..][..16];
            scales[2 * w..2 * w + 2].copy_from_slice(&blk[0..2]);
            scales[8 + 2 * w..8 + 2 * w + 2].copy_from_slice(&blk[2..4]);
            let quants = &mut group[b * 64 + w / 2 * 32..][..32];
            for (j, q) in quants.iter_mut().enumerate() {
                *q |= q4_1_element(&blk[4..], j) << (4 * (w % 2));
            }
        }
        WeightKind::Q8_0 => {
            group[nb * 128 + b * 8 + 2 * w..][..2].copy_from_slice(&blk[0..2]);
            group[b * 128 + w * 32..][..32].copy_from_slice(&blk[2..34]);
        }
    }
}

/// Row `w` of a packed group of `nb` blocks a row, back in the GGUF layout.
fn unpack_row(kind: WeightKind, group: &[u8], nb: usize, w: usize, out: &mut [u8]) {
    for (b, blk) in out.chunks_exact_mut(kind.block_bytes()).enumerate() {
        match kind {
            WeightKind::Q4_1 => {
                let scales = &group[nb * 64 + b * 16..][..16];
                blk[0..2].copy_from_slice(&scales[2 * w..2 * w + 2]);
                blk[2..4].copy_from_slice(&scales[8 + 2 * w..8 + 2 * w + 2]);
                let quants = &group[b * 64 + w / 2 * 32..][..32];
                let q = |j: usize| (quants[j] >> (4 * (w % 2))) & 0x0f;
                for j in 0..QK / 2 {
                    blk[4 + j] = q(j) | q(j + QK / 2) << 4;
                }
            }
            WeightKind::Q8_0 => {
                blk[0..2].copy_from_slice(&group[nb * 128 + b * 8 + 2 * w..][..2]);
                blk[2..34].copy_from_slice(&group[b * 128 + w * 32..][..32]);
            }
        }
    }
}

/// Activation rows per kernel call, at most.
const TILE_TOKENS: usize = 4;

/// For each block of one to four activation rows (each `nb` blocks,
/// consecutive in `acts`), row r's sum s in lanes 4r..4r + 4: the layout
/// the AVX-512 Q4_1 kernel adds its m * s terms in (the rest are zero).
/// Made once per tile of a matrix product, not once per weight group, and
/// only where that kernel runs ([`needs_tile_sums`]).
fn tile_sums(acts: &[ActBlock], nb: usize) -> Vec<[f32; 16]> {
    let mut sums = vec![[0f32; 16]; nb];
    for (r, row) in acts.chunks_exact(nb).enumerate() {
        for (s, a) in sums.iter_mut().zip(row) {
            s[4 * r..4 * r + 4].fill(a.s);
        }
    }
    sums
}

/// Whether `isa`'s kernels for `kind` read [`tile_sums`].
fn needs_tile_sums(isa: Isa, kind: WeightKind) -> bool {
    isa == Isa::Avx512Vnni && kind == WeightKind::Q4_1
}

/// A packed group of four weight rows against one to four activation rows
/// (each `nb` blocks, consecutive in `acts`; `sums` their [`tile_sums`]
/// where [`needs_tile_sums`], else anything): `out[w][r]`.
fn dot_tile(
    isa: Isa,
    kind: WeightKind,
    group: &[u8],
    acts: &[ActBlock],
    sums: &[[f32; 16]],
    nb: usize,
    out: &mut [[f32; TILE_TOKENS]; GROUP],
) {
    let n = acts.len() / nb;
    assert!((1..=TILE_TOKENS).contains(&n) && acts.len() == n * nb);
    assert_eq!(group.len(), GROUP * nb * kind.block_bytes());
    assert!(!needs_tile_sums(isa, kind) || sums.len() == nb);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => {
            let a = |i: usize| acts[i * nb..(i + 1) * nb].as_ptr();
            let (g, s) = (group.as_ptr(), sums.as_ptr());
            // SAFETY: an x86 `Isa` is only ever selected after
            // `is_x86_feature_detected!` confirmed its features
            // (`Isa::supported`, which `detect`, `isa` and the tests go
            // through); `group` is a whole packed group of nb blocks a row
            // and each `a(i)` a slice of exactly nb blocks, `s` of nb entries
            // where the kernel reads them (asserted above).
            unsafe {
                if isa == Isa::Avx512Vnni {
                    // Token r's four results at buf[4r..4r + 4] (all 16
                    // floats writable).
                    let mut buf = [0f32; 4 * TILE_TOKENS];
                    x86_tile_avx512(kind, g, nb, n, a, s, buf.as_mut_ptr(), 4);
                    for (w, o) in out.iter_mut().enumerate() {
                        for (r, o) in o[..n].iter_mut().enumerate() {
                            *o = buf[4 * r + w];
                        }
                    }
                } else {
                    // Two tokens a call: eight 256-bit accumulators.
                    for j in (0..n).step_by(2) {
                        if j + 1 < n {
                            place(out, j, x86_tile_avx2(isa, kind, g, nb, [a(j), a(j + 1)]));
                        } else {
                            place(out, j, x86_tile_avx2(isa, kind, g, nb, [a(j)]));
                        }
                    }
                }
            }
        }
        _ => {
            for (w, o) in out.iter_mut().enumerate() {
                for (i, o) in o[..n].iter_mut().enumerate() {
                    let a = &acts[i * nb..(i + 1) * nb];
                    *o = match kind {
                        WeightKind::Q4_1 => dot_q4_1_blocks(packed_q4_1(group, nb, w), a),
                        WeightKind::Q8_0 => dot_q8_0_blocks(packed_q8_0(group, nb, w), a),
                    };
                }
            }
        }
    }
}

/// Copies a kernel's `[w][r]` results into columns `at..at + R` of `out`.
#[cfg(target_arch = "x86_64")]
fn place<const R: usize>(out: &mut [[f32; TILE_TOKENS]; GROUP], at: usize, res: [[f32; R]; GROUP]) {
    for (o, r) in out.iter_mut().zip(res) {
        o[at..at + R].copy_from_slice(&r);
    }
}

/// Row `w`'s Q4_1 blocks in a packed group: (d, m, quants in order).
fn packed_q4_1(group: &[u8], nb: usize, w: usize) -> impl Iterator<Item = (f32, f32, [u8; QK])> {
    (0..nb).map(move |b| {
        let scales = &group[nb * 64 + b * 16..][..16];
        let quants = &group[b * 64 + w / 2 * 32..][..32];
        let q = std::array::from_fn(|j| (quants[j] >> (4 * (w % 2))) & 0x0f);
        (f16_at(scales, 2 * w), f16_at(scales, 8 + 2 * w), q)
    })
}

/// Row `w`'s Q8_0 blocks in a packed group: (d, quants).
fn packed_q8_0(group: &[u8], nb: usize, w: usize) -> impl Iterator<Item = (f32, [i8; QK])> {
    (0..nb).map(move |b| {
        let quants = &group[b * 128 + w * 32..][..32];
        let q = std::array::from_fn(|j| quants[j] as i8);
        (f16_at(group, nb * 128 + b * 8 + 2 * w), q)
    })
}

/// The AVX2 kernel for `isa` and `kind` (R = 1 or 2).
///
/// # Safety
/// As the kernels': `isa` is supported, `g` is a whole packed group of nb
/// blocks a row and each `a[r]` points to nb activation blocks.
#[cfg(target_arch = "x86_64")]
unsafe fn x86_tile_avx2<const R: usize>(
    isa: Isa,
    kind: WeightKind,
    g: *const u8,
    nb: usize,
    a: [*const ActBlock; R],
) -> [[f32; R]; GROUP] {
    // SAFETY: passed on from the caller.
    unsafe {
        match (isa, kind) {
            (Isa::Avx2Vnni, WeightKind::Q4_1) => x86::dot4_q4_1_vnni::<R>(g, nb, a),
            (Isa::Avx2Vnni, WeightKind::Q8_0) => x86::dot4_q8_0_vnni::<R>(g, nb, a),
            (_, WeightKind::Q4_1) => x86::dot4_q4_1::<R>(g, nb, a),
            (_, WeightKind::Q8_0) => x86::dot4_q8_0::<R>(g, nb, a),
        }
    }
}

/// The AVX-512 kernel for `kind` against `n` (1..=4) activation rows, row
/// i's blocks at `a(i)`: token r's results for the group's four rows go to
/// `out + r * ld`.
///
/// # Safety
/// As [`x86_tile_avx2`], with AVX-512 F/BW/VNNI supported, `sums` pointing
/// to nb entries and four floats writable at `out + r * ld` for r < n.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn x86_tile_avx512(
    kind: WeightKind,
    g: *const u8,
    nb: usize,
    n: usize,
    a: impl Fn(usize) -> *const ActBlock,
    sums: *const [f32; 16],
    out: *mut f32,
    ld: usize,
) {
    /// # Safety
    /// As the enclosing function's, for R rows.
    unsafe fn call<const R: usize>(
        kind: WeightKind,
        g: *const u8,
        nb: usize,
        a: [*const ActBlock; R],
        sums: *const [f32; 16],
        out: *mut f32,
        ld: usize,
    ) {
        // SAFETY: passed on from the caller.
        unsafe {
            match kind {
                WeightKind::Q4_1 => x86::dot4_q4_1_avx512::<R>(g, nb, a, sums, out, ld),
                WeightKind::Q8_0 => x86::dot4_q8_0_avx512::<R>(g, nb, a, out, ld),
            }
        }
    }
    // SAFETY: passed on from the caller.
    unsafe {
        match n {
            1 => call(kind, g, nb, [a(0)], sums, out, ld),
            2 => call(kind, g, nb, [a(0), a(1)], sums, out, ld),
            3 => call(kind, g, nb, [a(0), a(1), a(2)], sums, out, ld),
            _ => call(kind, g, nb, [a(0), a(1), a(2), a(3)], sums, out, ld),
        }
    }
}

/// A pointer to output rows that tasks write in disjoint places.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32, usize);
// SAFETY: shared between the pool's tasks, each of which writes a set of
// elements no other task writes (distinct weight rows), and `Pool::run`
// returns only after every task is done.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Taken through a method so that closures capture the whole (`Sync`)
    /// wrapper rather than its raw pointer field.
    fn get(self) -> (*mut f32, usize) {
        (self.0, self.1)
    }
}

/// y_i = x W_i^T for each weight W_i (rows_i x cols), sharing one
/// quantisation of x (m x cols, row-major); y_i is m x rows_i, row-major.
/// All weights must have the same kind and column count. Parallel over
/// weight rows on `pool`, with `isa`'s kernels.
pub fn matmul_with(
    pool: &Pool,
    isa: Isa,
    ws: &[&QWeight],
    x: &[f32],
    m: usize,
    outs: &mut [&mut [f32]],
) {
    let Some((kind, cols)) = check_shapes(ws, m, outs) else {
        return;
    };
    assert_eq!(x.len(), m * cols, "activations are not m x cols");
    assert!(isa.supported(), "{isa:?} kernels on a CPU without them");
    if m == 0 {
        return;
    }
    let mut acts = vec![ActBlock::default(); m * (cols / QK)];
    quantize_acts(kind, x, &mut acts);
    run_matmul(pool, isa, ws, &acts, m, &out_ptrs(outs));
}

/// [`matmul`] into new outputs, y_i m x rows_i each: the kernels write
/// every element, so they are not zeroed first (for a batched step that
/// zeroing was a tenth of the time the other threads wait for).
pub fn matmul_new(ws: &[&QWeight], x: &[f32], m: usize) -> Vec<Vec<f32>> {
    let mut outs: Vec<Vec<f32>> = ws.iter().map(|w| Vec::with_capacity(m * w.rows)).collect();
    let Some(first) = ws.first() else {
        return outs;
    };
    let (kind, cols) = (first.kind, first.cols);
    assert!(
        ws.iter().all(|w| w.kind == kind && w.cols == cols),
        "fused weights differ in kind or width"
    );
    assert_eq!(x.len(), m * cols, "activations are not m x cols");
    if m == 0 {
        return outs;
    }
    let mut acts = vec![ActBlock::default(); m * (cols / QK)];
    quantize_acts(kind, x, &mut acts);
    let ptrs: Vec<OutPtr> = outs
        .iter_mut()
        .zip(ws)
        .map(|(o, w)| OutPtr(o.spare_capacity_mut().as_mut_ptr().cast(), m * w.rows))
        .collect();
    run_matmul(pool(), isa(), ws, &acts, m, &ptrs);
    for (o, w) in outs.iter_mut().zip(ws) {
        // SAFETY: the capacity is m * rows (reserved above), and
        // `run_matmul` has written every one of those elements: its tasks
        // cover every row group of every weight, and each writes its rows
        // (whole groups by the AVX-512 tiles, the rest element by element,
        // padding rows skipped) for every token.
        unsafe { o.set_len(m * w.rows) };
    }
    outs
}

/// Output slices as the tasks' pointers.
fn out_ptrs(outs: &mut [&mut [f32]]) -> Vec<OutPtr> {
    outs.iter_mut()
        .map(|o| OutPtr(o.as_mut_ptr(), o.len()))
        .collect()
}

/// [`matmul`] on activations already quantised for `ws` (by
/// [`quantize_acts`] with their kind): the same products, bit for bit.
pub fn matmul_quantized(ws: &[&QWeight], acts: &[ActBlock], m: usize, outs: &mut [&mut [f32]]) {
    let Some((_, cols)) = check_shapes(ws, m, outs) else {
        return;
    };
    assert_eq!(acts.len(), m * cols / QK, "activations are not m x cols");
    if m > 0 {
        run_matmul(pool(), isa(), ws, acts, m, &out_ptrs(outs));
    }
}

/// The weights' common kind and width (None without weights), after
/// checking that they share them and that each output is m x rows.
fn check_shapes(ws: &[&QWeight], m: usize, outs: &[&mut [f32]]) -> Option<(WeightKind, usize)> {
    assert_eq!(ws.len(), outs.len());
    let first = ws.first()?;
    let (kind, cols) = (first.kind, first.cols);
    assert!(
        ws.iter().all(|w| w.kind == kind && w.cols == cols),
        "fused weights differ in kind or width"
    );
    for (w, o) in ws.iter().zip(outs.iter()) {
        assert_eq!(o.len(), m * w.rows, "output is not m x rows");
    }
    Some((kind, cols))
}

/// The product itself, into `ptrs[i]` (m x rows_i elements each, written
/// whole); shapes checked by the callers.
fn run_matmul(
    pool: &Pool,
    isa: Isa,
    ws: &[&QWeight],
    acts: &[ActBlock],
    m: usize,
    ptrs: &[OutPtr],
) {
    let (kind, nb) = (ws[0].kind, ws[0].cols / QK);
    // Tasks: runs of row groups within one weight, two per thread. The
    // weights come from memory on every step: long runs keep each thread's
    // stream going (the kernels prefetch ahead within it; each new run
    // starts cold), and the second lets a thread that the machine slows
    // down hand half its share to the others. (Eight shorter runs per
    // thread for steps of 2+ tokens, meant to even out finishing times,
    // made a four-sequence decode step 8-17% slower, `decode_steps`, and
    // prefill no faster.)
    let total: usize = ws.iter().map(|w| w.groups()).sum();
    let chunk = total.div_ceil(pool.threads() * 2).max(1);
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    for (i, w) in ws.iter().enumerate() {
        let mut g = 0;
        while g < w.groups() {
            let end = (g + chunk).min(w.groups());
            tasks.push((i, g, end));
            g = end;
        }
    }
    let sums: Vec<Vec<[f32; 16]>> = if needs_tile_sums(isa, kind) {
        acts.chunks(TILE_TOKENS * nb)
            .map(|tile| tile_sums(tile, nb))
            .collect()
    } else {
        Vec::new()
    };
    let body = |t: usize| {
        let (i, g0, g1) = tasks[t];
        let w = ws[i];
        let n = w.rows;
        let (base, len) = ptrs[i].get();
        let mut res = [[0f32; TILE_TOKENS]; GROUP];
        for g in g0..g1 {
            let group = w.group(g);
            let mut j = 0;
            while j < m {
                let k = (m - j).min(TILE_TOKENS);
                let tile = &acts[j * nb..(j + k) * nb];
                let tile_sums = sums.get(j / TILE_TOKENS).map_or(&[][..], Vec::as_slice);
                #[cfg(target_arch = "x86_64")]
                if isa == Isa::Avx512Vnni && (g + 1) * GROUP <= n {
                    // A whole group: straight into the output rows.
                    let at = j * n + g * GROUP;
                    assert!((j + k - 1) * n + g * GROUP + GROUP <= len);
                    assert!(tile.len() == k * nb);
                    assert!(!needs_tile_sums(isa, kind) || tile_sums.len() == nb);
                    assert_eq!(group.len(), GROUP * nb * kind.block_bytes());
                    let a = |i: usize| tile[i * nb..(i + 1) * nb].as_ptr();
                    // SAFETY: the AVX-512 kernels are selected only where
                    // the CPU has them (`Isa::supported`); the group, tile
                    // and (where read) sums are whole (asserted); token r's four floats
                    // at at + r * n lie in output i (asserted) and are this
                    // task's alone (its row groups).
                    unsafe {
                        x86_tile_avx512(
                            kind,
                            group.as_ptr(),
                            nb,
                            k,
                            a,
                            tile_sums.as_ptr(),
                            base.add(at),
                            n,
                        )
                    };
                    j += k;
                    continue;
                }
                dot_tile(isa, kind, group, tile, tile_sums, nb, &mut res);
                for (dr, res) in res.iter().enumerate() {
                    let r = g * GROUP + dr;
                    if r >= n {
                        break; // padding rows
                    }
                    for (dj, &v) in res[..k].iter().enumerate() {
                        let at = (j + dj) * n + r;
                        assert!(at < len);
                        // SAFETY: `at` is in bounds (checked above), and
                        // element (j + dj, r) of output i is written by this
                        // task only: tasks cover disjoint row groups.
                        unsafe { *base.add(at) = v };
                    }
                }
                j += k;
            }
        }
    };
    pool.run(tasks.len(), &body);
}

/// [`matmul_with`] on the process-wide pool with the detected kernels.
pub fn matmul(ws: &[&QWeight], x: &[f32], m: usize, outs: &mut [&mut [f32]]) {
    matmul_with(pool(), isa(), ws, x, m, outs)
}

/// Runs `f(i, chunk_i)` for the consecutive `chunk_len`-long chunks of
/// `out` (the last may be shorter) across the pool.
pub fn par_chunks_mut(out: &mut [f32], chunk_len: usize, f: &(dyn Fn(usize, &mut [f32]) + Sync)) {
    assert!(chunk_len > 0);
    let n = out.len().div_ceil(chunk_len);
    let total = out.len();
    let base = OutPtr(out.as_mut_ptr(), total);
    pool().run(n, &|i| {
        let (p, len) = base.get();
        let start = i * chunk_len;
        let end = (start + chunk_len).min(len);
        // SAFETY: start < end <= len, so the range lies inside `out`, which
        // is exclusively borrowed for the whole call; chunks of distinct
        // tasks do not overlap, and `run` returns only when all are done.
        let chunk = unsafe { std::slice::from_raw_parts_mut(p.add(start), end - start) };
        f(i, chunk);
    });
}

/// Quantises rows of `cols` values (cols a multiple of 32) for the given
/// weight kind: Q8_1 (with sums) against Q4_1, Q8_0 against Q8_0.
pub fn quantize_acts(kind: WeightKind, x: &[f32], out: &mut [ActBlock]) {
    assert_eq!(x.len(), out.len() * QK, "activations are not whole blocks");
    let with_sum = kind == WeightKind::Q4_1;
    match isa() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => {
            // SAFETY: `isa()` reports an x86 set only where AVX2, FMA and
            // F16C were detected.
            unsafe { x86::quantize_blocks(x, with_sum, out) }
        }
        _ => quant::quantize_blocks(x, with_sum, out),
    }
}

/// gate = silu(gate) * up, as ggml's `swiglu` (see [`silu_mul_scalar`]).
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` is only selected after run-time detection of
        // AVX2, FMA and F16C; the function checks its slices' lengths.
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe { x86::silu_mul(gate, up) },
        _ => silu_mul_scalar(gate, up),
    }
}

/// Softmax in place over scaled scores, as ggml's `soft_max` (see
/// [`softmax_scalar`]).
pub fn softmax(x: &mut [f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `silu_mul`.
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe { x86::softmax(x) },
        _ => softmax_scalar(x),
    }
}

/// `out[j]` = q . (row j of `rows`) summed in `order`, for each
/// j < out.len() (see [`dots_scalar`]).
pub fn dots<T: CacheElem>(order: SumOrder, q: &[f32], rows: RowParts<'_, T>, out: &mut [f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `silu_mul`; rows are bounds-checked slices.
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe { x86::dots(order, q, rows, out) },
        _ => dots_scalar(order, q, rows, out),
    }
}

/// `out[c]` = sum over j of `p[j]` * (row j's element c), summed in `order` (see
/// [`weighted_rows_scalar`]).
pub fn weighted_rows<T: CacheElem>(
    order: SumOrder,
    p: &[f32],
    rows: RowParts<'_, T>,
    out: &mut [f32],
) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `silu_mul`; rows are bounds-checked slices.
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe {
            x86::weighted_rows(order, p, rows, out)
        },
        _ => weighted_rows_scalar(order, p, rows, out),
    }
}

/// Whether [`attend_group`] has a fused kernel for `group` query heads of
/// `head_dim` on this CPU (else the caller attends head by head).
pub fn attend_group_supported(group: usize, head_dim: usize) -> bool {
    isa() == Isa::Avx512Vnni && head_dim == 64 && (1..=4).contains(&group)
}

/// One single-token step's attention for the `q.len() / 64` query heads
/// that share one key/value head (see `x86::attend_group64`; row j of
/// `keys` and `values` is key j): `probs`
/// receives each head's probabilities as used (G x visible), `out` each
/// head's output (G x 64). Only where [`attend_group_supported`].
#[allow(clippy::too_many_arguments)]
pub fn attend_group<T: CacheElem>(
    q: &[f32],
    keys: RowParts<'_, T>,
    values: RowParts<'_, T>,
    visible: usize,
    f16: bool,
    probs: &mut [f32],
    out: &mut [f32],
) {
    let group = q.len() / 64;
    assert!(
        attend_group_supported(group, 64),
        "no fused attention kernel here"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let stride = keys.stride();
        assert_eq!(stride, values.stride());
        let (keys, values) = (keys.starts(visible, 64), values.starts(visible, 64));
        let args = (q, keys, values, stride, visible, f16, probs, out);
        // SAFETY: `Isa::Avx512Vnni` is only selected after run-time
        // detection of its features (and AVX2, FMA, F16C); `starts`
        // checked that each of the `visible` rows holds 64 elements where
        // the kernel reads it; the kernel checks its slices' lengths.
        unsafe {
            match group {
                1 => call_group::<T, 1>(args),
                2 => call_group::<T, 2>(args),
                3 => call_group::<T, 3>(args),
                _ => call_group::<T, 4>(args),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
type GroupArgs<'a, T> = (
    &'a [f32],
    x86::RowStarts<T>,
    x86::RowStarts<T>,
    usize,
    usize,
    bool,
    &'a mut [f32],
    &'a mut [f32],
);

/// # Safety
/// As `x86::attend_group64`.
#[cfg(target_arch = "x86_64")]
unsafe fn call_group<T: CacheElem, const G: usize>(a: GroupArgs<'_, T>) {
    // SAFETY: passed on from the caller.
    unsafe { x86::attend_group64::<T, G>(a.0, a.1, a.2, a.3, a.4, a.5, a.6, a.7) }
}

/// Rotates the adjacent pairs of each head of `x` (heads of 2 x cos.len())
/// by the angles whose cosines and sines are given, with ggml's
/// contraction (gcc fuses the first product of each line), which makes it
/// bit-identical to llama.cpp's rope: (x0 c - x1 s, x0 s + x1 c).
pub fn rotate_pairs(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    assert_eq!(cos.len(), sin.len());
    assert!(x.len().is_multiple_of(2 * cos.len()));
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `silu_mul` (the function has no other requirement).
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe { x86::rotate_pairs(x, cos, sin) },
        _ => float::rotate_pairs_scalar(x, cos, sin),
    }
}
