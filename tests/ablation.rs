//! Head ablation checked against an independent edit of the weights: a
//! copy of the tiny Llama whose output projection ignores one head (its
//! input columns zeroed in the safetensors file) gives the same logits as
//! the intact model with that head ablated. Plus the command line on the
//! real model.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use lmscope::engine::Engine;
use lmscope::engine::model::Precision;
use safetensors::tensor::TensorView;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tiny-llama")
}

/// A copy of the tiny Llama with head `head` of `layer` cut from o_proj.
fn without_head(layer: usize, head: usize, dir: &std::path::Path) {
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    let bytes = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let target = format!("model.layers.{layer}.self_attn.o_proj.weight");
    let mut edited: HashMap<String, Vec<u8>> = HashMap::new();
    let view = st.tensor(&target).unwrap();
    let (rows, cols) = (view.shape()[0], view.shape()[1]);
    let head_dim = cols / 4; // 4 heads in the tiny Llama
    let mut w: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    for r in 0..rows {
        w[r * cols + head * head_dim..r * cols + (head + 1) * head_dim].fill(0.0);
    }
    edited.insert(
        target.clone(),
        w.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let names = st.names();
    let views: Vec<(String, TensorView)> = names
        .iter()
        .map(|n| {
            let t = st.tensor(n).unwrap();
            let data: &[u8] = edited.get(*n).map(|v| v.as_slice()).unwrap_or(t.data());
            (
                n.to_string(),
                TensorView::new(t.dtype(), t.shape().to_vec(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn ablating_a_head_equals_cutting_it_from_the_output_projection() {
    let intact = Engine::load(&fixture(), Precision::F32).unwrap();
    let tokens = intact
        .tokenizer()
        .encode("The model reads the prompt", false)
        .unwrap();
    let mut worst = 0f32;
    for (layer, head) in [(0, 1), (1, 3)] {
        let dir = tempfile::tempdir().unwrap();
        without_head(layer, head, dir.path());
        let cut = Engine::load(dir.path(), Precision::F32).unwrap();
        let want: Vec<f32> = cut
            .model()
            .forward_ablated(&tokens, &[], None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let got: Vec<f32> = intact
            .model()
            .forward_ablated(&tokens, &[(layer, head)], None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f32> = intact
            .model()
            .forward_ablated(&tokens, &[], None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let d = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        assert!(d(&base, &got) > 1e-3, "the ablation changes the logits");
        // Resuming from the intact stream computes the same.
        let stream = intact.model().residual_stream(&tokens).unwrap();
        let resumed: Vec<f32> = intact
            .model()
            .forward_ablated(&tokens, &[(layer, head)], Some(&stream))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(resumed, got, "resumed from the intact stream: bit for bit");
        worst = worst.max(d(&want, &got));
    }
    assert!(worst < 1e-5, "ablated vs cut weights differ by {worst}");
}

#[test]
fn the_scan_names_the_heads_that_matter_on_the_real_model() {
    let model = common::model_path().to_str().unwrap().to_string();
    let out = common::lmscope(&[
        "ablate",
        "The capital of France is",
        "-m",
        &model,
        "--top",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let effects = v["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 3);
    let kls: Vec<f64> = effects.iter().map(|e| e["kl"].as_f64().unwrap()).collect();
    assert!(
        kls.windows(2).all(|w| w[0] >= w[1]),
        "most important first: {kls:?}"
    );
    assert!(kls[0] > 0.0);
    let o = common::lmscope(&["ablate", "Hi", "-m", &model, "--head", "30:0"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not exist"));
}
