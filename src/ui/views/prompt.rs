//! The prompt view: the editor, the prompt history, and the request a
//! prompt makes under the current settings.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::engine::chat::Message;
use crate::engine::{Prompt, Request};
use crate::store::config::{Config, GenerationConfig};
use crate::ui::editor::Editor;

const HISTORY_LIMIT: usize = 200;

#[derive(Clone, Debug, Default)]
pub struct PromptView {
    pub editor: Editor,
    pub history: Vec<String>,
    history_pos: Option<usize>,
    /// What was being typed before the history was entered.
    draft: String,
}

/// What an editing key asks beyond the editor: the history, when the
/// cursor is on the first or last line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    Up,
    Down,
}

impl PromptView {
    pub fn new() -> Self {
        Self::default()
    }

    /// A key typed into the editor (not bound to an action).
    pub fn key(&mut self, k: &KeyEvent) -> Option<Edge> {
        let ctrl_or_alt = k
            .modifiers
            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
        match k.code {
            KeyCode::Char(c) if !ctrl_or_alt => {
                self.editor.insert(c);
                self.history_pos = None;
            }
            KeyCode::Backspace => self.editor.backspace(),
            KeyCode::Delete => self.editor.delete(),
            KeyCode::Left => self.editor.left(),
            KeyCode::Right => self.editor.right(),
            KeyCode::Home => self.editor.home(),
            KeyCode::End => self.editor.end(),
            KeyCode::Up if !self.editor.up() => return Some(Edge::Up),
            KeyCode::Down if !self.editor.down() => return Some(Edge::Down),
            _ => {}
        }
        None
    }

    /// One step through the history (`dir` < 0: older).
    pub fn history_step(&mut self, dir: isize) {
        if self.history.is_empty() {
            return;
        }
        let next = match (self.history_pos, dir < 0) {
            (None, true) => {
                self.draft = self.editor.text();
                Some(self.history.len() - 1)
            }
            (None, false) => return,
            (Some(i), true) => Some(i.saturating_sub(1)),
            (Some(i), false) if i + 1 < self.history.len() => Some(i + 1),
            (Some(_), false) => None,
        };
        self.history_pos = next;
        let text = next.map_or_else(|| self.draft.clone(), |i| self.history[i].clone());
        self.editor.set_text(&text);
    }

    /// Keeps `text` in the prompt history and empties the editor.
    pub fn remember(&mut self, text: String) {
        if self.history.last() != Some(&text) {
            self.history.push(text);
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        self.history_pos = None;
        self.editor.clear();
    }
}

/// `text` as the model reads it: under the chat template (with the
/// configured system message) in chat mode, else as it is.
pub fn prompt_of(text: &str, g: &GenerationConfig) -> Prompt {
    if g.chat {
        let mut messages = Vec::new();
        if !g.system.trim().is_empty() {
            messages.push(Message::new("system", g.system.clone()));
        }
        messages.push(Message::new("user", text.to_string()));
        Prompt::Chat(messages)
    } else {
        Prompt::Text(text.to_string())
    }
}

/// The request for prompt `text` under the settings `config`.
pub fn request(text: &str, config: &Config) -> Request {
    let g = &config.generation;
    Request {
        prompt: prompt_of(text, g),
        sampler: config.sampler.clone(),
        max_tokens: g.max_tokens,
        stop: Vec::new(),
        top_n: g.top_n,
        // Rows are asked for on demand, never attached to records.
        capture_attention: g.capture_attention,
        attach_attention: false,
        ignore_eos: false,
    }
}
