//! Occlusion attribution on the real model: each score is ln p(target)
//! with the prompt minus without that token, recomputed here from the
//! engine's own next-token logits; the words that carry the answer score
//! highest.

mod common;

use lmscope::engine::Prompt;

fn ln_p(logits: &[f32], t: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[t] as f64 - max - z.ln()
}

#[test]
fn occlusion_scores_are_the_drop_in_log_probability() {
    let model = common::model_path().to_str().unwrap().to_string();
    let prompt = "The capital of France is";
    let out = common::lmscope(&["attribute", prompt, "-m", &model, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target_text"], " Paris");
    let scores = v["tokens"].as_array().unwrap();
    let engine = common::engine();
    let tokens = engine.prompt_tokens(&Prompt::Text(prompt.into())).unwrap();
    assert_eq!(scores.len(), tokens.len());
    let target = v["target"].as_u64().unwrap() as usize;
    let base = ln_p(&engine.next_token_logits(&tokens).unwrap(), target);
    for (i, s) in scores.iter().enumerate() {
        let mut t = tokens.clone();
        t.remove(i);
        let want = base - ln_p(&engine.next_token_logits(&t).unwrap(), target);
        let got = s["score"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "position {i}: {got} vs {want}");
    }
    let by = |w: &str| {
        scores.iter().find(|s| s["text"] == w).unwrap()["score"]
            .as_f64()
            .unwrap()
    };
    assert!(by(" France") > by(" of"), "{v}");
    assert!(by(" capital") > by(" of"), "{v}");
}
