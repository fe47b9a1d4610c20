//! The interface's file work, done by the event loop between frames:
//! autosaving the session, reading the session folder, opening a session
//! and saving a named preset. [`App`] only queues [`Effect`]s.

use std::path::PathBuf;

use super::app::{App, Effect, Level};
use crate::store::paths;
use crate::store::presets;
use crate::store::session::{self, ModelIdentity, Session};

/// Where the effects read and write, and what they have learned.
#[derive(Debug, Default)]
pub struct Ctx {
    pub sessions_dir: PathBuf,
    pub config_dir: PathBuf,
    /// The model's identity (its file hashed once, at the first save).
    pub model: Option<ModelIdentity>,
}

impl Ctx {
    /// The data and config directories (`LMSCOPE_DATA_DIR`, ...).
    pub fn from_env() -> Self {
        Self {
            sessions_dir: paths::sessions_dir(),
            config_dir: paths::config_dir(),
            model: None,
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn apply(app: &mut App, effect: Effect, ctx: &mut Ctx) {
    match effect {
        Effect::Autosave => {
            if app.autosave
                && let Err(e) = autosave(app, ctx)
            {
                tracing::warn!("autosave: {e}");
                app.say(Level::Warn, format!("autosave failed: {e}"));
            }
        }
        Effect::ListSessions => app.set_sessions(session::list(&ctx.sessions_dir)),
        Effect::LoadSession(path) => match Session::load(&path) {
            Ok(s) => app.load_session(path, s),
            Err(e) => app.say(Level::Error, e.to_string()),
        },
        Effect::SavePreset { name, settings } => {
            let path = ctx.config_dir.join(presets::USER_FILE);
            match presets::save_user(&path, &name, &settings) {
                Ok(()) => {
                    app.presets.insert(name.clone(), settings);
                    app.say(
                        Level::Info,
                        format!(
                            "preset `{name}` saved to {}; name it in [compare] presets to compare it",
                            path.display()
                        ),
                    );
                }
                Err(e) => app.say(Level::Error, format!("saving preset `{name}`: {e}")),
            }
        }
    }
}

/// Saves the whole session (atomically) to its file in the sessions folder.
pub fn autosave(app: &mut App, ctx: &mut Ctx) -> anyhow::Result<()> {
    let model = match &ctx.model {
        Some(m) => m.clone(),
        None => {
            let Some(info) = app.info.as_ref() else {
                return Ok(());
            };
            let m = Session::identify(info)
                .map_err(|e| anyhow::anyhow!("hashing the model {}: {e}", info.path))?;
            ctx.model = Some(m.clone());
            m
        }
    };
    if app.session_created == 0 {
        app.session_created = now_unix();
    }
    let Some(session) = app.to_session(model) else {
        return Ok(());
    };
    let path = app
        .session_path
        .get_or_insert_with(|| {
            ctx.sessions_dir
                .join(format!("session-{}.json", session.created_unix))
        })
        .clone();
    session
        .save(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}
