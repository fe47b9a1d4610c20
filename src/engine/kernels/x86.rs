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
