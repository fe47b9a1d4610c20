//! The session list overlay: the saved sessions, one selected.

use std::path::PathBuf;

use crate::store::session::SessionEntry;
use crate::ui::keymap::Action;

#[derive(Clone, Debug, Default)]
pub struct SessionsView {
    pub entries: Vec<SessionEntry>,
    pub selected: usize,
    /// The folder has been read since the list was opened.
    pub listed: bool,
}

impl SessionsView {
    /// The list opens: the folder is to be read again.
    pub fn open(&mut self) {
        self.listed = false;
    }

    /// The folder as read by the event loop.
    pub fn set(&mut self, entries: Vec<SessionEntry>) {
        self.selected = self.selected.min(entries.len().saturating_sub(1));
        self.entries = entries;
        self.listed = true;
    }

    /// Line and page moves.
    pub fn update(&mut self, action: Action) {
        let n = self.entries.len();
        self.selected = match action {
            Action::LineUp => self.selected.saturating_sub(1),
            Action::LineDown => (self.selected + 1).min(n.saturating_sub(1)),
            Action::PageUp => self.selected.saturating_sub(10),
            Action::PageDown => (self.selected + 10).min(n.saturating_sub(1)),
            _ => self.selected,
        };
    }

    /// The selected session's file, or why it cannot be opened.
    pub fn chosen(&self) -> Option<Result<PathBuf, String>> {
        let entry = self.entries.get(self.selected)?;
        Some(match &entry.error {
            Some(e) => Err(e.clone()),
            None => Ok(entry.path.clone()),
        })
    }
}
