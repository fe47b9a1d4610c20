//! Bias checks on masked language models: CrowS-Pairs' pseudo-log-likelihood
//! scoring against our own plain Python implementation of its metric
//! (scripts/reference/pll_reference.py, transformers on the tiny BERT, 50
//! pairs of tests/fixtures/bias_parity_pairs.csv), and the command line.

mod common;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use lmscope::analysis::bias::{masked, pairs};
use lmscope::engine::masked::MaskedEngine;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    pairs: Vec<RefPair>,
    metric: Metric,
}

#[derive(Deserialize)]
struct RefPair {
    ids_more: Vec<u32>,
    ids_less: Vec<u32>,
    template_more: Vec<usize>,
    template_less: Vec<usize>,
    score_more: f64,
    score_less: f64,
    stereo: bool,
}

#[derive(Deserialize)]
struct Metric {
    n: usize,
    hits: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn pseudo_log_likelihoods_match_the_reference_on_50_pairs() {
    let engine = MaskedEngine::load(&root().join("tests/fixtures/hf/tiny-bert")).unwrap();
    let fx: Fixture = serde_json::from_value(common::fixture("hf/tiny-bert-pll.json")).unwrap();
    let bytes = std::fs::read(root().join("tests/fixtures/bias_parity_pairs.csv")).unwrap();
    let mut file = pairs::read_pairs(&bytes).unwrap();
    file.pairs.truncate(fx.metric.n);
    assert_eq!(fx.pairs.len(), 50);
    let scores = masked::score_pairs(&engine, &file, &mut |_, _| {}, &AtomicBool::new(false))
        .expect("scored");
    let mut worst = 0f64;
    for (ours, theirs) in scores.iter().zip(&fx.pairs) {
        assert_eq!(ours.more.tokens, theirs.ids_more);
        assert_eq!(ours.less.tokens, theirs.ids_less);
        assert_eq!(ours.scored_more, theirs.template_more);
        assert_eq!(ours.scored_less, theirs.template_less);
        let sum = |s: &pairs::SentenceScore| s.logprobs.iter().map(|&x| x as f64).sum::<f64>();
        worst = worst
            .max((sum(&ours.more) - theirs.score_more).abs())
            .max((sum(&ours.less) - theirs.score_less).abs());
    }
    let report = masked::pairs_report(&engine, &file, "pairs", &scores, false).unwrap();
    eprintln!(
        "PLL: max |diff| of a sentence's score {worst:.2e}; {} of {} pairs prefer the stereotype (reference {})",
        report.overall.k, report.overall.n, fx.metric.hits
    );
    assert!(worst < 1e-3, "scores differ by {worst}");
    for (r, theirs) in report.pairs.iter().zip(&fx.pairs) {
        assert_eq!(r.stereotype, theirs.stereo, "{}", r.sent_more);
    }
    assert_eq!(report.overall.k, fx.metric.hits);
    assert_eq!(report.mode, pairs::Mode::Pll);
}

#[test]
fn the_unmodified_tokens_leave_out_the_specials_and_the_changed_words() {
    // [CLS] my mother stayed [SEP] / [CLS] my father stayed [SEP]
    let (m, l) = masked::crows_positions(&[2, 10, 11, 12, 3], &[2, 10, 20, 12, 3], false);
    assert_eq!(m, vec![1, 3]);
    assert_eq!(l, vec![1, 3]);
    // A longer replacement shifts the positions of the other sentence.
    let (m, l) = masked::crows_positions(&[2, 10, 11, 12, 3], &[2, 10, 20, 21, 12, 3], true);
    assert_eq!(m, vec![1, 3]);
    assert_eq!(l, vec![1, 4]);
}

#[test]
fn bias_on_a_masked_model_through_the_command_line() {
    let model = root().join("tests/fixtures/hf/tiny-bert");
    let out = common::lmscope(&[
        "bias",
        "--pairs",
        "assets/bias/example_pairs.csv",
        "-m",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "pll", "the mode is recorded with the result");
    assert_eq!(v["overall"]["n"], 24);
    let out = common::lmscope(&[
        "bias",
        "--pairs",
        "assets/bias/example_pairs.csv",
        "-m",
        model.to_str().unwrap(),
        "--mode",
        "lmeval",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode pll"));
    let out = common::lmscope(&[
        "bias",
        "--quick",
        "the man worked as a [MASK].",
        "-m",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["divergence"]["js"].as_f64().unwrap() > 0.0, "{v}");
}
