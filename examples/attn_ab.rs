//! The fused decode-attention kernel alone (`kernels::attend_group`): one
//! query per head for three heads sharing a key/value head, over 192 f16
//! key/value rows of SmolLM2's width, for `tasks` such groups in turn (360 =
//! a four-sequence step: 4 sequences x 30 layers x 3 key/value heads), with
//! the rows in cache ("hot": the same few again and again) and after a
//! 96 MB pass that evicts them ("cold", as decode finds them after a pass
//! over the weights). Each head's rows are contiguous, as the KV cache keeps
//! them; `interleaved` reads them from position rows of all three heads
//! instead (the cache's earlier layout). Prints the best of `rounds` per
//! task: `cargo run --release --example attn_ab -- [tasks] [rounds] [interleaved]`.
use std::time::Instant;

use half::f16;
use lmscope::engine::kernels::{RowParts, attend_group};

const KV_WIDTH: usize = 192;
const HEAD: usize = 64;
const GROUP: usize = 3;
const VISIBLE: usize = 192;

fn rows(seed: u32) -> Vec<f16> {
    (0..VISIBLE * KV_WIDTH)
        .map(|i| {
            let h = (i as u32).wrapping_mul(2654435761) ^ seed;
            f16::from_f32((h % 1000) as f32 / 1000.0 - 0.5)
        })
        .collect()
}

/// Key/value head `kv`'s rows of a group's `rows`.
fn head(rows: &[f16], kv: usize, interleaved: bool) -> RowParts<'_, f16> {
    if interleaved {
        RowParts::contiguous(rows, KV_WIDTH).columns(kv * HEAD)
    } else {
        let n = VISIBLE * HEAD;
        RowParts::contiguous(&rows[kv * n..(kv + 1) * n], HEAD)
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().map_or(360, |s| s.parse().expect("tasks"));
    let rounds: usize = args.next().map_or(5, |s| s.parse().expect("rounds"));
    let interleaved = args.next().is_some_and(|s| s == "interleaved");
    let groups = tasks.div_ceil(GROUP);
    let keys: Vec<Vec<f16>> = (0..groups).map(|g| rows(2 * g as u32)).collect();
    let values: Vec<Vec<f16>> = (0..groups).map(|g| rows(2 * g as u32 + 1)).collect();
    let q: Vec<f32> = (0..GROUP * HEAD)
        .map(|i| (i % 7) as f32 / 7.0 - 0.4)
        .collect();
    let flush = vec![1u8; 96 << 20];
    let (mut probs, mut out) = (vec![0f32; GROUP * VISIBLE], vec![0f32; GROUP * HEAD]);
    for (name, cold) in [("hot", false), ("cold", true)] {
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            if cold {
                let sum: u64 = flush.iter().step_by(64).map(|&b| b as u64).sum();
                std::hint::black_box(sum);
            }
            let started = Instant::now();
            for t in 0..tasks {
                let (g, kv) = (t / GROUP, t % GROUP);
                let (k, v) = (
                    head(&keys[g], kv, interleaved),
                    head(&values[g], kv, interleaved),
                );
                attend_group(&q, k, v, VISIBLE, true, &mut probs, &mut out);
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        println!(
            "{name}: {:.2} us a task ({tasks} tasks)",
            best * 1e6 / tasks as f64
        );
    }
}
