//! What kind of server answers, which models it serves, and which of the
//! sampler settings it takes: each family of servers accepts a different
//! set beyond OpenAI's own, and a setting sent where it is not taken would
//! be dropped in silence, so the ones left out are named instead.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::engine::sampling::{SamplerSettings, Stage};

/// The server families told apart by what `/v1/models` says of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// llama.cpp's `llama-server` (`owned_by: "llamacpp"`).
    LlamaServer,
    /// llama-cpp-python's server (`owned_by: "me"`).
    LlamaCppPython,
    /// vLLM (`owned_by: "vllm"`).
    Vllm,
    /// Anything else: only OpenAI's own parameters are sent.
    OpenAi,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Self::LlamaServer => "llama.cpp server",
            Self::LlamaCppPython => "llama-cpp-python server",
            Self::Vllm => "vLLM",
            Self::OpenAi => "OpenAI-compatible server",
        }
    }

    fn from_owner(owner: &str) -> Self {
        match owner {
            "llamacpp" => Self::LlamaServer,
            "me" => Self::LlamaCppPython,
            "vllm" => Self::Vllm,
            _ => Self::OpenAi,
        }
    }

    /// The most alternatives per token the family returns.
    pub fn max_alternatives(self) -> usize {
        match self {
            Self::OpenAi => 5,
            _ => 20,
        }
    }
}

/// One entry of `/v1/models`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServedModel {
    pub id: String,
    pub owned_by: Option<String>,
    /// The context length, where the server says it (vLLM's `max_model_len`).
    pub context_length: Option<usize>,
}

/// Parses `/v1/models`; `None` where the answer has no `data` list.
pub fn parse_models(v: &Value) -> Option<Vec<ServedModel>> {
    let data = v.get("data")?.as_array()?;
    Some(
        data.iter()
            .filter_map(|m| {
                Some(ServedModel {
                    id: m.get("id")?.as_str()?.to_string(),
                    owned_by: m
                        .get("owned_by")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    context_length: m
                        .get("max_model_len")
                        .or_else(|| m.pointer("/meta/n_ctx_train"))
                        .and_then(Value::as_u64)
                        .map(|n| n as usize),
                })
            })
            .collect(),
    )
}

/// The family of a server that lists `models`.
pub fn flavour(models: &[ServedModel]) -> Flavour {
    models
        .first()
        .and_then(|m| m.owned_by.as_deref())
        .map(Flavour::from_owner)
        .unwrap_or(Flavour::OpenAi)
}

/// A setting that was not sent, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ignored {
    pub setting: String,
    pub reason: String,
}

/// The request fields for `settings` on a `flavour` server, and the
/// settings it cannot take. Settings left at their "off" value are not
/// named: leaving them out changes nothing.
pub fn sampler_fields(flavour: Flavour, s: &SamplerSettings) -> (Map<String, Value>, Vec<Ignored>) {
    use Flavour::*;
    let mut body = Map::new();
    let mut ignored = Vec::new();
    let mut skip = |setting: String, reason: &str| {
        ignored.push(Ignored {
            setting,
            reason: reason.to_string(),
        })
    };
    let not_taken = format!("the {} does not take it", flavour.name());

    // OpenAI's own: every family takes these.
    body.insert("temperature".into(), json!(s.temperature));
    body.insert("top_p".into(), json!(s.top_p));
    body.insert("presence_penalty".into(), json!(s.presence_penalty));
    body.insert("frequency_penalty".into(), json!(s.frequency_penalty));
    body.insert("seed".into(), json!(s.seed));

    match flavour {
        OpenAi => {
            if s.top_k != 0 {
                skip(format!("top_k={}", s.top_k), &not_taken);
            }
            if s.min_p != 0.0 {
                skip(format!("min_p={}", s.min_p), &not_taken);
            }
        }
        _ => {
            body.insert("top_k".into(), json!(s.top_k));
            body.insert("min_p".into(), json!(s.min_p));
        }
    }
    match flavour {
        LlamaServer | LlamaCppPython => {
            body.insert("typical_p".into(), json!(s.typical_p));
        }
        _ if s.typical_p != 1.0 => skip(format!("typical_p={}", s.typical_p), &not_taken),
        _ => {}
    }
    match flavour {
        LlamaServer => {
            body.insert("repeat_penalty".into(), json!(s.repeat_penalty));
            body.insert("repeat_last_n".into(), json!(s.penalty_last_n));
        }
        LlamaCppPython => {
            body.insert("repeat_penalty".into(), json!(s.repeat_penalty));
            // Its window is the server's `last_n_tokens_size` (64 unless set).
            if s.penalty_last_n != 64 && penalties_on(s) {
                skip(
                    format!("penalty_last_n={}", s.penalty_last_n),
                    "llama-cpp-python's server looks at its own window (last_n_tokens_size, 64 by default)",
                );
            }
        }
        Vllm => {
            body.insert("repetition_penalty".into(), json!(s.repeat_penalty));
            if penalties_on(s) {
                skip(
                    format!("penalty_last_n={}", s.penalty_last_n),
                    "vLLM's penalties look at the whole text",
                );
            }
        }
        OpenAi => {
            if s.repeat_penalty != 1.0 {
                skip(format!("repeat_penalty={}", s.repeat_penalty), &not_taken);
            }
        }
    }
    if flavour == LlamaServer {
        body.insert(
            "samplers".into(),
            json!(
                s.order
                    .iter()
                    .map(|st| llama_server_name(*st))
                    .collect::<Vec<_>>()
            ),
        );
    } else if s.order != SamplerSettings::default().order {
        let order: Vec<&str> = s.order.iter().map(|st| st.name()).collect();
        skip(
            format!("samplers={}", order.join(",")),
            &format!("the {} applies its own order", flavour.name()),
        );
    }
    (body, ignored)
}

/// Any penalty in force (only then does its window matter).
fn penalties_on(s: &SamplerSettings) -> bool {
    s.repeat_penalty != 1.0 || s.presence_penalty != 0.0 || s.frequency_penalty != 0.0
}

/// llama-server's names for the stages of its chain.
fn llama_server_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Penalties => "penalties",
        Stage::TopK => "top_k",
        Stage::TypicalP => "typ_p",
        Stage::TopP => "top_p",
        Stage::MinP => "min_p",
        Stage::Temperature => "temperature",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_from_the_model_list() {
        let v =
            json!({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "me"}]});
        let models = parse_models(&v).unwrap();
        assert_eq!(models[0].id, "m");
        assert_eq!(flavour(&models), Flavour::LlamaCppPython);
        assert_eq!(flavour(&[]), Flavour::OpenAi);
        assert!(parse_models(&json!({"models": []})).is_none());
    }

    #[test]
    fn settings_a_plain_openai_server_cannot_take_are_named() {
        let s = SamplerSettings::default();
        let (body, ignored) = sampler_fields(Flavour::OpenAi, &s);
        assert!(body.get("top_k").is_none());
        let names: Vec<&str> = ignored.iter().map(|i| i.setting.as_str()).collect();
        assert_eq!(names, ["top_k=40", "min_p=0.05"]);
        let (body, ignored) = sampler_fields(Flavour::LlamaServer, &s);
        assert!(ignored.is_empty());
        assert_eq!(
            body["samplers"],
            json!([
                "penalties",
                "top_k",
                "typ_p",
                "top_p",
                "min_p",
                "temperature"
            ])
        );
    }
}
