//! The quick check (f8) and the bias pane (f9) driven by keys and
//! synthetic engine events: what is sent to the engine, how results,
//! progress, cancellation and errors change the state. No model, no timing.

mod bias_fixtures;
mod ui_common;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use lmscope::analysis::bias::probe::ProbeReport;
use lmscope::engine::handle::{EngineCommand, EngineEvent};
use lmscope::ui::app::App;
use lmscope::ui::effects::{self, Ctx};
use lmscope::ui::keymap::Context;
use lmscope::ui::state::{Effect, EngineState, Level};
use lmscope::ui::theme::Theme;
use lmscope::ui::views::bias::{self, BiasView, Report, SortBy};
use ui_common::{app, draw};

fn key(c: KeyCode) -> Event {
    Event::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn ch(c: char) -> Event {
    key(KeyCode::Char(c))
}

/// The task sent to the engine: (id, name).
fn sent_task(a: &mut App) -> (u64, String) {
    let cmds: Vec<EngineCommand> = a.outbox.drain(..).collect();
    match cmds.as_slice() {
        [EngineCommand::Task { id, task }] => (*id, task.name().to_string()),
        other => panic!("expected one task, got {other:?}"),
    }
}

fn done(id: u64, out: impl std::any::Any + Send) -> EngineEvent {
    EngineEvent::TaskDone {
        id,
        result: Ok(Box::new(out)),
    }
}

/// Carries out the queued bias effects (file reads and writes), as the
/// event loop does between frames; only those, so that nothing else
/// touches the disk.
fn run_bias_effects(a: &mut App) {
    let queued = std::mem::take(&mut a.effects);
    let mut ctx = Ctx::default();
    for effect in queued {
        match effect {
            Effect::SaveBias { .. } | Effect::OpenBiasFile(_) => {
                effects::apply(a, effect, &mut ctx)
            }
            other => a.effects.push(other),
        }
    }
}

fn text(a: &mut App) -> String {
    draw(a, 120, 36).backend().to_string()
}

#[test]
fn f8_runs_the_quick_check_on_the_prompt_and_shows_the_result() {
    let mut a = app(Theme::plain());
    a.prompt.editor.insert_str("The doctor said that he");
    a.on_terminal(&key(KeyCode::F(8)));
    assert_eq!(a.bias.view, BiasView::Quick);
    assert_eq!(a.contexts()[0], Context::Bias);
    let (id, name) = sent_task(&mut a);
    assert_eq!(name, "quick check");
    assert_eq!(a.state, EngineState::Running);
    assert_eq!(a.bias.quick.source, "prompt");
    assert_eq!(
        a.prompt.editor.text(),
        "The doctor said that he",
        "the prompt is kept"
    );
    // Typing does not reach the prompt while the view is open.
    a.on_terminal(&ch('x'));
    assert_eq!(a.prompt.editor.text(), "The doctor said that he");
    a.on_engine(done(id, bias_fixtures::quick_check()));
    assert_eq!(a.state, EngineState::Idle);
    assert_eq!(a.bias.quick.result, Some(bias_fixtures::quick_check()));
    assert!(matches!(&a.message, Some((Level::Info, m)) if m.contains("1 replacement")));
    let s = text(&mut a);
    assert!(s.contains("B The·doctor·said·that·she"), "{s}");
    assert!(s.contains("JS 0.0483"), "{s}");
    assert!(s.contains("moved most"), "{s}");
    // Esc closes the view; the main screen is back.
    a.on_terminal(&key(KeyCode::Esc));
    assert_eq!(a.bias.view, BiasView::None);
}

#[test]
fn with_an_empty_prompt_the_quick_check_uses_the_current_run() {
    let mut a = app(Theme::plain());
    assert!(a.prompt.editor.is_blank());
    a.on_terminal(&key(KeyCode::F(8)));
    let (_, name) = sent_task(&mut a);
    assert_eq!(name, "quick check");
    assert_eq!(a.bias.quick.source, "current run");

    // With neither, it says what to do and sends nothing.
    let mut b = App::new(
        lmscope::store::config::Config::defaults(),
        lmscope::ui::keymap::Keymap::defaults(),
        Theme::plain(),
        "m".into(),
    );
    b.on_engine(EngineEvent::Loaded(Box::new(ui_common::info())));
    b.outbox.clear();
    b.update(lmscope::ui::keymap::Action::QuickCheck);
    assert!(b.outbox.is_empty());
    assert!(
        b.bias
            .quick
            .error
            .as_deref()
            .unwrap()
            .contains("type a prompt")
    );
    assert_eq!(b.state, EngineState::Idle);
}

#[test]
fn esc_cancels_a_quick_check_and_an_engine_error_leaves_the_interface_running() {
    let mut a = app(Theme::plain());
    a.prompt.editor.insert_str("He is here");
    a.on_terminal(&key(KeyCode::F(8)));
    let (id, _) = sent_task(&mut a);
    a.on_terminal(&key(KeyCode::Esc));
    assert!(matches!(a.outbox.as_slice(), [EngineCommand::Cancel]));
    a.outbox.clear();
    assert_eq!(a.bias.view, BiasView::Quick, "esc cancels first");
    a.on_engine(EngineEvent::TaskDone {
        id,
        result: Err("cancelled".into()),
    });
    assert_eq!(a.state, EngineState::Idle);
    assert_eq!(a.bias.quick.error.as_deref(), Some("cancelled"));
    // An engine error on the next one: shown, and keys still work.
    a.on_terminal(&ch('r'));
    let (id2, _) = sent_task(&mut a);
    assert!(id2 > id);
    a.on_engine(EngineEvent::TaskDone {
        id: id2,
        result: Err("nothing to swap: the prompt contains none of the terms".into()),
    });
    assert!(matches!(&a.message, Some((Level::Error, m)) if m.contains("nothing to swap")));
    let s = text(&mut a);
    assert!(s.contains("nothing to swap"), "{s}");
    // A stale answer for the first id changes nothing.
    a.on_engine(done(id, bias_fixtures::quick_check()));
    assert!(a.bias.quick.result.is_none());
    a.on_terminal(&key(KeyCode::Esc));
    a.on_terminal(&key(KeyCode::Esc));
    assert_eq!(a.bias.view, BiasView::None);
    a.on_terminal(&ch('y'));
    assert!(
        a.prompt.editor.text().ends_with('y'),
        "the prompt types again"
    );
}

#[test]
fn swaps_are_edited_in_the_view_and_bad_ones_refused() {
    let mut a = app(Theme::plain());
    a.prompt.editor.insert_str("The doctor said");
    a.on_terminal(&key(KeyCode::F(8)));
    let (id, _) = sent_task(&mut a);
    a.on_engine(done(id, bias_fixtures::quick_check()));
    a.on_terminal(&ch('e'));
    assert_eq!(a.bias.quick.editing.as_deref(), Some(""));
    for c in "he".chars() {
        a.on_terminal(&ch(c));
    }
    a.on_terminal(&key(KeyCode::Enter));
    assert!(matches!(&a.message, Some((Level::Error, m)) if m.contains("separated by `|`")));
    assert!(a.bias.quick.editing.is_some(), "still editing");
    assert!(a.outbox.is_empty());
    a.on_terminal(&key(KeyCode::Backspace));
    a.on_terminal(&key(KeyCode::Backspace));
    for c in "doctor=nurse, he|she".chars() {
        a.on_terminal(&ch(c));
    }
    a.on_terminal(&key(KeyCode::Enter));
    assert!(a.bias.quick.editing.is_none());
    assert_eq!(a.bias.quick.swaps, "doctor=nurse, he|she");
    assert_eq!(
        bias::parse_swaps(&a.bias.quick.swaps).unwrap(),
        vec![
            ("doctor".to_string(), "nurse".to_string()),
            ("he".to_string(), "she".to_string())
        ]
    );
    let (_, name) = sent_task(&mut a);
    assert_eq!(name, "quick check", "enter runs again with the new swaps");
    // Esc while editing only stops the edit.
    let mut b = app(Theme::plain());
    b.update(lmscope::ui::keymap::Action::QuickCheck);
    b.outbox.clear();
    b.bias.quick.id = None;
    b.state = EngineState::Idle;
    b.on_terminal(&ch('e'));
    b.on_terminal(&key(KeyCode::Esc));
    assert!(b.bias.quick.editing.is_none());
    assert_eq!(b.bias.view, BiasView::Quick);
}

#[test]
fn the_pane_runs_the_suite_with_progress_sorts_drills_down_and_saves() {
    let mut a = app(Theme::plain());
    let dir = tempfile::tempdir().unwrap();
    a.bias.save_dir = dir.path().join("bias");
    a.on_terminal(&key(KeyCode::F(9)));
    assert_eq!(a.bias.view, BiasView::Pane);
    assert!(a.outbox.is_empty(), "opening runs nothing");
    a.on_terminal(&ch('r'));
    let (id, name) = sent_task(&mut a);
    assert_eq!(name, "probe suite");
    let total = lmscope::analysis::bias::suite::Suite::load("default")
        .unwrap()
        .n_probes();
    assert_eq!(a.bias.pane.progress, (0, total));
    // A second run is refused while one runs.
    a.on_terminal(&ch('p'));
    assert!(a.outbox.is_empty());
    a.on_engine(EngineEvent::TaskProgress { id, done: 7, total });
    assert_eq!(a.bias.pane.progress, (7, total));
    let s = text(&mut a);
    assert!(s.contains(&format!("running: 7/{total} probes")), "{s}");
    // Progress of another task is not ours.
    a.on_engine(EngineEvent::TaskProgress {
        id: id + 100,
        done: 1,
        total: 2,
    });
    assert_eq!(a.bias.pane.progress, (7, total));
    a.on_engine(done(id, bias_fixtures::probe_report()));
    assert_eq!(a.state, EngineState::Idle);
    assert!(matches!(a.bias.pane.report, Some(Report::Probes(_))));

    // Significance: the interval of the attribute difference excludes 0;
    // a category without attributes has no effect to mark.
    let rows = bias::rows(a.bias.pane.report.as_ref().unwrap());
    let by = |n: &str| rows.iter().find(|r| r.name == n).unwrap().clone();
    assert!(by("gender").significant && by("gender").lo > 0.0);
    assert!(by("age").effect.is_nan() && !by("age").significant);
    // Sorting by effect puts gender (the largest difference) first.
    a.on_terminal(&ch('s'));
    assert_eq!(a.bias.pane.sort, SortBy::Effect);
    assert_eq!(a.bias.selected_category().as_deref(), Some("gender"));
    a.on_terminal(&ch('s'));
    assert_eq!(a.bias.pane.sort, SortBy::Name);
    assert_eq!(a.bias.selected_category().as_deref(), Some("age"));
    a.on_terminal(&ch('j'));
    assert_eq!(a.bias.selected_category().as_deref(), Some("gender"));
    for _ in 0..10 {
        a.on_terminal(&ch('j'));
    }
    assert_eq!(
        a.bias.selected_category().as_deref(),
        Some("religion"),
        "stops at the end"
    );
    a.on_terminal(&ch('k'));
    // Detail: the category's probes, largest difference first.
    a.on_terminal(&key(KeyCode::Enter));
    assert!(a.bias.pane.detail);
    let s = text(&mut a);
    assert!(s.contains("gender: 4 items"), "{s}");
    assert!(s.contains("The mother worked as"), "largest |Δ| first: {s}");
    a.on_terminal(&ch('j'));
    assert_eq!(a.bias.pane.item, 1);
    a.on_terminal(&ch('q'));
    assert!(!a.bias.pane.detail);
    assert_eq!(a.bias.view, BiasView::Pane, "q closes the detail first");

    // Saving writes the report as JSON, atomically, into the data dir.
    a.on_terminal(&ch('w'));
    assert!(a.bias.pane.saved.is_none(), "written by the event loop");
    run_bias_effects(&mut a);
    let saved = a.bias.pane.saved.clone().expect("saved");
    assert!(saved.starts_with(dir.path()));
    let bytes = std::fs::read(&saved).unwrap();
    assert_eq!(
        bytes,
        serde_json::to_vec_pretty(&bias_fixtures::probe_report()).unwrap()
    );
    let back: ProbeReport = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back.probes.len(), 9);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("bias"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    a.on_terminal(&key(KeyCode::Esc));
    assert_eq!(a.bias.view, BiasView::None);
    a.on_terminal(&key(KeyCode::F(9)));
    assert!(
        a.bias.pane.report.is_some(),
        "results stay when the pane reopens"
    );
}

#[test]
fn pairs_results_mark_holm_significance_and_a_cancelled_run_is_partial() {
    let mut a = app(Theme::plain());
    a.update(lmscope::ui::keymap::Action::BiasPane);
    a.on_terminal(&ch('p'));
    let (id, name) = sent_task(&mut a);
    assert_eq!(name, "minimal pairs");
    a.on_terminal(&key(KeyCode::Esc));
    assert!(matches!(a.outbox.as_slice(), [EngineCommand::Cancel]));
    a.outbox.clear();
    let mut report = bias_fixtures::pairs_report();
    report.partial = true;
    a.on_engine(done(id, report.clone()));
    assert!(matches!(&a.message, Some((_, m)) if m.contains("partial")));
    let rows = bias::rows(a.bias.pane.report.as_ref().unwrap());
    assert_eq!(rows.len(), report.categories.len());
    for (r, c) in rows.iter().zip(&report.categories) {
        assert_eq!(r.significant, c.p_holm.unwrap() < 0.05);
        assert_eq!(r.too_small, c.n < 30);
        assert_eq!(
            (r.effect, r.lo, r.hi),
            (c.pct_stereotype, c.wilson95.lo, c.wilson95.hi)
        );
    }
    let s = text(&mut a);
    assert!(s.contains("partial results (cancelled)"), "{s}");
    assert!(s.contains("(small)"), "{s}");
}

#[test]
fn an_engine_error_in_the_pane_is_shown_and_a_wrong_answer_type_is_an_error() {
    let mut a = app(Theme::plain());
    a.update(lmscope::ui::keymap::Action::BiasPane);
    a.on_terminal(&ch('r'));
    let (id, _) = sent_task(&mut a);
    a.on_engine(EngineEvent::TaskDone {
        id,
        result: Err("frame \"The man worked as\": the engine panicked: boom".into()),
    });
    assert_eq!(a.state, EngineState::Idle);
    assert!(a.bias.pane.error.as_deref().unwrap().contains("boom"));
    assert!(text(&mut a).contains("error: frame"));
    a.on_terminal(&ch('r'));
    let (id, _) = sent_task(&mut a);
    a.on_engine(done(id, 42u32));
    assert!(
        a.bias
            .pane
            .error
            .as_deref()
            .unwrap()
            .contains("something else")
    );
    assert_eq!(a.state, EngineState::Idle);
}

#[test]
fn nothing_starts_while_the_model_loads_or_a_generation_runs() {
    let mut a = App::new(
        lmscope::store::config::Config::defaults(),
        lmscope::ui::keymap::Keymap::defaults(),
        Theme::plain(),
        "m".into(),
    );
    a.prompt.editor.insert_str("he said");
    a.update(lmscope::ui::keymap::Action::QuickCheck);
    assert!(a.outbox.is_empty());
    assert!(matches!(&a.message, Some((Level::Warn, m)) if m.contains("loading")));
    let mut b = app(Theme::plain());
    b.prompt.editor.insert_str("Tell me");
    b.run();
    b.outbox.clear();
    b.prompt.editor.insert_str("he said");
    b.update(lmscope::ui::keymap::Action::QuickCheck);
    assert!(b.outbox.is_empty());
    assert!(matches!(&b.message, Some((Level::Warn, m)) if m.contains("busy")));
}

#[test]
fn interval_bars_and_swap_parsing() {
    use lmscope::ui::panes::bias::interval_bar;
    use lmscope::ui::views::bias::Row;
    let row = |effect, lo, hi, null| Row {
        name: "x".into(),
        n: 1,
        effect,
        lo,
        hi,
        null,
        extra: 0.0,
        p: None,
        significant: false,
        too_small: false,
    };
    assert_eq!(
        interval_bar(&row(0.5, 0.25, 0.75, 0.5), 0.0, 1.0, 9),
        "  ──●──  "
    );
    assert_eq!(
        interval_bar(&row(0.9, 0.8, 1.0, 0.5), 0.0, 1.0, 11),
        "     ┆  ─●─"
    );
    assert_eq!(
        interval_bar(&row(f64::NAN, f64::NAN, f64::NAN, 0.0), -1.0, 1.0, 5),
        "  ┆  "
    );
    assert_eq!(
        interval_bar(&row(7.0, 5.0, 9.0, 0.0), -1.0, 1.0, 3),
        " ┆●",
        "clamped to the range"
    );
    assert_eq!(interval_bar(&row(0.0, 0.0, 0.0, 0.0), 0.0, 1.0, 0), "");
    assert_eq!(bias::parse_swaps("  ").unwrap(), vec![]);
    assert_eq!(
        bias::parse_swaps("Black man = White man").unwrap(),
        vec![("Black man".to_string(), "White man".to_string())]
    );
    assert!(bias::parse_swaps("he|she, nurse").is_err());
}

#[test]
fn o_runs_a_suite_or_pairs_file_given_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("mine.toml");
    std::fs::write(
        &suite,
        "name = \"mine\"\n[[frames]]\nid = \"f\"\ntext = \"The {term} was\"\n\
         [[categories]]\nname = \"age\"\npairs = [[\"old\", \"young\"], [\"elderly\", \"teenage\"]]\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,b\n1,2\n").unwrap();
    let mut a = app(Theme::plain());
    a.update(lmscope::ui::keymap::Action::BiasPane);
    let type_in = |a: &mut App, s: &str| {
        a.on_terminal(&ch('o'));
        assert!(a.bias.editing());
        for c in s.chars() {
            a.on_terminal(&ch(c));
        }
        a.on_terminal(&key(KeyCode::Enter));
        assert!(!a.bias.editing());
        // The file is read by the event loop, not by `update`.
        assert!(a.outbox.is_empty());
        run_bias_effects(a);
    };
    // A bad pairs file: an error, nothing sent, the pane still works.
    type_in(&mut a, bad.to_str().unwrap());
    assert!(a.outbox.is_empty());
    assert!(
        a.bias
            .pane
            .error
            .as_deref()
            .unwrap()
            .contains("not a usable pairs file")
    );
    assert!(matches!(&a.message, Some((Level::Error, _))));
    // An unknown suite name says which exist.
    type_in(&mut a, "nosuch");
    assert!(
        a.bias
            .pane
            .error
            .as_deref()
            .unwrap()
            .contains("built-in suites are default")
    );
    // The user's suite runs: 2 pairs x 1 frame.
    type_in(&mut a, suite.to_str().unwrap());
    let (_, name) = sent_task(&mut a);
    assert_eq!(name, "probe suite");
    assert_eq!(a.bias.pane.progress, (0, 2));
    assert!(a.bias.pane.error.is_none());
    // Esc while typing only stops the typing.
    let mut b = app(Theme::plain());
    b.update(lmscope::ui::keymap::Action::BiasPane);
    b.on_terminal(&ch('o'));
    b.on_terminal(&ch('q'));
    b.on_terminal(&key(KeyCode::Esc));
    assert!(!b.bias.editing() && b.outbox.is_empty());
    assert_eq!(b.bias.view, BiasView::Pane);
}
