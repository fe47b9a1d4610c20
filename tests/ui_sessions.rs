//! Sessions and presets from the interface: autosave after runs (branches
//! and compare columns included), the session list, opening a session,
//! corrupt files, and saving the sampler settings as a named preset. No
//! model: events are fed by hand, files go to temporary folders.

mod ui_common;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use lmscope::engine::handle::EngineEvent;
use lmscope::engine::types::{FinishReason, Timings};
use lmscope::store::session::{self, BranchPoint, ModelIdentity, Session};
use lmscope::ui::app::App;
use lmscope::ui::effects::{self, Ctx};
use lmscope::ui::keymap::Action;
use lmscope::ui::state::{Effect, Focus, Level, Overlay};
use lmscope::ui::theme::Theme;
use ui_common::{PROMPT, app, step};

fn identity() -> ModelIdentity {
    ModelIdentity {
        name: "SmolLM2 135M Instruct".into(),
        path: "/models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        sha256: "ab".repeat(32),
        file_bytes: 98_362_432,
    }
}

fn ctx(dir: &std::path::Path) -> Ctx {
    Ctx {
        sessions_dir: dir.join("sessions"),
        config_dir: dir.join("config"),
        model: Some(identity()),
        ..Default::default()
    }
}

/// The fixture run with one branch at step 2 (alternative " and", two
/// new tokens).
fn branched() -> App {
    let mut a = app(Theme::plain());
    let id = ui_common::start_branch(&mut a, 2, 1);
    for k in 0..2 {
        let mut r = step(2 + k, if k == 0 { " and" } else { " so" }, 0.3);
        r.token_id = 101 + k as u32;
        a.on_engine(EngineEvent::Step {
            id,
            record: Box::new(r),
            text_delta: String::new(),
            cache_len: PROMPT.len() + 2 + k,
        });
    }
    a.on_engine(EngineEvent::Finished {
        id,
        reason: FinishReason::Length,
        timings: Timings::default(),
    });
    a
}

#[test]
fn a_finished_run_or_branch_asks_for_an_autosave() {
    let mut a = app(Theme::plain());
    assert!(a.effects.contains(&Effect::Autosave), "{:?}", a.effects);
    a.effects.clear();
    let mut a = branched();
    assert_eq!(
        a.effects.iter().filter(|e| **e == Effect::Autosave).count(),
        2,
        "the run, then the branch"
    );
    a.effects.clear();
    // A comparison saves once, when every column has finished.
    let c = ui_common::compare_app(Theme::plain());
    assert_eq!(
        c.effects.iter().filter(|e| **e == Effect::Autosave).count(),
        2,
        "the fixture's run, then the comparison"
    );
}

#[test]
fn the_session_holds_the_run_tree_and_the_compare_columns() {
    let a = branched();
    let s = a.to_session(identity()).unwrap();
    assert_eq!(s.runs.len(), 2);
    assert_eq!(s.runs[0].steps.len(), 8);
    assert_eq!(s.runs[0].prompt_texts.len(), PROMPT.len());
    assert_eq!(s.runs[1].parent, Some(BranchPoint { run: 0, step: 2 }));
    let ids: Vec<u32> = s.runs[1].steps.iter().map(|r| r.token_id).collect();
    assert_eq!(
        ids,
        vec![100, 100, 101, 102],
        "the kept prefix, then the branch"
    );
    assert_eq!(s.prompt_tokens, (0..6).collect::<Vec<u32>>());

    let c = ui_common::compare_app(Theme::plain());
    let s = c.to_session(identity()).unwrap();
    assert_eq!(s.compare, vec![1, 2, 3]);
    let labels: Vec<&str> = s
        .compare
        .iter()
        .map(|&i| s.runs[i].label.as_str())
        .collect();
    assert_eq!(labels, ["greedy", "balanced", "creative"]);
    assert_eq!(s.runs[3].steps.len(), 4);
    assert_eq!(
        s.runs[3].request.sampler,
        c.presets["creative"].clone_with_seed(42)
    );
}

trait Seeded {
    fn clone_with_seed(&self, seed: u64) -> Self;
}

impl Seeded for lmscope::engine::sampling::SamplerSettings {
    fn clone_with_seed(&self, seed: u64) -> Self {
        Self {
            seed,
            ..self.clone()
        }
    }
}

#[test]
fn autosave_writes_one_file_that_the_list_shows_and_that_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let mut a = branched();
    a.autosave = true;
    effects::apply(&mut a, Effect::Autosave, &mut c);
    effects::apply(&mut a, Effect::Autosave, &mut c);
    let files: Vec<_> = std::fs::read_dir(dir.path().join("sessions"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1, "one session, saved over");
    let path = a.session_path.clone().unwrap();
    let saved = Session::load(&path).unwrap();
    assert_eq!(saved.runs.len(), 2);

    // A new interface lists it and opens it.
    let mut b = app(Theme::plain());
    b.update(Action::Sessions);
    assert_eq!(b.overlay, Overlay::Sessions);
    assert!(b.effects.contains(&Effect::ListSessions));
    b.effects.clear();
    effects::apply(&mut b, Effect::ListSessions, &mut c);
    assert_eq!(b.sessions.entries.len(), 1);
    let e = &b.sessions.entries[0];
    assert_eq!((e.runs, e.error.as_deref()), (2, None));
    assert_eq!(e.model, "SmolLM2 135M Instruct");
    b.update(Action::OpenSession);
    let load = b.effects.pop().unwrap();
    assert_eq!(load, Effect::LoadSession(path.clone()));
    effects::apply(&mut b, load, &mut c);
    assert_eq!(b.overlay, Overlay::None);
    assert_eq!(b.tree.runs.len(), 2);
    let (root, branch) = (b.tree.runs[0].id, b.tree.runs[1].id);
    assert_eq!(b.tree.runs[1].parent, Some((root, 2)));
    assert_eq!(b.tree.shown, branch);
    assert_eq!(b.output.tokens.len(), PROMPT.len() + 4);
    assert_eq!(b.output.tokens[PROMPT.len() + 2].text, " and");
    assert_eq!(b.session_path.as_deref(), Some(path.as_path()));
    // Opened runs are not in the engine: branching them is refused.
    b.focus = Focus::Probabilities;
    b.update(Action::TokenPrev);
    b.update(Action::AltNext);
    b.outbox.clear();
    b.update(Action::Branch);
    assert!(b.outbox.is_empty());
    assert!(b.message.as_ref().unwrap().1.contains("session file"));
}

#[test]
fn corrupt_and_newer_files_are_listed_with_their_error_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let sessions = dir.path().join("sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let broken = sessions.join("broken.json");
    std::fs::write(&broken, b"{\"version\": 1, \"runs\": [").unwrap();
    let future = sessions.join("future.json");
    std::fs::write(&future, b"{\"version\": 99}").unwrap();
    let mut a = app(Theme::plain());
    a.update(Action::Sessions);
    effects::apply(&mut a, Effect::ListSessions, &mut c);
    assert_eq!(a.sessions.entries.len(), 2);
    for e in &a.sessions.entries {
        let err = e.error.as_deref().unwrap();
        assert!(err.contains("untouched"), "{err}");
    }
    let i = a
        .sessions
        .entries
        .iter()
        .position(|e| e.name == "future")
        .unwrap();
    assert!(
        a.sessions.entries[i]
            .error
            .as_deref()
            .unwrap()
            .contains("newer")
    );
    a.sessions.selected = i;
    a.effects.clear();
    a.update(Action::OpenSession);
    assert!(a.effects.is_empty(), "a broken file is not opened");
    assert_eq!(a.message.as_ref().unwrap().0, Level::Error);
    assert_eq!(
        std::fs::read(&broken).unwrap(),
        b"{\"version\": 1, \"runs\": ["
    );
    assert_eq!(std::fs::read(&future).unwrap(), b"{\"version\": 99}");
    // Loading it anyway (it changed since the list) reports the error.
    effects::apply(&mut a, Effect::LoadSession(broken.clone()), &mut c);
    assert!(a.message.as_ref().unwrap().1.contains("broken.json"));
    assert_eq!(a.tree.runs.len(), 1, "the current session is kept");
}

#[test]
fn the_list_is_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    for (name, created) in [("a", 100u64), ("b", 300), ("c", 200)] {
        let mut s = Session::new(
            identity(),
            lmscope::engine::Prompt::Text(format!(
                "prompt {name} with quite a few words in it here"
            )),
            vec![],
            None,
        );
        s.created_unix = created;
        s.save(&sessions.join(format!("{name}.json"))).unwrap();
    }
    let names: Vec<String> = session::list(&sessions)
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["b", "c", "a"]);
    let first = &session::list(&sessions)[0];
    assert_eq!(first.prompt, "prompt b with quite a few words in…");
    assert_eq!(session::format_utc(1_764_349_200), "2025-11-28 17:00");
}

fn key(a: &mut App, code: KeyCode) {
    a.on_terminal(&Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
}

#[test]
fn the_settings_overlay_saves_a_named_preset() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let mut a = app(Theme::plain());
    a.update(Action::Settings);
    a.update(Action::Decrease); // temperature 0.8 -> 0.7
    key(&mut a, KeyCode::Char('p'));
    assert_eq!(a.settings.naming.as_deref(), Some(""));
    for ch in "bad name".chars() {
        key(&mut a, KeyCode::Char(ch));
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.message.as_ref().unwrap().0, Level::Error);
    assert!(
        a.effects
            .iter()
            .all(|e| !matches!(e, Effect::SavePreset { .. }))
    );
    for _ in 0.."name".len() + 1 {
        key(&mut a, KeyCode::Backspace);
    }
    for ch in "-cool".chars() {
        key(&mut a, KeyCode::Char(ch));
    }
    key(&mut a, KeyCode::Enter);
    assert_eq!(a.settings.naming, None);
    let effect = a.effects.pop().unwrap();
    match &effect {
        Effect::SavePreset { name, settings } => {
            assert_eq!(name, "bad-cool");
            assert!((settings.temperature - 0.7).abs() < 1e-6);
        }
        other => panic!("expected SavePreset, got {other:?}"),
    }
    let user = dir.path().join("config/presets.toml");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::write(&user, "# mine\n[warm]\ntemperature = 1.2\n").unwrap();
    effects::apply(&mut a, effect, &mut c);
    assert_eq!(
        a.message.as_ref().unwrap().0,
        Level::Info,
        "{:?}",
        a.message
    );
    assert!(
        a.presets.contains_key("bad-cool"),
        "usable by compare at once"
    );
    let text = std::fs::read_to_string(&user).unwrap();
    assert!(
        text.starts_with("# mine\n[warm]\ntemperature = 1.2\n"),
        "{text}"
    );
    assert!(text.contains("[bad-cool]"), "{text}");
    // Esc leaves naming without saving.
    key(&mut a, KeyCode::Char('p'));
    key(&mut a, KeyCode::Char('x'));
    key(&mut a, KeyCode::Esc);
    assert_eq!(a.settings.naming, None);
    assert_eq!(a.overlay, Overlay::Settings);
}

#[test]
fn an_opened_session_shows_its_compare_columns_on_f7_with_an_empty_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(dir.path());
    let mut a = ui_common::compare_app(Theme::plain());
    a.autosave = true;
    effects::apply(&mut a, Effect::Autosave, &mut c);
    let path = a.session_path.clone().unwrap();

    let mut b = app(Theme::plain());
    effects::apply(&mut b, Effect::LoadSession(path), &mut c);
    assert_eq!(b.tree.runs.len(), 1, "the main run");
    assert!(!b.compare_view);
    let cmp = b.compare.as_ref().unwrap();
    let presets: Vec<&str> = cmp.columns.iter().map(|c| c.preset.as_str()).collect();
    assert_eq!(presets, ["greedy", "balanced", "creative"]);
    assert_eq!(cmp.columns[2].records.len(), 4);
    b.outbox.clear();
    b.update(Action::Compare);
    assert!(b.compare_view);
    assert!(b.outbox.is_empty(), "nothing is run again");
    // Tokens can be selected; no attention is asked of the engine for
    // columns it never ran.
    b.update(Action::ColumnNext);
    assert!(b.compare.as_ref().unwrap().selected_record().is_some());
    assert!(b.outbox.is_empty());
}
