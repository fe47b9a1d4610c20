//! Ready tasks (summaries, translation, question answering, dialogue,
//! creative writing, code): built in (assets/tasks.toml), extended or
//! overridden by tasks.toml in the user's config directory. A task is
//! chat messages with an `{input}` slot, a sampler preset, stop sequences
//! and an example input.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::chat::Message;

const BUILT_IN: &str = include_str!("../../assets/tasks.toml");

/// The user's tasks file, in the config directory.
pub const USER_FILE: &str = "tasks.toml";

/// Where the user's text goes in a task's messages.
pub const INPUT: &str = "{input}";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub description: String,
    pub messages: Vec<TaskMessage>,
    /// A sampler preset's name (presets.toml).
    #[serde(default = "default_preset")]
    pub preset: String,
    #[serde(default)]
    pub stop: Vec<String>,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// The input used when none is given.
    pub example: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskMessage {
    pub role: String,
    pub content: String,
}

fn default_preset() -> String {
    "balanced".into()
}

fn default_max_tokens() -> usize {
    256
}

pub type Tasks = BTreeMap<String, Task>;

impl Task {
    /// The task's messages with `input` in its slot.
    pub fn messages(&self, input: &str) -> Vec<Message> {
        self.messages
            .iter()
            .map(|m| Message::new(&m.role, m.content.replace(INPUT, input)))
            .collect()
    }

    fn validate(&self) -> Result<(), String> {
        if self.messages.is_empty() {
            return Err("it has no messages".into());
        }
        if let Some(m) = self
            .messages
            .iter()
            .find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant"))
        {
            return Err(format!(
                "role `{}` is not system, user or assistant",
                m.role
            ));
        }
        if self.messages.last().is_some_and(|m| m.role != "user") {
            return Err("its last message must be the user's".into());
        }
        if !self.messages.iter().any(|m| m.content.contains(INPUT)) {
            return Err(format!(
                "no message has the {INPUT} slot for the user's text"
            ));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("an empty stop sequence would stop at once".into());
        }
        if self.max_tokens == 0 {
            return Err("max_tokens is 0".into());
        }
        Ok(())
    }
}

fn parse(text: &str, origin: &str) -> anyhow::Result<Tasks> {
    let tasks: Tasks = toml::from_str(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    for (name, t) in &tasks {
        t.validate()
            .map_err(|e| anyhow::anyhow!("{origin}: task `{name}`: {e}"))?;
    }
    Ok(tasks)
}

pub fn built_in() -> Tasks {
    parse(BUILT_IN, "assets/tasks.toml").expect("built-in tasks are valid")
}

/// Built-in tasks plus the user's (theirs win on a name clash).
pub fn load() -> anyhow::Result<Tasks> {
    let mut all = built_in();
    let path = super::paths::config_dir().join(USER_FILE);
    if path.is_file() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        all.extend(parse(&text, &path.display().to_string())?);
    }
    Ok(all)
}

/// Task `name`, or an error that lists the known ones.
pub fn find(tasks: &Tasks, name: &str) -> anyhow::Result<Task> {
    tasks.get(name).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "unknown task `{name}`; known: {} (add your own in {})",
            tasks.keys().cloned().collect::<Vec<_>>().join(", "),
            super::paths::config_dir().join(USER_FILE).display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documents_applications_are_built_in() {
        let tasks = built_in();
        let names: Vec<&str> = tasks.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["code", "dialogue", "qa", "story", "summarise", "translate"]
        );
        let presets = super::super::presets::built_in();
        for (name, t) in &tasks {
            assert!(
                presets.contains_key(&t.preset),
                "{name}: preset {}",
                t.preset
            );
        }
        let m = tasks["translate"].messages("Hello.");
        assert_eq!(
            m.last().unwrap().content,
            "Translate into French:\n\nHello."
        );
    }

    #[test]
    fn a_bad_task_is_named_with_what_is_wrong() {
        let e = parse(
            "[x]\ndescription = \"d\"\nexample = \"e\"\n[[x.messages]]\nrole = \"user\"\ncontent = \"no slot\"\n",
            "f.toml",
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("task `x`: no message has the {input} slot")
        );
        let e = parse(
            "[x]\ndescription = \"d\"\nexample = \"e\"\ncolour = 1\nmessages = []\n",
            "f.toml",
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("unknown field `colour`")
        );
    }
}
