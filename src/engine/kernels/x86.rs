//! AVX2 + FMA + F16C dot products: a group of four weight rows against one
//! or two activation rows, so that the four rows' sums run as independent
//! chains (one row alone waits on its FMA's latency every block) and share
//! the activation loads and scale products; each also with AVX-VNNI, which
//! sums byte products in one instruction instead of two (the same
//! integers), and with AVX-512's VNNI on 512-bit registers against up to
//! four activation rows, two (row, token) pairs to a register. Also the
//! activation quantisation, f16 rounding and the float ops (SiLU, softmax,
//! RoPE, attention's products) eight lanes at a time, in ggml's order, and
//! the fused AVX-512 decode attention (`attend_group64`).
//!
//! Every kernel here is `unsafe` for two reasons, both discharged by the
//! safe wrappers in `mod.rs`: the CPU must support the enabled features
//! (checked at run time with `is_x86_feature_detected!` before any call),
//! and the pointers must cover `nb` blocks (checked with slice lengths).

use std::arch::x86_64::*;

use super::elem::CacheElem;
use super::f16::x86_f16::round_f16;
use super::quant::ActBlock;
use super::rows::RowParts;

/// How far ahead of the block in hand the kernels prefetch weights, in
/// bytes. Decode streams the whole model from memory every token; the
/// hardware prefetcher alone kept a thread at about 5.5 GB/s on these
/// machines (it stops at every 4 KiB page); prefetching 2 KiB ahead, at
/// about 12 (measured with `examples/kernel_ab`'s streaming case; 1 KiB
/// gave 8.6, 4 and 8 KiB no more than 2 on that machine). On an AMD EPYC
/// with AVX-512 (`examples/decode_steps`, alternated), 4 KiB took a
/// one-token step 6-25% faster than 2 KiB and four tokens' 5-15%.
const PREFETCH_AHEAD: usize = 4096;

/// Prefetches `PREFETCH_AHEAD` bytes past block `b` of the packed group at
/// `g`, whose blocks take `stride` bytes: every line of the group ahead is
/// asked for once a pass over its blocks is done, and the pass runs on into
/// the next group. A prefetch never faults, even past the weight's end.
#[inline(always)]
fn prefetch_ahead(g: *const u8, b: usize, stride: usize) {
    let ahead = g.wrapping_add(PREFETCH_AHEAD + b * stride) as *const i8;
    for line in 0..stride.div_ceil(64) {
        // SAFETY: a prefetch reads nothing the program sees.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line)) };
    }
}

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

macro_rules! dot4_q4_1 {
    ($name:ident, $features:literal, $pairs:ident) => {
        /// One group of four Q4_1 weight rows (`nb` blocks, packed as
        /// `QWeight` keeps them, at `g`) against R (1 or 2) rows of Q8_1
        /// activations: `out[w][r]`. Each (w, r) pair is summed exactly as
        /// ggml's AVX2 kernel sums one row: the four rows only share the
        /// loads and the scale products, and run as independent chains.
        ///
        /// # Safety
        /// The CPU supports the enabled features; `g` points to a whole
        /// packed group (`nb * 80` bytes) and each `a[r]` to `nb` blocks.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const R: usize>(
            g: *const u8,
            nb: usize,
            a: [*const ActBlock; R],
        ) -> [[f32; R]; 4] {
            const { assert!(R == 1 || R == 2) };
            let mask = _mm256_set1_epi8(0x0f);
            let mut acc = [[_mm256_setzero_ps(); R]; 4];
            // The m * s terms, lane 4r + w, summed block by block.
            let mut summ = _mm256_setzero_ps();
            // d * d_a for the block, lane 4r + w (broadcast from memory).
            let mut dd = [0f32; 8];
            // SAFETY (for every read below): b < nb; the caller guarantees
            // the packed group (quants then scales) and nb blocks per a[r].
            let scales = unsafe { g.add(nb * 64) };
            for b in 0..nb {
                prefetch_ahead(g, b, 80);
                let dm = _mm256_cvtph_ps(unsafe {
                    _mm_loadu_si128(scales.add(b * 16) as *const __m128i)
                });
                let d = _mm256_permute2f128_ps(dm, dm, 0x00);
                let m = _mm256_permute2f128_ps(dm, dm, 0x11);
                let ab: [&ActBlock; R] = std::array::from_fn(|r| unsafe { &*a[r].add(b) });
                let (ad, asum) = if R == 1 {
                    (_mm256_set1_ps(ab[0].d), _mm256_set1_ps(ab[0].s))
                } else {
                    (
                        _mm256_set_m128(_mm_set1_ps(ab[1].d), _mm_set1_ps(ab[0].d)),
                        _mm256_set_m128(_mm_set1_ps(ab[1].s), _mm_set1_ps(ab[0].s)),
                    )
                };
                // SAFETY: `dd` holds 8 floats.
                unsafe { _mm256_storeu_ps(dd.as_mut_ptr(), _mm256_mul_ps(d, ad)) };
                summ = _mm256_add_ps(summ, _mm256_mul_ps(m, asum));
                let av: [__m256i; R] = std::array::from_fn(|r| unsafe {
                    _mm256_loadu_si256(ab[r].qs.as_ptr() as *const __m256i)
                });
                // Through an opaque reference, so that the scales below are
                // broadcast from memory (a load each) rather than shuffled
                // out of a register (a shuffle-port instruction each).
                let dd = std::hint::black_box(&dd);
                // Row by row, to keep the 4R accumulators in registers.
                for w in 0..4 {
                    // Rows 0 and 1 share 32 bytes (row 1 in the high
                    // nibbles), as do rows 2 and 3: elements 0..32 in order.
                    let raw =
                        unsafe { _mm256_loadu_si256(g.add(b * 64 + w / 2 * 32) as *const __m256i) };
                    let q = if w % 2 == 0 {
                        _mm256_and_si256(raw, mask)
                    } else {
                        _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask)
                    };
                    for r in 0..R {
                        // u8 x i8 pair sums: at most 2 x 15 x 128, no i16
                        // saturation.
                        let p = $pairs(q, av[r]);
                        acc[w][r] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(p),
                            _mm256_broadcast_ss(&dd[4 * r + w]),
                            acc[w][r],
                        );
                    }
                }
            }
            let mut s = [0f32; 8];
            // SAFETY: `s` holds 8 floats.
            unsafe { _mm256_storeu_ps(s.as_mut_ptr(), summ) };
            let mut out = [[0f32; R]; 4];
            for w in 0..4 {
                for r in 0..R {
                    out[w][r] = hsum(acc[w][r]) + s[4 * r + w];
                }
            }
            out
        }
    };
}

dot4_q4_1!(dot4_q4_1, "avx2,fma,f16c", pair_sums_avx2);
dot4_q4_1!(dot4_q4_1_vnni, "avx2,fma,f16c,avxvnni", pair_sums_vnni);

macro_rules! dot4_q8_0 {
    ($name:ident, $features:literal, $pairs:ident) => {
        /// One group of four Q8_0 weight rows (`nb` packed blocks at `g`)
        /// against R (1 or 2) rows of Q8_0 activations: `out[w][r]`, each
        /// summed as ggml's AVX2 kernel sums one row.
        ///
        /// # Safety
        /// The CPU supports the enabled features; `g` points to a whole
        /// packed group (`nb * 136` bytes) and each `a[r]` to `nb` blocks.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const R: usize>(
            g: *const u8,
            nb: usize,
            a: [*const ActBlock; R],
        ) -> [[f32; R]; 4] {
            const { assert!(R == 1 || R == 2) };
            let mut acc = [[_mm256_setzero_ps(); R]; 4];
            let mut dd = [0f32; 8];
            // SAFETY (for every read below): as in the Q4_1 kernel.
            let scales = unsafe { g.add(nb * 128) };
            for b in 0..nb {
                prefetch_ahead(g, b, 136);
                let d4 =
                    _mm_cvtph_ps(unsafe { _mm_loadl_epi64(scales.add(b * 8) as *const __m128i) });
                let d = _mm256_set_m128(d4, d4);
                let ab: [&ActBlock; R] = std::array::from_fn(|r| unsafe { &*a[r].add(b) });
                let ad = if R == 1 {
                    _mm256_set1_ps(ab[0].d)
                } else {
                    _mm256_set_m128(_mm_set1_ps(ab[1].d), _mm_set1_ps(ab[0].d))
                };
                // SAFETY: `dd` holds 8 floats.
                unsafe { _mm256_storeu_ps(dd.as_mut_ptr(), _mm256_mul_ps(d, ad)) };
                let av: [__m256i; R] = std::array::from_fn(|r| unsafe {
                    _mm256_loadu_si256(ab[r].qs.as_ptr() as *const __m256i)
                });
                // As in the Q4_1 kernel: scales broadcast from memory, row
                // by row.
                let dd = std::hint::black_box(&dd);
                for w in 0..4 {
                    let wq =
                        unsafe { _mm256_loadu_si256(g.add(b * 128 + w * 32) as *const __m256i) };
                    // i8 x i8 through u8 x i8: |w| times a with w's sign
                    // (pair sums at most 2 x 128 x 127 < 32767).
                    let aw = _mm256_sign_epi8(wq, wq);
                    for r in 0..R {
                        let p = $pairs(aw, _mm256_sign_epi8(av[r], wq));
                        acc[w][r] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(p),
                            _mm256_broadcast_ss(&dd[4 * r + w]),
                            acc[w][r],
                        );
                    }
                }
            }
            let mut out = [[0f32; R]; 4];
            for w in 0..4 {
                for r in 0..R {
                    out[w][r] = hsum(acc[w][r]);
                }
            }
            out
        }
    };
}

dot4_q8_0!(dot4_q8_0, "avx2,fma,f16c", pair_sums_avx2);
dot4_q8_0!(dot4_q8_0_vnni, "avx2,fma,f16c,avxvnni", pair_sums_vnni);

/// The lane index vector that broadcasts lane `a` of a 16-float vector to
/// the lower 256 bits and lane `b` to the upper.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
fn halves(a: i32, b: i32) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_set1_epi32(a), _mm256_set1_epi32(b))
}

/// The tiles' closing sums, all at once: `acc[r][h]` holds two (row,
/// token r) pairs' 8 lanes, one per 256-bit half, and each pair's lanes are
/// summed as `hsum` (ggml's `hsum_float_8`) sums them, in three rounds of
/// shuffles and adds over all the registers instead of one pair at a time.
/// Lane 4j + r of the result is the sum of the pair in register
/// `acc[r][j / 2]`, half j % 2 (tokens past R give zeros).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
fn hsum_pairs<const R: usize>(acc: &[[__m512; 2]; R]) -> __m512 {
    hsum8x16(std::array::from_fn(|k| {
        if k / 2 < R {
            acc[k / 2][k % 2]
        } else {
            _mm512_setzero_ps()
        }
    }))
}

/// Eight registers of two 8-lane vectors each (one a 256-bit half), every
/// vector summed as `hsum` sums it: element 4L + e of the result is the
/// sum of register 2e + L / 2, half L % 2.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
fn hsum8x16(v: [__m512; 8]) -> __m512 {
    // Each vector's 128-bit halves added: registers 2i and 2i + 1's four
    // vectors in the four 128-bit lanes.
    let x: [__m512; 4] = std::array::from_fn(|i| {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(a, b),
            _mm512_shuffle_f32x4::<0xdd>(a, b),
        )
    });
    // (s0 + s2, s1 + s3) in each 128-bit lane, two vectors a lane.
    let y: [__m512; 2] = std::array::from_fn(|i| {
        let (a, b) = (x[2 * i], x[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0x44>(a, b),
            _mm512_shuffle_ps::<0xee>(a, b),
        )
    });
    // The last sum.
    _mm512_add_ps(
        _mm512_shuffle_ps::<0x88>(y[0], y[1]),
        _mm512_shuffle_ps::<0xdd>(y[0], y[1]),
    )
}

/// The Q4_1 tile on 512-bit registers (AVX-512 F/BW/VNNI), for R = 1..=4
/// tokens: each register holds two (row, token) pairs' 8 lanes, one per
/// 256-bit half, so every pair is summed exactly as in `dot4_q4_1`; one
/// instruction does the work of two.
///
/// A register's scales d_w * d_a come from one multiply of the block's row
/// scales, spread over the two halves once a block, by the token's d
/// broadcast from memory: no shuffle per register and no blends a block
/// (1.2-1.3x the kernel that permuted a 16-lane product per register; a
/// permute in place of the multiply measured the same). `sums[b]` holds token r's block-b
/// sum s in lanes 4r..4r + 4 ([`super::tile_sums`]). Token r's results
/// for rows 0..4 go to `out + r * ld` straight from a register (returned
/// through memory, they were read back before the stores had landed: a
/// stall of tens of cycles a call).
///
/// # Safety
/// The CPU supports the enabled features; `g` points to a whole packed
/// group (`nb * 80` bytes), each `a[r]` to `nb` blocks and `sums` to `nb`
/// entries, and four floats are writable at `out + r * ld` for each r < R.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot4_q4_1_avx512<const R: usize>(
    g: *const u8,
    nb: usize,
    a: [*const ActBlock; R],
    sums: *const [f32; 16],
    out: *mut f32,
    ld: usize,
) {
    const { assert!(R >= 1 && R <= 4) };
    let mask = _mm512_set1_epi8(0x0f);
    // acc[r][0] holds rows 0 | 2, acc[r][1] rows 1 | 3 (the low nibbles of
    // the packed 64 bytes are rows 0 and 2, the high ones rows 1 and 3).
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    // The block's scales come as d0..d3, m0..m3: d of rows 0 | 2 and 1 | 3
    // spread over 8 lanes each, and m0..m3 in every four lanes.
    let spread = [halves(0, 2), halves(1, 3)];
    let mins = _mm512_set_epi32(7, 6, 5, 4, 7, 6, 5, 4, 7, 6, 5, 4, 7, 6, 5, 4);
    let mut summ = _mm512_setzero_ps();
    // SAFETY (for every read below): b < nb; the caller guarantees the
    // packed group, nb blocks per a[r] and nb entries of sums.
    let scales = unsafe { g.add(nb * 64) };
    for b in 0..nb {
        prefetch_ahead(g, b, 80);
        let dm = _mm512_castps256_ps512(_mm256_cvtph_ps(unsafe {
            _mm_loadu_si128(scales.add(b * 16) as *const __m128i)
        }));
        let dw = [
            _mm512_permutexvar_ps(spread[0], dm),
            _mm512_permutexvar_ps(spread[1], dm),
        ];
        let s = unsafe { _mm512_loadu_ps(sums.add(b) as *const f32) };
        summ = _mm512_add_ps(summ, _mm512_mul_ps(_mm512_permutexvar_ps(mins, dm), s));
        let z = unsafe { _mm512_loadu_si512(g.add(b * 64) as *const __m512i) };
        let q = [
            _mm512_and_si512(z, mask),
            _mm512_and_si512(_mm512_srli_epi16::<4>(z), mask),
        ];
        for r in 0..R {
            let ab = unsafe { &*a[r].add(b) };
            let av = _mm512_broadcast_i64x4(unsafe {
                _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i)
            });
            let ad = _mm512_set1_ps(ab.d);
            for h in 0..2 {
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[h], av);
                acc[r][h] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[h], ad), acc[r][h]);
            }
        }
    }
    // Row w is in register w % 2, half w / 2: pair slot 2 (w % 2) + w / 2;
    // to lane 4r + w, then the m * s terms.
    let order = _mm512_set_epi32(15, 7, 11, 3, 14, 6, 10, 2, 13, 5, 9, 1, 12, 4, 8, 0);
    let sums = _mm512_add_ps(_mm512_permutexvar_ps(order, hsum_pairs(&acc)), summ);
    // SAFETY: passed on from the caller.
    unsafe { store_rows::<R>(sums, out, ld) }
}

/// Token r's four results (lanes 4r..4r + 4 of `v`) to `out + r * ld`.
///
/// # Safety
/// Four floats are writable at `out + r * ld` for each r < R.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
unsafe fn store_rows<const R: usize>(v: __m512, out: *mut f32, ld: usize) {
    let lanes = [
        _mm512_castps512_ps128(v),
        _mm512_extractf32x4_ps::<1>(v),
        _mm512_extractf32x4_ps::<2>(v),
        _mm512_extractf32x4_ps::<3>(v),
    ];
    for (r, lane) in lanes.into_iter().enumerate().take(R) {
        // SAFETY: the caller guarantees these four floats.
        unsafe { _mm_storeu_ps(out.add(r * ld), lane) };
    }
}

/// The Q8_0 tile on 512-bit registers, as [`dot4_q4_1_avx512`].
///
/// # Safety
/// The CPU supports the enabled features; `g` points to a whole packed
/// group (`nb * 136` bytes), each `a[r]` to `nb` blocks, and four floats
/// are writable at `out + r * ld` for each r < R.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
pub unsafe fn dot4_q8_0_avx512<const R: usize>(
    g: *const u8,
    nb: usize,
    a: [*const ActBlock; R],
    out: *mut f32,
    ld: usize,
) {
    const { assert!(R >= 1 && R <= 4) };
    // acc[r][0] holds rows 0 | 1, acc[r][1] rows 2 | 3 (row after row in
    // the packed 128 bytes); their scales d0 | d1 and d2 | d3 spread over
    // 8 lanes each, as in the Q4_1 kernel.
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let spread = [halves(0, 1), halves(2, 3)];
    // SAFETY (for every read below): as in the Q4_1 kernel.
    let scales = unsafe { g.add(nb * 128) };
    for b in 0..nb {
        prefetch_ahead(g, b, 136);
        let d4 = _mm512_castps128_ps512(_mm_cvtph_ps(unsafe {
            _mm_loadl_epi64(scales.add(b * 8) as *const __m128i)
        }));
        let dw = [
            _mm512_permutexvar_ps(spread[0], d4),
            _mm512_permutexvar_ps(spread[1], d4),
        ];
        let w: [__m512i; 2] = std::array::from_fn(|h| unsafe {
            _mm512_loadu_si512(g.add(b * 128 + h * 64) as *const __m512i)
        });
        // i8 x i8 through u8 x i8: |w| times a negated where w < 0 (where
        // w = 0 the product is 0 either way), the AVX2 kernel's integers.
        let aw = [_mm512_abs_epi8(w[0]), _mm512_abs_epi8(w[1])];
        let negative = [_mm512_movepi8_mask(w[0]), _mm512_movepi8_mask(w[1])];
        for r in 0..R {
            let ab = unsafe { &*a[r].add(b) };
            let av = _mm512_broadcast_i64x4(unsafe {
                _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i)
            });
            let ad = _mm512_set1_ps(ab.d);
            for h in 0..2 {
                let sa = _mm512_mask_sub_epi8(av, negative[h], _mm512_setzero_si512(), av);
                let p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aw[h], sa);
                acc[r][h] =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[h], ad), acc[r][h]);
            }
        }
    }
    // Row w is in register w / 2, half w % 2: pair slot w; to lane 4r + w.
    let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    // SAFETY: passed on from the caller.
    unsafe { store_rows::<R>(_mm512_permutexvar_ps(order, hsum_pairs(&acc)), out, ld) }
}

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

/// `quant::quantize_block` for each block of `x`, eight lanes at a time as
/// ggml's AVX2 `quantize_row_q8_1` (the same values: the maximum of |x| in
/// any order, the same multiply and round-to-nearest-even; the quants are
/// within +-127, so packing with saturation changes none).
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_blocks(x: &[f32], with_sum: bool, out: &mut [ActBlock]) {
    assert_eq!(x.len(), out.len() * 32);
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (block, chunk) in out.iter_mut().zip(x.chunks_exact(32)) {
        // SAFETY: `chunk` holds 32 floats.
        let v: [__m256; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * i)) });
        let abs = v.map(|v| _mm256_andnot_ps(sign, v));
        let m8 = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(m8), _mm256_castps256_ps128(m8));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let d = amax / 127.0;
        let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
        let q = v.map(|v| {
            _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(_mm256_mul_ps(v, id)))
        });
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        // SAFETY: `qs` holds 32 bytes.
        unsafe {
            _mm256_storeu_si256(
                block.qs.as_mut_ptr() as *mut __m256i,
                _mm256_permutevar8x32_epi32(packed, order),
            )
        };
        block.s = if with_sum {
            // The quants' sum, exact in i32 whatever the order.
            let s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(s8),
                _mm256_extracti128_si256::<1>(s8),
            );
            let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
            f16_round(d * sum as f32)
        } else {
            0.0
        };
        block.d = f16_round(d);
    }
}

/// `x` rounded to the nearest f16 (ties to even) and back: F16C's
/// conversion, the IEEE one `half::f16::from_f32` makes (that is a call,
/// with a run-time feature check, per value).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16_round(x: f32) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(
        _mm_set_ss(x),
    )))
}

/// `float::rotate_pairs_scalar` with the FMA instruction inline.
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn rotate_pairs(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    super::float::rotate_pairs_scalar(x, cos, sin)
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
    rows: RowParts<'_, T>,
    out: &mut [f32],
) {
    let d = out.len();
    if !d.is_multiple_of(8) {
        return super::float::weighted_rows_scalar(order, p, rows, out);
    }
    let lanes = order.lanes();
    // Lanes no key reaches stay zero: they are left out of `acc` and read
    // as zeros below (adding +0 changes no sum: an FMA chain started from
    // +0 never yields -0), which spares short rows most of the work.
    let used = lanes.min(p.len());
    let mut acc = vec![0f32; used * d];
    let pacc = acc.as_mut_ptr();
    for (j, &pj) in p.iter().enumerate() {
        let w = _mm256_set1_ps(pj);
        let a = (j % lanes) * d;
        let pr = rows.row(j, d).as_ptr();
        for c in (0..d).step_by(8) {
            // SAFETY: c + 8 <= d, the row's length, and j % lanes < used
            // (j < p.len()), so a + c + 8 <= used * d.
            unsafe {
                let v = T::load8(pr.add(c));
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

/// `dot(order, q, row j)` for each j < out.len().
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dots<T: CacheElem>(
    order: super::float::SumOrder,
    q: &[f32],
    rows: RowParts<'_, T>,
    out: &mut [f32],
) {
    let d = q.len();
    for (j, o) in out.iter_mut().enumerate() {
        // SAFETY: the caller's CPU has the features (this function's
        // contract); the slice is bounds-checked.
        *o = unsafe { dot(order, q, rows.row(j, d)) };
    }
}

/// Key rows the fused attention kernel prefetches ahead of the one in hand
/// (about a DRAM latency's worth of its work).
const KEYS_AHEAD: usize = 32;

/// Prefetches the 64 elements of a cache row at `p` (one or two lines); a
/// prefetch never faults, even past the cache's end.
#[inline(always)]
fn prefetch_row<T>(p: *const T) {
    let bytes = 64 * std::mem::size_of::<T>();
    for line in (0..bytes).step_by(64) {
        // SAFETY: a prefetch reads nothing the program sees.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const i8).wrapping_add(line)) };
    }
}

/// Sixteen 16-lane vectors reduced each in `_mm512_reduce_add_ps`'s order
/// (see [`reduce16`]), all at once: lane k of the result is v[k]'s sum.
/// Four rounds of shuffles and adds, each adding the same pairs of lanes
/// as the one-vector reduction does, so every sum is the same bits.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
fn reduce16x16(v: &[__m512; 16]) -> __m512 {
    // 128-bit lanes of a pair of vectors a, b: [a0+a2, a1+a3 | b0+b2, b1+b3]
    // (each key's 8-lane partial sums, keys 2k and 2k + 1 a register).
    let w: [__m512; 8] = std::array::from_fn(|k| {
        let (a, b) = (v[2 * k], v[2 * k + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(a, b),
            _mm512_shuffle_f32x4::<0xee>(a, b),
        )
    });
    // Then as eight-lane sums: element 4L + e is key 4e + L's.
    let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
    _mm512_permutexvar_ps(order, hsum8x16(w))
}

/// Rows of a cache in two parts (`super::RowParts`): the first part's
/// start, how many rows it holds, the second part's start.
pub type RowStarts<T> = (*const T, usize, *const T);

/// Attention of one query per head for the G heads that share a key/value
/// head, head size 64, in a single-token step: for each head exactly what
/// `probs_row` (q.k summed in `SumOrder::Lanes64`, scaled, softmax), the
/// f16 rounding of the probabilities (when `f16`) and `weighted_rows`
/// (`Lanes64`) compute for it alone, but each key and value row is loaded
/// and converted once for all G heads, the products run 16 lanes wide, the
/// q.k sums of 16 keys are reduced together, and the value sums stay in
/// registers (a key's lane chain at a time) instead of being read and
/// written back every key.
///
/// q: G rows of 64; row j of `keys` / `values` at j * stride of their two
/// parts (64 elements each), j < visible; `probs`: G x visible (out: each
/// head's probabilities as used); `out`: G x 64.
///
/// # Safety
/// The CPU supports the enabled features (AVX-512 F/BW/VNNI, AVX2, FMA,
/// F16C), and 64 elements are readable at each of the `visible` rows of
/// `keys` and `values`. The slices' lengths are checked.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn attend_group64<T: CacheElem, const G: usize>(
    q: &[f32],
    keys: RowStarts<T>,
    values: RowStarts<T>,
    stride: usize,
    visible: usize,
    f16: bool,
    probs: &mut [f32],
    out: &mut [f32],
) {
    const D: usize = 64;
    assert!(visible > 0 && q.len() == G * D && out.len() == G * D);
    assert!(probs.len() == G * visible);
    let pq = q.as_ptr();
    // Row j < visible: in the first part or the second (see `RowStarts`).
    let at = |(first, n, second): RowStarts<T>, j: usize| {
        if j < n {
            first.wrapping_add(j * stride)
        } else {
            second.wrapping_add((j - n) * stride)
        }
    };
    let (key, value) = (|j| at(keys, j), |j| at(values, j));
    // SAFETY (every load below): q holds G x 64 floats, and the caller
    // guarantees 64 elements at each row j < visible.
    let qv: [[__m512; 4]; G] = std::array::from_fn(|g| {
        std::array::from_fn(|i| unsafe { _mm512_loadu_ps(pq.add(g * D + 16 * i)) })
    });
    let scale = _mm512_set1_ps(1.0 / (D as f32).sqrt());
    // q.k, 16 keys at a time: ggml's four accumulators are the four 16-lane
    // products (one pass of 64), combined (0 + 2) + (1 + 3).
    let mut t = [[_mm512_setzero_ps(); 16]; G];
    for c0 in (0..visible).step_by(16) {
        let n = (visible - c0).min(16);
        for k in 0..16 {
            if k >= n {
                t.iter_mut().for_each(|t| t[k] = _mm512_setzero_ps());
                continue;
            }
            let j = c0 + k;
            let row = key(j);
            // The cache is in no cache level after a pass over the
            // weights: ask for the key rows some way ahead, and for the
            // value rows (walked in lane order below) as the keys go by.
            if j + KEYS_AHEAD < visible {
                prefetch_row(key(j + KEYS_AHEAD));
            }
            prefetch_row(value(j));
            let kv: [__m512; 4] = std::array::from_fn(|i| unsafe { T::load16(row.add(16 * i)) });
            for g in 0..G {
                let a: [__m512; 4] =
                    std::array::from_fn(|i| _mm512_fmadd_ps(qv[g][i], kv[i], _mm512_setzero_ps()));
                t[g][k] = _mm512_add_ps(_mm512_add_ps(a[0], a[2]), _mm512_add_ps(a[1], a[3]));
            }
        }
        for g in 0..G {
            let s = _mm512_mul_ps(reduce16x16(&t[g]), scale);
            let mut lanes = [0f32; 16];
            // SAFETY: `lanes` holds 16 floats.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), s) };
            probs[g * visible + c0..][..n].copy_from_slice(&lanes[..n]);
        }
    }
    for p in probs.chunks_exact_mut(visible) {
        // SAFETY: the CPU has AVX2, FMA and F16C (this function's contract).
        unsafe {
            softmax(p);
            if f16 {
                round_f16(p);
            }
        }
    }
    // Probabilities x values: key j goes to lane j % 64, each lane an FMA
    // chain over its keys in order (computed whole, in registers; zero
    // where no key reaches it), and the 64 lanes are reduced as
    // `weighted_rows` reduces them, each sum formed as soon as its lanes
    // are (keeping all 64 lanes' sums for every head first meant 48 KB of
    // stores and loads a group).
    type Heads<const G: usize> = [[__m512; 4]; G];
    // (A macro: as a closure it was left a call, its registers returned
    // through memory, a tenth of the kernel's time.)
    macro_rules! lane {
        ($l:expr) => {{
            let mut acc: Heads<G> = [[_mm512_setzero_ps(); 4]; G];
            for j in ($l..visible).step_by(64) {
                let row = value(j);
                let vv: [__m512; 4] =
                    std::array::from_fn(|i| unsafe { T::load16(row.add(16 * i)) });
                for (g, acc) in acc.iter_mut().enumerate() {
                    let p = _mm512_set1_ps(probs[g * visible + j]);
                    for (a, &v) in acc.iter_mut().zip(&vv) {
                        *a = _mm512_fmadd_ps(v, p, *a);
                    }
                }
            }
            acc
        }};
    }
    let add = |a: Heads<G>, b: Heads<G>| -> Heads<G> {
        std::array::from_fn(|g| std::array::from_fn(|i| _mm512_add_ps(a[g][i], b[g][i])))
    };
    // The tree of `weighted_rows`' Lanes64 reduction: v[x] = (lane x +
    // lane 32 + x) + (lane 16 + x + lane 48 + x), t[x] = v[x + 8] + v[x],
    // t6[a] = t[a + 4] + t[a], then (t6[0] + t6[2]) + (t6[1] + t6[3]).
    let v = |x: usize| {
        add(
            add(lane!(x), lane!(32 + x)),
            add(lane!(16 + x), lane!(48 + x)),
        )
    };
    let t = |x: usize| add(v(x + 8), v(x));
    let t6: [Heads<G>; 4] = std::array::from_fn(|a| add(t(a + 4), t(a)));
    let sums = add(add(t6[0], t6[2]), add(t6[1], t6[3]));
    for (out, r) in out.chunks_exact_mut(D).zip(sums) {
        for (i, r) in r.into_iter().enumerate() {
            // SAFETY: `out` (this head's) holds 64 floats.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(16 * i), r) };
        }
    }
}
