//! Every kernel against the plain scalar reference on random blocks,
//! including odd block counts, odd numbers of activation rows and rows that
//! do not divide into the pool's chunks; the scalar path is tested on every
//! machine, the SIMD path wherever the CPU has it.

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

fn random_weight(rng: &mut ChaCha8Rng, kind: WeightKind, rows: usize, cols: usize) -> QWeight {
    let nb = rows * cols / QK;
    let mut data = Vec::with_capacity(nb * kind.block_bytes());
    for _ in 0..nb {
        let d = f16::from_f32(rng.random_range(-0.05f32..0.05));
        data.extend_from_slice(&d.to_bits().to_le_bytes());
        match kind {
            WeightKind::Q4_1 => {
                let m = f16::from_f32(rng.random_range(-0.4f32..0.1));
                data.extend_from_slice(&m.to_bits().to_le_bytes());
                for _ in 0..QK / 2 {
                    data.push(rng.random());
                }
            }
            WeightKind::Q8_0 => {
                for _ in 0..QK {
                    // Full i8 range, -128 included (the sign trick's edge).
                    data.push(rng.random::<u8>());
                }
            }
        }
    }
    QWeight::new(kind, rows, cols, data).unwrap()
}

fn random_acts(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            // Mostly small, a few large outliers and a zero block's worth.
            if i % 97 == 3 {
                rng.random_range(-30f32..30.0)
            } else if (64..96).contains(&(i % 512)) {
                0.0
            } else {
                rng.random_range(-2f32..2.0)
            }
        })
        .collect()
}

fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    for isa in [Isa::Avx2, Isa::Avx2Vnni, Isa::Avx512Vnni] {
        if isa.supported() {
            v.push(isa);
        }
    }
    v
}

#[test]
fn quantize_matches_ggml_rounding() {
    let mut x = [0f32; QK];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (i as f32 - 10.0) * 0.25;
    }
    let mut out = [ActBlock::default()];
    quantize_acts(WeightKind::Q4_1, &x, &mut out);
    let amax = 21.0 * 0.25;
    assert_eq!(out[0].d, f16::from_f32(amax / 127.0).to_f32());
    assert_eq!(out[0].qs[31], 127);
    assert_eq!(out[0].qs[10], 0);
    // x = -2.5 * 127 / 5.25 = -60.476.. -> -60
    assert_eq!(out[0].qs[0], -60);
    let sum: i32 = out[0].qs.iter().map(|&q| q as i32).sum();
    assert_eq!(out[0].s, f16::from_f32(amax / 127.0 * sum as f32).to_f32());
    // Ties go to even, as _mm256_round_ps(_MM_ROUND_NEAREST) does.
    let mut t = [0f32; QK];
    t[0] = 127.0;
    t[1] = 2.5;
    t[2] = 3.5;
    t[3] = -2.5;
    quantize_acts(WeightKind::Q8_0, &t, &mut out);
    assert_eq!(&out[0].qs[..4], &[127, 2, 4, -2]);
    assert_eq!(out[0].s, 0.0);
    // An all-zero block quantises to zeros, not NaN.
    quantize_acts(WeightKind::Q4_1, &[0f32; QK], &mut out);
    assert_eq!(out[0], ActBlock::default());
}

#[test]
fn scalar_dots_match_dequantised_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
        for nb in [1usize, 2, 3, 18, 48] {
            let w = random_weight(&mut rng, kind, 1, nb * QK);
            let x = random_acts(&mut rng, nb * QK);
            let mut a = vec![ActBlock::default(); nb];
            quantize_acts(kind, &x, &mut a);
            let mut wf = vec![0f32; nb * QK];
            w.dequantize_row(0, &mut wf);
            let want: f64 = (0..nb * QK)
                .map(|i| wf[i] as f64 * (a[i / QK].qs[i % QK] as f64 * a[i / QK].d as f64))
                .sum();
            let got = match kind {
                WeightKind::Q4_1 => dot_q4_1_scalar(&w.row(0), &a),
                WeightKind::Q8_0 => dot_q8_0_scalar(&w.row(0), &a),
            };
            // Q8_1's sum term is rounded to f16, so allow its rounding.
            let tol = 1e-3 * (want.abs() + nb as f64);
            assert!(
                (got as f64 - want).abs() < tol,
                "{kind:?} nb={nb}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn packed_rows_give_back_the_file_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
        for rows in [1usize, 3, 4, 5, 9] {
            let nb = 3;
            let bb = kind.block_bytes();
            let data: Vec<u8> = (0..rows * nb * bb).map(|_| rng.random()).collect();
            let w = QWeight::new(kind, rows, nb * QK, data.clone()).unwrap();
            for r in 0..rows {
                assert_eq!(
                    w.row(r),
                    data[r * nb * bb..(r + 1) * nb * bb],
                    "{kind:?} row {r}"
                );
            }
        }
    }
}

#[test]
fn simd_tiles_match_scalar_on_random_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for isa in isas() {
        for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
            for nb in [1usize, 2, 3, 5, 17, 18, 48] {
                for n in 1..=TILE_TOKENS {
                    let w = random_weight(&mut rng, kind, GROUP, nb * QK);
                    let x = random_acts(&mut rng, n * nb * QK);
                    let mut a = vec![ActBlock::default(); n * nb];
                    quantize_acts(kind, &x, &mut a);
                    let mut out = [[0f32; TILE_TOKENS]; GROUP];
                    dot_tile(isa, kind, w.group(0), &a, &tile_sums(&a, nb), nb, &mut out);
                    for (r, out) in out.iter().enumerate() {
                        for (j, &got) in out[..n].iter().enumerate() {
                            let aj = &a[j * nb..(j + 1) * nb];
                            let want = match kind {
                                WeightKind::Q4_1 => dot_q4_1_scalar(&w.row(r), aj),
                                WeightKind::Q8_0 => dot_q8_0_scalar(&w.row(r), aj),
                            };
                            // Bit for bit: the scalar path sums in the AVX2
                            // kernel's (and ggml's) order.
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{isa:?} {kind:?} nb={nb} n={n} row {r} act {j}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_matches_scalar_rows_for_odd_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for threads in [1usize, 2, 3] {
        let pool = Pool::new(threads);
        for isa in isas() {
            for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
                for &(rows, nb, m) in &[
                    (1usize, 1usize, 1usize),
                    (7, 3, 1),
                    (33, 18, 5),
                    (130, 2, 9),
                    (1000, 18, 2),
                ] {
                    let cols = nb * QK;
                    let w1 = random_weight(&mut rng, kind, rows, cols);
                    let w2 = random_weight(&mut rng, kind, rows / 2 + 1, cols);
                    let x = random_acts(&mut rng, m * cols);
                    let mut y1 = vec![f32::NAN; m * w1.rows()];
                    let mut y2 = vec![f32::NAN; m * w2.rows()];
                    matmul_with(&pool, isa, &[&w1, &w2], &x, m, &mut [&mut y1, &mut y2]);
                    let mut a = vec![ActBlock::default(); m * nb];
                    quantize_acts(kind, &x, &mut a);
                    for (w, y) in [(&w1, &y1), (&w2, &y2)] {
                        for j in 0..m {
                            for r in 0..w.rows() {
                                let ar = &a[j * nb..(j + 1) * nb];
                                let want = match kind {
                                    WeightKind::Q4_1 => dot_q4_1_scalar(&w.row(r), ar),
                                    WeightKind::Q8_0 => dot_q8_0_scalar(&w.row(r), ar),
                                };
                                let got = y[j * w.rows() + r];
                                assert_eq!(
                                    got.to_bits(),
                                    want.to_bits(),
                                    "{isa:?} {kind:?} {rows}x{cols} m={m} t={threads} ({j},{r}): {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn pool_runs_every_task_once_and_propagates_panics() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let pool = Pool::new(3);
    for n in [1usize, 2, 5, 100] {
        let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        for _ in 0..50 {
            pool.run(n, &|t| {
                hits[t].fetch_add(1, Ordering::Relaxed);
            });
        }
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(16, &|t| {
            if t == 7 {
                panic!("task 7");
            }
        })
    }));
    assert!(r.is_err());
    // Still usable afterwards.
    let count = AtomicUsize::new(0);
    pool.run(10, &|_| {
        count.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(count.load(Ordering::Relaxed), 10);
}

#[test]
fn dequantize_row_q4_1_layout() {
    // d = 1, m = -8: element j is the low nibble of byte j, element j + 16
    // the high nibble.
    let mut data = Vec::new();
    data.extend_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
    data.extend_from_slice(&f16::from_f32(-8.0).to_bits().to_le_bytes());
    data.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let w = QWeight::new(WeightKind::Q4_1, 1, QK, data).unwrap();
    let mut out = [0f32; QK];
    w.dequantize_row(0, &mut out);
    assert_eq!(out[0], -8.0);
    assert_eq!(out[15], 7.0);
    assert_eq!(out[16], 7.0);
    assert_eq!(out[31], -8.0);
}

#[test]
fn matmul_into_new_outputs_equals_matmul() {
    // Fused weights with padding rows (37, 6), token counts around the tile
    // of four: every element written without the zeroing.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
        let nb = 5;
        let ws: Vec<QWeight> = [37, 6, 64]
            .iter()
            .map(|&rows| random_weight(&mut rng, kind, rows, nb * QK))
            .collect();
        let refs: Vec<&QWeight> = ws.iter().collect();
        for m in [0, 1, 3, 4, 5, 9] {
            let x = random_acts(&mut rng, m * nb * QK);
            let mut want: Vec<Vec<f32>> = ws.iter().map(|w| vec![f32::NAN; m * w.rows]).collect();
            let mut slices: Vec<&mut [f32]> = want.iter_mut().map(|o| o.as_mut_slice()).collect();
            matmul(&refs, &x, m, &mut slices);
            let got = matmul_new(&refs, &x, m);
            let bits = |v: &[Vec<f32>]| -> Vec<Vec<u32>> {
                v.iter()
                    .map(|o| o.iter().map(|x| x.to_bits()).collect())
                    .collect()
            };
            assert_eq!(bits(&got), bits(&want), "{kind:?} m={m}");
            assert!(got.iter().flatten().all(|x| x.is_finite()));
        }
    }
}

#[test]
fn matmul_on_cached_activations_equals_matmul_bit_for_bit() {
    // Attention rows are recomputed from the 8-bit inputs a capturing cache
    // keeps: the queries must come out exactly as the forward pass made them,
    // whatever the number of rows in the call.
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
        let (rows, nb, m) = (37, 18, 7);
        let w = random_weight(&mut rng, kind, rows, nb * QK);
        let x = random_acts(&mut rng, m * nb * QK);
        let mut want = vec![0f32; m * rows];
        matmul(&[&w], &x, m, &mut [&mut want]);
        let mut a = vec![ActBlock::default(); m * nb];
        quantize_acts(kind, &x, &mut a);
        for (start, end) in [(0, m), (3, 4), (2, 7)] {
            let n = end - start;
            let mut got = vec![0f32; n * rows];
            matmul_quantized(&[&w], &a[start * nb..end * nb], n, &mut [&mut got]);
            assert_eq!(
                got,
                want[start * rows..end * rows],
                "{kind:?} rows {start}..{end}"
            );
        }
    }
}

#[test]
fn attention_products_read_f16_rows_as_their_f32_values() {
    // The cache holds f16 rows in quantised mode: scores and weighted values
    // over them must be the f32 results on the same values, bit for bit, in
    // both orders and on every instruction set.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (d, stride, n) in [(64usize, 192usize, 37usize), (16, 16, 5), (64, 64, 300)] {
        let len = (n - 1) * stride + d;
        let r16: Vec<f16> = (0..len)
            .map(|_| f16::from_f32(rng.random_range(-3f32..3.0)))
            .collect();
        let r32: Vec<f32> = r16.iter().map(|x| x.to_f32()).collect();
        let q = random_floats(&mut rng, d, 3.0);
        let p = random_floats(&mut rng, n, 0.2);
        for order in [SumOrder::Lanes16, SumOrder::Lanes64] {
            let (mut s16, mut s32) = (vec![0f32; n], vec![0f32; n]);
            dots_scalar(order, &q, RowParts::contiguous(&r16, stride), &mut s16);
            dots_scalar(order, &q, RowParts::contiguous(&r32, stride), &mut s32);
            assert_eq!(s16, s32, "{order:?} scores d={d}");
            let (mut y16, mut y32) = (vec![0f32; d], vec![0f32; d]);
            weighted_rows_scalar(order, &p, RowParts::contiguous(&r16, stride), &mut y16);
            weighted_rows_scalar(order, &p, RowParts::contiguous(&r32, stride), &mut y32);
            assert_eq!(y16, y32, "{order:?} values d={d}");
            if Isa::Avx2.supported() {
                let (mut s2, mut y2) = (vec![0f32; n], vec![0f32; d]);
                // SAFETY: AVX2, FMA and F16C are present (checked above).
                unsafe {
                    super::x86::dots(order, &q, RowParts::contiguous(&r16, stride), &mut s2);
                    super::x86::weighted_rows(
                        order,
                        &p,
                        RowParts::contiguous(&r16, stride),
                        &mut y2,
                    );
                }
                assert_eq!(s2, s32, "{order:?} AVX2 scores d={d}");
                assert_eq!(y2, y32, "{order:?} AVX2 values d={d}");
            }
        }
    }
}

#[test]
fn attention_products_over_rows_in_two_parts_equal_one() {
    // A forked cache holds its rows as a shared prefix and its own: split
    // anywhere, scores and weighted values are the same bits (the value
    // sums' lanes run on across the split).
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let (d, stride, n) = (64usize, 192usize, 150usize);
    let rows: Vec<f16> = (0..n * stride)
        .map(|_| f16::from_f32(rng.random_range(-3f32..3.0)))
        .collect();
    let q = random_floats(&mut rng, d, 3.0);
    let p = random_floats(&mut rng, n, 0.2);
    let whole = RowParts::contiguous(&rows, stride).columns(64);
    for order in [SumOrder::Lanes16, SumOrder::Lanes64] {
        let (mut s, mut y) = (vec![0f32; n], vec![0f32; d]);
        dots(order, &q, whole, &mut s);
        weighted_rows(order, &p, whole, &mut y);
        for split in [0usize, 1, 15, 16, 63, 64, 65, 149, 150] {
            let (a, b) = rows.split_at(split * stride);
            let parts = RowParts::new(a, b, stride).columns(64);
            let (mut s2, mut y2) = (vec![0f32; n], vec![0f32; d]);
            dots(order, &q, parts, &mut s2);
            weighted_rows(order, &p, parts, &mut y2);
            assert_eq!(s, s2, "{order:?} scores, split at {split}");
            assert_eq!(y, y2, "{order:?} values, split at {split}");
            let (mut s3, mut y3) = (vec![0f32; n], vec![0f32; d]);
            dots_scalar(order, &q, parts, &mut s3);
            weighted_rows_scalar(order, &p, parts, &mut y3);
            assert_eq!(s, s3, "{order:?} scalar scores, split at {split}");
            assert_eq!(y, y3, "{order:?} scalar values, split at {split}");
        }
    }
}

fn random_floats(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

#[test]
fn ggml_expf_is_close_to_libm_and_handles_the_ends() {
    assert_eq!(expf(0.0), 1.0);
    assert_eq!(expf(-200.0), 0.0);
    assert_eq!(expf(200.0), f32::INFINITY);
    assert_eq!(expf(f32::NEG_INFINITY), 0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..20_000 {
        let x = rng.random_range(-103f32..88.0);
        let (a, b) = (expf(x), (x as f64).exp());
        // ggml quotes 1.5 ulp; subnormal results lose relative precision.
        if b > 1e-37 {
            assert!(
                ((a as f64 - b) / b).abs() < 2.5e-7,
                "exp({x}) = {a}, want {b}"
            );
        } else {
            assert!((a as f64 - b).abs() < 1e-44, "exp({x}) = {a}, want {b}");
        }
    }
    // Values ggml's AVX-512 build gives (checked against llama.cpp's own
    // SiLU outputs, see scripts/reference/FIDELITY.md): the polynomial, not
    // libm, so these differ from f32::exp in the last bit.
    let mut differs = 0;
    for i in 0..1000 {
        let x = -10.0 + i as f32 * 0.02;
        differs += (expf(x) != x.exp()) as usize;
    }
    assert!(differs > 0, "ggml's exp is not libm's");
}

/// The float kernels: SIMD bit-identical to the scalar references, on
/// lengths with and without tails, and the references close to the plain
/// maths.
#[test]
fn float_kernels_match_scalar_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for &n in &[1usize, 5, 16, 17, 40, 64, 96, 130, 257, 1536] {
        let mut g = random_floats(&mut rng, n, 12.0);
        g[0] = -95.0; // exp(95) overflows: the far path
        let u = random_floats(&mut rng, n, 3.0);
        let want: Vec<f64> = g
            .iter()
            .zip(&u)
            .map(|(&g, &u)| g as f64 / (1.0 + (-g as f64).exp()) * u as f64)
            .collect();
        let mut s = g.clone();
        silu_mul_scalar(&mut s, &u);
        for (a, b) in s.iter().zip(&want) {
            assert!(
                (*a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0),
                "silu {a} vs {b}"
            );
        }
        let mut x = random_floats(&mut rng, n, 30.0);
        x[n / 2] = -200.0; // underflows to 0
        let mut sm = x.clone();
        softmax_scalar(&mut sm);
        let max = x.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let z: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
        for (a, &v) in sm.iter().zip(&x) {
            let b = (v as f64 - max).exp() / z;
            assert!((*a as f64 - b).abs() < 1e-6, "softmax {a} vs {b}");
        }
        let a = random_floats(&mut rng, n, 2.0);
        let b = random_floats(&mut rng, n, 2.0);
        let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let d = 8;
        let rows = random_floats(&mut rng, n * 24, 2.0);
        let mut wr_want = vec![0f64; d];
        for (c, w) in wr_want.iter_mut().enumerate() {
            *w = (0..n)
                .map(|j| a[j] as f64 * rows[j * 24 + 3 + c] as f64)
                .sum();
        }
        for order in [SumOrder::Lanes16, SumOrder::Lanes64] {
            let r = dot_scalar(order, &a, &b);
            assert!((r as f64 - exact).abs() < 1e-5 * n as f64, "{order:?} dot");
            let mut wr = vec![0f32; d];
            weighted_rows_scalar(
                order,
                &a,
                RowParts::contiguous(&rows, 24).columns(3),
                &mut wr,
            );
            for (x, y) in wr.iter().zip(&wr_want) {
                assert!((*x as f64 - y).abs() < 1e-5 * n as f64, "{order:?} rows");
            }
            if Isa::Avx2.supported() {
                // SAFETY: AVX2, FMA and F16C are present (checked above).
                let (r2, wr2, wr16) = unsafe {
                    let mut wr2 = vec![0f32; d];
                    super::x86::weighted_rows(
                        order,
                        &a,
                        RowParts::contiguous(&rows, 24).columns(3),
                        &mut wr2,
                    );
                    let mut wr16 = vec![0f32; 16];
                    super::x86::weighted_rows(
                        order,
                        &a,
                        RowParts::contiguous(&rows, 24).columns(5),
                        &mut wr16,
                    );
                    (super::x86::dot(order, &a, &b), wr2, wr16)
                };
                assert_eq!(r.to_bits(), r2.to_bits(), "{order:?} dot, n = {n}");
                assert_eq!(wr, wr2, "{order:?} weighted rows, n = {n}");
                let mut wr16s = vec![0f32; 16];
                weighted_rows_scalar(
                    order,
                    &a,
                    RowParts::contiguous(&rows, 24).columns(5),
                    &mut wr16s,
                );
                assert_eq!(wr16s, wr16);
            }
        }
        if Isa::Avx2.supported() {
            let (mut s2, mut sm2) = (g.clone(), x.clone());
            // SAFETY: AVX2, FMA and F16C are present (checked above).
            unsafe {
                super::x86::silu_mul(&mut s2, &u);
                super::x86::softmax(&mut sm2);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&s), bits(&s2), "silu, n = {n}");
            assert_eq!(bits(&sm), bits(&sm2), "softmax, n = {n}");
        }
    }
}

#[test]
fn f16_rounding_matches_half_for_every_kind_of_value() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut xs: Vec<f32> = (0..1000)
        .map(|i| match i % 5 {
            0 => rng.random_range(-1f32..1.0),
            1 => rng.random_range(-70000f32..70000.0),
            2 => rng.random_range(-1e-6f32..1e-6),
            3 => f32::from_bits(rng.random()),
            _ => rng.random_range(-1e-8f32..1e-8),
        })
        .collect();
    xs.extend([
        0.0,
        -0.0,
        65504.0,
        65520.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        5.96e-8,
    ]);
    let want: Vec<f32> = xs.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    let mut got = xs.clone();
    round_f16(&mut got);
    for ((x, g), w) in xs.iter().zip(&got).zip(&want) {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{x}: {g} vs {w}"
        );
    }
    // The cache's conversion: the same f16 bits as `half`'s.
    let mut halves = vec![f16::ZERO; xs.len()];
    to_f16(&xs, &mut halves);
    for (x, h) in xs.iter().zip(&halves) {
        let w = f16::from_f32(*x);
        assert!(
            h.to_bits() == w.to_bits() || (h.is_nan() && w.is_nan()),
            "{x}: {h} vs {w}"
        );
    }
}

#[test]
fn simd_quantisation_matches_scalar() {
    if !Isa::Avx2.supported() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    for blocks in [1usize, 3, 18, 48] {
        let x = random_acts(&mut rng, blocks * QK);
        for with_sum in [false, true] {
            let mut want = vec![ActBlock::default(); blocks];
            quant::quantize_blocks(&x, with_sum, &mut want);
            let mut got = vec![ActBlock::default(); blocks];
            // SAFETY: AVX2, FMA and F16C checked above.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                x86::quantize_blocks(&x, with_sum, &mut got)
            };
            assert_eq!(got, want, "{blocks} blocks, sums {with_sum}");
        }
    }
}
