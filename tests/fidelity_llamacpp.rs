//! lmscope against llama.cpp on the same GGUF: tokenizer ids, greedy
//! continuations with their top-10 log-probabilities, and perplexity.
//! Fixtures: tests/fixtures/llamacpp_*.json, made by
//! scripts/reference/llamacpp_fixtures.py (llama-cpp-python 0.3.36).

mod common;

use common::{engine, fixture};
use lmscope::engine::chat::Message;
use lmscope::engine::sampling::SamplerSettings;
use lmscope::engine::{Prompt, Request};

#[test]
fn token_ids_match_llama_cpp_and_decode_back_exactly() {
    let fx = fixture("llamacpp_tokenizer.json");
    let tok = engine().tokenizer();
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = |k: &str| -> Vec<u32> {
            case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        };
        assert_eq!(
            tok.encode(text, false).unwrap(),
            ids("ids_plain"),
            "plain: {text:?}"
        );
        assert_eq!(
            tok.encode(text, true).unwrap(),
            ids("ids_special"),
            "special: {text:?}"
        );
        assert_eq!(tok.decode(&ids("ids_plain")), text, "round trip: {text:?}");
    }
}

/// Greedy 24-token continuations: identical for every prompt except where
/// llama.cpp itself saw a near-tie (top-2 logit gap < 0.05), where two
/// correct implementations may pick differently; top-10 log-probabilities
/// within 0.05 at every position up to the first divergence.
///
/// This needs activations rounded to 8 bits exactly as ggml does. candle
/// 0.11's Q4_1 path (quantize_row_q8_1 computing the block sum `s` as
/// f16(sum) * f16(d) in f16, where ggml rounds sum * d once) lands 0.2
/// away on the first capital-of-France step (-2.58 vs llama.cpp's -2.80;
/// float64 gives -2.74); our own kernels round as ggml does.
#[test]
fn greedy_continuations_and_logprobs_match_llama_cpp() {
    let fx = fixture("llamacpp_greedy.json");
    let e = engine();
    let cases = fx["cases"].as_array().unwrap();
    let mut identical = 0;
    let mut report = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let prompt_text = case["prompt_text"].as_str().unwrap();
        if case["chat"].as_bool().unwrap() {
            let user = case["user_message"].as_str().unwrap();
            let rendered = e
                .prompt_text(&Prompt::Chat(vec![Message::new("user", user)]))
                .unwrap();
            assert_eq!(rendered, prompt_text, "{name}: chat template");
        }
        let want_prompt: Vec<u32> = case["prompt_tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want: Vec<u32> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let request = Request {
            sampler: SamplerSettings::greedy(),
            max_tokens: want.len(),
            top_n: 40,
            ..Request::new(Prompt::Text(prompt_text.to_string()))
        };
        let mut g = e.start(&request).unwrap();
        assert_eq!(
            g.prompt_tokens(),
            want_prompt.as_slice(),
            "{name}: prompt tokens"
        );
        let mut got = Vec::new();
        let mut max_err = 0f32;
        let mut diverged_at = None;
        while let Some(step) = g.step(e).unwrap() {
            let i = step.step;
            // Log-probabilities of llama.cpp's top 10 at this position.
            for pair in case["steps"][i]["top"].as_array().unwrap() {
                let id = pair[0].as_u64().unwrap() as u32;
                let want_lp = pair[1].as_f64().unwrap() as f32;
                let ours = step.top.iter().find(|t| t.token_id == id);
                let ours =
                    ours.unwrap_or_else(|| panic!("{name} step {i}: token {id} not in our top 40"));
                let err = (ours.p_raw.ln() - want_lp).abs();
                max_err = max_err.max(err);
                assert!(
                    err <= 0.05,
                    "{name} step {i} token {id}: logprob {} vs {want_lp}",
                    ours.p_raw.ln()
                );
            }
            got.push(step.token_id);
            if step.token_id != want[i] {
                diverged_at = Some(i);
                break;
            }
        }
        match diverged_at {
            None => {
                assert_eq!(got, want, "{name}");
                identical += 1;
            }
            Some(i) => {
                let gap = case["steps"][i]["gap12"].as_f64().unwrap();
                assert!(
                    gap < 0.05,
                    "{name}: diverged at step {i} where llama.cpp's top-2 gap is {gap}, not a near-tie"
                );
            }
        }
        report.push(format!(
            "{name}: {} max |dlogprob| {max_err:.4}",
            diverged_at.map_or("identical".into(), |i| format!("diverged at {i}"))
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        identical >= cases.len() - 1,
        "{identical} of {} identical",
        cases.len()
    );
    assert!(cases.len() >= 10);
}

/// llama.cpp's perplexity rule at context 512 on our own 2,500-word text,
/// through the CLI's JSON contract: within 0.5% of llama.cpp's figure.
#[test]
fn perplexity_matches_llama_cpp() {
    let fx = fixture("llamacpp_perplexity.json");
    let run = fx["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ctx"] == 512)
        .unwrap();
    let text = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ppl_text.txt");
    let out = common::lmscope(&["score", text, "--ctx", "512", "--json"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(v["tokens"], run["n_tokens_text"]);
    assert_eq!(v["scored"], run["scored"]);
    assert_eq!(v["mode"], "chunks");
    let ppl = v["ppl"].as_f64().unwrap();
    let want = run["ppl"].as_f64().unwrap();
    let rel = (ppl - want).abs() / want;
    eprintln!(
        "perplexity {ppl:.4} vs llama.cpp {want:.4} ({:.3}%)",
        rel * 100.0
    );
    assert!(rel < 0.005, "perplexity {ppl} vs llama.cpp {want}");
    assert_eq!(
        v["per_token"].as_array().unwrap().len(),
        run["scored"].as_u64().unwrap() as usize
    );
}
