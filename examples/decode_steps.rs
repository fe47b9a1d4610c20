//! Decode steps alone, for profiling: a 128-token prompt, then `steps`
//! greedy steps of `seqs` sequences at once (1 = the plain one-token step),
//! each forked from the prefilled cache; prints the mean step time.
//! `cargo run --release --example decode_steps -- MODEL.gguf [seqs] [steps]`
//! (under `perf record -g` it shows where a batched step's time goes).
use std::time::Instant;

use lmscope::engine::load::gguf::GgufFile;
use lmscope::engine::model::{KvCache, Llama, Logits, Precision};

fn argmax(row: &[f32]) -> u32 {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best }) as u32
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("a GGUF path");
    let seqs: usize = args.next().map_or(Ok(4), |s| s.parse())?;
    let steps: usize = args.next().map_or(Ok(256), |s| s.parse())?;
    let mut gguf = GgufFile::open(std::path::Path::new(&path))?;
    let model = Llama::load(&mut gguf, Precision::Quantized)?;
    let prompt: Vec<u32> = (0..128).map(|i| 1000 + (i * 37 % 500)).collect();
    let mut base = model.new_cache(false);
    model.forward(&prompt, &mut base, Logits::Last)?;
    let mut caches: Vec<KvCache> = (0..seqs).map(|_| base.clone()).collect();
    let mut toks: Vec<u32> = (0..seqs as u32).map(|i| 2000 + i).collect();
    let started = Instant::now();
    for _ in 0..steps {
        let rows = if seqs == 1 {
            model.forward(&toks, &mut caches[0], Logits::Last)?
        } else {
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
            model.forward_batch(&toks, &mut refs)?
        };
        for (t, row) in toks.iter_mut().zip(rows.to_vec2::<f32>()?) {
            *t = argmax(&row);
        }
    }
    let per_step = started.elapsed().as_secs_f64() / steps as f64;
    println!(
        "{seqs} sequence(s): {:.3} ms a step, {:.1} tokens/s aggregate",
        per_step * 1e3,
        seqs as f64 / per_step
    );
    Ok(())
}
