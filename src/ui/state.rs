//! Small types every view and pane shares: which pane has focus, which
//! overlay is open, what the engine is doing, message levels, one token of
//! the shown sequence, and the effects the interface asks of the world.

use std::path::PathBuf;

use crate::engine::sampling::SamplerSettings;
use crate::engine::types::StepRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Prompt,
    Output,
    Probabilities,
    Attention,
}

impl Focus {
    pub const ORDER: [Focus; 4] = [
        Focus::Prompt,
        Focus::Output,
        Focus::Probabilities,
        Focus::Attention,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Settings,
    Sessions,
}

/// What the interface asks of the world outside it (files); the event
/// loop carries these out ([`super::effects`]), so `update` stays pure.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Save the session (every run, branch and compare column).
    Autosave,
    /// Read the session folder for the list.
    ListSessions,
    LoadSession(PathBuf),
    /// Write the settings changed since the last save (sampler, generation,
    /// colouring) into the user's config.toml.
    SaveSettings,
    /// Save sampler settings as a named preset in the user's presets file.
    SavePreset {
        name: String,
        settings: SamplerSettings,
    },
    /// Write bias results (JSON) into the data directory.
    SaveBias {
        path: PathBuf,
        json: Vec<u8>,
    },
    /// Read a user's suite (.toml) or pairs file (.csv) and run it in the
    /// bias pane.
    OpenBiasFile(String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum EngineState {
    Loading,
    Idle,
    Running,
    Failed,
}

impl EngineState {
    pub fn label(&self) -> &'static str {
        match self {
            EngineState::Loading => "loading",
            EngineState::Idle => "ready",
            EngineState::Running => "generating",
            EngineState::Failed => "no model",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One token of the sequence: prompt tokens have no record.
#[derive(Clone, Debug, PartialEq)]
pub struct Tok {
    pub text: String,
    pub record: Option<Box<StepRecord>>,
}
