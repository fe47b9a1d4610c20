//! The settings overlay: a list of fields ([`crate::ui::fields`]), one of
//! them edited as text or nudged, and a preset being named.

use crossterm::event::{KeyCode, KeyEvent};

use super::Out;
use crate::store::config::Config;
use crate::store::presets;
use crate::ui::fields::{self, Field};
use crate::ui::keymap::Action;
use crate::ui::state::{Effect, Level};

#[derive(Clone, Debug, Default)]
pub struct SettingsView {
    pub selected: usize,
    /// The selected field's value being typed.
    pub editing: Option<String>,
    /// The name being typed for a new preset.
    pub naming: Option<String>,
}

impl SettingsView {
    /// Whether a text field of ours takes every key.
    pub fn typing(&self) -> bool {
        self.editing.is_some() || self.naming.is_some()
    }

    pub fn field(&self) -> Field {
        fields::FIELDS[self.selected.min(fields::FIELDS.len() - 1)]
    }

    /// The keys of the settings context; `defaults` are what a reset
    /// goes back to.
    pub fn update(
        &mut self,
        action: Action,
        config: &mut Config,
        defaults: &Config,
        out: &mut Out,
    ) {
        match action {
            Action::SettingPrev => self.selected = self.selected.saturating_sub(1),
            Action::SettingNext => {
                self.selected = (self.selected + 1).min(fields::FIELDS.len() - 1)
            }
            Action::EditSetting => self.editing = Some(fields::value_of(config, self.field())),
            Action::Increase | Action::Decrease => {
                if let Err(e) = fields::nudge(config, self.field(), action == Action::Increase) {
                    out.say(Level::Error, e);
                }
            }
            Action::ResetSetting => {
                let v = fields::value_of(defaults, self.field());
                if let Err(e) = fields::set(config, self.field(), &v) {
                    out.say(Level::Error, e);
                }
            }
            Action::SavePreset => self.naming = Some(String::new()),
            _ => {}
        }
    }

    /// Every key while a value or a preset name is typed.
    pub fn key(&mut self, k: &KeyEvent, config: &mut Config, out: &mut Out) {
        if let Some(name) = self.naming.as_mut() {
            match k.code {
                KeyCode::Esc => self.naming = None,
                KeyCode::Enter => {
                    let name = name.trim().to_string();
                    self.save_preset(&name, config, out);
                }
                KeyCode::Backspace => {
                    name.pop();
                }
                KeyCode::Char(c) => name.push(c),
                _ => {}
            }
            return;
        }
        let field = self.field();
        let Some(text) = self.editing.as_mut() else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.editing = None,
            KeyCode::Enter => match fields::set(config, field, &text.clone()) {
                Ok(()) => {
                    self.editing = None;
                    out.say(
                        Level::Info,
                        format!(
                            "{} = {}; used by the next run",
                            field.name,
                            fields::value_of(config, field)
                        ),
                    );
                }
                Err(e) => out.say(Level::Error, e),
            },
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
    }

    /// Asks for the current sampler settings to be saved as preset `name`.
    pub fn save_preset(&mut self, name: &str, config: &Config, out: &mut Out) {
        if !presets::valid_name(name) {
            return out.say(
                Level::Error,
                format!("`{name}` is not a preset name: use letters, digits, - and _"),
            );
        }
        self.naming = None;
        out.effect(Effect::SavePreset {
            name: name.to_string(),
            settings: config.sampler.clone(),
        });
    }
}
