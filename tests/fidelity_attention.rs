//! Attention probabilities against an independent float64 numpy forward
//! pass over the dequantised GGUF (tests/fixtures/reference_attention.json,
//! made by scripts/reference/numpy_attention.py; it agrees with HF
//! transformers' eager attention to ~5e-5 in the logits).
//!
//! In f32 precision (dequantised weights, float activations: the same
//! arithmetic as the reference) every row matches within 0.001. The
//! quantised path rounds activations to 8 bits as llama.cpp does; that
//! (and llama.cpp's f16 rounding of q, k, v and the probabilities, which
//! the quantised path copies) moves ~5% of rows by more than 0.02,
//! and the f32 test shows it is that rounding and nothing else: the same
//! code with float activations matches within 0.001.

mod common;

use common::{engine, engine_f32, fixture};
use lmscope::engine::sampling::SamplerSettings;
use lmscope::engine::{Engine, Prompt, Request};

/// Per case: the largest |ours - reference| over all rows of the fixture's
/// layers, and the share of rows whose largest difference is within 0.02.
fn max_attention_error(e: &Engine) -> Vec<(String, f32, f64)> {
    let fx = fixture("reference_attention.json");
    let layers: Vec<usize> = fx["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let mut out = Vec::new();
    for case in fx["cases"].as_array().unwrap() {
        let tokens = common::ids(&case["tokens"]);
        let request = Request {
            sampler: SamplerSettings::greedy(),
            attach_attention: true,
            max_tokens: 1,
            ..Request::new(Prompt::Tokens(tokens.clone()))
        };
        let mut g = e.start(&request).unwrap();
        let prompt = g.prefill(e).unwrap();
        let att = prompt.attention.expect("captured");
        assert_eq!((att.n_query, att.n_key), (tokens.len(), tokens.len()));
        let mut worst = 0f32;
        let (mut n_ok, mut n_rows) = (0usize, 0usize);
        for &layer in &layers {
            let heads = case["attention"][layer.to_string()].as_array().unwrap();
            assert_eq!(heads.len(), att.n_head);
            for (h, rows) in heads.iter().enumerate() {
                for (q, row) in rows.as_array().unwrap().iter().enumerate() {
                    let ours = att.causal_row(layer, h, q);
                    let want: Vec<f32> = row
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap() as f32)
                        .collect();
                    assert_eq!(ours.len(), want.len());
                    let row_worst = ours
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    worst = worst.max(row_worst);
                    n_rows += 1;
                    n_ok += usize::from(row_worst <= 0.02);
                    let sum: f32 = ours.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-4, "row sums to {sum}");
                    assert!(
                        att.row(layer, h, q)[q + 1..].iter().all(|&w| w == 0.0),
                        "no weight on the future"
                    );
                }
            }
        }
        out.push((
            case["name"].as_str().unwrap().to_string(),
            worst,
            n_ok as f64 / n_rows as f64,
        ));
    }
    out
}

#[test]
fn f32_attention_matches_the_float64_reference_within_0_001() {
    for (name, worst, _) in max_attention_error(engine_f32()) {
        eprintln!("f32 {name}: max |diff| {worst:.2e}");
        assert!(worst <= 1e-3, "{name}: {worst}");
    }
}

#[test]
fn quantized_attention_rows_stay_within_0_02_but_for_activation_rounding() {
    for (name, worst, share) in max_attention_error(engine()) {
        eprintln!(
            "quantized {name}: max |diff| {worst:.2e}, rows within 0.02: {:.2}%",
            share * 100.0
        );
        assert!(
            share >= 0.90,
            "{name}: only {:.1}% of rows within 0.02",
            share * 100.0
        );
        assert!(
            worst <= 0.1,
            "{name}: a row moved by {worst}, more than 8-bit rounding explains"
        );
    }
}

/// The same float64 reference's log-probabilities: every teacher-forced
/// next token, and the top 20 after the last position. In f32 precision the
/// arithmetic is the reference's, so they agree to 1e-3.
#[test]
fn f32_logprobs_match_the_float64_reference() {
    let fx = fixture("reference_attention.json");
    let e = engine_f32();
    let mut worst = 0f32;
    for case in fx["cases"].as_array().unwrap() {
        let tokens = common::ids(&case["tokens"]);
        let ours = e.token_logprobs(&tokens, 1).unwrap();
        let want: Vec<f32> = case["logprobs_next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(ours.len(), want.len());
        for (a, b) in ours.iter().zip(&want) {
            worst = worst.max((a - b).abs());
        }
        let request = Request {
            sampler: SamplerSettings::greedy(),
            max_tokens: 1,
            top_n: 20,
            ..Request::new(Prompt::Tokens(tokens))
        };
        let mut g = e.start(&request).unwrap();
        let step = g.step(e).unwrap().unwrap();
        for pair in case["last_logprobs_top"].as_array().unwrap() {
            let id = pair[0].as_u64().unwrap() as u32;
            let ours = step
                .top
                .iter()
                .find(|t| t.token_id == id)
                .expect("in our top 20");
            worst = worst.max((ours.p_raw.ln() - pair[1].as_f64().unwrap() as f32).abs());
        }
    }
    eprintln!("f32 log-probabilities: max |diff| {worst:.2e}");
    assert!(worst <= 1e-3, "{worst}");
}

#[test]
fn rows_recomputed_for_part_of_the_prompt_equal_the_whole_prompts_rows() {
    // A capturing cache keeps what recomputes the queries (in quantised
    // mode, the query projection's 8-bit inputs): each row must come out
    // the same whichever range of queries is asked for.
    for e in [engine(), engine_f32()] {
        let request = Request {
            sampler: SamplerSettings::greedy(),
            capture_attention: true,
            max_tokens: 1,
            ..Request::new(Prompt::Text(
                "The quick brown fox jumps over the lazy dog, twice.".into(),
            ))
        };
        let mut g = e
            .start(&Request {
                max_tokens: 3,
                ..request
            })
            .unwrap();
        g.prefill(e).unwrap();
        // Three steps (two one-token forwards): the last position comes from a
        // one-token step, whose query row the cache keeps.
        for _ in 0..3 {
            g.step(e).unwrap();
        }
        let n = g.cache().len();
        let whole = e.attention(g.cache(), 0..n).unwrap();
        for part in [0..1, 3..7, n - 1..n] {
            let rows = e.attention(g.cache(), part.clone()).unwrap();
            for layer in [0, whole.n_layer - 1] {
                for h in 0..whole.n_head {
                    for (i, q) in part.clone().enumerate() {
                        assert_eq!(
                            rows.causal_row(layer, h, i),
                            whole.causal_row(layer, h, q),
                            "layer {layer} head {h} query {q}"
                        );
                    }
                }
            }
        }
    }
}
