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
    for isa in [Isa::Avx2, Isa::Avx2Vnni] {
        if isa.supported() {
            v.push(isa);
        }
    }
    v
}

fn close(a: f32, b: f32, scale: f32) -> bool {
    (a - b).abs() <= 1e-5 * scale.max(1.0)
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
                WeightKind::Q4_1 => dot_q4_1_scalar(w.row(0), &a),
                WeightKind::Q8_0 => dot_q8_0_scalar(w.row(0), &a),
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
fn simd_dots_match_scalar_on_random_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for isa in isas() {
        for kind in [WeightKind::Q4_1, WeightKind::Q8_0] {
            for nb in [1usize, 2, 3, 5, 17, 18, 48] {
                for rows in 1..=4 {
                    let w = random_weight(&mut rng, kind, 1, nb * QK);
                    let x = random_acts(&mut rng, rows * nb * QK);
                    let mut a = vec![ActBlock::default(); rows * nb];
                    quantize_acts(kind, &x, &mut a);
                    let mut out = [0f32; 4];
                    dot_group(isa, kind, w.row(0), &a, nb, &mut out);
                    for r in 0..rows {
                        let ar = &a[r * nb..(r + 1) * nb];
                        let want = match kind {
                            WeightKind::Q4_1 => dot_q4_1_scalar(w.row(0), ar),
                            WeightKind::Q8_0 => dot_q8_0_scalar(w.row(0), ar),
                        };
                        let scale: f32 = want.abs() + nb as f32;
                        assert!(
                            close(out[r], want, scale),
                            "{isa:?} {kind:?} nb={nb} rows={rows} r={r}: {} vs {want}",
                            out[r]
                        );
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
                                    WeightKind::Q4_1 => dot_q4_1_scalar(w.row(r), ar),
                                    WeightKind::Q8_0 => dot_q8_0_scalar(w.row(r), ar),
                                };
                                let got = y[j * w.rows() + r];
                                assert!(
                                    close(got, want, want.abs() + nb as f32),
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
fn f16_cache_products_equal_f32_ones_on_the_same_values() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for isa in isas() {
        for n in [1usize, 7, 8, 64, 67] {
            let q: Vec<f32> = (0..n).map(|_| rng.random_range(-3f32..3.0)).collect();
            let k16: Vec<f16> = (0..n)
                .map(|_| f16::from_f32(rng.random_range(-3f32..3.0)))
                .collect();
            let k32: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
            let want = <f32 as CacheElem>::dot(&q, &k32);
            assert_eq!(dot_f16_with(isa, &q, &k16), want, "{isa:?} dot n={n}");

            let a = rng.random_range(0f32..1.0);
            let mut y32 = q.clone();
            <f32 as CacheElem>::axpy(&mut y32, a, &k32);
            let mut y16 = q.clone();
            axpy_f16_with(isa, &mut y16, a, &k16);
            assert_eq!(y16, y32, "{isa:?} axpy n={n}");
        }
    }
}

#[test]
fn f16_head_products_equal_f32_ones_on_the_same_values() {
    // One head's scores over its keys and output from its values, rows
    // strided as in the cache, with the instruction set in use.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (d, stride, n) in [(64usize, 192usize, 37usize), (12, 12, 5), (67, 70, 1)] {
        let len = (n - 1) * stride + d;
        let r16: Vec<f16> = (0..len)
            .map(|_| f16::from_f32(rng.random_range(-3f32..3.0)))
            .collect();
        let r32: Vec<f32> = r16.iter().map(|x| x.to_f32()).collect();
        let q: Vec<f32> = (0..d).map(|_| rng.random_range(-3f32..3.0)).collect();
        let (mut s16, mut s32) = (vec![0f32; n], vec![0f32; n]);
        <f16 as CacheElem>::dots(&q, &r16, stride, &mut s16);
        <f32 as CacheElem>::dots(&q, &r32, stride, &mut s32);
        assert_eq!(s16, s32, "dots d={d}");
        for (j, s) in s32.iter().enumerate() {
            assert_eq!(
                *s,
                <f32 as CacheElem>::dot(&q, &r32[j * stride..j * stride + d])
            );
        }

        let p: Vec<f32> = (0..n).map(|_| rng.random_range(0f32..0.2)).collect();
        let (mut y16, mut y32) = (q.clone(), q.clone());
        <f16 as CacheElem>::weighted_sum(&p, &r16, stride, &mut y16);
        <f32 as CacheElem>::weighted_sum(&p, &r32, stride, &mut y32);
        assert_eq!(y16, y32, "weighted sum d={d}");
    }
}
