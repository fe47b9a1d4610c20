//! The float ops of the forward pass in ggml's arithmetic order, so that
//! quantised mode reproduces llama.cpp's CPU results bit for bit (see
//! scripts/reference/FIDELITY.md for how each order was established):
//!
//! - `expf`: ggml's vectorised `ggml_v_expf` as its AVX-512 build computes
//!   it (polynomial, then `scalef`), used by SiLU and softmax;
//! - `dot` / `weighted_rows` with [`SumOrder`]: the f16 products of
//!   attention (q.k and probabilities x values), summed in 16 lanes
//!   (llamafile's tinyBLAS, which ggml uses when a step has 2+ tokens) or in
//!   4 x 16 lanes (`ggml_vec_dot_f16`, single-token steps), then reduced as
//!   `_mm512_reduce_add_ps` does;
//! - `softmax`: exponentials summed 16 at a time in f32, the sums in f64.
//!
//! The functions here are the scalar references and the portable path; the
//! AVX2 versions in `x86.rs` compute the same bits (FMA is exact either way:
//! `f32::mul_add` is a fused multiply-add wherever it runs). Attention reads
//! its keys and values in the cache's element type (f16 or f32).

use super::elem::CacheElem;
use super::rows::RowParts;

/// How the products of a dot product are summed, as ggml's CPU backend does
/// on an AVX-512 machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SumOrder {
    /// tinyBLAS (`llamafile_sgemm`, steps of 2+ tokens): element i goes to
    /// lane i % 16, lanes accumulate with FMA, then one 16-lane reduction.
    Lanes16,
    /// `ggml_vec_dot_f16` (single-token steps): four 16-lane accumulators
    /// over each 64 elements, combined (0 + 2) + (1 + 3), reduced over 16
    /// lanes; a tail of n % 64 elements added one by one in f64.
    Lanes64,
}

impl SumOrder {
    /// The order llama.cpp uses for a step of `n_tokens` tokens and dot
    /// products of length `len` (tinyBLAS takes only multiples of 16).
    pub fn for_step(n_tokens: usize, len: usize) -> SumOrder {
        if n_tokens >= 2 && len.is_multiple_of(16) {
            SumOrder::Lanes16
        } else {
            SumOrder::Lanes64
        }
    }

    /// Accumulator lanes: 16 or 4 x 16.
    pub fn lanes(self) -> usize {
        match self {
            SumOrder::Lanes16 => 16,
            SumOrder::Lanes64 => 64,
        }
    }
}

const EXP_SHIFT: f32 = 12582912.0; // 0x1.8p23
const LOG2E: f32 = f32::from_bits(0x3fb8aa3b); // 0x1.715476p+0
const LN2_HI: f32 = f32::from_bits(0x3f317200); // 0x1.62e4p-1
const LN2_LO: f32 = f32::from_bits(0x35bfbe8e); // 0x1.7f7d1cp-20
const P5: f32 = f32::from_bits(0x3c072010); // 0x1.0e4020p-7
const P4: f32 = f32::from_bits(0x3d2b9f17); // 0x1.573e2ep-5
const P3: f32 = f32::from_bits(0x3e2aaf33); // 0x1.555e66p-3
const P2: f32 = f32::from_bits(0x3efffedb); // 0x1.fffdb6p-2
const P1: f32 = f32::from_bits(0x3f7ffff6); // 0x1.ffffecp-1

/// The AVX-512 kernel's constants, for the SIMD versions.
pub(crate) const EXP_CONSTS: [f32; 9] = [EXP_SHIFT, LOG2E, LN2_HI, LN2_LO, P5, P4, P3, P2, P1];

/// j * 2^n in one rounding (`_mm512_scalef_ps` for integral n).
#[inline]
pub(crate) fn scale_pow2(j: f32, n: f32) -> f32 {
    if (-126.0..=127.0).contains(&n) {
        j * f32::from_bits(((n as i32 + 127) as u32) << 23)
    } else {
        // Exact in f64 (|n| <= 192), one rounding to f32.
        (j as f64 * 2f64.powi(n as i32)) as f32
    }
}

/// e^x as ggml's AVX-512 `ggml_v_expf` (error ~1.5 ulp; the point is the
/// same bits, not the best ones).
#[inline]
pub fn expf(x: f32) -> f32 {
    let z = x.mul_add(LOG2E, EXP_SHIFT);
    let n = z - EXP_SHIFT;
    let b = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let u = b * b;
    let j = P5
        .mul_add(b, P4)
        .mul_add(u, P3.mul_add(b, P2))
        .mul_add(u, P1.mul_add(b, 1.0));
    if n.abs() > 192.0 {
        return if n <= 0.0 { 0.0 } else { f32::INFINITY };
    }
    scale_pow2(j, n)
}

/// Sum of 16 floats in `_mm512_reduce_add_ps`'s order.
#[inline]
pub(crate) fn reduce16(v: &[f32; 16]) -> f32 {
    let mut t = [0f32; 8];
    for i in 0..8 {
        t[i] = v[i + 8] + v[i];
    }
    let t6 = [t[4] + t[0], t[5] + t[1], t[6] + t[2], t[7] + t[3]];
    (t6[0] + t6[2]) + (t6[1] + t6[3])
}

/// gate = silu(gate) * up, as `ggml_vec_swiglu_f32` (16 at a time with
/// [`expf`], a tail of n % 16 with libm's exp as its scalar loop).
pub fn silu_mul_scalar(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    let body = gate.len() / 16 * 16;
    for (g, &u) in gate[..body].iter_mut().zip(&up[..body]) {
        *g = *g / (1.0 + expf(-*g)) * u;
    }
    for (g, &u) in gate[body..].iter_mut().zip(&up[body..]) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// GELU, tanh form, in f32: 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const COEF_A: f32 = 0.044715;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + COEF_A * x * x)).tanh())
}

/// gate = gelu(gate) * up. With `f16_table`, as ggml's CPU `geglu` does
/// it: the input rounded to f16 and looked up in a table of f16 results
/// (exactly 0 below -10, the identity above 10); else in f32 throughout.
pub fn gelu_mul(gate: &mut [f32], up: &[f32], f16_table: bool) {
    assert_eq!(gate.len(), up.len());
    if !f16_table {
        for (g, &u) in gate.iter_mut().zip(up) {
            *g = gelu_tanh(*g) * u;
        }
        return;
    }
    static TABLE: std::sync::OnceLock<Vec<half::f16>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|b| half::f16::from_f32(gelu_tanh(half::f16::from_bits(b).to_f32())))
            .collect()
    });
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x * u
        } else {
            table[half::f16::from_f32(x).to_bits() as usize].to_f32() * u
        };
    }
}

/// Softmax in place over scores already scaled, as ggml's `soft_max`
/// (exponentials of x - max with [`expf`], summed 16 at a time in f32 and
/// those sums in f64, then multiplied by 1 / sum).
pub fn softmax_scalar(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for chunk in x.chunks_mut(16) {
        let mut v = [0f32; 16];
        for (o, s) in v.iter_mut().zip(chunk.iter_mut()) {
            *s = expf(*s - max);
            *o = *s;
        }
        sum += reduce16(&v) as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// a . b summed in `order` (a and b the same length).
pub fn dot_scalar<T: CacheElem>(order: SumOrder, a: &[f32], b: &[T]) -> f32 {
    assert_eq!(a.len(), b.len());
    match order {
        SumOrder::Lanes16 => {
            let mut acc = [0f32; 16];
            for (ca, cb) in a.chunks(16).zip(b.chunks(16)) {
                for l in 0..ca.len() {
                    acc[l] = ca[l].mul_add(cb[l].to_f32(), acc[l]);
                }
            }
            reduce16(&acc)
        }
        SumOrder::Lanes64 => {
            let body = a.len() / 64 * 64;
            let mut acc = [0f32; 64];
            for (ca, cb) in a[..body].chunks_exact(64).zip(b[..body].chunks_exact(64)) {
                for l in 0..64 {
                    acc[l] = ca[l].mul_add(cb[l].to_f32(), acc[l]);
                }
            }
            let mut s: f64 = reduce16(&combine64(&acc)) as f64;
            for (&x, &y) in a[body..].iter().zip(&b[body..]) {
                s += (x * y.to_f32()) as f64;
            }
            s as f32
        }
    }
}

/// `dot_scalar(order, q, row j)` for each j < out.len() (attention scores
/// of one query over the keys).
pub fn dots_scalar<T: CacheElem>(
    order: SumOrder,
    q: &[f32],
    rows: RowParts<'_, T>,
    out: &mut [f32],
) {
    let d = q.len();
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot_scalar(order, q, rows.row(j, d));
    }
}

/// `ggml_vec_dot_f16`'s combination of its four 16-lane accumulators.
#[inline]
fn combine64(acc: &[f32; 64]) -> [f32; 16] {
    let mut v = [0f32; 16];
    for l in 0..16 {
        v[l] = (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]);
    }
    v
}

/// `out[c]` = sum over j of `p[j]` * (element c of row j), c < out.len(),
/// summed over j in `order` (the attention output: probabilities times
/// values, one dot product per output column). llama.cpp pads the keys to
/// a multiple of 256 with zero weights, so every j goes to the lanes and
/// there is no tail.
pub fn weighted_rows_scalar<T: CacheElem>(
    order: SumOrder,
    p: &[f32],
    rows: RowParts<'_, T>,
    out: &mut [f32],
) {
    let d = out.len();
    let lanes = order.lanes();
    let mut acc = vec![0f32; lanes * d];
    for (j, &pj) in p.iter().enumerate() {
        let a = &mut acc[(j % lanes) * d..(j % lanes + 1) * d];
        for (o, &v) in a.iter_mut().zip(rows.row(j, d)) {
            *o = v.to_f32().mul_add(pj, *o);
        }
    }
    for (c, o) in out.iter_mut().enumerate() {
        let mut v = [0f32; 16];
        if lanes == 16 {
            for (l, x) in v.iter_mut().enumerate() {
                *x = acc[l * d + c];
            }
        } else {
            let mut a64 = [0f32; 64];
            for (l, x) in a64.iter_mut().enumerate() {
                *x = acc[l * d + c];
            }
            v = combine64(&a64);
        }
        *o = reduce16(&v);
    }
}

/// [`super::rotate_pairs`]: `f32::mul_add` is fused wherever it runs, but
/// without the FMA instruction compiled in it is a library call per value,
/// so the x86 path compiles this same body with FMA enabled.
#[inline(always)]
pub fn rotate_pairs_scalar(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(2 * cos.len()) {
        for (pair, (&c, &s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
            let (x0, x1) = (pair[0], pair[1]);
            pair[0] = x0.mul_add(c, -(x1 * s));
            pair[1] = x0.mul_add(s, x1 * c);
        }
    }
}
