//! `lmscope bias` as a headless contract: errors a user can cause are
//! reported before any model loads, and a pairs run's JSON records its mode,
//! the data file's hash and the example-file note.

use std::path::PathBuf;
use std::process::{Command, Output};

fn lmscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // A model that cannot load: these runs must fail before loading one.
        .env("LMSCOPE_MODEL", "/nonexistent/model.gguf")
        .output()
        .expect("runs")
}

fn fails_with(args: &[&str], needle: &str) {
    let out = lmscope(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(
        err.contains(needle),
        "{args:?}: stderr {err:?} lacks {needle:?}"
    );
}

#[test]
fn user_errors_say_what_to_do() {
    fails_with(&["bias"], "say what to run");
    fails_with(
        &["bias", "--suite", "no-such-suite"],
        "no suite named `no-such-suite`",
    );
    fails_with(
        &["bias", "--suite", "default", "--mode", "mean"],
        "--mode applies to a pairs file",
    );
    fails_with(
        &["bias", "--pairs", "x.csv", "--mode", "median"],
        "unknown mode `median`",
    );
    fails_with(
        &["bias", "--pairs", "/nonexistent/pairs.csv"],
        "cannot read /nonexistent/pairs.csv",
    );
    fails_with(
        &["bias", "--quick", "he ran", "--swap", "he"],
        "two different terms",
    );
    fails_with(
        &["bias", "--suite", "default", "--pairs", "a.csv"],
        "cannot be used with",
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "sent_more,sent_less,bias_type\na,b,gender\n").unwrap();
    fails_with(
        &["bias", "--pairs", bad.to_str().unwrap()],
        "no `stereo_antistereo` column",
    );
    let toml = dir.path().join("s.toml");
    std::fs::write(
        &toml,
        "name = \"s\"\n[[frames]]\nid = \"f\"\ntext = \"no placeholder\"\n",
    )
    .unwrap();
    fails_with(
        &["bias", "--suite", toml.to_str().unwrap()],
        "missing field `categories`",
    );
    let cats = "[[categories]]\nname = \"c\"\npairs = [[\"a\", \"b\"]]\n";
    std::fs::write(
        &toml,
        format!("name = \"s\"\n[[frames]]\nid = \"f\"\ntext = \"no term\"\n{cats}"),
    )
    .unwrap();
    fails_with(
        &["bias", "--suite", toml.to_str().unwrap()],
        "must contain {term} exactly once",
    );
}

#[test]
fn example_pairs_json_records_mode_hash_and_note() {
    let model = lmscope::store::paths::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model.is_file() {
        eprintln!("skipped: no model at {}", model.display());
        return;
    }
    let csv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/bias/example_pairs.csv");
    let out = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args([
            "bias",
            "--suite",
            csv.to_str().unwrap(),
            "--mode",
            "shared",
            "--json",
            "-m",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "shared");
    assert_eq!(v["prefix_token"], 1);
    assert_eq!(v["overall"]["n"], 24);
    assert_eq!(v["categories"].as_array().unwrap().len(), 8);
    assert!(
        v["categories"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["too_small"] == true)
    );
    assert!(v["note"].as_str().unwrap().contains("not comparable"));
    let bytes = std::fs::read(&csv).unwrap();
    assert_eq!(
        v["data_sha256"],
        lmscope::analysis::bias::pairs::read_pairs(&bytes)
            .unwrap()
            .sha256
    );
    assert_eq!(v["pairs"].as_array().unwrap().len(), 24);
    assert!(
        v["pairs"][0].get("detail").is_none(),
        "token detail only with --tokens"
    );
}
