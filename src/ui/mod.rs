//! The workbench interface: ratatui over crossterm, the engine on its own
//! thread ([`crate::engine::handle`]). Ranked from the bottom (checked by
//! `tests/layering.rs`):
//!
//! - [`state`], [`layout`], [`text`], [`fields`], [`editor`], [`keymap`],
//!   [`theme`], [`widgets`]: shared types, pure geometry and text layout,
//!   keys and colours
//! - [`views`]: one module per view, owning its state and update
//! - [`panes`]: one render function per pane, from its view's state
//! - [`app`]: composition and routing (which view is on screen, events to
//!   views, what they ask carried out)
//! - [`draw`]: the whole screen from the app
//! - [`effects`], [`event_loop`], [`terminal`]: file work, the loop, raw
//!   mode (always restored); [`encoder`]: the encoder mode's own loop, for
//!   a masked language model

pub mod app;
pub mod draw;
pub mod editor;
pub mod effects;
pub mod encoder;
pub mod event_loop;
pub mod fields;
pub mod keymap;
pub mod layout;
pub mod panes;
pub mod state;
pub mod terminal;
pub mod text;
pub mod theme;
pub mod training;
pub mod views;
pub mod widgets;

use anyhow::Context as _;
use crossterm::event::EventStream;

use crate::engine::handle::EngineHandle;
use crate::store::launch::Launch;
use crate::store::{config, paths};
use app::App;
use keymap::Keymap;
use state::Level;
use theme::Theme;

/// Logs to `lmscope.log` in the data directory (never to the screen).
fn init_logging() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let dir = paths::logs_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let (writer, guard) =
        tracing_appender::non_blocking(tracing_appender::rolling::never(&dir, "lmscope.log"));
    let filter = tracing_subscriber::EnvFilter::try_from_env("LMSCOPE_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .ok()?;
    Some(guard)
}

/// `lmscope` with no subcommand.
pub fn run(launch: &Launch) -> anyhow::Result<()> {
    let _log = init_logging();
    launch.apply_threads()?;
    if let Some(remote) = &launch.remote {
        return workbench(Backend::Remote(remote.clone()));
    }
    // Fetching (with pip's progress) happens before the screen is taken.
    // Each failure says what to do (pass --model PATH, install pip, ...).
    let path = launch.model_path().context("no model to open")?;
    if crate::engine::masked::is_masked_model(&path) {
        tracing::info!("starting the encoder mode on {}", path.display());
        let engine = crate::engine::masked::MaskedEngine::load(&path)
            .with_context(|| format!("loading {}", path.display()))?;
        return encoder::run(engine);
    }
    workbench(Backend::Local(path, launch.precision))
}

/// Where the workbench's model runs.
enum Backend {
    Local(std::path::PathBuf, crate::engine::model::Precision),
    Remote(crate::remote::RemoteOptions),
}

/// The decoder workbench, on a local model or a server.
fn workbench(backend: Backend) -> anyhow::Result<()> {
    let loaded = config::load();
    let (keymap, key_warnings) = Keymap::load(&loaded.config.keys);
    let warnings: Vec<String> = loaded
        .warnings
        .iter()
        .cloned()
        .chain(key_warnings)
        .collect();
    for w in &warnings {
        tracing::warn!("config: {w}");
    }
    let label = match &backend {
        Backend::Local(path, _) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        Backend::Remote(o) => o.model.clone().unwrap_or_else(|| o.url.clone()),
    };
    let mut app = App::new(loaded.config, keymap, Theme::from_env(), label);
    // A server's runs have no token ids to save; local ones are autosaved.
    app.autosave = matches!(backend, Backend::Local(..));
    // The user's presets (presets.toml) join the built-in ones for compare.
    let mut warnings = warnings;
    match crate::store::presets::load() {
        Ok(p) => app.presets = p,
        Err(e) => {
            tracing::warn!("presets: {e}");
            warnings.push(format!("{e}; the built-in presets only"));
        }
    }
    if let Some(first) = warnings.first() {
        let more = if warnings.len() > 1 {
            format!(" (+{} more in the log)", warnings.len() - 1)
        } else {
            String::new()
        };
        app.say(Level::Warn, format!("{first}{more}"));
    }
    let history_path = paths::data_dir().join("prompt_history.json");
    app.prompt.history = std::fs::read(&history_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut engine = match backend {
        Backend::Local(path, precision) => {
            tracing::info!("starting the interface on {}", path.display());
            EngineHandle::spawn(path, precision, tx)
        }
        Backend::Remote(options) => {
            tracing::info!("starting the interface on {}", options.url);
            crate::remote::worker::spawn(options, tx)
        }
    }
    .context("starting the engine thread")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = {
        let mut guard = terminal::TerminalGuard::enter().context("preparing the terminal")?;
        runtime.block_on(event_loop::run(
            &mut guard.terminal,
            &mut app,
            EventStream::new(),
            &mut rx,
            &engine,
            None,
        ))
    };
    engine.shutdown();
    match serde_json::to_vec_pretty(&app.prompt.history) {
        Ok(bytes) => {
            if let Err(e) = crate::store::atomic::write(&history_path, &bytes) {
                tracing::warn!(
                    "saving the prompt history to {}: {e}",
                    history_path.display()
                );
            }
        }
        Err(e) => tracing::warn!("prompt history: {e}"),
    }
    result
}
