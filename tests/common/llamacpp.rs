//! Our engine against a llama.cpp fixture made by
//! scripts/reference/llamacpp_fixtures.py: tokenizer ids, and greedy
//! continuations with llama.cpp's top-10 log-probabilities at each step.

use lmscope::engine::chat::Message;
use lmscope::engine::sampling::SamplerSettings;
use lmscope::engine::{Engine, Prompt, Request};

/// Every string's ids equal llama.cpp's, with control tokens parsed and
/// without, and its plain ids decode back to it exactly.
pub fn check_tokenizer(e: &Engine, fx: &serde_json::Value) {
    let tok = e.tokenizer();
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = |k: &str| {
            let mut v = super::ids(&case[k]);
            // The fixture's ids come without the BOS the model adds.
            if tok.add_bos {
                v.splice(0..0, tok.bos);
            }
            v
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
        assert_eq!(
            tok.decode(&super::ids(&case["ids_plain"])),
            text,
            "round trip: {text:?}"
        );
    }
}

/// How our greedy runs compared with llama.cpp's.
pub struct Greedy {
    pub cases: usize,
    pub identical: usize,
    /// (case, step, llama.cpp's top-2 logit gap there) where we diverged.
    pub divergences: Vec<(String, usize, f64)>,
    /// |our log-prob - llama.cpp's| of its top 10 at every step up to the
    /// first divergence, sorted.
    pub errs: Vec<f32>,
}

impl Greedy {
    pub fn max_err(&self) -> f32 {
        self.errs.last().copied().unwrap_or(0.0)
    }
}

/// Runs every fixture case greedily, step by step, stopping a case where
/// our token first differs from llama.cpp's.
pub fn greedy(e: &Engine, fx: &serde_json::Value) -> Greedy {
    let cases = fx["cases"].as_array().unwrap();
    let mut out = Greedy {
        cases: cases.len(),
        identical: 0,
        divergences: Vec::new(),
        errs: Vec::new(),
    };
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
        let want_prompt = super::ids(&case["prompt_tokens"]);
        let want = super::ids(&case["tokens"]);
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
        let mut case_errs = Vec::new();
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
                case_errs.push((ours.p_raw.ln() - want_lp).abs());
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
                out.identical += 1;
            }
            Some(i) => {
                let gap = case["steps"][i]["gap12"].as_f64().unwrap();
                out.divergences.push((name.to_string(), i, gap));
            }
        }
        case_errs.sort_by(f32::total_cmp);
        report.push(format!(
            "{name}: {} median |dlogprob| {:.2e} max {:.2e}",
            diverged_at.map_or("identical".into(), |i| format!("diverged at {i}")),
            case_errs[case_errs.len() / 2],
            case_errs[case_errs.len() - 1]
        ));
        out.errs.extend(case_errs);
    }
    out.errs.sort_by(f32::total_cmp);
    let errs = &out.errs;
    eprintln!("{}", report.join("\n"));
    eprintln!(
        "divergences (case, step, llama.cpp's top-2 logit gap there): {:?}",
        out.divergences
    );
    let within = errs.iter().filter(|&&e| e <= 0.05).count() as f64 / errs.len() as f64;
    eprintln!(
        "{} log-probabilities: {:.1}% within 0.05, median {:.2e}, p95 {:.2e}, max {:.2e}",
        errs.len(),
        within * 100.0,
        errs[errs.len() / 2],
        errs[errs.len() * 95 / 100],
        errs[errs.len() - 1]
    );
    out
}
