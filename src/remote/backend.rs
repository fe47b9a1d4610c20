//! A connected server: its family, its models, the one in use, and how a
//! request is put to it.

use std::sync::atomic::AtomicBool;

use serde::Serialize;
use serde_json::{Value, json};

use super::client::{Client, Retry, Timeouts};
use super::error::{RemoteError, Result};
use super::server::{self, Flavour, Ignored, ServedModel};
use crate::engine::chat::Message;
use crate::engine::sampling::SamplerSettings;

/// What a remote server cannot show, for the panes that need it.
pub const UNAVAILABLE: [(&str, &str); 4] = [
    (
        "attention",
        "a server returns tokens and their probabilities, not attention weights",
    ),
    (
        "sampler trace",
        "a server returns the model's probabilities, not what each sampler stage kept",
    ),
    (
        "entropy",
        "only the top alternatives are known, not the whole distribution",
    ),
    ("cache forks", "a branch re-sends the whole prefix"),
];

/// Where to connect and how.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    pub url: String,
    pub api_key: Option<String>,
    /// The model to ask for; the server's first when `None`.
    pub model: Option<String>,
    pub timeouts: Timeouts,
    pub retry: Retry,
}

pub struct Remote {
    client: Client,
    flavour: Flavour,
    models: Vec<ServedModel>,
    model: String,
}

/// What to ask of the server: the remote counterpart of an engine
/// [`crate::engine::Request`].
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteRequest {
    pub prompt: RemotePrompt,
    pub sampler: SamplerSettings,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// Alternatives per token (capped at what the server returns).
    pub top_n: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RemotePrompt {
    /// `/v1/completions`: the text as it is.
    Text(String),
    /// `/v1/chat/completions`: the server applies its chat template.
    Chat(Vec<Message>),
}

/// A request as sent: its endpoint, its body, and the settings left out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sent {
    pub endpoint: &'static str,
    pub body: Value,
    pub ignored: Vec<Ignored>,
}

impl Remote {
    /// Reads the server's model list and picks the model.
    pub fn connect(options: &RemoteOptions, cancel: &AtomicBool) -> Result<Self> {
        let client = Client::new(
            &options.url,
            options.api_key.clone(),
            options.timeouts,
            options.retry,
        )?;
        let list = client.get_json("models", cancel)?;
        let models = server::parse_models(&list).ok_or_else(|| RemoteError::Malformed {
            url: format!("{}/models", client.base()),
            detail: "no `data` list of models".into(),
        })?;
        let model =
            match &options.model {
                Some(name) if models.iter().any(|m| &m.id == name) => name.clone(),
                Some(name) => {
                    let served: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
                    return Err(RemoteError::NotFound {
                        url: format!("{}/models", client.base()),
                        message: format!("the server has no model {name:?}"),
                        hint: format!("; it serves: {}", served.join(", ")),
                    });
                }
                None => models.first().map(|m| m.id.clone()).ok_or_else(|| {
                    RemoteError::Unsupported {
                        what: "a model".into(),
                        why: "the server lists none".into(),
                    }
                })?,
            };
        Ok(Self {
            flavour: server::flavour(&models),
            client,
            models,
            model,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }
    pub fn models(&self) -> &[ServedModel] {
        &self.models
    }
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The endpoint and body for `request`, streamed, with log-probabilities.
    pub fn request_body(&self, request: &RemoteRequest) -> Sent {
        let (fields, mut ignored) = server::sampler_fields(self.flavour, &request.sampler);
        let max = self.flavour.max_alternatives();
        if request.top_n > max {
            ignored.push(Ignored {
                setting: format!("top_n={}", request.top_n),
                reason: format!(
                    "the {} returns at most {max} alternatives",
                    self.flavour.name()
                ),
            });
        }
        let top_n = request.top_n.min(max);
        let mut body = json!({
            "model": self.model,
            "max_tokens": request.max_tokens,
            "stream": true,
        });
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        let endpoint = match &request.prompt {
            RemotePrompt::Text(text) => {
                body["prompt"] = json!(text);
                // At least one, so the chosen token's own log-probability comes.
                body["logprobs"] = json!(top_n.max(1));
                "completions"
            }
            RemotePrompt::Chat(messages) => {
                body["messages"] = json!(
                    messages
                        .iter()
                        .map(|m| json!({"role": m.role, "content": m.content}))
                        .collect::<Vec<_>>()
                );
                body["logprobs"] = json!(true);
                body["top_logprobs"] = json!(top_n);
                "chat/completions"
            }
        };
        for (k, v) in fields {
            body[k] = v;
        }
        Sent {
            endpoint,
            body,
            ignored,
        }
    }
}
