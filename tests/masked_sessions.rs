//! Masked generation saved, replayed and branched: `fill --generate --save`
//! writes a session, `fill --branch` adds a branch that takes the parent's
//! tokens up to a step and another token there, `session replay` runs every
//! run again to the same positions and tokens; a damaged file is refused
//! and left as it was.

mod common;

use std::path::PathBuf;

use lmscope::engine::masked::MaskedEngine;
use lmscope::engine::masked::generate::{FillOrder, MaskedGeneration};
use lmscope::engine::sampling::{Sampler, SamplerSettings};
use lmscope::store::masked_session::MaskedSession;

const TEXT: &str = "the [MASK] reads the [MASK] and [MASK]";

fn model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-bert")
}

fn ok(args: &[&str]) -> String {
    let o = common::lmscope(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_saved_masked_run_replays_and_a_branch_equals_a_forced_fresh_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("masked.json");
    let (m, f) = (model(), file.to_str().unwrap().to_string());
    let m = m.to_str().unwrap();
    ok(&[
        "fill",
        TEXT,
        "-m",
        m,
        "--generate",
        "--order",
        "left-to-right",
        "--seed",
        "7",
        "--save",
        &f,
    ]);
    let s = MaskedSession::load(&file).unwrap();
    assert_eq!(s.runs.len(), 1);
    assert_eq!(s.runs[0].steps.len(), 3);
    assert_eq!(s.runs[0].order, FillOrder::LeftToRight);
    // Branch at step 1 with the parent's second candidate there (or the
    // first, when the parent took the second).
    let parent = &s.runs[0].steps[1];
    let other = parent
        .top
        .iter()
        .map(|c| c.token_id)
        .find(|&t| t != parent.token_id)
        .unwrap();
    ok(&[
        "fill",
        "--branch",
        &f,
        "--at",
        "1",
        "--token",
        &other.to_string(),
    ]);
    let s = MaskedSession::load(&file).unwrap();
    assert_eq!(s.runs.len(), 2);
    let branch = &s.runs[1];
    assert_eq!(branch.parent.unwrap().step, 1);
    assert_eq!(branch.steps[0].token_id, s.runs[0].steps[0].token_id);
    assert_eq!(branch.steps[1].token_id, other);
    // The same as a fresh run forced through the same prefix.
    let engine = MaskedEngine::load(&model()).unwrap();
    let settings = SamplerSettings {
        seed: 7,
        ..branch.settings.clone()
    };
    let mut fresh = MaskedGeneration::new(
        &engine,
        TEXT,
        FillOrder::LeftToRight,
        Sampler::new(settings).unwrap(),
        branch.steps[0].top.len(),
    )
    .unwrap();
    fresh.force(0, s.runs[0].steps[0].token_id);
    fresh.force(1, other);
    while fresh.step(&engine).unwrap().is_some() {}
    let key = |r: &lmscope::engine::types::StepRecord| (r.position, r.token_id, r.p_raw);
    assert_eq!(
        fresh.steps().iter().map(key).collect::<Vec<_>>(),
        branch.steps.iter().map(key).collect::<Vec<_>>()
    );
    let out = ok(&["session", "replay", &f]);
    assert!(out.contains("run 0 `run 0`: same 3 steps"), "{out}");
    assert!(
        out.contains("run 1 `branch of run 0 at step 1`: same 3 steps"),
        "{out}"
    );
    let out = ok(&["session", "show", &f]);
    assert!(out.contains("masked session v1"), "{out}");
}

#[test]
fn a_damaged_or_future_masked_session_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("masked.json");
    let m = model();
    let m = m.to_str().unwrap();
    let f = file.to_str().unwrap();
    ok(&["fill", TEXT, "-m", m, "--generate", "--save", f]);
    let good = std::fs::read_to_string(&file).unwrap();
    // A branch pointing at a step the parent does not have.
    let bad = good.replacen(
        "\"parent\": null",
        "\"parent\": {\"run\": 0, \"step\": 9}",
        1,
    );
    std::fs::write(&file, &bad).unwrap();
    let o = common::lmscope(&["fill", "--branch", f, "--at", "0", "--token", "5"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("branches from run 0"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        bad,
        "left untouched"
    );
    let future = good.replacen("\"version\": 1", "\"version\": 99", 1);
    std::fs::write(&file, &future).unwrap();
    let o = common::lmscope(&["session", "replay", f]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), future);
    // Out-of-range branch requests say what is allowed.
    std::fs::write(&file, &good).unwrap();
    let o = common::lmscope(&["fill", "--branch", f, "--at", "7", "--token", "5"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("has steps 0 to 2"));
    let o = common::lmscope(&["fill", "--branch", f, "--at", "0", "--token", "99999"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside the vocabulary"));
}
