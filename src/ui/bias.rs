//! The interface's bias checks: the handlers of the quick check and the
//! bias pane. `App` holds a [`BiasState`] (in `ui::bias_state`) and its
//! router calls the `bias_*` methods below with keys and the engine's task
//! events. The checks run on the engine thread as tasks
//! ([`crate::analysis::bias::task`]); nothing here blocks.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};

use super::app::App;

pub use super::bias_state::*;
use super::keymap::Action;
use super::state::{Effect, EngineState, Level, Overlay};
use crate::analysis::bias::pairs::{self, Mode, PairsReport};
use crate::analysis::bias::probe::ProbeReport;
use crate::analysis::bias::suite::Suite;
use crate::analysis::bias::task::{PairsTask, QuickCheck, QuickTask, SuiteTask};
use crate::engine::Prompt;
use crate::engine::chat::Message;
use crate::engine::handle::{EngineCommand, EngineEvent, Task, TaskOutput};

/// The selected row's category name.
pub fn selected_category(app: &App) -> Option<String> {
    let report = app.bias.pane.report.as_ref()?;
    let rows = sorted_rows(report, app.bias.pane.sort);
    rows.get(app.bias.pane.selected.min(rows.len().saturating_sub(1)))
        .map(|r| r.name.clone())
}

/// Whether a task may start; says why not.
fn can_start(app: &mut App) -> bool {
    match app.state {
        EngineState::Idle => true,
        EngineState::Loading => {
            app.say(Level::Warn, "the model is still loading");
            false
        }
        EngineState::Failed => {
            app.say(
                Level::Error,
                "no model is loaded; quit and pass --model PATH to a GGUF file",
            );
            false
        }
        EngineState::Running => {
            app.say(Level::Warn, "the engine is busy; Esc cancels what runs");
            false
        }
    }
}

fn send(app: &mut App, task: Box<dyn Task>) -> u64 {
    let id = app.bias.new_id();
    app.outbox.push(EngineCommand::Task { id, task });
    app.state = EngineState::Running;
    id
}

/// The prompt the quick check looks at: the prompt being typed (under the
/// chat template when chat mode is on), else the current run's text.
fn quick_prompt(app: &App) -> Option<(Prompt, &'static str)> {
    if !app.editor.is_blank() {
        let text = app.editor.text();
        let g = &app.config.generation;
        let prompt = if g.chat {
            let mut messages = Vec::new();
            if !g.system.trim().is_empty() {
                messages.push(Message::new("system", g.system.clone()));
            }
            messages.push(Message::new("user", text));
            Prompt::Chat(messages)
        } else {
            Prompt::Text(text)
        };
        return Some((prompt, "prompt"));
    }
    if app.tokens.is_empty() {
        return None;
    }
    let text: String = app.tokens.iter().map(|t| t.text.as_str()).collect();
    Some((Prompt::Text(text), "current run"))
}

/// `quick_check`: opens the quick view and runs the check.
pub fn quick_check(app: &mut App) {
    app.overlay = Overlay::None;
    app.attention_view = false;
    app.compare_view = false;
    app.bias.view = BiasView::Quick;
    run_quick(app);
}

fn run_quick(app: &mut App) {
    if app.bias.quick.id.is_some() || !can_start(app) {
        return;
    }
    let swaps = match parse_swaps(&app.bias.quick.swaps) {
        Ok(s) => s,
        Err(e) => {
            app.bias.quick.error = Some(e.clone());
            return app.say(Level::Error, e);
        }
    };
    let Some((prompt, source)) = quick_prompt(app) else {
        let e = "nothing to check: type a prompt or run one first".to_string();
        app.bias.quick.error = Some(e.clone());
        return app.say(Level::Warn, e);
    };
    let k = app.config.generation.top_n.clamp(1, 50);
    let id = send(app, Box::new(QuickTask { prompt, swaps, k }));
    let q = &mut app.bias.quick;
    q.id = Some(id);
    q.error = None;
    q.source = source.to_string();
    q.scroll = 0;
    app.say(Level::Info, "quick check running; Esc cancels");
}

/// `bias_pane`: opens or closes the pane.
pub fn toggle_pane(app: &mut App) {
    if app.bias.view == BiasView::Pane {
        app.bias.view = BiasView::None;
        return;
    }
    app.overlay = Overlay::None;
    app.attention_view = false;
    app.compare_view = false;
    app.bias.view = BiasView::Pane;
    if app.bias.pane.report.is_none() && app.bias.pane.id.is_none() {
        app.say(
            Level::Info,
            "bias pane: r runs the probe suite, p the example pairs",
        );
    }
}

/// The task for a suite (a built-in name or a .toml path; empty: the
/// default) or a pairs file (.csv, scored in lmeval mode), with its size.
pub fn task_for(spec: &str) -> Result<(Box<dyn Task>, usize, RunKind), String> {
    let spec = spec.trim();
    if spec.to_ascii_lowercase().ends_with(".csv") {
        let bytes = std::fs::read(spec).map_err(|e| format!("cannot read {spec}: {e}"))?;
        let file = pairs::read_pairs(&bytes)
            .map_err(|e| format!("{spec} is not a usable pairs file: {e}"))?;
        let n = file.pairs.len();
        let task = PairsTask {
            file,
            data_file: spec.to_string(),
            mode: Mode::Lmeval,
        };
        return Ok((Box::new(task), n, RunKind::Pairs));
    }
    let suite =
        Suite::load(if spec.is_empty() { SUITE } else { spec }).map_err(|e| e.to_string())?;
    let n = suite.n_probes();
    Ok((Box::new(SuiteTask { suite }), n, RunKind::Suite))
}

fn run_pane(app: &mut App, kind: RunKind) {
    let task = match kind {
        RunKind::Suite => task_for(SUITE),
        RunKind::Pairs => PairsTask::example(Mode::Lmeval).map(|t| {
            let n = t.file.pairs.len();
            (Box::new(t) as Box<dyn Task>, n, RunKind::Pairs)
        }),
    };
    start_pane(app, task);
}

pub(super) fn start_pane(app: &mut App, task: Result<(Box<dyn Task>, usize, RunKind), String>) {
    if app.bias.pane.id.is_some() || !can_start(app) {
        return;
    }
    let (task, total, kind) = match task {
        Ok(t) => t,
        Err(e) => {
            app.bias.pane.error = Some(e.clone());
            return app.say(Level::Error, e);
        }
    };
    let id = send(app, task);
    let p = &mut app.bias.pane;
    p.id = Some(id);
    p.running = Some(kind);
    p.progress = (0, total);
    p.error = None;
    p.saved = None;
    let what = match kind {
        RunKind::Suite => "probe suite",
        RunKind::Pairs => "example pairs",
    };
    app.say(Level::Info, format!("running the {what}; Esc cancels"));
}

/// Esc or q with nothing running: close the detail, else the view.
pub fn close(app: &mut App) {
    if app.bias.view == BiasView::Pane && app.bias.pane.detail {
        app.bias.pane.detail = false;
    } else {
        app.bias.view = BiasView::None;
    }
}

/// The keys of the bias context.
pub fn update(app: &mut App, action: Action) {
    use Action::*;
    let view = app.bias.view;
    match action {
        BiasRun if view == BiasView::Quick => run_quick(app),
        BiasRun => run_pane(app, RunKind::Suite),
        BiasPairs if view == BiasView::Pane => run_pane(app, RunKind::Pairs),
        BiasSwaps if view == BiasView::Quick => {
            app.bias.quick.editing = Some(app.bias.quick.swaps.clone());
        }
        BiasOpen if view == BiasView::Pane => {
            app.bias.pane.editing = Some(String::new());
        }
        BiasSort if view == BiasView::Pane => {
            let p = &mut app.bias.pane;
            p.sort = p.sort.next();
            p.selected = 0;
            p.detail = false;
        }
        BiasDetail if view == BiasView::Pane && app.bias.pane.report.is_some() => {
            app.bias.pane.detail = true;
            app.bias.pane.item = 0;
        }
        BiasSave => save(app),
        LineUp | LineDown | PageUp | PageDown => {
            let delta: isize = match action {
                LineUp => -1,
                LineDown => 1,
                PageUp => -10,
                _ => 10,
            };
            let step = |v: usize, max: usize| -> usize {
                (v as isize + delta).clamp(0, max.saturating_sub(1) as isize) as usize
            };
            match view {
                BiasView::Quick => {
                    let n = app
                        .bias
                        .quick
                        .result
                        .as_ref()
                        .map_or(0, |r| r.aligned.len());
                    app.bias.quick.scroll = step(app.bias.quick.scroll, n);
                }
                BiasView::Pane => {
                    let Some(report) = app.bias.pane.report.as_ref() else {
                        return;
                    };
                    if app.bias.pane.detail {
                        let n = selected_category(app).map_or(0, |c| items(report, &c).len());
                        app.bias.pane.item = step(app.bias.pane.item, n);
                    } else {
                        let n = report_rows(report);
                        app.bias.pane.selected = step(app.bias.pane.selected, n);
                    }
                }
                BiasView::None => {}
            }
        }
        CloseView => close(app),
        _ => {}
    }
}

fn report_rows(report: &Report) -> usize {
    match report {
        Report::Probes(r) => r.categories.len(),
        Report::Pairs(r) => r.categories.len(),
    }
}

/// Every key while the swaps or a file name are edited.
pub fn edit_key(app: &mut App, k: &KeyEvent) {
    if let Some(text) = app.bias.pane.editing.as_mut() {
        match k.code {
            KeyCode::Esc => app.bias.pane.editing = None,
            KeyCode::Enter => {
                let spec = text.clone();
                app.bias.pane.editing = None;
                app.effects.push(Effect::OpenBiasFile(spec));
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
        return;
    }
    let Some(text) = app.bias.quick.editing.as_mut() else {
        return;
    };
    match k.code {
        KeyCode::Esc => app.bias.quick.editing = None,
        KeyCode::Enter => {
            let value = text.clone();
            match parse_swaps(&value) {
                Ok(_) => {
                    app.bias.quick.swaps = value.trim().to_string();
                    app.bias.quick.editing = None;
                    run_quick(app);
                }
                Err(e) => app.say(Level::Error, e),
            }
        }
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) => text.push(c),
        _ => {}
    }
}

/// `bias_save`: the shown results as JSON, written atomically (by the
/// event loop: [`Effect::SaveBias`]).
fn save(app: &mut App) {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (name, json) = match app.bias.view {
        BiasView::Quick => match &app.bias.quick.result {
            Some(r) => ("quick", serde_json::to_vec_pretty(r)),
            None => return app.say(Level::Warn, "no quick check to save yet"),
        },
        BiasView::Pane => match &app.bias.pane.report {
            Some(r @ Report::Probes(_)) => ("suite", r.to_json()),
            Some(r @ Report::Pairs(_)) => ("pairs", r.to_json()),
            None => return app.say(Level::Warn, "no results to save yet: r runs the suite"),
        },
        BiasView::None => return,
    };
    match json {
        Ok(json) => {
            let path = app.bias.save_dir.join(format!("bias-{name}-{stamp}.json"));
            app.effects.push(Effect::SaveBias { path, json });
        }
        Err(e) => app.say(Level::Error, format!("saving: {e}")),
    }
}

/// Results saved at `path`.
pub(super) fn saved(app: &mut App, path: PathBuf) {
    app.say(Level::Info, format!("saved {}", path.display()));
    if app.bias.view == BiasView::Pane {
        app.bias.pane.saved = Some(path);
    }
}

/// The engine's task events.
pub fn on_event(app: &mut App, event: EngineEvent) {
    match event {
        EngineEvent::TaskProgress { id, done, total } if app.bias.pane.id == Some(id) => {
            app.bias.pane.progress = (done, total);
        }
        EngineEvent::TaskDone { id, result } if app.bias.quick.id == Some(id) => {
            app.bias.quick.id = None;
            app.state = EngineState::Idle;
            match result.and_then(|o| downcast::<QuickCheck>(o, "quick check")) {
                Ok(r) => {
                    let msg = format!(
                        "quick check: {} replacement{}, JS {:.4} nats",
                        r.swap.replacements,
                        if r.swap.replacements == 1 { "" } else { "s" },
                        r.swap.divergence.js
                    );
                    app.bias.quick.result = Some(r);
                    app.bias.quick.error = None;
                    app.say(Level::Info, msg);
                }
                Err(e) => {
                    app.bias.quick.error = Some(e.clone());
                    app.say(Level::Error, format!("quick check: {e}"));
                }
            }
        }
        EngineEvent::TaskDone { id, result } if app.bias.pane.id == Some(id) => {
            let p = &mut app.bias.pane;
            p.id = None;
            let kind = p.running.take();
            app.state = EngineState::Idle;
            let report = result.and_then(|o| match kind {
                Some(RunKind::Pairs) => downcast::<PairsReport>(o, "pairs").map(Report::Pairs),
                _ => downcast::<ProbeReport>(o, "suite").map(Report::Probes),
            });
            match report {
                Ok(r) => {
                    let msg = if r.partial() {
                        format!("cancelled: partial results ({})", r.label())
                    } else {
                        format!("finished: {}; enter shows a category, w saves", r.label())
                    };
                    let p = &mut app.bias.pane;
                    p.report = Some(r);
                    p.selected = 0;
                    p.item = 0;
                    p.detail = false;
                    app.say(Level::Info, msg);
                }
                Err(e) => {
                    app.bias.pane.error = Some(e.clone());
                    app.say(Level::Error, format!("bias run: {e}"));
                }
            }
        }
        _ => {} // A replaced or unknown task.
    }
}

fn downcast<T: 'static>(o: TaskOutput, what: &str) -> Result<T, String> {
    o.downcast::<T>()
        .map(|b| *b)
        .map_err(|_| format!("the engine answered the {what} with something else"))
}

/// The bias views' part of the app's update, for its router (defined here
/// so that the app needs only the views' state, not their handlers).
impl App {
    pub(super) fn bias_quick_check(&mut self) {
        quick_check(self)
    }

    pub(super) fn bias_toggle_pane(&mut self) {
        toggle_pane(self)
    }

    pub(super) fn bias_close(&mut self) {
        close(self)
    }

    pub(super) fn bias_update(&mut self, action: Action) {
        update(self, action)
    }

    pub(super) fn bias_edit_key(&mut self, k: &KeyEvent) {
        edit_key(self, k)
    }

    pub(super) fn bias_on_event(&mut self, event: EngineEvent) {
        on_event(self, event)
    }
}
