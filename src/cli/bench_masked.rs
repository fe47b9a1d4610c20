//! `lmscope bench` on a masked language model: fill-mask latency (one pass
//! over a masked sentence, the MLM head at its mask) and sentences/s (each
//! sentence alone through the encoder and mean-pooled, as `embed` does),
//! against HF transformers on the same folder, inputs and threads,
//! alternating round by round, reported as medians and ratios.

use std::time::Instant;

use serde_json::json;

use super::bench::{BenchArgs, Reference, ReferenceKind, find_python, median, peak_rss};
use crate::engine::masked::{Encoded, MaskedEngine};

/// Sentences of the throughput test: lmscope's own words, 8 to 24 of them.
fn sentences(n: usize) -> Vec<String> {
    let words: Vec<&str> = "the model reads every token of the prompt and weighs its attention \
        over all the others before it fills the masked word with the most likely one"
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect();
    (0..n)
        .map(|i| {
            let len = 8 + (i * 7) % 17;
            (0..len)
                .map(|j| words[(i * 5 + j * 3) % words.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn fill_once(engine: &MaskedEngine, e: &Encoded, masks: &[usize]) -> anyhow::Result<()> {
    let out = engine.forward(e, false)?;
    if engine.mlm_missing().is_none() {
        engine.logits_at(&out.hidden, masks)?;
    }
    Ok(())
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let engine = args.model.launch().load_masked(None)?;
    let threads = args.model.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let has_head = engine.mlm_missing().is_none();
    let mask = engine.tokenizer().mask_text().unwrap_or_default();
    let fill_text = format!("The model reads the prompt and fills the {mask} with a word.");
    let fill = engine.encode(&fill_text, None)?;
    let masks = engine.mask_positions(&fill.ids);
    let batch: Vec<Encoded> = sentences(64)
        .iter()
        .map(|s| engine.encode(s, None))
        .collect::<Result<_, _>>()?;
    let kind = ReferenceKind::TransformersEncoder;
    let mut reference = if args.no_reference {
        None
    } else {
        match find_python(&args.python, kind) {
            Some(py) => {
                let head = if has_head { "mlm" } else { "encoder" };
                Some(Reference::start(
                    &py,
                    kind,
                    &engine.info().path,
                    threads,
                    &[head],
                )?)
            }
            None => {
                eprintln!("transformers not found (scripts/reference/README.md): lmscope alone");
                None
            }
        }
    };
    const REPEAT: usize = 20;
    let (mut ours_ms, mut ours_rate, mut theirs_ms, mut theirs_rate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm-up: first-touch page faults and thread start-up are not speed.
    for _ in 0..3 {
        fill_once(&engine, &fill, &masks)?;
    }
    for round in 0..args.rounds {
        let mut times = Vec::with_capacity(REPEAT);
        for _ in 0..REPEAT {
            let t = Instant::now();
            fill_once(&engine, &fill, &masks)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ours_ms.push(median(&times));
        let t = Instant::now();
        for e in &batch {
            let out = engine.forward(e, false)?;
            engine.encoder().mean_pooled(&out.hidden)?;
        }
        ours_rate.push(batch.len() as f64 / t.elapsed().as_secs_f64());
        if let Some(r) = reference.as_mut() {
            let v = r.ask(json!({"fill": fill.ids, "repeat": REPEAT}))?;
            theirs_ms.push(v["ms"].as_f64().unwrap_or(f64::NAN));
            let ids: Vec<&Vec<u32>> = batch.iter().map(|e| &e.ids).collect();
            let v = r.ask(json!({ "sentences": ids }))?;
            theirs_rate.push(v["sentences_s"].as_f64().unwrap_or(f64::NAN));
        }
        eprintln!("round {}/{} done", round + 1, args.rounds);
    }
    let (ms, rate) = (median(&ours_ms), median(&ours_rate));
    let reference_json = reference.as_ref().map(|r| {
        let (tms, trate) = (median(&theirs_ms), median(&theirs_rate));
        json!({
            "version": r.version(),
            "fill_ms": tms,
            "sentences_s": trate,
            "fill_speedup": tms / ms,
            "sentences_ratio": rate / trate,
        })
    });
    if args.json {
        outln!(
            "{}",
            json!({
                "model": engine.info().name,
                "threads": threads,
                "rounds": args.rounds,
                "mlm_head": has_head,
                "fill_tokens": fill.ids.len(),
                "fill_ms": ms,
                "sentences": batch.len(),
                "sentences_s": rate,
                "peak_rss_bytes": peak_rss(),
                "transformers": reference_json,
            })
        );
        return Ok(());
    }
    outln!(
        "{} ({} threads, {} rounds, medians)",
        engine.info().name,
        threads,
        args.rounds
    );
    let what = if has_head {
        "fill-mask"
    } else {
        "encoder pass (no MLM head)"
    };
    outln!("{what:<28} {:>8.2} ms  ({} tokens)", ms, fill.ids.len());
    outln!(
        "{:<28} {:>8.1} sentences/s  ({} sentences, one at a time)",
        "embed",
        rate,
        batch.len()
    );
    if let Some(r) = &reference_json {
        outln!(
            "{} {:.2} ms ({:.2}x faster here), {:.1} sentences/s ({:.2}x)",
            r["version"].as_str().unwrap_or("transformers"),
            r["fill_ms"].as_f64().unwrap_or(f64::NAN),
            r["fill_speedup"].as_f64().unwrap_or(f64::NAN),
            r["sentences_s"].as_f64().unwrap_or(f64::NAN),
            r["sentences_ratio"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok(())
}
