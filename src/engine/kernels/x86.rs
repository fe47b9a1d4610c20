//! AVX2 + FMA + F16C dot products: one weight row against R activation rows
//! (R = 1..=4), so that batched decode and prefill unpack each weight block
//! once for several tokens; each also with AVX-VNNI, which sums byte
//! products in one instruction instead of two (the same integers).
//!
//! Every function here is `unsafe` for two reasons, both discharged by the
//! safe wrappers in `mod.rs`: the CPU must support the enabled features
//! (checked at run time with `is_x86_feature_detected!` before any call),
//! and the pointers must cover `nb` blocks (checked with slice lengths).

use std::arch::x86_64::*;

use super::CacheElem;
use super::quant::{ActBlock, WeightKind};

/// Horizontal sum of 8 floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    // ggml's hsum_float_8, step for step.
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(hi, lo);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sums of four adjacent u8 x i8 products, as i32 lanes: maddubs to i16
/// pairs then madd by ones (no i16 saturation for the kernels' operands:
/// a pair is at most 2 x 15 x 128 for Q4_1, 2 x 128 x 127 for Q8_0's sign
/// trick).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pair_sums_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// The same sums in one AVX-VNNI instruction (exact in i32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
fn pair_sums_vnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
}

macro_rules! dot_q4_1 {
    ($name:ident, $features:literal, $pairs:ident) => {
        /// Q4_1 weights (`nb` blocks at `w`) against R rows of Q8_1 activations.
        ///
        /// # Safety
        /// The CPU supports the enabled features; `w` points to `nb * 20` readable
        /// bytes and each `a[r]` to `nb` readable blocks.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const R: usize>(
            w: *const u8,
            nb: usize,
            a: [*const ActBlock; R],
        ) -> [f32; R] {
            let mask = _mm_set1_epi8(0x0f);
            let mut acc = [_mm256_setzero_ps(); R];
            let mut summ = [0f32; R];
            let bb = WeightKind::Q4_1.block_bytes();
            // One block: unpack 32 nibbles to bytes (low nibbles are elements
            // 0..16, high nibbles 16..32), then u8 x i8 pair sums (at most
            // 2 x 15 x 128, no i16 saturation), widened to i32 and scaled.
            macro_rules! block {
                ($b:expr, $acc:ident) => {{
                    // SAFETY (for the reads below): b < nb, and the caller
                    // guarantees nb blocks behind `w` and every `a[r]`.
                    let blk = unsafe { w.add($b * bb) };
                    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(unsafe {
                        (blk as *const i32).read_unaligned()
                    }));
                    let d = _mm_cvtss_f32(dm);
                    let m = _mm_cvtss_f32(_mm_movehdup_ps(dm));
                    let raw = unsafe { _mm_loadu_si128(blk.add(4) as *const __m128i) };
                    let lo = _mm_and_si128(raw, mask);
                    let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), mask);
                    let q = _mm256_set_m128i(hi, lo);
                    for r in 0..R {
                        let ab = unsafe { &*a[r].add($b) };
                        let av = unsafe { _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i) };
                        let p = $pairs(q, av);
                        $acc[r] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(p),
                            _mm256_set1_ps(d * ab.d),
                            $acc[r],
                        );
                        summ[r] += m * ab.s;
                    }
                }};
            }
            // One accumulator, blocks in order, as ggml's AVX2 kernel: the model's
            // 8-bit activations make it sensitive to the last bit of every sum.
            for b in 0..nb {
                block!(b, acc);
            }
            let mut out = [0f32; R];
            for r in 0..R {
                out[r] = hsum(acc[r]) + summ[r];
            }
            out
        }
    };
}

dot_q4_1!(dot_q4_1, "avx2,fma,f16c", pair_sums_avx2);
dot_q4_1!(dot_q4_1_vnni, "avx2,fma,f16c,avxvnni", pair_sums_vnni);

macro_rules! dot_q8_0 {
    ($name:ident, $features:literal, $pairs:ident) => {
        /// Q8_0 weights (`nb` blocks at `w`) against R rows of Q8_0 activations.
        ///
        /// # Safety
        /// The CPU supports the enabled features; `w` points to `nb * 34` readable
        /// bytes and each `a[r]` to `nb` readable blocks.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const R: usize>(
            w: *const u8,
            nb: usize,
            a: [*const ActBlock; R],
        ) -> [f32; R] {
            let mut acc = [_mm256_setzero_ps(); R];
            let bb = WeightKind::Q8_0.block_bytes();
            // i8 x i8 through maddubs: |w| as unsigned times a with w's sign
            // (pair sums at most 2 x 128 x 127 < 32767).
            macro_rules! block {
                ($b:expr, $acc:ident) => {{
                    // SAFETY (for the reads below): b < nb, and the caller
                    // guarantees nb blocks behind `w` and every `a[r]`.
                    let blk = unsafe { w.add($b * bb) };
                    let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(unsafe {
                        (blk as *const u16).read_unaligned()
                    } as i32)));
                    let wq = unsafe { _mm256_loadu_si256(blk.add(2) as *const __m256i) };
                    let aw = _mm256_sign_epi8(wq, wq);
                    for r in 0..R {
                        let ab = unsafe { &*a[r].add($b) };
                        let av = unsafe { _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i) };
                        let sa = _mm256_sign_epi8(av, wq);
                        let p = $pairs(aw, sa);
                        $acc[r] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(p),
                            _mm256_set1_ps(d * ab.d),
                            $acc[r],
                        );
                    }
                }};
            }
            for b in 0..nb {
                block!(b, acc);
            }
            let mut out = [0f32; R];
            for r in 0..R {
                out[r] = hsum(acc[r]);
            }
            out
        }
    };
}

dot_q8_0!(dot_q8_0, "avx2,fma,f16c", pair_sums_avx2);
dot_q8_0!(dot_q8_0_vnni, "avx2,fma,f16c,avxvnni", pair_sums_vnni);

/// `float::expf` on 8 lanes: the same FMAs, then j * 2^n by building 2^n
/// in the exponent bits, which is exact while |n| <= 126; lanes beyond
/// that (results below 2^-126 or overflowing) are redone by the scalar
/// version.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn expf8(x: __m256) -> __m256 {
    let [shift, log2e, ln2_hi, ln2_lo, p5, p4, p3, p2, p1] = super::float::EXP_CONSTS;
    let z = _mm256_fmadd_ps(x, _mm256_set1_ps(log2e), _mm256_set1_ps(shift));
    let n = _mm256_sub_ps(z, _mm256_set1_ps(shift));
    let b = _mm256_fnmadd_ps(
        n,
        _mm256_set1_ps(ln2_lo),
        _mm256_fnmadd_ps(n, _mm256_set1_ps(ln2_hi), x),
    );
    let u = _mm256_mul_ps(b, b);
    let j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(
            _mm256_fmadd_ps(_mm256_set1_ps(p5), b, _mm256_set1_ps(p4)),
            u,
            _mm256_fmadd_ps(_mm256_set1_ps(p3), b, _mm256_set1_ps(p2)),
        ),
        u,
        _mm256_fmadd_ps(_mm256_set1_ps(p1), b, _mm256_set1_ps(1.0)),
    );
    let absn = _mm256_andnot_ps(_mm256_set1_ps(-0.0), n);
    // Not-less-or-equal, so a NaN lane also takes the scalar path.
    let far = _mm256_cmp_ps::<_CMP_NLE_UQ>(absn, _mm256_set1_ps(126.0));
    if _mm256_movemask_ps(far) != 0 {
        let mut v = [0f32; 8];
        // SAFETY: `v` holds 8 floats.
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) };
        for e in &mut v {
            *e = super::float::expf(*e);
        }
        // SAFETY: as above.
        return unsafe { _mm256_loadu_ps(v.as_ptr()) };
    }
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    _mm256_mul_ps(j, _mm256_castsi256_ps(e))
}

/// The 16-lane reduction of `lo` (lanes 0..8) and `hi` (8..16), in
/// `_mm512_reduce_add_ps`'s order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce16(lo: __m256, hi: __m256) -> f32 {
    hsum(_mm256_add_ps(hi, lo))
}

/// `float::silu_mul_scalar` on 8 lanes at a time (bit-identical).
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len());
    let body = gate.len() / 16 * 16;
    let one = _mm256_set1_ps(1.0);
    for i in (0..body).step_by(8) {
        // SAFETY: i + 8 <= body <= len of both slices.
        unsafe {
            let g = _mm256_loadu_ps(gate.as_ptr().add(i));
            let u = _mm256_loadu_ps(up.as_ptr().add(i));
            let e = expf8(_mm256_sub_ps(_mm256_setzero_ps(), g));
            let s = _mm256_div_ps(g, _mm256_add_ps(one, e));
            _mm256_storeu_ps(gate.as_mut_ptr().add(i), _mm256_mul_ps(s, u));
        }
    }
    super::float::silu_mul_scalar(&mut gate[body..], &up[body..]);
}

/// `float::softmax_scalar` with 8-lane exponentials (bit-identical).
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mv = _mm256_set1_ps(max);
    let body = x.len() / 16 * 16;
    let mut sum = 0f64;
    for i in (0..body).step_by(16) {
        // SAFETY: i + 16 <= body <= x.len().
        unsafe {
            let p = x.as_mut_ptr().add(i);
            let lo = expf8(_mm256_sub_ps(_mm256_loadu_ps(p), mv));
            let hi = expf8(_mm256_sub_ps(_mm256_loadu_ps(p.add(8)), mv));
            _mm256_storeu_ps(p, lo);
            _mm256_storeu_ps(p.add(8), hi);
            sum += reduce16(lo, hi) as f64;
        }
    }
    if body < x.len() {
        let mut v = [0f32; 16];
        for (o, s) in v.iter_mut().zip(x[body..].iter_mut()) {
            *s = super::float::expf(*s - max);
            *o = *s;
        }
        sum += super::float::reduce16(&v) as f64;
    }
    let inv = _mm256_set1_ps((1.0 / sum) as f32);
    let vbody = x.len() / 8 * 8;
    for i in (0..vbody).step_by(8) {
        // SAFETY: i + 8 <= x.len().
        unsafe {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_mul_ps(_mm256_loadu_ps(p), inv));
        }
    }
    let inv = (1.0 / sum) as f32;
    for v in &mut x[vbody..] {
        *v *= inv;
    }
}

/// `float::dot_scalar` (bit-identical); lengths not a multiple of 16 under
/// `Lanes16` go to the scalar version.
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dot<T: CacheElem>(order: super::float::SumOrder, a: &[f32], b: &[T]) -> f32 {
    use super::float::SumOrder;
    assert_eq!(a.len(), b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    match order {
        SumOrder::Lanes16 if a.len().is_multiple_of(16) => {
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for i in (0..a.len()).step_by(16) {
                // SAFETY: i + 16 <= len of both slices.
                unsafe {
                    lo = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), T::load8(pb.add(i)), lo);
                    hi = _mm256_fmadd_ps(
                        _mm256_loadu_ps(pa.add(i + 8)),
                        T::load8(pb.add(i + 8)),
                        hi,
                    );
                }
            }
            reduce16(lo, hi)
        }
        SumOrder::Lanes16 => super::float::dot_scalar(order, a, b),
        SumOrder::Lanes64 => {
            let body = a.len() / 64 * 64;
            let mut r = [_mm256_setzero_ps(); 8];
            for i in (0..body).step_by(64) {
                for (k, acc) in r.iter_mut().enumerate() {
                    // SAFETY: i + 64 <= body <= len of both slices.
                    unsafe {
                        *acc = _mm256_fmadd_ps(
                            _mm256_loadu_ps(pa.add(i + 8 * k)),
                            T::load8(pb.add(i + 8 * k)),
                            *acc,
                        );
                    }
                }
            }
            // Accumulator k (0..4) is r[2k] (lanes 0..8) and r[2k+1].
            let lo = _mm256_add_ps(_mm256_add_ps(r[0], r[4]), _mm256_add_ps(r[2], r[6]));
            let hi = _mm256_add_ps(_mm256_add_ps(r[1], r[5]), _mm256_add_ps(r[3], r[7]));
            let mut s = reduce16(lo, hi) as f64;
            for (&x, &y) in a[body..].iter().zip(&b[body..]) {
                s += (x * y.to_f32()) as f64;
            }
            s as f32
        }
    }
}

/// `float::weighted_rows_scalar` (bit-identical); widths not a multiple of
/// 8 go to the scalar version.
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn weighted_rows<T: CacheElem>(
    order: super::float::SumOrder,
    p: &[f32],
    rows: &[T],
    stride: usize,
    out: &mut [f32],
) {
    let d = out.len();
    if !d.is_multiple_of(8) {
        return super::float::weighted_rows_scalar(order, p, rows, stride, out);
    }
    assert!(p.is_empty() || rows.len() >= (p.len() - 1) * stride + d);
    let lanes = order.lanes();
    // Lanes no key reaches stay zero: they are left out of `acc` and read
    // as zeros below (adding +0 changes no sum: an FMA chain started from
    // +0 never yields -0), which spares short rows most of the work.
    let used = lanes.min(p.len());
    let mut acc = vec![0f32; used * d];
    let (pr, pacc) = (rows.as_ptr(), acc.as_mut_ptr());
    for (j, &pj) in p.iter().enumerate() {
        let w = _mm256_set1_ps(pj);
        let a = (j % lanes) * d;
        for c in (0..d).step_by(8) {
            // SAFETY: j * stride + c + 8 <= rows.len() (asserted above), and
            // j % lanes < used (j < p.len()), so a + c + 8 <= used * d.
            unsafe {
                let v = T::load8(pr.add(j * stride + c));
                let o = pacc.add(a + c);
                _mm256_storeu_ps(o, _mm256_fmadd_ps(v, w, _mm256_loadu_ps(o)));
            }
        }
    }
    // SAFETY (for these loads): l < used and c + 8 <= d, so
    // l * d + c + 8 <= used * d = acc.len().
    macro_rules! at {
        ($l:expr, $c:expr) => {
            if $l < used {
                unsafe { _mm256_loadu_ps(pacc.add($l * d + $c)) }
            } else {
                _mm256_setzero_ps()
            }
        };
    }
    for c in (0..d).step_by(8) {
        let mut v = [_mm256_setzero_ps(); 16];
        for (l, x) in v.iter_mut().enumerate() {
            *x = if lanes == 16 {
                at!(l, c)
            } else {
                _mm256_add_ps(
                    _mm256_add_ps(at!(l, c), at!(32 + l, c)),
                    _mm256_add_ps(at!(16 + l, c), at!(48 + l, c)),
                )
            };
        }
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..8 {
            t[i] = _mm256_add_ps(v[i + 8], v[i]);
        }
        let t6 = [
            _mm256_add_ps(t[4], t[0]),
            _mm256_add_ps(t[5], t[1]),
            _mm256_add_ps(t[6], t[2]),
            _mm256_add_ps(t[7], t[3]),
        ];
        let r = _mm256_add_ps(_mm256_add_ps(t6[0], t6[2]), _mm256_add_ps(t6[1], t6[3]));
        // SAFETY: c + 8 <= d = out.len().
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(c), r) };
    }
}

/// `dot(order, q, rows[j * stride..][..q.len()])` for each j < out.len().
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dots<T: CacheElem>(
    order: super::float::SumOrder,
    q: &[f32],
    rows: &[T],
    stride: usize,
    out: &mut [f32],
) {
    let d = q.len();
    for (j, o) in out.iter_mut().enumerate() {
        // SAFETY: the caller's CPU has the features (this function's
        // contract); the slice is bounds-checked.
        *o = unsafe { dot(order, q, &rows[j * stride..j * stride + d]) };
    }
}
