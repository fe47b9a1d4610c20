//! The engine thread's Compare command on the real model: one prefill, a
//! column per preset, every column finished once, and cancel honoured
//! between tokens.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use lmscope::engine::handle::{EngineCommand, EngineEvent, EngineHandle};
use lmscope::engine::model::Precision;
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

fn spawn() -> (EngineHandle, mpsc::Receiver<EngineEvent>) {
    let (tx, rx) = mpsc::channel();
    let handle = EngineHandle::spawn(common::model_path().into(), Precision::Quantized, tx)
        .expect("engine thread");
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(EngineEvent::Loaded(_)) => {}
        other => panic!("expected Loaded, got {other:?}"),
    }
    (handle, rx)
}

fn request(max_tokens: usize) -> Box<Request> {
    Box::new(Request {
        max_tokens,
        ..Request::new(Prompt::Text("The capital of France is".into()))
    })
}

#[test]
fn compare_runs_a_column_per_preset_and_finishes_each_once() {
    let (handle, rx) = spawn();
    handle.send(EngineCommand::Compare {
        id: 7,
        request: request(8),
        presets: presets(&["greedy", "greedy", "creative"]),
    });
    let mut steps: Vec<Vec<StepRecord>> = vec![Vec::new(); 3];
    let mut texts = vec![String::new(); 3];
    let mut finished = vec![None; 3];
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
    let (handle, rx) = spawn();
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
    let (handle, rx) = spawn();
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
