//! Chat templates: the model's own Jinja template from its GGUF metadata,
//! rendered with minijinja (Python string methods enabled, as HF templates
//! expect).

use serde::{Deserialize, Serialize};

use crate::engine::error::{EngineError, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// Used when a model ships no template of its own and its vocabulary
/// has no other turn markers.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Gemma's turns, for a Gemma file without a template: `assistant` is
/// `model`, and a system message opens the first user turn (the tokenizer
/// adds the BOS).
pub const GEMMA: &str = "{%- set system = messages[0]['content'] ~ '\n\n' if messages and messages[0]['role'] == 'system' else '' -%}{%- for message in messages if message['role'] != 'system' -%}{{ '<start_of_turn>' ~ ('model' if message['role'] == 'assistant' else message['role']) ~ '\n' ~ (system if loop.first else '') ~ (message['content'] | trim) ~ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// The template a model without its own uses: by the turn markers its
/// vocabulary has (`has_token`), its name and source.
pub fn fallback(has_token: impl Fn(&str) -> bool) -> (&'static str, &'static str) {
    if has_token("<start_of_turn>") {
        ("Gemma turns", GEMMA)
    } else {
        ("ChatML", CHATML)
    }
}

#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
    bos: String,
    eos: String,
    /// Whether the template came from the model (false: the ChatML fallback).
    pub from_model: bool,
}

impl ChatTemplate {
    /// The model's template, or `fallback` (see [`fallback`]).
    pub fn new(source: Option<&str>, fallback: &str, bos: &str, eos: &str) -> Self {
        Self {
            from_model: source.is_some(),
            source: source.unwrap_or(fallback).to_string(),
            bos: bos.to_string(),
            eos: eos.to_string(),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The prompt text for `messages`, ending with the assistant's turn
    /// opener when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| EngineError::Template(e.to_string()))?;
        tmpl.render(minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })
        .map_err(|e| EngineError::Template(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_smollm2_chatml_with_default_system_prompt() {
        let t = ChatTemplate::new(Some(SMOLLM2), CHATML, "<|im_start|>", "<|im_end|>");
        let out = t.render(&[Message::new("user", "Hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(Some("{{ messages[0].content.strip() }}"), CHATML, "", "");
        assert_eq!(
            t.render(&[Message::new("user", "  x ")], false).unwrap(),
            "x"
        );
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new(
            Some("{{ raise_exception('roles must alternate') }}"),
            CHATML,
            "",
            "",
        );
        let e = t.render(&[], false).unwrap_err().to_string();
        assert!(e.contains("roles must alternate"), "{e}");
    }

    #[test]
    fn gemma_turns_fold_the_system_message_into_the_first_user_turn() {
        let (name, src) = fallback(|t| t == "<start_of_turn>");
        assert_eq!(name, "Gemma turns");
        let t = ChatTemplate::new(None, src, "<bos>", "<eos>");
        let out = t
            .render(
                &[
                    Message::new("system", "Be brief."),
                    Message::new("user", " Hi "),
                    Message::new("assistant", "Hello."),
                    Message::new("user", "Why?"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            out,
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nWhy?<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(fallback(|_| false).0, "ChatML");
    }
}
