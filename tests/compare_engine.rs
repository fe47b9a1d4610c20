//! The engine thread's Compare command on the real model: one prefill, a
//! column per preset, every column finished once, and cancel honoured
//! between tokens.

mod common;

use std::time::Duration;

use lmscope::engine::handle::{EngineCommand, EngineEvent};
use lmscope::engine::types::{FinishReason, StepRecord};
use lmscope::engine::{Prompt, Request};
use lmscope::store::presets;

fn presets(names: &[&str]) -> Vec<(String, lmscope::engine::sampling::SamplerSettings)> {
    let all = presets::built_in();
    names
        .iter()
        .map(|n| (n.to_string(), all[*n].clone()))
        .collect()
}

fn request(max_tokens: usize) -> Box<Request> {
    Box::new(Request {
        max_tokens,
        ..Request::new(Prompt::Text("The capital of France is".into()))
    })
}

#[test]
fn compare_runs_a_column_per_preset_and_finishes_each_once() {
    let (handle, rx) = common::spawn_engine();
    handle.send(EngineCommand::Compare {
        id: 7,
        request: request(8),
        presets: presets(&["greedy", "greedy", "creative"]),
    });
    let mut steps: Vec<Vec<StepRecord>> = vec![Vec::new(); 3];
    let mut texts = vec![String::new(); 3];
    let mut finished = [None; 3];
    let mut prefilled = 0;
    while finished.iter().any(Option::is_none) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(EngineEvent::Prefilled { id, prompt, .. }) => {
                assert_eq!(id, 7);
                assert!(!prompt.texts.is_empty());
                prefilled += 1;
            }
            Ok(EngineEvent::CompareStep {
                id,
                column,
                record,
                text_delta,
            }) => {
                assert_eq!(id, 7);
                assert!(finished[column].is_none(), "a step after the finish");
                assert!(record.attention.is_none());
                assert_eq!(record.step, steps[column].len());
                steps[column].push(*record);
                texts[column].push_str(&text_delta);
            }
            Ok(EngineEvent::CompareFinished {
                id,
                column,
                reason,
                timings,
            }) => {
                assert_eq!(id, 7);
                assert!(finished[column].is_none(), "finished twice");
                assert_eq!(timings.generated, steps[column].len());
                finished[column] = Some(reason);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for (c, s) in steps.iter().enumerate() {
        assert!(
            !s.is_empty() && s.len() <= 8,
            "column {c}: {} steps",
            s.len()
        );
        assert!(!texts[c].is_empty());
    }
    assert_eq!(prefilled, 1, "one prefill for every column");
    let ids = |c: usize| steps[c].iter().map(|s| s.token_id).collect::<Vec<_>>();
    assert_eq!(ids(0), ids(1), "the same preset gives the same tokens");
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "nothing after"
    );
}

#[test]
fn cancel_ends_every_column_within_a_token() {
    let (handle, rx) = common::spawn_engine();
    handle.send(EngineCommand::Compare {
        id: 1,
        request: request(400),
        presets: presets(&["greedy", "creative"]),
    });
    let mut seen = 0;
    let mut cancelled = 0;
    while cancelled < 2 {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(EngineEvent::Prefilled { .. }) => {}
            Ok(EngineEvent::CompareStep { .. }) => {
                seen += 1;
                if seen == 3 {
                    handle.cancel();
                }
            }
            Ok(EngineEvent::CompareFinished { reason, .. }) => {
                assert_eq!(reason, FinishReason::Cancelled);
                cancelled += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(seen < 10, "{seen} steps: cancel is checked every token");
}

#[test]
fn finished_columns_are_kept_and_serve_attention() {
    let (handle, rx) = common::spawn_engine();
    let mut req = request(4);
    req.capture_attention = true;
    handle.send(EngineCommand::Compare {
        id: 3,
        request: req,
        presets: presets(&["greedy", "creative"]),
    });
    let mut done = 0;
    while done < 2 {
        if let Ok(EngineEvent::CompareFinished { .. }) = rx.recv_timeout(Duration::from_secs(60)) {
            done += 1;
        }
    }
    let id = lmscope::engine::handle::compare_column_id(3, 1);
    handle.send(EngineCommand::Attention {
        id,
        layer: 2,
        queries: 5..6,
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(EngineEvent::Attention(la)) => {
            assert_eq!(
                (la.id, la.layer, la.rows.n_query, la.rows.first_query),
                (id, 2, 1, 5)
            );
            let row_sum: f32 = la.rows.data[..la.rows.n_key].iter().sum();
            assert!((row_sum - 1.0).abs() < 1e-3, "{row_sum}");
        }
        other => panic!("expected the column's attention, got {other:?}"),
    }
}

// ---- Batched columns (`Generation::step_batch`) against each column alone.

use lmscope::engine::{Engine, Generation};

/// Every float of a record as its bits, so that equality is bit for bit.
fn record_bits(r: &StepRecord) -> Vec<u32> {
    let mut v = vec![
        r.step as u32,
        r.position as u32,
        r.token_id,
        r.p_raw.to_bits(),
        r.p_final.to_bits(),
        r.logprob.to_bits(),
        r.rank as u32,
        r.entropy.to_bits(),
    ];
    for t in &r.top {
        v.extend([t.token_id, t.p_raw.to_bits(), t.p_final.to_bits()]);
        v.push(t.removed_by.map_or(u32::MAX, |s| s as u32));
    }
    if let Some(a) = &r.attention {
        v.extend([a.n_layer, a.n_head, a.n_query, a.n_key, a.first_query].map(|x| x as u32));
        v.extend(a.data.iter().map(|x| x.to_bits()));
    }
    v
}

fn assert_same_records(a: &[StepRecord], b: &[StepRecord], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: step count");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.top.len(), y.top.len(), "{what}: step {i} top-N");
        assert_eq!(
            x.attention.is_some(),
            y.attention.is_some(),
            "{what}: step {i} attention"
        );
        assert!(
            record_bits(x) == record_bits(y),
            "{what}: step {i} differs bit for bit:\n batched {x:?}\n alone   {y:?}"
        );
        assert_eq!(x.text, y.text, "{what}: step {i}");
    }
}

/// One prefill, a fork per preset (as the compare view does).
fn columns(engine: &Engine, request: &Request, names: &[&str]) -> Vec<Generation> {
    let mut base = engine.start(request).unwrap();
    base.prefill(engine).unwrap();
    presets(names)
        .into_iter()
        .map(|(_, mut s)| {
            s.seed = 7;
            base.fork(engine, 0, None, s).unwrap()
        })
        .collect()
}

fn run_alone(engine: &Engine, mut g: Generation) -> Generation {
    while g.step(engine).unwrap().is_some() {}
    g
}

/// Steps `gens` together until every one has finished; each round's
/// results come one per generation.
fn run_batched(engine: &Engine, gens: &mut [Generation]) {
    loop {
        let mut refs: Vec<&mut Generation> = gens.iter_mut().collect();
        let results = Generation::step_batch(engine, &mut refs);
        assert_eq!(results.len(), gens.len());
        let mut any = false;
        for (g, r) in gens.iter().zip(results) {
            match r.unwrap() {
                Some(rec) => {
                    any = true;
                    assert_eq!(rec.step + 1, g.steps().len());
                }
                None => assert!(g.finished().is_some(), "None only once finished"),
            }
        }
        if !any {
            break;
        }
    }
}

/// The columns for `names` stepped together, and each stepped alone from
/// the same prefilled start.
fn batched_and_alone(
    engine: &Engine,
    req: &Request,
    names: &[&str],
) -> (Vec<Generation>, Vec<Generation>) {
    let mut batched = columns(engine, req, names);
    let alone = batched
        .iter()
        .cloned()
        .map(|g| run_alone(engine, g))
        .collect();
    run_batched(engine, &mut batched);
    (batched, alone)
}

#[test]
fn batched_columns_equal_each_column_alone_bit_for_bit() {
    let engine = common::engine();
    let req = Request {
        max_tokens: 12,
        top_n: 10,
        ..Request::new(Prompt::Text("Once upon a time, in a small village,".into()))
    };
    let names = ["greedy", "precise", "balanced", "creative"];
    let (batched, alone) = batched_and_alone(engine, &req, &names);
    for ((b, a), name) in batched.iter().zip(&alone).zip(names) {
        assert!(!b.steps().is_empty());
        assert_same_records(b.steps(), a.steps(), name);
        assert_eq!(b.text(), a.text(), "{name}");
        assert_eq!(b.finished(), a.finished(), "{name}");
        assert_eq!(b.timings().generated, a.timings().generated, "{name}");
        assert!(b.timings().decode_s > 0.0);
    }
    // The presets do differ somewhere, so the batch held different tokens.
    let ids = |g: &Generation| g.steps().iter().map(|s| s.token_id).collect::<Vec<_>>();
    assert!(batched.iter().any(|g| ids(g) != ids(&batched[0])));
}

#[test]
fn batched_attention_rows_equal_the_column_alone() {
    let engine = common::engine();
    let req = Request {
        max_tokens: 5,
        top_n: 5,
        attach_attention: true,
        ..Request::new(Prompt::Text("The capital of France is".into()))
    };
    let names = ["greedy", "creative", "balanced"];
    let (batched, alone) = batched_and_alone(engine, &req, &names);
    for ((b, a), name) in batched.iter().zip(&alone).zip(names) {
        assert!(b.steps().iter().all(|s| s.attention.is_some()));
        assert_same_records(b.steps(), a.steps(), name);
        // Rows recomputed later from the kept caches agree too.
        let n = b.cache().len();
        let rb = engine.attention(b.cache(), n - 3..n).unwrap();
        let ra = engine.attention(a.cache(), n - 3..n).unwrap();
        assert_eq!(rb.n_key, ra.n_key);
        assert!(
            rb.data
                .iter()
                .map(|x| x.to_bits())
                .eq(ra.data.iter().map(|x| x.to_bits())),
            "{name}: attention rows from the cache"
        );
    }
}

#[test]
fn a_column_that_finishes_early_drops_out_of_the_batch() {
    let engine = common::engine();
    let prompt = Prompt::Text("My favourite fruits are".into());
    let greedy = presets(&["greedy"]).remove(0).1;
    let base = Request {
        sampler: greedy.clone(),
        max_tokens: 16,
        top_n: 5,
        ..Request::new(prompt.clone())
    };
    let text_after = |n: usize| first_tokens(engine, &base, n).text().to_string();
    // A stop string: what the first greedy token from the 4th on adds that
    // is new to the text (so the column stops exactly there).
    let (stop_at, stop) = (4..12)
        .find_map(|k| {
            let (before, after) = (text_after(k - 1), text_after(k));
            let piece = after[before.len()..].trim().to_string();
            (!piece.is_empty() && !before.contains(&piece)).then_some((k, piece))
        })
        .expect("a new word within 12 greedy tokens");

    let eos = engine.tokenizer().eos.expect("the model has an EOS token");
    let requests = [
        // Length after 2 tokens.
        Request {
            max_tokens: 2,
            ..base.clone()
        },
        // EOS forced as its 3rd token.
        base.clone(),
        // A stop string at its `stop_at`th token (4th or later).
        Request {
            stop: vec![stop.clone()],
            ..base.clone()
        },
        // Runs on to max_tokens.
        Request {
            sampler: presets(&["creative"]).remove(0).1,
            ..base.clone()
        },
    ];
    let first_two = text_after_ids(engine, &base, 2);
    let start = |c: usize| {
        let mut g = engine.start(&requests[c]).unwrap();
        if c == 1 {
            g.force(first_two.iter().copied().chain([eos]));
        }
        g
    };
    let mut batched: Vec<Generation> = (0..4).map(start).collect();
    let alone: Vec<Generation> = (0..4).map(|c| run_alone(engine, start(c))).collect();

    // Round by round: a finished column answers None while the rest go on.
    let mut rounds = 0;
    let mut finished_at = [None; 4];
    loop {
        let mut refs: Vec<&mut Generation> = batched.iter_mut().collect();
        let results = Generation::step_batch(engine, &mut refs);
        let mut any = false;
        for (c, r) in results.into_iter().enumerate() {
            match r.unwrap() {
                Some(_) => {
                    any = true;
                    assert!(
                        finished_at[c].is_none(),
                        "column {c} stepped after finishing"
                    );
                }
                None => {
                    finished_at[c].get_or_insert(rounds);
                }
            }
        }
        if !any {
            break;
        }
        rounds += 1;
    }
    use FinishReason::*;
    let reasons: Vec<_> = batched.iter().map(|g| g.finished().unwrap()).collect();
    assert_eq!(reasons, [Length, Eos, Stop, Length]);
    let lens: Vec<_> = batched.iter().map(|g| g.steps().len()).collect();
    assert_eq!(lens, [2, 3, stop_at, 16]);
    for (c, (b, a)) in batched.iter().zip(&alone).enumerate() {
        assert_same_records(b.steps(), a.steps(), &format!("column {c}"));
        assert_eq!(b.text(), a.text(), "column {c}");
        assert_eq!(b.finished(), a.finished(), "column {c}");
    }
    assert_eq!(rounds, 16);
}

/// `base` run alone for its first `n` tokens.
fn first_tokens(engine: &Engine, base: &Request, n: usize) -> Generation {
    let request = Request {
        max_tokens: n,
        ..base.clone()
    };
    run_alone(engine, engine.start(&request).unwrap())
}

/// The first `n` greedy token ids after `base`'s prompt.
fn text_after_ids(engine: &Engine, base: &Request, n: usize) -> Vec<u32> {
    let g = first_tokens(engine, base, n);
    g.steps().iter().map(|s| s.token_id).collect()
}

#[test]
fn cli_compare_is_deterministic_and_batching_changes_nothing() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "compare",
            "The recipe needs",
            "--preset",
            "greedy",
            "--preset",
            "creative",
            "--seed",
            "7",
            "-n",
            "12",
            "--json",
        ];
        args.extend(extra);
        let out = common::lmscope(&args);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let mut v: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
        // Timings are the only thing allowed to differ.
        assert!(v["aggregate_tok_s"].as_f64().unwrap() > 0.0);
        v["aggregate_tok_s"] = serde_json::Value::Null;
        for c in v["columns"].as_array_mut().unwrap() {
            assert!(c["stats"]["tok_s"].as_f64().unwrap() > 0.0);
            c["stats"]["tok_s"] = serde_json::Value::Null;
        }
        v
    };
    let a = run(&[]);
    assert_eq!(a["batched"], true);
    assert_eq!(a, run(&[]), "same seed, same output");
    let mut c = run(&["--no-batch"]);
    assert_eq!(c["batched"], false);
    c["batched"] = serde_json::Value::Bool(true);
    assert_eq!(a, c, "round-robin gives what the batch gives");
}
