//! One module per view: each owns its state and its update. An update
//! takes the plain facts it needs and answers through an [`Out`]: commands
//! for the engine, file work for the event loop, a line for the status bar.
//! The app routes keys and engine events to the views and carries out what
//! they ask; views never see the app, and panes draw from their state.

pub mod attention;
pub mod bias;
pub mod compare;
pub mod masked;
pub mod output;
pub mod positions;
pub mod probs;
pub mod prompt;
pub mod runs;
pub mod sessions;
pub mod settings;
pub mod training;

use super::state::{Effect, EngineState, Level};
use crate::engine::handle::EngineCommand;

/// What a view's update asks of the app.
#[derive(Debug, Default)]
pub struct Out {
    pub commands: Vec<EngineCommand>,
    pub effects: Vec<Effect>,
    /// A line for the status bar (the newest wins).
    pub message: Option<(Level, String)>,
    /// A line that does not hide an error already shown.
    pub note: Option<String>,
    /// The engine's new state, when the update started or ended its work.
    pub engine: Option<EngineState>,
}

impl Out {
    pub fn say(&mut self, level: Level, text: impl Into<String>) {
        self.message = Some((level, text.into()));
        self.note = None;
    }

    /// An info line shown unless an error is on screen.
    pub fn note(&mut self, text: impl Into<String>) {
        self.note = Some(text.into());
    }

    pub fn send(&mut self, command: EngineCommand) {
        self.commands.push(command);
    }

    pub fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }
}

/// Why the engine cannot take new work now, if so.
pub fn busy(state: &EngineState) -> Option<(Level, &'static str)> {
    match state {
        EngineState::Idle => None,
        EngineState::Loading => Some((Level::Warn, "the model is still loading")),
        EngineState::Failed => Some((
            Level::Error,
            "no model is loaded; quit and pass --model PATH to a GGUF file",
        )),
        EngineState::Running => Some((Level::Warn, "a generation is running; Esc cancels it")),
    }
}
