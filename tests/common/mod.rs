//! Shared by the integration tests: the real model (fetched once into the
//! data directory that every test shares), fixtures, and the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod llamacpp;

use lmscope::engine::Engine;
use lmscope::engine::model::Precision;

/// The default model, fetched by lmscope's own `pull` when missing.
pub fn model_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        lmscope::store::models::resolve(None).expect("the default model can be fetched")
    })
}

pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::load(model_path(), Precision::Quantized).expect("model loads"))
}

/// Gemma 3 270M (the second GGUF family), fetched by `pull` when missing.
pub fn gemma3_engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let path = lmscope::store::models::pull(&lmscope::store::models::GEMMA3_270M, false)
            .expect("Gemma 3 270M can be fetched");
        Engine::load(&path, Precision::Quantized).expect("Gemma 3 loads")
    })
}

/// all-MiniLM-L6-v2 (a real encoder, no MLM head), fetched by `pull` when
/// missing.
pub fn minilm() -> &'static lmscope::engine::masked::MaskedEngine {
    static E: OnceLock<lmscope::engine::masked::MaskedEngine> = OnceLock::new();
    E.get_or_init(|| {
        let path = lmscope::store::models::pull(&lmscope::store::models::MINILM, false)
            .expect("all-MiniLM-L6-v2 can be fetched");
        lmscope::engine::masked::MaskedEngine::load(&path).expect("MiniLM loads")
    })
}

pub fn engine_f32() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::load(model_path(), Precision::F32).expect("model loads"))
}

/// The engine thread on the default model, once it reports `Loaded`.
pub fn spawn_engine() -> (
    lmscope::engine::handle::EngineHandle,
    std::sync::mpsc::Receiver<lmscope::engine::handle::EngineEvent>,
) {
    use lmscope::engine::handle::{EngineEvent, EngineHandle};
    let (tx, rx) = std::sync::mpsc::channel();
    let handle =
        EngineHandle::spawn(model_path().into(), Precision::Quantized, tx).expect("engine thread");
    match rx.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(EngineEvent::Loaded(_)) => {}
        other => panic!("expected Loaded, got {other:?}"),
    }
    (handle, rx)
}

pub fn fixture(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

/// Runs the lmscope binary with the default model already in place.
pub fn lmscope(args: &[&str]) -> Output {
    model_path();
    Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(args)
        .output()
        .expect("binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run: exit code 1, one `error:` line on stderr, no panic.
pub fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "`{needle}` in: {err}"
    );
}

/// Six sampled tokens of "Rivers carry" (seed 5), saved as a session at `p`.
pub fn generate_saved(p: &str) {
    let out = lmscope(&[
        "generate",
        "Rivers carry",
        "-n",
        "6",
        "--temperature",
        "0.9",
        "--seed",
        "5",
        "--save",
        p,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}
