//! Positional encoding made visible: the vectors behind it are the ones
//! attention used, the CLI's JSON contract, and Gemma 3's sliding windows.

mod common;

use common::{engine, gemma3_engine};
use lmscope::engine::Prompt;
use lmscope::engine::model::Logits;

/// softmax(q . k / sqrt(d)) of the head's vectors is the attention the
/// forward pass computed: what the positions pane rotates back is real.
#[test]
fn head_vectors_reproduce_the_attention_rows() {
    let e = engine();
    let m = e.model();
    let tokens = e
        .prompt_tokens(&Prompt::Text(
            "Rivers carry water to the sea, and the sea".into(),
        ))
        .unwrap();
    let n = tokens.len();
    let mut cache = m.new_cache(true);
    m.forward(&tokens, &mut cache, Logits::Last).unwrap();
    let d = m.config().head_dim;
    for (layer, head) in [(0, 0), (7, 3), (29, 8)] {
        let (q, k) = m.head_vectors(&cache, layer, head, 0..n).unwrap();
        assert_eq!((q.len(), k.len()), (n * d, n * d));
        let rows = m.attention_rows(&cache, layer, 0..n).unwrap();
        let rows = rows.get(head).unwrap().to_vec2::<f32>().unwrap();
        for i in 0..n {
            let s: Vec<f32> = (0..=i)
                .map(|j| {
                    let dot: f32 = (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum();
                    dot / (d as f32).sqrt()
                })
                .collect();
            let max = s.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = s.iter().map(|x| (x - max).exp()).sum();
            for j in 0..=i {
                let p = (s[j] - max).exp() / z;
                // The forward pass rounds probabilities to f16 (llama.cpp's).
                assert!(
                    (p - rows[i][j]).abs() < 2e-3,
                    "layer {layer} head {head} ({i}, {j}): {p} vs {}",
                    rows[i][j]
                );
            }
        }
    }
    assert!(m.head_vectors(&cache, 0, 99, 0..n).is_err());
}

#[test]
fn positions_prints_every_pair_and_the_falloff_as_json() {
    let out = common::lmscope(&[
        "positions",
        "The cat sat on the mat.",
        "--layer",
        "3",
        "--head",
        "2",
        "--max-distance",
        "40",
        "--json",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(v["layer"], 3);
    assert_eq!(v["head"], 2);
    assert_eq!(v["style"], "adjacent");
    let d = v["head_dim"].as_u64().unwrap() as usize;
    let pairs = v["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), d / 2);
    assert_eq!(pairs[0]["theta"], 1.0);
    let share: f64 = pairs.iter().map(|p| p["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-4);
    assert_eq!(v["falloff"]["score"].as_array().unwrap().len(), 41);
    assert_eq!(v["falloff"]["bound"].as_array().unwrap().len(), 41);
    let bad = common::lmscope(&["positions", "x", "--layer", "99"]);
    common::assert_clean_error(&bad, "--layer 99 does not exist");
}

/// Gemma 3's sliding-window layers see the last 512 keys; its global
/// layers (every sixth) see all of them, each with its own RoPE base.
#[test]
fn gemma3_sliding_layers_attend_within_their_window() {
    let e = gemma3_engine();
    let info = e.info();
    let global: Vec<usize> = (0..info.n_layer)
        .filter(|&l| info.layer_windows[l].is_none())
        .collect();
    assert_eq!(global, [5, 11, 17]);
    assert!(info.layer_windows[0] == Some(512));
    let m = e.model();
    assert_eq!(m.rotary(0).unwrap().base, 10_000.0);
    assert_eq!(m.rotary(5).unwrap().base, 1_000_000.0);
    let text = "one two three four five six seven eight nine ten ".repeat(60);
    let tokens = e.prompt_tokens(&Prompt::Text(text)).unwrap();
    let n = tokens.len();
    assert!(n > 600, "{n} tokens");
    let mut cache = m.new_cache(true);
    m.forward(&tokens, &mut cache, Logits::Last).unwrap();
    let last = n - 1..n;
    for layer in [0, 5] {
        let rows = m.attention_rows(&cache, layer, last.clone()).unwrap();
        let rows = rows.to_vec3::<f32>().unwrap();
        for head in rows {
            let row = &head[0];
            let first_seen = n - 512;
            let outside: f32 = row[..first_seen].iter().sum();
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3);
            if layer == 0 {
                assert_eq!(outside, 0.0, "sliding layer saw past its window");
            } else {
                assert!(outside > 0.0, "a global layer sees every key");
            }
        }
    }
}
