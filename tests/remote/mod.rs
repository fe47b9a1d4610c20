//! A scripted OpenAI-compatible server on a loopback port, for the remote
//! backend's fault tests: each connection gets the next answer of its
//! script (a JSON reply, a status, a stream that ends well, breaks off or
//! stalls), and every request it saw is kept for the test to read.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub enum Answer {
    /// A status, extra header lines, and a body.
    Reply(u16, Vec<String>, String),
    /// A `text/event-stream` of these events, then the ending.
    Stream(Vec<String>, Ending),
}

pub enum Ending {
    /// `data: [DONE]`.
    Done,
    /// The connection closes without it.
    Drop,
    /// Nothing more is sent for this long, then the connection closes.
    Stall(Duration),
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<String>,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

pub struct FakeServer {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `script` in order, one answer a connection; it stops once the
/// test drops it, and in any case after 60 seconds.
pub fn serve(script: Vec<Answer>) -> FakeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (seen2, stop2) = (seen.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut script = script.into_iter();
        while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let Some(request) = read_request(&stream) else {
                        continue;
                    };
                    seen2.lock().unwrap().push(request);
                    match script.next() {
                        Some(answer) => answer_with(stream, answer, &stop2),
                        None => answer_with(
                            stream,
                            Answer::Reply(500, vec![], "script exhausted".into()),
                            &stop2,
                        ),
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    FakeServer {
        url,
        seen,
        stop,
        thread: Some(thread),
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
        headers.push(h);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn answer_with(mut stream: TcpStream, answer: Answer, stop: &AtomicBool) {
    match answer {
        Answer::Reply(status, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for h in headers {
                head.push_str(&h);
                head.push_str("\r\n");
            }
            let _ = stream.write_all(format!("{head}\r\n{body}").as_bytes());
        }
        Answer::Stream(events, ending) => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            for e in events {
                if stream
                    .write_all(format!("data: {e}\r\n\r\n").as_bytes())
                    .is_err()
                {
                    return;
                }
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(2));
            }
            match ending {
                Ending::Done => {
                    let _ = stream.write_all(b"data: [DONE]\r\n\r\n");
                }
                Ending::Drop => {}
                Ending::Stall(d) => {
                    let end = Instant::now() + d;
                    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
    }
    let _ = stream.flush();
}

/// `/v1/models` listing one model `m` owned by `owner` (`me` is
/// llama-cpp-python, `vllm`, `llamacpp`, anything else plain OpenAI).
pub fn models(owner: &str) -> Answer {
    Answer::Reply(
        200,
        vec![],
        json!({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": owner}]})
            .to_string(),
    )
}

pub fn status(code: u16, message: &str) -> Answer {
    Answer::Reply(
        code,
        vec![],
        json!({"error": {"message": message}}).to_string(),
    )
}

/// One `/v1/completions` stream chunk: token `text` with log-probability
/// `lp`, and a second alternative.
pub fn token(text: &str, lp: f32) -> String {
    json!({"choices": [{"index": 0, "text": text, "finish_reason": null,
        "logprobs": {"tokens": [text], "token_logprobs": [lp], "top_logprobs": [{text: lp, "~other": lp - 1.0}]}}]})
    .to_string()
}

pub fn finish(reason: &str) -> String {
    json!({"choices": [{"index": 0, "text": "", "finish_reason": reason, "logprobs": null}]})
        .to_string()
}
