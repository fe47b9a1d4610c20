//! Block formats: the GGUF weight blocks we read in place (Q4_1, Q8_0) and
//! the 8-bit activation blocks we quantise into, with the plain scalar
//! routines that are both the portable fallback and the reference the SIMD
//! kernels are tested against.
//!
//! Activations are quantised exactly as ggml's x86 path does
//! (`quantize_row_q8_1` / `quantize_row_q8_0`): scale d = amax / 127 stored
//! as f16, values rounded to nearest-even of x * 127 / amax, and for Q8_1 the
//! sum s = f16(d * sum(q)), d taken before its f16 rounding. Keeping that
//! rounding is what keeps our logits within llama.cpp's.

use half::f16;

/// Values per block, for every format here.
pub const QK: usize = 32;

/// The weight formats the kernels read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightKind {
    /// 20 bytes: f16 d, f16 m, 16 bytes of nibbles; w = d * q + m, q in 0..16.
    /// Element j of the block is the low nibble of byte j (j < 16) or the
    /// high nibble of byte j - 16.
    Q4_1,
    /// 34 bytes: f16 d, 32 signed bytes; w = d * q.
    Q8_0,
}

impl WeightKind {
    pub const fn block_bytes(self) -> usize {
        match self {
            WeightKind::Q4_1 => 20,
            WeightKind::Q8_0 => 34,
        }
    }
}

/// One block of 32 activations quantised to 8 bits. `d` and `s` hold the
/// f16-rounded values (as f32) that ggml stores, so every kernel computes
/// with the same numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct ActBlock {
    pub d: f32,
    /// d * sum(qs), only for activations meant for Q4_1 weights (Q8_1).
    pub s: f32,
    pub qs: [i8; QK],
}

#[inline]
pub(crate) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

#[inline]
fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

#[inline(always)]
fn quantize_block(x: &[f32], with_sum: bool) -> ActBlock {
    debug_assert_eq!(x.len(), QK);
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i32;
        *q = r as i8;
        sum += r;
    }
    let s = if with_sum {
        round_f16(d * sum as f32)
    } else {
        0.0
    };
    ActBlock {
        d: round_f16(d),
        s,
        qs,
    }
}

/// The portable quantisation (and the reference the AVX2 one is tested
/// against).
pub(crate) fn quantize_blocks(x: &[f32], with_sum: bool, out: &mut [ActBlock]) {
    for (block, chunk) in out.iter_mut().zip(x.chunks_exact(QK)) {
        *block = quantize_block(chunk, with_sum);
    }
}

/// Sum of 8 float lanes in `hsum_float_8`'s order (the AVX2 kernels'
/// final step): upper half onto lower, then (0 + 2) + (1 + 3).
#[inline]
fn hsum8(acc: &[f32; 8]) -> f32 {
    let s = [
        acc[4] + acc[0],
        acc[5] + acc[1],
        acc[6] + acc[2],
        acc[7] + acc[3],
    ];
    (s[0] + s[2]) + (s[1] + s[3])
}

/// Element j (0..32) of a GGUF Q4_1 block's 16 quant bytes: the low nibble
/// of byte j, or the high nibble of byte j - 16.
#[inline]
pub(crate) fn q4_1_element(quants: &[u8], j: usize) -> u8 {
    if j < QK / 2 {
        quants[j] & 0x0f
    } else {
        quants[j - QK / 2] >> 4
    }
}

/// Reference dot product of one Q4_1 weight row (raw bytes) with Q8_1
/// activations, in the order of ggml's AVX2 `vec_dot_q4_1_q8_1` (and of our
/// AVX2 kernel, bit for bit): per block, 8 integer lanes of 4 consecutive
/// products, each lane accumulated as lane * (d * d_a) with FMA; then the
/// 8-lane sum, plus the m * s terms summed block by block.
pub fn dot_q4_1_scalar(w: &[u8], a: &[ActBlock]) -> f32 {
    let blocks = w.chunks_exact(WeightKind::Q4_1.block_bytes()).map(|blk| {
        let q = std::array::from_fn(|j| q4_1_element(&blk[4..], j));
        (f16_at(blk, 0), f16_at(blk, 2), q)
    });
    dot_q4_1_blocks(blocks, a)
}

/// [`dot_q4_1_scalar`] on blocks given as (d, m, quants in element order),
/// wherever they are stored.
pub(crate) fn dot_q4_1_blocks(
    blocks: impl Iterator<Item = (f32, f32, [u8; QK])>,
    a: &[ActBlock],
) -> f32 {
    let mut acc = [0f32; 8];
    let mut summ = 0f32;
    for ((d, m, q), a) in blocks.zip(a) {
        let dd = d * a.d;
        for (l, acc) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * l..4 * l + 4)
                .map(|e| q[e] as i32 * a.qs[e] as i32)
                .sum();
            *acc = (lane as f32).mul_add(dd, *acc);
        }
        summ += m * a.s;
    }
    hsum8(&acc) + summ
}

/// Reference dot product of one Q8_0 weight row with Q8_0 activations, in
/// the order of ggml's AVX2 `vec_dot_q8_0_q8_0` (as [`dot_q4_1_scalar`],
/// without the m terms).
pub fn dot_q8_0_scalar(w: &[u8], a: &[ActBlock]) -> f32 {
    let blocks = w
        .chunks_exact(WeightKind::Q8_0.block_bytes())
        .map(|blk| (f16_at(blk, 0), std::array::from_fn(|j| blk[2 + j] as i8)));
    dot_q8_0_blocks(blocks, a)
}

/// [`dot_q8_0_scalar`] on blocks given as (d, quants).
pub(crate) fn dot_q8_0_blocks(
    blocks: impl Iterator<Item = (f32, [i8; QK])>,
    a: &[ActBlock],
) -> f32 {
    let mut acc = [0f32; 8];
    for ((d, q), a) in blocks.zip(a) {
        let dd = d * a.d;
        for (l, acc) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * l..4 * l + 4)
                .map(|e| q[e] as i32 * a.qs[e] as i32)
                .sum();
            *acc = (lane as f32).mul_add(dd, *acc);
        }
    }
    hsum8(&acc)
}

/// Dequantises one weight row (raw bytes) into `out` (embedding lookups).
pub fn dequantize_row(kind: WeightKind, w: &[u8], out: &mut [f32]) {
    let bb = kind.block_bytes();
    for (blk, out) in w.chunks_exact(bb).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        match kind {
            WeightKind::Q4_1 => {
                let m = f16_at(blk, 2);
                for j in 0..QK / 2 {
                    let b = blk[4 + j];
                    out[j] = (b & 0x0f) as f32 * d + m;
                    out[j + QK / 2] = (b >> 4) as f32 * d + m;
                }
            }
            WeightKind::Q8_0 => {
                for j in 0..QK {
                    out[j] = blk[2 + j] as i8 as f32 * d;
                }
            }
        }
    }
}
