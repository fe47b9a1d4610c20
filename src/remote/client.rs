//! HTTP to an OpenAI-compatible `/v1` endpoint: timeouts, retries with
//! backoff for a busy or failing server, and every failure turned into one
//! [`RemoteError`]. Streams are read on a thread of their own and handed
//! over a channel, so the caller can give up on a stalled server at once.

use std::io::{BufReader, ErrorKind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::{RemoteError, Result};
use super::sse::{SseItem, SseReader};

/// How long the client waits, for each phase of a request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    /// To open the connection.
    pub connect: Duration,
    /// For any one read: the first token (prompt processing included) and
    /// the gap between two tokens.
    pub read: Duration,
    /// For a whole request, from connecting to the last token.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

/// How often a request answered 429 or 5xx is sent again, and how long the
/// client waits before each retry (doubled each time, or the server's
/// `Retry-After` where it is shorter than [`Retry::max_wait`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Retry {
    pub retries: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            retries: 3,
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(8),
        }
    }
}

/// One server: its `/v1` base, its key, and the agent that keeps its
/// connections.
pub struct Client {
    base: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    timeouts: Timeouts,
    retry: Retry,
}

/// How often a wait looks at the cancel flag.
const POLL: Duration = Duration::from_millis(20);

impl Client {
    /// `url` is the server's address, with or without its `/v1`
    /// (scheme, host and port, optionally ending in `/v1`).
    pub fn new(
        url: &str,
        api_key: Option<String>,
        timeouts: Timeouts,
        retry: Retry,
    ) -> Result<Self> {
        let base = base_url(url)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .timeout_per_read(Some(timeouts.read))
            .timeout_global(Some(timeouts.total))
            .user_agent(concat!("lmscope/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self {
            base,
            api_key,
            agent,
            timeouts,
            retry,
        })
    }

    /// The `/v1` base every path is joined to.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// GET `path` (below `/v1`) as JSON.
    pub fn get_json(&self, path: &str, cancel: &AtomicBool) -> Result<Value> {
        let url = self.url(path);
        let response = self.send(&url, None, cancel)?;
        read_json(&url, response)
    }

    /// POST `body` to `path` and read the whole answer as JSON.
    pub fn post_json(&self, path: &str, body: &Value, cancel: &AtomicBool) -> Result<Value> {
        let url = self.url(path);
        let response = self.send(&url, Some(body), cancel)?;
        read_json(&url, response)
    }

    /// POST `body` (with `"stream": true`) to `path` and return its events
    /// as they come.
    pub fn post_stream(
        &self,
        path: &str,
        body: &Value,
        cancel: &AtomicBool,
    ) -> Result<EventStream> {
        let url = self.url(path);
        let response = self.send(&url, Some(body), cancel)?;
        Ok(EventStream::spawn(url, response, self.timeouts))
    }

    /// Sends one request, again after a pause while the answer is 429 or
    /// 5xx; the answer it returns has a 2xx status.
    fn send(
        &self,
        url: &str,
        body: Option<&Value>,
        cancel: &AtomicBool,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut wait = self.retry.first_wait;
        let mut attempt = 0;
        loop {
            let response = self.send_once(url, body, cancel)?;
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(Duration::from_secs_f64);
            let error = status_error(url, status, response);
            if !error.is_transient() || attempt >= self.retry.retries {
                return Err(error);
            }
            attempt += 1;
            let pause = retry_after
                .filter(|d| *d <= self.retry.max_wait)
                .unwrap_or(wait);
            tracing::info!(
                "{error}; retry {attempt} of {} in {pause:?}",
                self.retry.retries
            );
            sleep_unless_cancelled(pause, cancel)?;
            wait = (wait * 2).min(self.retry.max_wait);
        }
    }

    /// One exchange, run on a thread of its own so that a cancel is noticed
    /// while the server has not answered yet.
    fn send_once(
        &self,
        url: &str,
        body: Option<&Value>,
        cancel: &AtomicBool,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let agent = self.agent.clone();
        let target = url.to_string();
        let key = self.api_key.clone();
        let payload = body.map(|b| b.to_string());
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lmscope-http".into())
            .spawn(move || {
                let answer = match payload {
                    Some(json) => with_key(agent.post(&target), key.as_deref())
                        .header("Content-Type", "application/json")
                        .send(json.as_str()),
                    None => with_key(agent.get(&target), key.as_deref()).call(),
                };
                let _ = tx.send(answer);
            })
            .map_err(|e| RemoteError::Connect {
                url: url.into(),
                detail: format!("cannot start a thread: {e}"),
            })?;
        let answer = wait_for(&rx, cancel)?;
        answer.map_err(|e| transport_error(url, e, &self.timeouts))
    }
}

fn with_key<B>(request: ureq::RequestBuilder<B>, key: Option<&str>) -> ureq::RequestBuilder<B> {
    match key {
        Some(k) => request.header("Authorization", format!("Bearer {k}")),
        None => request,
    }
}

/// Waits on `rx` until it answers or `cancel` is raised.
fn wait_for<T>(rx: &Receiver<T>, cancel: &AtomicBool) -> Result<T> {
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(RemoteError::Cancelled);
        }
        match rx.recv_timeout(POLL) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(RemoteError::Server(
                    "the request's thread ended without an answer".into(),
                ));
            }
        }
    }
}

fn sleep_unless_cancelled(pause: Duration, cancel: &AtomicBool) -> Result<()> {
    let end = Instant::now() + pause;
    while Instant::now() < end {
        if cancel.load(Ordering::Relaxed) {
            return Err(RemoteError::Cancelled);
        }
        std::thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

/// The `/v1` base of a server address.
pub fn base_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(RemoteError::BadUrl(format!(
            "--backend {url:?} is not an address; give the server's scheme, host and port (and /v1 if you like)"
        )));
    };
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return Err(RemoteError::BadUrl(format!(
            "--backend {url:?}: only the http and https schemes are served"
        )));
    }
    Ok(if url.ends_with("/v1") {
        url.to_string()
    } else {
        format!("{url}/v1")
    })
}

/// The message in an error body: OpenAI's `{"error": {"message"}}`,
/// FastAPI's `{"detail"}`, or the text itself.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("detail").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| v.get("detail").map(Value::to_string))
    });
    let text = message.unwrap_or_else(|| body.trim().to_string());
    let text: String = text.chars().take(300).collect();
    if text.is_empty() {
        "no message".into()
    } else {
        text
    }
}

fn status_error(url: &str, status: u16, response: ureq::http::Response<ureq::Body>) -> RemoteError {
    let body = response
        .into_body()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let message = error_message(&body);
    match status {
        401 | 403 => RemoteError::Auth {
            url: url.into(),
            status,
            message,
        },
        404 => {
            let hint = if message.to_lowercase().contains("model") {
                "; `lmscope models --backend URL` lists the server's models".to_string()
            } else {
                "; is this an OpenAI-compatible server, with its API under /v1?".to_string()
            };
            RemoteError::NotFound {
                url: url.into(),
                message,
                hint,
            }
        }
        _ => RemoteError::Status {
            url: url.into(),
            status,
            message,
        },
    }
}

fn transport_error(url: &str, e: ureq::Error, timeouts: &Timeouts) -> RemoteError {
    match e {
        ureq::Error::Timeout(t) => timeout_error(url, &format!("{t:?}"), timeouts),
        ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => {
            timeout_error(url, "Read", timeouts)
        }
        ureq::Error::Io(io) => RemoteError::Connect {
            url: url.into(),
            detail: io.to_string(),
        },
        ureq::Error::HostNotFound => RemoteError::Connect {
            url: url.into(),
            detail: "the host name does not resolve".into(),
        },
        ureq::Error::ConnectionFailed => RemoteError::Connect {
            url: url.into(),
            detail: "the connection failed".into(),
        },
        ureq::Error::BadUri(u) => RemoteError::BadUrl(format!("{u} is not a valid address")),
        ureq::Error::Protocol(p) => RemoteError::Malformed {
            url: url.into(),
            detail: format!("not HTTP/1.1 ({p})"),
        },
        other => RemoteError::Connect {
            url: url.into(),
            detail: other.to_string(),
        },
    }
}

/// Names the timeout by the phase ureq reports (`Connect`, `Global`, ...).
fn timeout_error(url: &str, phase: &str, timeouts: &Timeouts) -> RemoteError {
    let (what, after, option) = match phase {
        "Connect" | "Resolve" => (
            "did not accept the connection",
            timeouts.connect,
            "--connect-timeout",
        ),
        "Global" | "PerCall" => ("did not finish", timeouts.total, "--timeout"),
        _ => ("sent nothing", timeouts.read, "--read-timeout"),
    };
    RemoteError::Timeout {
        url: url.into(),
        what,
        after,
        option,
    }
}

fn read_json(url: &str, response: ureq::http::Response<ureq::Body>) -> Result<Value> {
    let text = response
        .into_body()
        .with_config()
        .limit(256 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| match e {
            ureq::Error::Timeout(_) | ureq::Error::Io(_) => RemoteError::Truncated {
                url: url.into(),
                detail: e.to_string(),
            },
            other => RemoteError::Malformed {
                url: url.into(),
                detail: other.to_string(),
            },
        })?;
    serde_json::from_str(&text).map_err(|e| RemoteError::Malformed {
        url: url.into(),
        detail: format!(
            "not JSON ({e}): {}",
            text.chars().take(120).collect::<String>()
        ),
    })
}

/// The phase of a timeout that reached the reader as an I/O error
/// (`Global`, `PerRead`, ...).
fn io_timeout(e: &std::io::Error) -> Option<String> {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
    {
        Some(ureq::Error::Timeout(t)) => Some(format!("{t:?}")),
        _ if e.kind() == ErrorKind::TimedOut => Some("Read".into()),
        _ => None,
    }
}

/// A server-sent event stream being read on its own thread.
pub struct EventStream {
    url: String,
    events: Receiver<std::io::Result<SseItem>>,
    timeouts: Timeouts,
    started: Instant,
    ended: bool,
}

impl EventStream {
    fn spawn(url: String, response: ureq::http::Response<ureq::Body>, timeouts: Timeouts) -> Self {
        let (tx, rx) = mpsc::channel();
        let reader = response.into_body().into_reader();
        // The thread ends at the stream's end, on an error, or at the first
        // event after the reader gave up (its send fails).
        let _ = std::thread::Builder::new()
            .name("lmscope-stream".into())
            .spawn(move || {
                let mut sse = SseReader::new(BufReader::new(reader));
                loop {
                    let item = sse.next_item();
                    let last = !matches!(item, Ok(Some(SseItem::Data(_))));
                    let sent = match item {
                        Ok(Some(i)) => tx.send(Ok(i)),
                        Ok(None) => break,
                        Err(e) => tx.send(Err(e)),
                    };
                    if sent.is_err() || last {
                        break;
                    }
                }
            });
        Self {
            url,
            events: rx,
            timeouts,
            started: Instant::now(),
            ended: false,
        }
    }

    /// The next event's data; `None` once the server said `[DONE]`. A
    /// stream that ends without it is [`RemoteError::Truncated`].
    pub fn next(&mut self, cancel: &AtomicBool) -> Result<Option<String>> {
        if self.ended {
            return Ok(None);
        }
        let last_event = Instant::now();
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(RemoteError::Cancelled);
            }
            // The reader's own timeouts end a stall; these are the backstop.
            if last_event.elapsed() > self.timeouts.read + Duration::from_secs(1) {
                return Err(timeout_error(&self.url, "Read", &self.timeouts));
            }
            if self.started.elapsed() > self.timeouts.total + Duration::from_secs(1) {
                return Err(timeout_error(&self.url, "Global", &self.timeouts));
            }
            match self.events.recv_timeout(POLL) {
                Ok(Ok(SseItem::Data(data))) => return Ok(Some(data)),
                Ok(Ok(SseItem::Done)) => {
                    self.ended = true;
                    return Ok(None);
                }
                Ok(Err(e)) if io_timeout(&e).is_some() => {
                    let phase = io_timeout(&e).unwrap_or_default();
                    return Err(timeout_error(&self.url, &phase, &self.timeouts));
                }
                Ok(Err(e)) => {
                    return Err(RemoteError::Truncated {
                        url: self.url.clone(),
                        detail: e.to_string(),
                    });
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RemoteError::Truncated {
                        url: self.url.clone(),
                        detail: "the connection closed without [DONE]".into(),
                    });
                }
            }
        }
    }
}
