//! What the interface keeps on disk by itself: settings edited in the
//! settings overlay are written back to the user's config.toml when the
//! overlay closes (only the changed keys, comments kept, a broken file left
//! alone), and the session autosave hashes the model on a thread of its
//! own, saving once the identity is known. No model: a small stand-in
//! file, events fed by hand, files in temporary folders.

mod ui_common;

use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use lmscope::store::config::{self, ColorBy};
use lmscope::store::models;
use lmscope::store::session::Session;
use lmscope::ui::app::App;
use lmscope::ui::effects::{self, Ctx};
use lmscope::ui::keymap::Action;
use lmscope::ui::state::{Effect, Level, Overlay};
use lmscope::ui::theme::Theme;
use ui_common::app;

fn ctx(dir: &Path) -> Ctx {
    Ctx {
        sessions_dir: dir.join("sessions"),
        config_dir: dir.join("config"),
        ..Default::default()
    }
}

fn key(a: &mut App, code: KeyCode) {
    a.on_terminal(&Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

/// Runs the effects the app queued, as the event loop does.
fn run_effects(a: &mut App, c: &mut Ctx) {
    for e in std::mem::take(&mut a.effects) {
        effects::apply(a, e, c);
    }
}

/// Opens the settings, lowers the temperature (0.8 -> 0.7), types a new
/// top_k (7) and closes the overlay.
fn edit_settings(a: &mut App) {
    a.effects.clear(); // the fixture's run asked for an autosave
    a.update(Action::Settings);
    assert_eq!(a.overlay, Overlay::Settings);
    a.update(Action::Decrease);
    a.update(Action::SettingNext);
    a.update(Action::EditSetting);
    key(a, KeyCode::Backspace);
    key(a, KeyCode::Backspace);
    key(a, KeyCode::Char('7'));
    key(a, KeyCode::Enter);
    assert_eq!(a.config.sampler.top_k, 7);
    assert!(
        a.effects.is_empty(),
        "nothing is written while the overlay is open"
    );
    a.update(Action::Settings);
    assert_eq!(a.overlay, Overlay::None);
}

#[test]
fn settings_closed_after_an_edit_are_written_back_and_load_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let mut a = app(Theme::plain());
    edit_settings(&mut a);
    assert_eq!(a.effects, vec![Effect::SaveSettings]);
    run_effects(&mut a, &mut c);
    let (level, text) = a.message.clone().unwrap();
    assert_eq!(level, Level::Info, "{text}");
    assert!(text.contains("settings saved"), "{text}");

    let path = dir.path().join("config").join(config::FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap();
    let l = config::parse(Some(&text), &path);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert!((l.config.sampler.temperature - 0.7).abs() < 1e-6, "{text}");
    assert_eq!(l.config.sampler.top_k, 7);
    assert_eq!(l.config.sampler, a.config.sampler);
    assert_eq!(l.config.generation, a.config.generation);
    assert!(text.contains("temperature = 0.7\n"), "{text}");

    // Opening and closing again without a change writes nothing.
    a.update(Action::Settings);
    a.update(Action::Settings);
    assert!(a.effects.is_empty(), "{:?}", a.effects);
    // Even if asked to, an unchanged config is not written.
    std::fs::remove_file(&path).unwrap();
    effects::apply(&mut a, Effect::SaveSettings, &mut c);
    assert!(!path.exists());
}

#[test]
fn comments_and_other_keys_of_the_users_file_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let path = dir.path().join("config").join(config::FILE_NAME);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let user = "# My lmscope settings.\n\n[sampler]\n# Warm, but not too warm.\ntemperature = 0.8 # the default\nseed = 7\n\n[compare]\npresets = [\"greedy\", \"creative\"]\n\n[keys.global]\n# Mine.\nquit = [\"ctrl-x\"]\n";
    std::fs::write(&path, user).unwrap();
    let loaded = config::parse(Some(user), &path);
    let mut a = app(Theme::plain());
    a.config = loaded.config.clone();
    a.saved_config = loaded.config;
    edit_settings(&mut a);
    a.update(Action::ToggleColor);
    a.update(Action::Quit);
    run_effects(&mut a, &mut c);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with(
            "# My lmscope settings.\n\n[sampler]\n# Warm, but not too warm.\ntemperature = 0.7 # the default\nseed = 7\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n[compare]\npresets = [\"greedy\", \"creative\"]\n\n[keys.global]\n# Mine.\nquit = [\"ctrl-x\"]\n"),
        "{text}"
    );
    let l = config::parse(Some(&text), &path);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(l.config.sampler.top_k, 7);
    assert_eq!(l.config.sampler.seed, 7);
    assert_eq!(l.config.ui.color_by, ColorBy::Entropy, "saved on quit");
    assert_eq!(l.config.compare.presets, ["greedy", "creative"]);
    assert_eq!(l.config.keys.len(), 1);
}

#[test]
fn a_broken_user_file_is_left_byte_for_byte_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let path = dir.path().join("config").join(config::FILE_NAME);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let user = b"# half edited\n[sampler\ntemperature = 0.5\n";
    std::fs::write(&path, user).unwrap();
    let mut a = app(Theme::plain());
    edit_settings(&mut a);
    run_effects(&mut a, &mut c);
    assert_eq!(std::fs::read(&path).unwrap(), user);
    let (level, text) = a.message.clone().unwrap();
    assert_eq!(level, Level::Error);
    assert!(
        text.contains("line 2") && text.contains("left untouched") && text.contains("config.toml"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1,
        "no temporary file left"
    );
    // Still unsaved: the next close tries again.
    a.update(Action::Settings);
    a.update(Action::Settings);
    assert_eq!(a.effects, vec![Effect::SaveSettings]);
}

/// The session autosave with a model file to hash: the effect returns at
/// once with the save pending (nothing written on the interface's thread),
/// and the save happens when the event loop polls after the hash is ready,
/// with the identity `store::models` computes for the file.
#[test]
fn autosave_hashes_the_model_in_the_background_then_saves() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.gguf");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&model, &bytes).unwrap();
    let mut c = ctx(dir.path());
    let mut a = app(Theme::plain());
    a.info.as_mut().unwrap().path = model.display().to_string();
    a.autosave = true;

    effects::apply(&mut a, Effect::Autosave, &mut c);
    assert!(c.hashing.save_pending, "the save waits for the hash");
    assert!(c.hashing.running());
    assert!(c.model.is_none());
    assert!(a.session_path.is_none(), "nothing saved yet");
    assert!(!dir.path().join("sessions").exists());
    // A second autosave while hashing starts nothing new and drops nothing.
    effects::apply(&mut a, Effect::Autosave, &mut c);
    assert!(c.hashing.save_pending);

    let start = Instant::now();
    while !effects::poll(&mut a, &mut c) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the hash never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!c.hashing.save_pending);
    let path = a.session_path.clone().expect("saved once the hash came");
    let saved = Session::load(&path).unwrap();
    assert_eq!(saved.model.sha256, models::sha256_file(&model).unwrap());
    assert_eq!(saved.model.path, model.display().to_string());

    // Later saves use the cached identity at once.
    let before = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    effects::apply(&mut a, Effect::Autosave, &mut c);
    assert!(!c.hashing.save_pending && !c.hashing.running());
    assert!(std::fs::metadata(&path).unwrap().modified().unwrap() >= before);
}

/// Quitting while the hash is still running waits for it and saves.
#[test]
fn a_pending_autosave_is_done_at_quit() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.gguf");
    std::fs::write(&model, b"not really a model").unwrap();
    let mut c = ctx(dir.path());
    let mut a = app(Theme::plain());
    a.info.as_mut().unwrap().path = model.display().to_string();
    a.autosave = true;
    effects::apply(&mut a, Effect::Autosave, &mut c);
    assert!(a.session_path.is_none());
    effects::finish(&mut a, &mut c);
    let saved = Session::load(a.session_path.as_ref().unwrap()).unwrap();
    assert_eq!(saved.model.sha256, models::sha256_file(&model).unwrap());
}

/// A model file that cannot be read: the pending save is reported, not
/// kept forever, and the poll does not retry on every frame.
#[test]
fn a_model_that_cannot_be_hashed_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let mut a = app(Theme::plain());
    a.info.as_mut().unwrap().path = dir.path().join("gone.gguf").display().to_string();
    a.autosave = true;
    effects::apply(&mut a, Effect::Autosave, &mut c);
    effects::finish(&mut a, &mut c);
    let (level, text) = a.message.clone().unwrap();
    assert_eq!(level, Level::Warn);
    assert!(text.contains("autosave failed"), "{text}");
    assert!(!c.hashing.save_pending);
    assert!(!effects::poll(&mut a, &mut c));
    assert!(!c.hashing.running(), "no retry until the next autosave");
}
