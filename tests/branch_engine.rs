//! The engine thread's Branch command on the real model: a branch of a
//! finished run continues exactly as a fresh run forced through the same
//! prefix, attention is served for both the branch and its parent, and a
//! run the engine no longer keeps gives a clear error.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use lmscope::engine::handle::{EngineCommand, EngineEvent, KEPT_RUNS};
use lmscope::engine::sampling::SamplerSettings;
use lmscope::engine::types::{FinishReason, StepRecord};
use lmscope::engine::{Prompt, Request};

/// Sampled (not greedy), so the continuation depends on the seed and the
/// sampler's state being the same as a fresh run's.
fn request(max_tokens: usize) -> Request {
    Request {
        sampler: SamplerSettings {
            temperature: 1.0,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.0,
            seed: 5,
            ..Default::default()
        },
        max_tokens,
        top_n: 8,
        capture_attention: true,
        ..Request::new(Prompt::Text("The old lighthouse keeper".into()))
    }
}

fn next(rx: &mpsc::Receiver<EngineEvent>) -> EngineEvent {
    rx.recv_timeout(Duration::from_secs(60))
        .expect("an event within a minute")
}

/// The steps of run `id` until its Finished event.
fn collect(rx: &mpsc::Receiver<EngineEvent>, id: u64) -> (Vec<StepRecord>, FinishReason) {
    let mut steps = Vec::new();
    loop {
        match next(rx) {
            EngineEvent::Prefilled { id: i, .. } | EngineEvent::Branched { id: i, .. } => {
                assert_eq!(i, id)
            }
            EngineEvent::Step { id: i, record, .. } => {
                assert_eq!(i, id);
                steps.push(*record);
            }
            EngineEvent::Finished { id: i, reason, .. } if i == id => return (steps, reason),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn ids(steps: &[StepRecord]) -> Vec<u32> {
    steps.iter().map(|s| s.token_id).collect()
}

#[test]
fn a_branch_continues_as_a_fresh_forced_run_and_both_serve_attention() {
    let (handle, rx) = common::spawn_engine();
    handle.send(EngineCommand::Generate {
        id: 1,
        request: Box::new(request(10)),
    });
    let (original, _) = collect(&rx, 1);
    assert_eq!(original.len(), 10);
    let at = 3;
    let alternative = original[at]
        .top
        .iter()
        .find(|t| t.token_id != original[at].token_id)
        .expect("an alternative")
        .token_id;

    handle.send(EngineCommand::Branch {
        id: 2,
        parent_id: 1,
        step: at,
        token: alternative,
    });
    match next(&rx) {
        EngineEvent::Branched {
            id,
            parent_id,
            step,
            cache_len,
        } => {
            assert_eq!((id, parent_id, step), (2, 1, at));
            let prompt = original[0].position;
            assert_eq!(cache_len, prompt + at - 1, "the cache cut, not rebuilt");
        }
        other => panic!("expected Branched, got {other:?}"),
    }
    let (branch, _) = collect(&rx, 2);
    assert_eq!(branch[0].step, at, "the branch's steps start at the fork");
    assert_eq!(branch[0].token_id, alternative);

    // A fresh run forced through the original prefix and the alternative.
    let e = common::engine();
    let mut fresh = e.start(&request(10)).unwrap();
    fresh.force(ids(&original[..at]).into_iter().chain([alternative]));
    while fresh.step(e).unwrap().is_some() {}
    assert_eq!(ids(&branch), ids(&fresh.steps()[at..]));
    for (a, b) in branch.iter().zip(&fresh.steps()[at..]) {
        assert!((a.p_raw - b.p_raw).abs() < 1e-5, "step {}", a.step);
    }

    // Attention is served from the kept parent and from the branch.
    for id in [1u64, 2] {
        handle.send(EngineCommand::Attention {
            id,
            layer: 0,
            queries: 0..4,
        });
        match next(&rx) {
            EngineEvent::Attention(la) => {
                assert_eq!(la.id, id);
                assert_eq!(la.rows.n_query, 4);
            }
            other => panic!("expected attention of run {id}, got {other:?}"),
        }
    }
}

#[test]
fn branching_from_a_run_no_longer_kept_says_so() {
    let (handle, rx) = common::spawn_engine();
    let mut first = Vec::new();
    for id in 1..=(KEPT_RUNS as u64 + 2) {
        handle.send(EngineCommand::Generate {
            id,
            request: Box::new(request(2)),
        });
        let (steps, _) = collect(&rx, id);
        if id == 1 {
            first = steps;
        }
    }
    handle.send(EngineCommand::Branch {
        id: 100,
        parent_id: 1,
        step: 1,
        token: first[1].top[1].token_id,
    });
    match next(&rx) {
        EngineEvent::Error { id, message } => {
            assert_eq!(id, Some(100));
            assert!(message.contains("no longer kept"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match next(&rx) {
        EngineEvent::Finished { id, reason, .. } => {
            assert_eq!((id, reason), (100, FinishReason::Cancelled))
        }
        other => panic!("expected Finished, got {other:?}"),
    }
    // The newest run is still there to branch from.
    let newest = KEPT_RUNS as u64 + 2;
    handle.send(EngineCommand::Branch {
        id: 101,
        parent_id: newest,
        step: 0,
        token: first[0].top[1].token_id,
    });
    let (steps, _) = collect(&rx, 101);
    assert_eq!(steps[0].token_id, first[0].top[1].token_id);
}
