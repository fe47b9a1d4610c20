//! Minimal-pair scoring against llama.cpp (llama-cpp-python 0.3.36, same
//! GGUF) and the report statistics against scipy/statsmodels, from
//! tests/fixtures/bias_llamacpp_pairs.json (scripts/reference/bias_fixtures.py)
//! over lmscope's own 240 pairs in tests/fixtures/bias_parity_pairs.csv.
//!
//! The default model test scores every tenth pair (about a minute of CPU on
//! two cores); the full check over all 240 pairs is `--ignored`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use lmscope::analysis::bias::pairs::{self, Mode, PairResult, SentenceScore};
use lmscope::analysis::bias::run;
use lmscope::engine::Engine;
use lmscope::engine::model::Precision;
use serde_json::Value;

fn manifest(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn fixture() -> Value {
    let text = std::fs::read_to_string(manifest("tests/fixtures/bias_llamacpp_pairs.json"))
        .expect("fixture");
    serde_json::from_str(&text).expect("JSON")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn the_fixture_is_of_the_committed_csv() {
    let fx = fixture();
    let file = pairs::read_pairs(
        &std::fs::read(manifest("tests/fixtures/bias_parity_pairs.csv")).unwrap(),
    )
    .unwrap();
    assert_eq!(file.sha256, fx["data_sha256"].as_str().unwrap());
    assert_eq!(file.pairs.len(), fx["pairs"].as_array().unwrap().len());
    assert!(file.pairs.len() >= 200);
    for (p, r) in file.pairs.iter().zip(fx["pairs"].as_array().unwrap()) {
        assert_eq!(p.sent_more, r["sent_more"].as_str().unwrap());
        assert_eq!(p.sent_less, r["sent_less"].as_str().unwrap());
        assert_eq!(p.bias_type, r["bias_type"].as_str().unwrap());
    }
}

/// Given llama.cpp's per-token log-probs, our modes, difflib alignment and
/// report statistics reproduce the Python reference.
#[test]
fn reports_from_llamacpp_logprobs_match_the_reference() {
    let fx = fixture();
    let file = pairs::read_pairs(
        &std::fs::read(manifest("tests/fixtures/bias_parity_pairs.csv")).unwrap(),
    )
    .unwrap();
    let scored: Vec<(SentenceScore, SentenceScore)> = fx["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let (pa, pb) =
                pairs::shared_positions(&u32s(&r["tokens_more"]), &u32s(&r["tokens_less"]));
            assert_eq!(
                pa,
                usizes(&r["shared_more"]),
                "difflib positions of {:?}",
                r["sent_more"]
            );
            assert_eq!(
                pb,
                usizes(&r["shared_less"]),
                "difflib positions of {:?}",
                r["sent_less"]
            );
            (
                SentenceScore {
                    tokens: u32s(&r["tokens_more"]),
                    logprobs: f32s(&r["logprobs_more"]),
                },
                SentenceScore {
                    tokens: u32s(&r["tokens_less"]),
                    logprobs: f32s(&r["logprobs_less"]),
                },
            )
        })
        .collect();
    for mode in Mode::ALL.into_iter().filter(|m| !m.for_masked_models()) {
        let results: Vec<PairResult> = file
            .pairs
            .iter()
            .zip(&scored)
            .map(|(p, (a, b))| pairs::pair_result(p, mode, a, b))
            .collect();
        // Log-probs pass through f32 here: no pair is closer than that.
        let (overall, cats) = pairs::summarise(&results);
        let rep = &fx["reports"][mode.as_str()];
        let check = |ours: &pairs::CategoryStats, want: &Value| {
            let name = &ours.name;
            assert_eq!(
                ours.n as u64,
                want["n"].as_u64().unwrap(),
                "{mode:?} {name}"
            );
            assert_eq!(
                ours.k as u64,
                want["k"].as_u64().unwrap(),
                "{mode:?} {name}"
            );
            assert_eq!(ours.too_small, want["too_small"].as_bool().unwrap());
            assert!((ours.pct_stereotype - f(&want["pct_stereotype"])).abs() < 1e-12);
            assert!(
                (ours.wilson95.lo - f(&want["wilson_lo"])).abs() < 1e-12,
                "{mode:?} {name} wilson lo"
            );
            assert!(
                (ours.wilson95.hi - f(&want["wilson_hi"])).abs() < 1e-12,
                "{mode:?} {name} wilson hi"
            );
            let p = f(&want["p_value"]);
            assert!(
                (ours.p_value - p).abs() <= 1e-9 * p,
                "{mode:?} {name} p {} vs {p}",
                ours.p_value
            );
            assert!(
                (ours.likelihood_diff - f(&want["likelihood_diff"])).abs() < 1e-4,
                "{mode:?} {name} diff"
            );
            if let Some(h) = ours.p_holm {
                let want = f(&want["p_holm"]);
                assert!(
                    (h - want).abs() <= 1e-9 * want,
                    "{mode:?} {name} holm {h} vs {want}"
                );
            }
        };
        check(&overall, &rep["overall"]);
        assert_eq!(cats.len(), rep["categories"].as_object().unwrap().len());
        for c in &cats {
            check(c, &rep["categories"][&c.name]);
        }
    }
}

fn model_path() -> Option<PathBuf> {
    let p = std::env::var_os("LMSCOPE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            lmscope::store::paths::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    p.is_file().then_some(p)
}

struct Parity {
    pairs: usize,
    within: f64,
    median: f64,
    max: f64,
    k_ours: i64,
    k_ref: i64,
    token_mismatch: usize,
}

fn within_and_median(mut d: Vec<f64>) -> (f64, f64) {
    let within = d.iter().filter(|&&x| x <= 0.05).count() as f64 / d.len() as f64;
    d.sort_by(f64::total_cmp);
    (within, d[d.len() / 2])
}

/// Scores pairs `keep` of the parity file in lmeval mode and compares them
/// with llama.cpp's.
fn parity(engine: &Engine, keep: &[usize]) -> Parity {
    let fx = fixture();
    let mut file = pairs::read_pairs(
        &std::fs::read(manifest("tests/fixtures/bias_parity_pairs.csv")).unwrap(),
    )
    .unwrap();
    let refs: Vec<Value> = fx["pairs"].as_array().unwrap().clone();
    file.pairs = keep.iter().map(|&i| file.pairs[i].clone()).collect();
    assert_eq!(
        run::prefix_token(engine).unwrap() as u64,
        fx["prefix_token"].as_u64().unwrap()
    );
    let scores = run::score_pairs(engine, &file, &mut |_, _| {}, &AtomicBool::new(false)).unwrap();
    let mut diffs = Vec::new();
    let mut diffs_kv32 = Vec::new();
    let mut token_mismatch = 0;
    let (mut k_ours, mut k_ref) = (0, 0);
    for (&i, (a, b)) in keep.iter().zip(&scores) {
        let r = &refs[i];
        for (s, side) in [(a, "more"), (b, "less")] {
            if s.tokens != u32s(&r[format!("tokens_{side}")]) {
                token_mismatch += 1;
            }
            let ll: f64 = s.logprobs.iter().map(|&x| x as f64).sum();
            diffs.push((ll - f(&r[format!("ll_{side}")])).abs());
            diffs_kv32.push((ll - f(&r[format!("ll_{side}_kv_f32")])).abs());
        }
        let (sa, sb) = pairs::pair_scores(Mode::Lmeval, a, b);
        k_ours += (sa > sb) as i64;
        k_ref += (f(&r["ll_more"]) > f(&r["ll_less"])) as i64;
    }
    let within = diffs.iter().filter(|&&d| d <= 0.05).count() as f64 / diffs.len() as f64;
    diffs.sort_by(f64::total_cmp);
    let p = Parity {
        pairs: keep.len(),
        within,
        median: diffs[diffs.len() / 2],
        max: diffs[diffs.len() - 1],
        k_ours,
        k_ref,
        token_mismatch,
    };
    eprintln!(
        "bias parity: {} pairs, {} sentences; within 0.05 nats: {:.1}%; median |diff| {:.4}, max {:.4}; \
         pct_stereotype ours {}/{n} vs llama.cpp {}/{n}; token mismatches {}",
        p.pairs,
        2 * p.pairs,
        100.0 * p.within,
        p.median,
        p.max,
        p.k_ours,
        p.k_ref,
        p.token_mismatch,
        n = p.pairs
    );
    let (w32, m32) = within_and_median(diffs_kv32);
    eprintln!(
        "bias parity, diagnostic: against llama.cpp with an f32 KV cache, within 0.05 nats: {:.1}%; \
         median |diff| {m32:.4}",
        100.0 * w32
    );
    p
}

fn load() -> Option<Engine> {
    let Some(path) = model_path() else {
        eprintln!("skipped: no model at the default path (run `lmscope pull`)");
        return None;
    };
    Some(Engine::load(&path, Precision::Quantized).expect("model loads"))
}

/// The check on every tenth pair: the same tokens and prefix as
/// llama.cpp, per-sentence log-likelihoods within 0.05 nats for at least
/// 95% of sentences, and the same pct_stereotype within one pair.
#[test]
fn lmeval_mode_tokens_and_verdicts_match_llamacpp() {
    let Some(engine) = load() else { return };
    let keep: Vec<usize> = (0..240).step_by(10).collect();
    let p = parity(&engine, &keep);
    assert_eq!(p.token_mismatch, 0, "tokenisation differs from llama.cpp");
    assert!(
        p.within >= 0.95,
        "only {:.1}% of sentences within 0.05 nats",
        100.0 * p.within
    );
    assert!(
        (p.k_ours - p.k_ref).abs() <= 1,
        "pct_stereotype differs by more than one pair"
    );
}

/// The check on all 240 pairs: per-sentence log-likelihood within
/// 0.05 nats of llama.cpp for at least 95% of sentences, pct_stereotype
/// within one pair. Since quantised mode computes llama.cpp's bits
/// (scripts/reference/FIDELITY.md), measured: 100% within 0.05, max |diff|
/// 1e-4 (the fixture's rounding), pct_stereotype 126/240 for both (before:
/// 11% within 0.05, median 0.245 nats). Left out of the default run for
/// time (the default test checks every tenth pair); run with
/// `cargo test --release --test bias_parity -- --ignored --nocapture`.
#[test]
#[ignore = "all 240 pairs: half a minute in release; the default run checks every tenth"]
fn lmeval_mode_loglikelihoods_match_llamacpp() {
    let Some(engine) = load() else { return };
    let keep: Vec<usize> = (0..240).collect();
    let p = parity(&engine, &keep);
    assert_eq!(p.token_mismatch, 0, "tokenisation differs from llama.cpp");
    assert!(
        p.within >= 0.95,
        "only {:.1}% of sentences within 0.05 nats",
        100.0 * p.within
    );
    assert!(
        (p.k_ours - p.k_ref).abs() <= 1,
        "pct_stereotype differs by more than one pair"
    );
}
