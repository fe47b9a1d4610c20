//! The remote backend against a server that misbehaves on purpose: refused
//! connections, bad keys, unknown models, 500 then 200, busy (429), streams
//! that break off, stall or carry junk, and a cancel while it stalls. Each
//! fault is one clear error, or, once tokens have come, an outcome that
//! keeps them and is marked cut off.

mod remote;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lmscope::engine::sampling::SamplerSettings;
use lmscope::remote::client::{Retry, Timeouts};
use lmscope::remote::{
    Remote, RemoteError, RemoteFinish, RemoteOptions, RemotePrompt, RemoteRequest,
};
use remote::{Answer, Ending, finish, models, serve, status, token};

fn options(url: &str) -> RemoteOptions {
    RemoteOptions {
        url: url.into(),
        api_key: None,
        model: None,
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_millis(400),
            total: Duration::from_secs(20),
        },
        retry: Retry {
            retries: 3,
            first_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(100),
        },
    }
}

fn request() -> RemoteRequest {
    RemoteRequest {
        prompt: RemotePrompt::Text("Once".into()),
        sampler: SamplerSettings::default(),
        max_tokens: 8,
        stop: vec![],
        top_n: 2,
    }
}

fn never() -> AtomicBool {
    AtomicBool::new(false)
}

fn run(
    script: Vec<Answer>,
) -> (
    Result<lmscope::remote::Outcome, RemoteError>,
    remote::FakeServer,
) {
    let server = serve(script);
    let remote = Remote::connect(&options(&server.url), &never()).expect("connects");
    let out = remote.generate(&request(), &never(), &mut |_, _| {});
    (out, server)
}

#[test]
fn a_whole_stream_is_read_with_its_probabilities() {
    let events = vec![token(" upon", -0.5), token(" a", -0.25), finish("length")];
    let (out, server) = run(vec![models("me"), Answer::Stream(events, Ending::Done)]);
    let out = out.unwrap();
    assert_eq!(out.text, " upon a");
    assert_eq!(out.finish, RemoteFinish::Length);
    assert_eq!(out.tokens.len(), 2);
    assert!((out.tokens[1].p.unwrap() - 0.25f32.exp().recip()).abs() < 1e-6);
    assert_eq!(out.tokens[0].top[1].text, "~other");
    let seen = server.seen.lock().unwrap();
    assert_eq!(seen[0].path, "/v1/models");
    assert_eq!(seen[1].path, "/v1/completions");
    let body = seen[1].json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["logprobs"], 2);
    assert_eq!(body["top_k"], 40, "llama-cpp-python takes top_k");
}

#[test]
fn a_plain_openai_server_is_not_sent_what_it_cannot_take() {
    let server = serve(vec![models("openai")]);
    let remote = Remote::connect(&options(&server.url), &never()).unwrap();
    let sent = remote.request_body(&request());
    assert!(sent.body.get("top_k").is_none() && sent.body.get("min_p").is_none());
    let ignored: Vec<&str> = sent.ignored.iter().map(|i| i.setting.as_str()).collect();
    assert_eq!(ignored, ["top_k=40", "min_p=0.05"]);
}

#[test]
fn a_refused_connection_is_one_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Remote::connect(&options(&format!("http://127.0.0.1:{port}")), &never())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("cannot connect") && err.contains("is the server running"),
        "{err}"
    );
}

#[test]
fn a_bad_key_and_an_unknown_model_say_what_to_do() {
    let server = serve(vec![status(401, "invalid api key")]);
    let err = Remote::connect(&options(&server.url), &never())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("HTTP 401")
            && err.contains("invalid api key")
            && err.contains("--api-key-env"),
        "{err}"
    );

    let server = serve(vec![models("vllm")]);
    let mut o = options(&server.url);
    o.model = Some("llama-70b".into());
    let err = Remote::connect(&o, &never()).err().unwrap().to_string();
    assert!(
        err.contains("no model \"llama-70b\"") && err.contains("it serves: m"),
        "{err}"
    );

    let events = vec![];
    let (out, _s) = run(vec![
        models("vllm"),
        status(404, "The model `m` does not exist."),
        Answer::Stream(events, Ending::Done),
    ]);
    let err = out.err().unwrap().to_string();
    assert!(
        err.contains("HTTP 404") && err.contains("lmscope models --backend"),
        "{err}"
    );
}

#[test]
fn errors_5xx_and_429_are_retried_with_backoff() {
    let events = vec![token("A", -0.1), finish("stop")];
    let busy = Answer::Reply(429, vec!["Retry-After: 0".into()], "{}".into());
    let (out, server) = run(vec![
        models("me"),
        status(500, "boom"),
        busy,
        status(503, "loading"),
        Answer::Stream(events, Ending::Done),
    ]);
    assert_eq!(out.unwrap().text, "A");
    assert_eq!(server.seen.lock().unwrap().len(), 5);

    // Past the retries, the last answer is the error.
    let (out, _s) = run(vec![
        models("me"),
        status(503, "overloaded"),
        status(503, "overloaded"),
        status(503, "overloaded"),
        status(503, "still overloaded"),
    ]);
    let err = out.err().unwrap().to_string();
    assert!(
        err.contains("HTTP 503") && err.contains("still overloaded"),
        "{err}"
    );
}

#[test]
fn a_stream_that_breaks_off_keeps_its_text_and_is_marked() {
    let events = vec![token("A", -0.1), token("B", -0.2)];
    let (out, _s) = run(vec![models("me"), Answer::Stream(events, Ending::Drop)]);
    let out = out.unwrap();
    assert_eq!(out.finish, RemoteFinish::CutOff);
    assert_eq!(out.text, "AB");
    assert!(
        out.error.as_deref().unwrap().contains("broke off"),
        "{:?}",
        out.error
    );

    // Said done, then closed without [DONE]: nothing is lost, not cut off.
    let events = vec![token("A", -0.1), finish("stop")];
    let (out, _s) = run(vec![models("me"), Answer::Stream(events, Ending::Drop)]);
    assert_eq!(out.unwrap().finish, RemoteFinish::Stop);

    // Junk in the middle: what came before is kept.
    let events = vec![token("A", -0.1), "{not json".into()];
    let (out, _s) = run(vec![models("me"), Answer::Stream(events, Ending::Done)]);
    let out = out.unwrap();
    assert_eq!((out.finish, out.text.as_str()), (RemoteFinish::CutOff, "A"));
    assert!(out.error.unwrap().contains("not JSON"));

    // Junk first: a plain error.
    let (out, _s) = run(vec![
        models("me"),
        Answer::Stream(vec!["[1,".into()], Ending::Done),
    ]);
    assert!(matches!(out, Err(RemoteError::Malformed { .. })), "{out:?}");
}

#[test]
fn a_stall_ends_at_the_read_timeout() {
    let start = Instant::now();
    let stall = Ending::Stall(Duration::from_secs(10));
    let (out, _s) = run(vec![
        models("me"),
        Answer::Stream(vec![token("A", -0.1)], stall),
    ]);
    let out = out.unwrap();
    assert_eq!((out.finish, out.text.as_str()), (RemoteFinish::CutOff, "A"));
    assert!(
        out.error.as_deref().unwrap().contains("--read-timeout"),
        "{:?}",
        out.error
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    // Stalled before the first token: a timeout error.
    let stall = Ending::Stall(Duration::from_secs(10));
    let (out, _s) = run(vec![models("me"), Answer::Stream(vec![], stall)]);
    let err = out.err().unwrap().to_string();
    assert!(
        err.contains("sent nothing") && err.contains("--read-timeout"),
        "{err}"
    );
}

#[test]
fn cancel_ends_a_stalled_request_at_once() {
    let server = serve(vec![
        models("me"),
        Answer::Stream(
            vec![token("A", -0.1)],
            Ending::Stall(Duration::from_secs(10)),
        ),
    ]);
    let mut o = options(&server.url);
    o.timeouts.read = Duration::from_secs(30);
    let remote = Remote::connect(&o, &never()).unwrap();
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::SeqCst);
        });
        remote.generate(&request(), &cancel, &mut |_, _| {})
    })
    .unwrap();
    assert_eq!(
        (out.finish, out.text.as_str()),
        (RemoteFinish::Cancelled, "A")
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn prompt_scores_come_from_echo_or_are_refused_with_the_reason() {
    use serde_json::json;
    let echo = json!({"choices": [{"text": "The cat.", "logprobs": {
        "tokens": ["The", " cat", ".", "\n"], "token_logprobs": [null, -3.0, -1.5, -0.5],
        "text_offset": [0, 3, 7, 8]}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}});
    let server = serve(vec![
        models("vllm"),
        Answer::Reply(200, vec![], echo.to_string()),
    ]);
    let remote = Remote::connect(&options(&server.url), &never()).unwrap();
    let s = remote.score("The cat.", &never()).unwrap();
    assert_eq!(s.tokens, ["The", " cat", "."]);
    assert_eq!((s.scored(), s.total()), (2, -4.5));
    let body = server.seen.lock().unwrap()[1].json();
    assert_eq!(
        (body["echo"].clone(), body["max_tokens"].clone()),
        (json!(true), json!(1))
    );

    for owner in ["me", "llamacpp"] {
        let server = serve(vec![models(owner)]);
        let remote = Remote::connect(&options(&server.url), &never()).unwrap();
        let err = remote
            .score("The cat.", &never())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not available from this server"), "{err}");
    }
}

/// The CLI on a stream that stalls after two tokens: the text is printed,
/// the cut is said on stderr, the exit is clean.
#[test]
fn cli_keeps_a_cut_off_answer_and_says_why() {
    let events = vec![token("Hel", -0.1), token("lo", -0.2)];
    let server = serve(vec![
        models("me"),
        Answer::Stream(events, Ending::Stall(Duration::from_secs(10))),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args([
            "generate",
            "Hi",
            "--backend",
            &server.url,
            "--read-timeout",
            "0.4",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["reason"], "cut_off");
    assert_eq!(last["text"], "Hello");
    assert!(last["error"].as_str().unwrap().contains("--read-timeout"));
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["backend"]["server"], "llama_cpp_python");

    let server = serve(vec![status(403, "forbidden")]);
    let out = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(["models", "--backend", &server.url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("HTTP 403"),
        "{err}"
    );
}

/// `compare --backend`: a column per request, sent together (vLLM), each
/// with its own settings; a failed column is reported, not fatal.
#[test]
fn cli_compare_sends_one_request_per_column() {
    let ok = || Answer::Stream(vec![token("A", -0.1), finish("length")], Ending::Done);
    let server = serve(vec![models("vllm"), ok(), status(400, "bad top_k")]);
    let out = Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args([
            "compare", "Hi", "--preset", "greedy", "--preset", "creative", "--json",
        ])
        .args(["--backend", &server.url, "--retries", "0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["parallel"], true);
    let finishes: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["finish"].as_str().unwrap())
        .collect();
    let mut sorted = finishes.clone();
    sorted.sort();
    assert_eq!(sorted, ["failed", "length"], "{v}");
    let seen = server.seen.lock().unwrap();
    let temps: Vec<f64> = seen[1..]
        .iter()
        .map(|s| s.json()["temperature"].as_f64().unwrap())
        .collect();
    assert!(
        temps.contains(&0.0) && temps.iter().any(|&t| t > 0.5),
        "{temps:?}"
    );
}
