//! The interface's file work, done by the event loop between frames:
//! autosaving the session, reading the session folder, opening a session,
//! saving a named preset, writing changed settings back to the user's
//! config.toml, saving bias results and reading a user's bias suite or
//! pairs file. [`App`] only queues [`Effect`]s.
//!
//! Hashing the model file for the session's identity (about 100 MB) is the
//! one slow piece: it runs once, on a thread of its own ([`Hashing`]); an
//! autosave asked for before it is done waits for it ([`poll`], [`finish`]).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};

use super::app::App;

use super::state::{Effect, Level};
use super::views::{Out, bias};
use crate::engine::types::ModelInfo;
use crate::store::config::{self, Saved};
use crate::store::paths;
use crate::store::presets;
use crate::store::session::{self, ModelIdentity, Session};

/// Where the effects read and write, and what they have learned.
#[derive(Debug, Default)]
pub struct Ctx {
    pub sessions_dir: PathBuf,
    pub config_dir: PathBuf,
    /// The model's identity (its file hashed once, in the background).
    pub model: Option<ModelIdentity>,
    pub hashing: Hashing,
}

/// The model's identity being computed on its own thread.
#[derive(Debug, Default)]
pub struct Hashing {
    /// The hashing thread's answer, while it works.
    rx: Option<Receiver<Result<ModelIdentity, String>>>,
    /// An autosave is waiting for the identity.
    pub save_pending: bool,
    /// The last try failed: only an autosave tries again.
    failed: bool,
}

impl Hashing {
    /// Whether the hashing thread is at work.
    pub fn running(&self) -> bool {
        self.rx.is_some()
    }

    /// Starts hashing `info`'s file on a new thread (once at a time).
    fn start(&mut self, info: &ModelInfo) {
        if self.rx.is_some() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let info = info.clone();
        let spawned = std::thread::Builder::new()
            .name("lmscope-identify".into())
            .spawn(move || {
                let r = Session::identify(&info)
                    .map_err(|e| format!("hashing the model {}: {e}", info.path));
                let _ = tx.send(r);
            });
        match spawned {
            Ok(_) => self.rx = Some(rx),
            Err(e) => tracing::warn!("cannot start the hashing thread: {e}"),
        }
    }
}

impl Ctx {
    /// The data and config directories (`LMSCOPE_DATA_DIR`, ...).
    pub fn from_env() -> Self {
        Self {
            sessions_dir: paths::sessions_dir(),
            config_dir: paths::config_dir(),
            model: None,
            hashing: Hashing::default(),
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
            if app.autosave {
                request_autosave(app, ctx);
            }
        }
        Effect::SaveSettings => save_settings(app, ctx),
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
        Effect::SaveBias { path, json } => match crate::store::atomic::write(&path, &json) {
            Ok(()) => {
                let mut out = Out::default();
                app.bias.saved(path, &mut out);
                app.apply(out);
            }
            Err(e) => app.say(
                Level::Error,
                format!("saving {}: {e}; check the data directory", path.display()),
            ),
        },
        Effect::OpenBiasFile(spec) => {
            let mut out = Out::default();
            let engine = app.state.clone();
            app.bias
                .start_pane(bias::task_for(&spec), &engine, &mut out);
            app.apply(out);
        }
    }
}

/// Writes the settings changed since the last save into the user's
/// config.toml (only those keys; a file that does not parse is left as it
/// is, and the message says so).
fn save_settings(app: &mut App, ctx: &mut Ctx) {
    let to = app.settings_to_save();
    let path = ctx.config_dir.join(config::FILE_NAME);
    match config::save_changes(&path, &app.saved_config, &to) {
        Ok(Saved::Unchanged) => {}
        Ok(Saved::Written(keys)) => {
            app.saved_config = to;
            app.say(
                Level::Info,
                format!("settings saved to {} ({})", path.display(), keys.join(", ")),
            );
        }
        Err(e) => {
            tracing::warn!("saving settings: {e}");
            app.say(Level::Error, e.to_string());
        }
    }
}

/// Saves the session now if the model's identity is known; otherwise
/// starts hashing the model (once) and leaves the save pending.
fn request_autosave(app: &mut App, ctx: &mut Ctx) {
    if ctx.model.is_none() {
        let Some(info) = app.info.as_ref() else {
            return;
        };
        ctx.hashing.start(info);
        if ctx.hashing.running() {
            ctx.hashing.save_pending = true;
            return;
        }
        // No thread to be had: hash here rather than lose the save.
        let result =
            Session::identify(info).map_err(|e| format!("hashing the model {}: {e}", info.path));
        ctx.hashing.save_pending = true;
        return settle(app, ctx, result);
    }
    save_now(app, ctx);
}

fn save_now(app: &mut App, ctx: &mut Ctx) {
    if let Err(e) = autosave(app, ctx) {
        tracing::warn!("autosave: {e}");
        app.say(Level::Warn, format!("autosave failed: {e}"));
    }
}

/// Called by the event loop on every turn: starts hashing the model as
/// soon as it is loaded (when autosave is on), and takes in the identity
/// when it is ready, doing a pending autosave. True when it did anything
/// the screen may show.
pub fn poll(app: &mut App, ctx: &mut Ctx) -> bool {
    if app.autosave
        && ctx.model.is_none()
        && !ctx.hashing.running()
        && !ctx.hashing.failed
        && let Some(info) = app.info.as_ref()
    {
        ctx.hashing.start(info);
    }
    let Some(rx) = ctx.hashing.rx.as_ref() else {
        return false;
    };
    let result = match rx.try_recv() {
        Ok(r) => r,
        Err(TryRecvError::Empty) => return false,
        Err(TryRecvError::Disconnected) => Err("the hashing thread stopped".into()),
    };
    settle(app, ctx, result);
    true
}

/// At quit: waits for the identity if an autosave is still pending, and
/// saves, so no finished run is lost.
pub fn finish(app: &mut App, ctx: &mut Ctx) {
    if !ctx.hashing.save_pending {
        return;
    }
    let Some(rx) = ctx.hashing.rx.as_ref() else {
        return;
    };
    let result = rx
        .recv()
        .unwrap_or_else(|_| Err("the hashing thread stopped".into()));
    settle(app, ctx, result);
}

fn settle(app: &mut App, ctx: &mut Ctx, result: Result<ModelIdentity, String>) {
    ctx.hashing.rx = None;
    ctx.hashing.failed = result.is_err();
    let pending = std::mem::take(&mut ctx.hashing.save_pending);
    match result {
        Ok(m) => {
            ctx.model = Some(m);
            if pending {
                save_now(app, ctx);
            }
        }
        Err(e) => {
            tracing::warn!("autosave: {e}");
            if pending {
                app.say(Level::Warn, format!("autosave failed: {e}"));
            }
        }
    }
}

/// Saves the whole session (atomically) to its file in the sessions
/// folder, when the model's identity is known (see [`poll`]).
pub fn autosave(app: &mut App, ctx: &mut Ctx) -> anyhow::Result<()> {
    let Some(model) = ctx.model.clone() else {
        return Ok(());
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
