//! The remote backend against a real server: llama-cpp-python's
//! OpenAI-compatible server on the default GGUF, started here on a
//! loopback port (installed by scripts/remote/setup.sh; CI installs it).
//! Its streamed log-probabilities, for completions and chat, must equal the
//! local engine's (quantised mode, which matches llama.cpp with flash
//! attention off, as the server runs) within 1e-3.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use lmscope::engine::chat::Message;
use lmscope::engine::sampling::SamplerSettings;
use lmscope::engine::types::StepRecord;
use lmscope::engine::{Prompt, Request};
use lmscope::remote::{Remote, RemoteOptions, RemotePrompt, RemoteRequest, RemoteToken};

/// The server's Python: `$LMSCOPE_SERVER_PYTHON`, else the repo's venv.
fn server_python() -> Option<PathBuf> {
    let p = std::env::var_os("LMSCOPE_SERVER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-server/bin/python")
        });
    p.exists().then_some(p)
}

/// Kills the server when the test ends, however it ends.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(python: &PathBuf) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python)
        .args([
            "-m",
            "llama_cpp.server",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--model")
        .arg(common::model_path())
        .args([
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--flash_attn",
            "false",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not listen within 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn local_steps(prompt: Prompt, n: usize) -> Vec<StepRecord> {
    let engine = common::engine();
    let mut request = Request::new(prompt);
    request.sampler = greedy();
    request.max_tokens = n;
    request.top_n = 20;
    let mut g = engine.start(&request).unwrap();
    g.prefill(engine).unwrap();
    std::iter::from_fn(|| g.step(engine).unwrap()).collect()
}

fn greedy() -> SamplerSettings {
    SamplerSettings {
        temperature: 0.0,
        ..SamplerSettings::default()
    }
}

/// The largest |log p| difference over the tokens and their alternatives.
fn compare(label: &str, local: &[StepRecord], remote: &[RemoteToken]) -> f32 {
    assert_eq!(local.len(), remote.len(), "{label}: token count");
    let mut worst = 0f32;
    for (l, r) in local.iter().zip(remote) {
        assert_eq!(l.text, r.text, "{label}: step {}", l.step);
        worst = worst.max((l.logprob - r.logprob.unwrap()).abs());
        assert_eq!(r.top.len(), 5, "{label}: alternatives");
        for a in &r.top {
            // A piece of a character comes as "" (the server drops bytes
            // that are not whole UTF-8): it cannot be matched by text.
            if a.text.is_empty() {
                continue;
            }
            let mine = l.top.iter().find(|t| t.text == a.text);
            let mine =
                mine.unwrap_or_else(|| panic!("{label}: {:?} not in the local top 20", a.text));
            worst = worst.max((mine.p_raw.ln() - a.logprob).abs());
        }
    }
    worst
}

#[test]
fn remote_probabilities_equal_the_local_engine() {
    let Some(python) = server_python() else {
        let msg = "llama-cpp-python's server is not installed: run scripts/remote/setup.sh";
        assert!(
            std::env::var_os("LMSCOPE_REQUIRE_SERVER").is_none(),
            "{msg}"
        );
        eprintln!("SKIPPED remote_probabilities_equal_the_local_engine: {msg}");
        return;
    };
    let server = start_server(&python);
    let never = AtomicBool::new(false);
    let options = RemoteOptions {
        url: server.url.clone(),
        ..RemoteOptions::default()
    };
    let remote = Remote::connect(&options, &never).expect("connects");
    assert_eq!(
        remote.flavour(),
        lmscope::remote::server::Flavour::LlamaCppPython
    );

    let texts = [
        "The capital of France is",
        "Transformers use self-attention to",
        "def fibonacci(n):",
        "Translate to French: The cat sleeps.",
        "Once upon a time, in a small village,",
    ];
    let chats = [
        "What is 2+2?",
        "Summarise: the sun is a star at the centre of our solar system.",
    ];
    let mut worst = 0f32;
    let mut cases: Vec<(String, Prompt, RemotePrompt)> = texts
        .iter()
        .map(|t| {
            (
                t.to_string(),
                Prompt::Text(t.to_string()),
                RemotePrompt::Text(t.to_string()),
            )
        })
        .collect();
    for c in chats {
        let m = vec![Message::new("user", c)];
        cases.push((
            format!("chat: {c}"),
            Prompt::Chat(m.clone()),
            RemotePrompt::Chat(m),
        ));
    }
    for (label, local_prompt, remote_prompt) in cases {
        let request = RemoteRequest {
            prompt: remote_prompt,
            sampler: greedy(),
            max_tokens: 8,
            stop: vec![],
            top_n: 5,
        };
        let out = remote
            .generate(&request, &never, &mut |_, _| {})
            .expect("generates");
        let local = local_steps(local_prompt, out.tokens.len());
        let w = compare(&label, &local, &out.tokens);
        eprintln!(
            "{label}: {} tokens, max |d log p| = {w:.2e}",
            out.tokens.len()
        );
        worst = worst.max(w);
    }
    assert!(
        worst < 1e-3,
        "remote and local log-probabilities differ by {worst}"
    );

    // Its echo is off by one position, so prompt scores are refused, by name.
    let err = remote
        .score("The cat sat.", &never)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("one position off"), "{err}");

    // And the CLI: the same numbers as one JSON line per token.
    let out = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args([
            "generate",
            "The capital of France is",
            "-n",
            "3",
            "--temperature",
            "0",
            "--json",
        ])
        .args(["--backend", &server.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "backend line, 3 tokens, done");
    assert_eq!(lines[1]["text"], " Paris");
    assert_eq!(lines[4]["reason"], "length");
}
