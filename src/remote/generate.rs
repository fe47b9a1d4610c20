//! A streamed completion with per-token log-probabilities, read chunk by
//! chunk from either endpoint's format. An answer that breaks off after
//! some tokens is kept and marked as cut off, with the reason.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::backend::{Remote, RemotePrompt, RemoteRequest, Sent};
use super::error::{RemoteError, Result};

/// One alternative the server returned for a position.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alternative {
    pub text: String,
    pub logprob: f32,
    pub p: f32,
}

/// One generated token as the server reports it: text, not ids.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemoteToken {
    pub step: usize,
    pub text: String,
    /// The model's log-probability of the token (before sampling), where
    /// the server gave it.
    pub logprob: Option<f32>,
    pub p: Option<f32>,
    /// 1-based rank among the alternatives; `None` when it is not among them.
    pub rank: Option<usize>,
    /// The most likely tokens, most likely first.
    pub top: Vec<Alternative>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteFinish {
    /// The token limit was reached.
    Length,
    /// An end-of-generation token or a stop sequence (servers do not say which).
    Stop,
    /// The stream broke off; the text so far is kept.
    CutOff,
    Cancelled,
}

impl RemoteFinish {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Stop => "stop",
            Self::CutOff => "cut_off",
            Self::Cancelled => "cancelled",
        }
    }
}

/// How a remote generation ended, and what it produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub text: String,
    pub tokens: Vec<RemoteToken>,
    pub finish: RemoteFinish,
    /// Why it was cut off.
    pub error: Option<String>,
    /// Seconds to the first token, and in all.
    pub first_token_s: Option<f64>,
    pub total_s: f64,
}

impl Remote {
    /// Streams `request`, calling `on_token(token, text_delta)` as tokens
    /// arrive. Fails only when nothing came; later faults end the outcome
    /// as [`RemoteFinish::CutOff`] with the text kept.
    pub fn generate(
        &self,
        request: &RemoteRequest,
        cancel: &AtomicBool,
        on_token: &mut dyn FnMut(&RemoteToken, &str),
    ) -> Result<Outcome> {
        let sent = self.request_body(request);
        self.generate_sent(
            &sent,
            matches!(request.prompt, RemotePrompt::Chat(_)),
            cancel,
            on_token,
        )
    }

    /// As [`Remote::generate`], for a body already built (and shown).
    pub fn generate_sent(
        &self,
        sent: &Sent,
        chat: bool,
        cancel: &AtomicBool,
        on_token: &mut dyn FnMut(&RemoteToken, &str),
    ) -> Result<Outcome> {
        let start = Instant::now();
        let mut outcome = Outcome {
            text: String::new(),
            tokens: Vec::new(),
            finish: RemoteFinish::Stop,
            error: None,
            first_token_s: None,
            total_s: 0.0,
        };
        let mut finish_reason: Option<String> = None;
        let url = format!("{}/{}", self.client().base(), sent.endpoint);
        let result = (|| -> Result<()> {
            let mut stream = self
                .client()
                .post_stream(sent.endpoint, &sent.body, cancel)?;
            while let Some(data) = stream.next(cancel)? {
                let chunk: Value =
                    serde_json::from_str(&data).map_err(|e| RemoteError::Malformed {
                        url: url.clone(),
                        detail: format!(
                            "an event is not JSON ({e}): {}",
                            data.chars().take(120).collect::<String>()
                        ),
                    })?;
                if let Some(err) = chunk.get("error") {
                    let message = err
                        .get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| err.to_string());
                    return Err(RemoteError::Server(message));
                }
                let Some(choice) = chunk.pointer("/choices/0") else {
                    continue; // a usage-only chunk
                };
                let delta = if chat {
                    choice.pointer("/delta/content").and_then(Value::as_str)
                } else {
                    choice.get("text").and_then(Value::as_str)
                }
                .unwrap_or("");
                let tokens = if chat {
                    chat_tokens(choice)
                } else {
                    completion_tokens(choice)
                };
                let tokens = tokens.map_err(|detail| RemoteError::Malformed {
                    url: url.clone(),
                    detail,
                })?;
                outcome.text.push_str(delta);
                if !tokens.is_empty() && outcome.first_token_s.is_none() {
                    outcome.first_token_s = Some(start.elapsed().as_secs_f64());
                }
                // The delta goes with the chunk's first token (servers send
                // one token a chunk; a batched chunk shows its text at once).
                let mut text = delta;
                for mut token in tokens {
                    token.step = outcome.tokens.len();
                    on_token(&token, text);
                    text = "";
                    outcome.tokens.push(token);
                }
                if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                    finish_reason = Some(r.to_string());
                }
            }
            Ok(())
        })();
        outcome.total_s = start.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                outcome.finish = match finish_reason.as_deref() {
                    Some("length") => RemoteFinish::Length,
                    _ => RemoteFinish::Stop,
                };
            }
            Err(RemoteError::Cancelled) => outcome.finish = RemoteFinish::Cancelled,
            // Nothing came at all: the request failed, say so.
            Err(e) if outcome.tokens.is_empty() && outcome.text.is_empty() => return Err(e),
            // The server said it was done; a missing [DONE] after that loses nothing.
            Err(RemoteError::Truncated { .. }) if finish_reason.is_some() => {
                outcome.finish = match finish_reason.as_deref() {
                    Some("length") => RemoteFinish::Length,
                    _ => RemoteFinish::Stop,
                };
            }
            Err(e) => {
                outcome.finish = RemoteFinish::CutOff;
                outcome.error = Some(e.to_string());
            }
        }
        Ok(outcome)
    }
}

fn alternative(text: String, logprob: f32) -> Alternative {
    Alternative {
        text,
        logprob,
        p: logprob.exp(),
    }
}

fn finish_token(text: String, logprob: Option<f32>, mut top: Vec<Alternative>) -> RemoteToken {
    top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
    let rank = top.iter().position(|a| a.text == text).map(|i| i + 1);
    RemoteToken {
        step: 0,
        text,
        logprob,
        p: logprob.map(f32::exp),
        rank,
        top,
    }
}

/// `/v1/completions`: `logprobs: {tokens, token_logprobs, top_logprobs: [{text: lp}]}`.
fn completion_tokens(choice: &Value) -> std::result::Result<Vec<RemoteToken>, String> {
    let Some(lp) = choice.get("logprobs").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let texts = lp
        .get("tokens")
        .and_then(Value::as_array)
        .ok_or("logprobs without a `tokens` list")?;
    let logprobs = lp.get("token_logprobs").and_then(Value::as_array);
    let tops = lp.get("top_logprobs").and_then(Value::as_array);
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let text = t.as_str().ok_or("a token that is not text")?.to_string();
            let logprob = logprobs
                .and_then(|l| l.get(i))
                .and_then(Value::as_f64)
                .map(|x| x as f32);
            let top = tops
                .and_then(|l| l.get(i))
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some(alternative(k.clone(), v.as_f64()? as f32)))
                        .collect()
                })
                .unwrap_or_default();
            Ok(finish_token(text, logprob, top))
        })
        .collect()
}

/// `/v1/chat/completions`: `logprobs: {content: [{token, logprob, top_logprobs: [{token, logprob}]}]}`.
fn chat_tokens(choice: &Value) -> std::result::Result<Vec<RemoteToken>, String> {
    let Some(content) = choice
        .pointer("/logprobs/content")
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    content
        .iter()
        .map(|c| {
            let text = c
                .get("token")
                .and_then(Value::as_str)
                .ok_or("a logprobs entry without `token`")?;
            let logprob = c.get("logprob").and_then(Value::as_f64).map(|x| x as f32);
            let top = c
                .get("top_logprobs")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|a| {
                            Some(alternative(
                                a.get("token")?.as_str()?.to_string(),
                                a.get("logprob")?.as_f64()? as f32,
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(finish_token(text.to_string(), logprob, top))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completion_chunk() {
        let choice = json!({"text": " Paris", "logprobs": {"tokens": [" Paris"], "token_logprobs": [-0.5],
            "top_logprobs": [{" Lyon": -2.0, " Paris": -0.5}]}, "finish_reason": null});
        let t = &completion_tokens(&choice).unwrap()[0];
        assert_eq!(t.text, " Paris");
        assert_eq!(t.rank, Some(1));
        assert_eq!(t.top[1].text, " Lyon");
        assert!((t.p.unwrap() - (-0.5f32).exp()).abs() < 1e-7);
    }

    #[test]
    fn chat_chunk() {
        let choice = json!({"delta": {"content": "Hi"}, "logprobs": {"content": [{"token": "Hi", "logprob": -3.0,
            "top_logprobs": [{"token": "Hello", "logprob": -0.1}]}]}});
        let t = &chat_tokens(&choice).unwrap()[0];
        assert_eq!(t.rank, None);
        assert_eq!(t.top.len(), 1);
    }
}
