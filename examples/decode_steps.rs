//! Decode steps alone, for profiling and quick A/B: a 128-token prompt,
//! then `steps` greedy steps of one sequence and of `seqs` sequences at
//! once (each forked from the prefilled cache), alternated for `rounds`
//! rounds; prints the median step times and the aggregate ratio.
//! `cargo run --release --example decode_steps -- MODEL.gguf [seqs] [steps] [rounds]`
//! (`rounds` 0: the `seqs`-sequence steps alone, once, for `perf record -g`).
use std::time::Instant;

use lmscope::engine::load::gguf::GgufFile;
use lmscope::engine::model::{self, KvCache, Logits, Model, Precision};
use lmscope::engine::sampling::argmax;

/// Seconds a step of `seqs` sequences takes, over `steps` steps.
fn run(model: &dyn Model, base: &KvCache, seqs: usize, steps: usize) -> anyhow::Result<f64> {
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
    Ok(started.elapsed().as_secs_f64() / steps as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("a GGUF path");
    let seqs: usize = args.next().map_or(Ok(4), |s| s.parse())?;
    let steps: usize = args.next().map_or(Ok(128), |s| s.parse())?;
    let rounds: usize = args.next().map_or(Ok(5), |s| s.parse())?;
    let mut gguf = GgufFile::open(std::path::Path::new(&path))?;
    let model = model::load(&mut gguf, Precision::Quantized)?;
    let prompt: Vec<u32> = (0..128).map(|i| 1000 + (i * 37 % 500)).collect();
    let mut base = model.new_cache(false);
    model.forward(&prompt, &mut base, Logits::Last)?;
    if rounds == 0 {
        let t = run(model.as_ref(), &base, seqs, steps)?;
        println!("{seqs} sequence(s): {:.3} ms a step", t * 1e3);
        return Ok(());
    }
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        one.push(run(model.as_ref(), &base, 1, steps)?);
        many.push(run(model.as_ref(), &base, seqs, steps)?);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let (one_min, many_min) = (best(&one), best(&many));
    let (one, many) = (median(one), median(many));
    println!(
        "1 sequence {:.3} ms a step, {seqs} sequences {:.3} ms: aggregate {:.2}x (medians; best {:.3} / {:.3}: {:.2}x)",
        one * 1e3,
        many * 1e3,
        seqs as f64 * one / many,
        one_min * 1e3,
        many_min * 1e3,
        seqs as f64 * one_min / many_min
    );
    Ok(())
}
