//! Hugging Face folders against transformers: tiny random-initialised
//! GPT-2 and Llama checkpoints (`tests/fixtures/hf/`, made with
//! `scripts/reference/hf_tiny.py`: seeded, fp32, eager attention, CPU)
//! give transformers' tokens, logits, attention and greedy tokens.

use std::path::PathBuf;

use lmscope::engine::Engine;
use lmscope::engine::model::{Logits, Precision};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    tokenizer: Vec<TokenCase>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct TokenCase {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Case {
    ids: Vec<u32>,
    /// (position, vocab)
    logits: Vec<Vec<f32>>,
    /// [layer][head][query][key]
    attention: Vec<Vec<Vec<Vec<f32>>>>,
    greedy: Vec<u32>,
    /// transformers' hidden_states at the last position: [0] the
    /// embedding, [l] after block l - 1, the last after the final norm.
    hidden_last: Vec<Vec<f32>>,
}

fn fixture(name: &str) -> (Engine, Fixture) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf");
    let engine = Engine::load(&dir.join(name), Precision::F32).expect("the folder loads");
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("fixture");
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
    let tok = engine.tokenizer();
    assert!(fx.tokenizer.len() >= 30);
    for case in &fx.tokenizer {
        assert_eq!(
            tok.encode(&case.text, true).unwrap(),
            case.ids,
            "{name}: ids of {:?}",
            case.text
        );
        assert_eq!(
            tok.decode(&case.ids),
            case.text,
            "{name}: round trip of {:?}",
            case.text
        );
    }
    let model = engine.model();
    let (mut worst_logit, mut worst_attention) = (0f32, 0f32);
    for case in &fx.cases {
        let mut cache = model.new_cache(true);
        let logits = model.forward(&case.ids, &mut cache, Logits::All).unwrap();
        let ours: Vec<Vec<f32>> = logits.to_vec2().unwrap();
        for (p, (a, b)) in ours.iter().zip(&case.logits).enumerate() {
            let d = max_diff(a, b);
            worst_logit = worst_logit.max(d);
            assert!(d < 1e-4, "{name}: logits at position {p} differ by {d}");
        }
        let n = case.ids.len();
        for (l, heads) in case.attention.iter().enumerate() {
            let rows = model.attention_rows(&cache, l, 0..n).unwrap();
            let rows: Vec<Vec<Vec<f32>>> = rows.to_vec3().unwrap();
            for (h, (ours, theirs)) in rows.iter().zip(heads).enumerate() {
                for (q, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    let d = max_diff(a, b);
                    worst_attention = worst_attention.max(d);
                    assert!(
                        d < 1e-5,
                        "{name}: layer {l} head {h} query {q}: attention differs by {d}"
                    );
                }
            }
        }
        // Greedy continuation, one token at a time through the cache.
        let mut cache = model.new_cache(false);
        let mut next = model.forward(&case.ids, &mut cache, Logits::Last).unwrap();
        let mut greedy = Vec::new();
        for _ in 0..case.greedy.len() {
            let row: Vec<f32> = next.squeeze(0).unwrap().to_vec1().unwrap();
            let id = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap() as u32;
            greedy.push(id);
            next = model.forward(&[id], &mut cache, Logits::Last).unwrap();
        }
        assert_eq!(greedy, case.greedy, "{name}: greedy tokens");
    }
    eprintln!("{name}: max |logit diff| {worst_logit:e}, max |attention diff| {worst_attention:e}");
}

#[test]
fn tiny_llama_folder_matches_transformers() {
    check("tiny-llama");
}

#[test]
fn tiny_gpt2_folder_matches_transformers() {
    check("tiny-gpt2");
}

/// A session of a folder model records the folder's hash and replays.
#[test]
fn a_folder_models_session_saves_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-gpt2");
    let session = dir.path().join("run.json");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_lmscope"))
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (m, s) = (model.to_str().unwrap(), session.to_str().unwrap());
    run(&[
        "generate",
        "-m",
        m,
        "Rivers carry",
        "--max-tokens",
        "5",
        "--save",
        s,
    ]);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    assert_eq!(saved["model"]["sha256"].as_str().map(str::len), Some(64));
    assert!(run(&["session", "replay", s]).contains("same 5 tokens"));
}

/// F16 and BF16 checkpoints are read exactly: the tiny Llama's weights
/// stored in each half type give the very logits of the same rounded
/// weights stored in f32.
#[test]
fn half_precision_weights_read_exactly() {
    use safetensors::tensor::TensorView;
    use safetensors::{Dtype, SafeTensors};
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-llama");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = |name: &str, dtype: Dtype, round: &dyn Fn(f32) -> (f32, [u8; 2])| {
        let (half, wide) = (
            dir.path().join(name),
            dir.path().join(format!("{name}-f32")),
        );
        let mut halves: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut wides: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (n, v) in st.tensors() {
            let values = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let (mut h, mut w) = (Vec::new(), Vec::new());
            for x in values {
                let (r, b) = round(x);
                h.extend_from_slice(&b);
                w.extend_from_slice(&r.to_le_bytes());
            }
            halves.push((n.clone(), v.shape().to_vec(), h));
            wides.push((n, v.shape().to_vec(), w));
        }
        for (out, list, dt) in [(&half, &halves, dtype), (&wide, &wides, Dtype::F32)] {
            std::fs::create_dir_all(out).unwrap();
            for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
                std::fs::copy(src.join(f), out.join(f)).unwrap();
            }
            let views = list
                .iter()
                .map(|(n, s, b)| (n.as_str(), TensorView::new(dt, s.clone(), b).unwrap()));
            safetensors::serialize_to_file(views, None, &out.join("model.safetensors")).unwrap();
        }
        (half, wide)
    };
    let f16 = |x: f32| {
        let h = half::f16::from_f32(x);
        (h.to_f32(), h.to_le_bytes())
    };
    let bf16 = |x: f32| {
        let h = half::bf16::from_f32(x);
        (h.to_f32(), h.to_le_bytes())
    };
    let ids = [355u32, 312, 307, 67, 352, 265];
    for (name, dtype, round) in [
        ("f16", Dtype::F16, &f16 as &dyn Fn(f32) -> (f32, [u8; 2])),
        ("bf16", Dtype::BF16, &bf16),
    ] {
        let (half, wide) = folder(name, dtype, round);
        let logits = |dir: &std::path::Path| -> Vec<Vec<f32>> {
            let engine = Engine::load(dir, Precision::F32).expect("the folder loads");
            let model = engine.model();
            let mut cache = model.new_cache(false);
            model
                .forward(&ids, &mut cache, Logits::All)
                .unwrap()
                .to_vec2()
                .unwrap()
        };
        assert_eq!(
            logits(&half),
            logits(&wide),
            "{name} weights read as the same f32 values"
        );
        let engine = Engine::load(&half, Precision::F32).unwrap();
        assert!(
            engine.info().file_type.contains(&format!("{dtype:?}")),
            "{}",
            engine.info().file_type
        );
    }
}

/// The logit lens reads the residual stream: after the embedding and each
/// block it is transformers' hidden state, and through the final norm and
/// head the last one gives the logits.
fn check_residual_stream(name: &str) {
    let (engine, fx) = fixture(name);
    let model = engine.model();
    let (d, n_layer) = (model.config().d_model, model.config().n_layer);
    let mut worst = 0f32;
    for case in &fx.cases {
        let stream = model.residual_stream(&case.ids).unwrap();
        assert_eq!(stream.len(), n_layer + 1);
        let last = case.ids.len() - 1;
        for (l, want) in case.hidden_last.iter().enumerate().take(n_layer) {
            worst = worst.max(max_diff(&stream[l][last * d..(last + 1) * d], want));
        }
        let logits: Vec<Vec<f32>> = model
            .lens_logits(&stream[n_layer][last * d..(last + 1) * d])
            .unwrap()
            .to_vec2()
            .unwrap();
        worst = worst.max(max_diff(&logits[0], &case.logits[last]));
    }
    eprintln!("{name}: residual stream and lens logits max |diff| {worst:.2e}");
    assert!(worst < 1e-4, "{name}: {worst}");
}

#[test]
fn tiny_gpt2_residual_stream_matches_transformers_hidden_states() {
    check_residual_stream("tiny-gpt2");
}

#[test]
fn tiny_llama_residual_stream_matches_transformers_hidden_states() {
    check_residual_stream("tiny-llama");
}
