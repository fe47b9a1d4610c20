//! The logit lens on the real model: every layer read at the last position,
//! the last layer's reading being the model's own next-token distribution.

mod common;

#[test]
fn the_lens_ends_at_the_models_own_prediction() {
    let model = common::model_path().to_str().unwrap().to_string();
    let out = common::lmscope(&[
        "lens",
        "The capital of France is",
        "-m",
        &model,
        "--json",
        "--top-k",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 31, "the embedding and 30 blocks");
    let last = layers.last().unwrap();
    assert_eq!(last["final_rank"], 1);
    assert_eq!(last["top"][0]["token_id"], v["prediction"]["token_id"]);
    // The same distribution `generate` reports for the first token.
    let g = common::lmscope(&[
        "generate",
        "The capital of France is",
        "-m",
        &model,
        "-n",
        "1",
        "--temperature",
        "0",
        "--json",
    ]);
    let first: serde_json::Value = serde_json::from_slice(
        String::from_utf8_lossy(&g.stdout)
            .lines()
            .next()
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(first["token_id"], v["prediction"]["token_id"], "{first}");
    let p_gen = first["p_raw"].as_f64().unwrap();
    let p_lens = v["prediction"]["p"].as_f64().unwrap();
    assert!((p_gen - p_lens).abs() < 1e-5, "{p_gen} vs {p_lens}");
    // Early layers do not yet predict it.
    assert!(layers[0]["final_rank"].as_u64().unwrap() > 1);
    let o = common::lmscope(&["lens", "Hi", "-m", &model, "--position", "9"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside the prompt"));
}

#[test]
fn the_grid_reads_every_layer_at_every_position() {
    let model = common::model_path().to_str().unwrap().to_string();
    let out = common::lmscope(&[
        "lens",
        "The capital of France is",
        "-m",
        &model,
        "--grid",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let grid = v["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 31);
    let n = v["position"].as_u64().unwrap() as usize + 1;
    assert!(grid.iter().all(|row| row.as_array().unwrap().len() == n));
    let corner = &grid[30][n - 1];
    assert_eq!(corner["token_id"], v["prediction"]["token_id"]);
    let p = corner["p"].as_f64().unwrap() - v["prediction"]["p"].as_f64().unwrap();
    assert!(
        p.abs() < 1e-6,
        "the last layer at the last position is the prediction"
    );
    // The embedding row reads each token back as itself or near it: at
    // least a distribution, summing below 1 for its top token.
    assert!(
        grid[0]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["p"].as_f64().unwrap() <= 1.0)
    );
}
