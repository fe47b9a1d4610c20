//! A/B timing of the matrix kernels per instruction set, one thread, on
//! random Q4_1 / Q8_0 weights of SmolLM2's shapes (min over repetitions, so
//! that a busy machine shows less), then the streaming case of decode: one
//! token against 100 MB of weights (more than a cache holds, as the model's
//! 96 MB a token), in GB/s on one and two threads:
//! `cargo run --release --example kernel_ab`.

use std::time::{Duration, Instant};

use lmscope::engine::kernels::{Isa, Pool, QK, QWeight, WeightKind, matmul_with};

fn weight(kind: WeightKind, rows: usize, cols: usize, seed: u64) -> QWeight {
    let nb = rows * cols / QK;
    let mut state = seed;
    let mut byte = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as u8
    };
    let mut data = Vec::with_capacity(nb * kind.block_bytes());
    for _ in 0..nb {
        // A small f16 scale (and min), then the quants.
        data.extend_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
        if kind == WeightKind::Q4_1 {
            data.extend_from_slice(&half::f16::from_f32(-0.1).to_bits().to_le_bytes());
        }
        let n = if kind == WeightKind::Q4_1 { QK / 2 } else { QK };
        data.extend((0..n).map(|_| byte()));
    }
    QWeight::new(kind, rows, cols, data).unwrap()
}

fn main() {
    let pool = Pool::new(1);
    let isas: Vec<Isa> = [Isa::Scalar, Isa::Avx2, Isa::Avx2Vnni, Isa::Avx512Vnni]
        .into_iter()
        .filter(|i| i.supported() && *i != Isa::Scalar)
        .collect();
    for (kind, rows, cols) in [
        (WeightKind::Q4_1, 1536, 576),
        (WeightKind::Q4_1, 576, 1536),
        (WeightKind::Q8_0, 49152, 576),
    ] {
        let w = weight(kind, rows, cols, 7);
        for m in [1usize, 4] {
            let x: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let mut y = vec![0f32; m * rows];
            let mut best = vec![Duration::MAX; isas.len()];
            for _ in 0..30 {
                for (i, &isa) in isas.iter().enumerate() {
                    let t = Instant::now();
                    matmul_with(&pool, isa, &[&w], &x, m, &mut [&mut y]);
                    best[i] = best[i].min(t.elapsed());
                }
            }
            let line: Vec<String> = isas
                .iter()
                .zip(&best)
                .map(|(isa, t)| format!("{isa:?} {:.1} us", t.as_secs_f64() * 1e6))
                .collect();
            println!("{kind:?} {rows}x{cols} m={m}: {}", line.join(", "));
        }
    }
    stream(&isas);
}

/// One token (m = 1) and four (a batch) through 500 576x576 Q4_1 weights
/// in turn, as decode goes through the model's layers.
fn stream(isas: &[Isa]) {
    let ws: Vec<QWeight> = (0..500)
        .map(|s| weight(WeightKind::Q4_1, 576, 576, s))
        .collect();
    let bytes: usize = ws.iter().map(QWeight::size_bytes).sum();
    for (m, threads) in [(1, 1), (1, 2), (4, 1), (4, 2)] {
        let x: Vec<f32> = (0..m * 576)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let mut y = vec![0f32; m * 576];
        let pool = Pool::new(threads);
        let mut best = vec![Duration::MAX; isas.len()];
        for _ in 0..10 {
            for (i, &isa) in isas.iter().enumerate() {
                let t = Instant::now();
                for w in &ws {
                    matmul_with(&pool, isa, &[w], &x, m, &mut [&mut y]);
                }
                best[i] = best[i].min(t.elapsed());
            }
        }
        let line: Vec<String> = isas
            .iter()
            .zip(&best)
            .map(|(isa, t)| format!("{isa:?} {:.1} GB/s", bytes as f64 / t.as_secs_f64() / 1e9))
            .collect();
        println!(
            "streaming {} MB, m={m}, {threads} thread(s): {}",
            bytes / 1_000_000,
            line.join(", ")
        );
    }
}
