//! Masked language models against transformers: tiny random-initialised
//! BERT (with MLM and NSP heads), RoBERTa and DistilBERT checkpoints
//! (`tests/fixtures/hf/`, made with `scripts/reference/hf_tiny_encoders.py`:
//! seeded, fp32, eager attention, CPU) give transformers' tokens (pairs and
//! segments included), MLM logits, last hidden states, attention of every
//! layer and head, and NSP probabilities.

use std::path::PathBuf;

use lmscope::engine::masked::MaskedEngine;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    tokenizer: Vec<TokenCase>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    #[serde(default)]
    pair: Option<String>,
    ids: Vec<u32>,
    #[serde(default)]
    type_ids: Option<Vec<u32>>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    pair: Option<String>,
    ids: Vec<u32>,
    type_ids: Vec<u32>,
    mask_positions: Vec<usize>,
    /// (position, vocab)
    mlm_logits: Vec<Vec<f32>>,
    /// (position, hidden)
    hidden_last: Vec<Vec<f32>>,
    /// [layer][head][query][key]
    attention: Vec<Vec<Vec<Vec<f32>>>>,
    #[serde(default)]
    nsp_probs: Option<[f32; 2]>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

fn fixture(name: &str) -> (MaskedEngine, Fixture) {
    let engine = MaskedEngine::load(&dir().join(name)).expect("the folder loads");
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).expect("fixture");
    (engine, serde_json::from_str(&text).expect("fixture parses"))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(name: &str) {
    let (engine, fx) = fixture(name);
    assert!(fx.tokenizer.len() >= 30, "{name}: at least 30 strings");
    for case in &fx.tokenizer {
        let e = engine
            .tokenizer()
            .encode(&case.text, case.pair.as_deref())
            .unwrap();
        assert_eq!(e.ids, case.ids, "{name}: ids of {:?}", case.text);
        if let Some(types) = &case.type_ids {
            assert_eq!(&e.types, types, "{name}: segments of {:?}", case.text);
        }
    }
    let (mut logit_diff, mut hidden_diff, mut attn_diff, mut nsp_diff) = (0f32, 0f32, 0f32, 0f32);
    for case in &fx.cases {
        let e = engine.encode(&case.text, case.pair.as_deref()).unwrap();
        assert_eq!(e.ids, case.ids, "{name}: ids of {:?}", case.text);
        assert_eq!(
            e.types, case.type_ids,
            "{name}: segments of {:?}",
            case.text
        );
        assert_eq!(engine.mask_positions(&e.ids), case.mask_positions);
        let out = engine.forward(&e, true).unwrap();
        let hidden: Vec<Vec<f32>> = out.hidden.to_vec2().unwrap();
        for (ours, theirs) in hidden.iter().zip(&case.hidden_last) {
            hidden_diff = hidden_diff.max(max_diff(ours, theirs));
        }
        let all: Vec<usize> = (0..e.ids.len()).collect();
        let logits = engine.logits_at(&out.hidden, &all).unwrap();
        for (ours, theirs) in logits.iter().zip(&case.mlm_logits) {
            logit_diff = logit_diff.max(max_diff(ours, theirs));
        }
        assert_eq!(out.attention.len(), case.attention.len());
        for (ours, theirs) in out.attention.iter().zip(&case.attention) {
            let ours: Vec<Vec<Vec<f32>>> = ours.to_vec3().unwrap();
            for (oh, th) in ours.iter().zip(theirs) {
                for (oq, tq) in oh.iter().zip(th) {
                    attn_diff = attn_diff.max(max_diff(oq, tq));
                }
            }
        }
        match (case.nsp_probs, &case.pair) {
            (Some(want), Some(b)) => {
                let p = engine.next_sentence(&case.text, b).unwrap();
                nsp_diff = nsp_diff.max((p - want[0]).abs());
            }
            (Some(want), None) => {
                let p = engine.encoder().nsp_probs(&out.hidden).unwrap().unwrap();
                nsp_diff = nsp_diff.max((p[0] - want[0]).abs());
            }
            _ => {}
        }
    }
    eprintln!(
        "{name}: max |diff| MLM logits {logit_diff:.2e}, hidden {hidden_diff:.2e}, attention {attn_diff:.2e}, NSP {nsp_diff:.2e}"
    );
    assert!(
        logit_diff < 1e-4,
        "{name}: MLM logits differ by {logit_diff}"
    );
    assert!(
        hidden_diff < 1e-4,
        "{name}: hidden states differ by {hidden_diff}"
    );
    assert!(attn_diff < 1e-5, "{name}: attention differs by {attn_diff}");
    assert!(nsp_diff < 1e-5, "{name}: NSP differs by {nsp_diff}");
}

#[test]
fn tiny_bert_matches_transformers() {
    check("tiny-bert");
}

#[test]
fn tiny_roberta_matches_transformers() {
    check("tiny-roberta");
}

#[test]
fn tiny_distilbert_matches_transformers() {
    check("tiny-distilbert");
}

#[test]
fn the_heads_are_found_where_the_checkpoint_has_them() {
    let bert = MaskedEngine::load(&dir().join("tiny-bert")).unwrap();
    assert!(bert.info().mlm_head && bert.info().nsp_head);
    let roberta = MaskedEngine::load(&dir().join("tiny-roberta")).unwrap();
    assert!(roberta.info().mlm_head && !roberta.info().nsp_head);
    let err = roberta
        .next_sentence("a", "b")
        .expect_err("no NSP head")
        .to_string();
    assert!(err.contains("no next-sentence head"), "{err}");
}

#[test]
fn fill_mask_gives_the_softmax_of_the_logits_at_each_mask() {
    let (engine, fx) = fixture("tiny-bert");
    let case = fx
        .cases
        .iter()
        .find(|c| c.pair.is_none() && !c.mask_positions.is_empty())
        .unwrap();
    let result = engine.fill(&case.text, 5).unwrap();
    assert_eq!(result.masks.len(), case.mask_positions.len());
    for m in &result.masks {
        let row = &case.mlm_logits[m.position];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
        let mut want: Vec<(f64, usize)> = row
            .iter()
            .enumerate()
            .map(|(i, &l)| ((l as f64 - max).exp() / z, i))
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (c, (p, id)) in m.top.iter().zip(&want) {
            assert_eq!(c.token_id as usize, *id);
            assert!((c.p as f64 - p).abs() < 1e-5, "{} vs {p}", c.p);
        }
    }
}

#[test]
fn positions_of_an_encoder_are_its_learned_table_from_the_padding_offset_on() {
    // RoBERTa numbers positions from padding id + 1: row 2 is position 0.
    let path = dir().join("tiny-roberta");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args([
            "positions",
            "-",
            "-m",
            path.to_str().unwrap(),
            "--max-distance",
            "9",
            "--json",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "learned");
    assert_eq!(v["positions"], 10);
    let folder = lmscope::engine::load::safetensors::HfFolder::open(&path).unwrap();
    let (shape, table) = folder
        .read("roberta.embeddings.position_embeddings.weight")
        .unwrap();
    let d = shape[1];
    for p in 0..10 {
        let row = &table[(p + 2) * d..(p + 3) * d];
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        let got = v["norms"][p].as_f64().unwrap() as f32;
        assert!((got - norm).abs() < 1e-4, "position {p}: {got} vs {norm}");
    }
}
