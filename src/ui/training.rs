//! The training view's loop: the run on its own thread (a panic there is
//! caught and reported), its events drawn as they come, keys that pause,
//! and a stop that lets the step in progress finish and be saved before
//! the terminal is given back.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use anyhow::Context as _;
use crossterm::event::{self, KeyEventKind};

use super::panes;
use super::state::Level;
use super::terminal::{Term, TerminalGuard};
use super::theme::Theme;
use super::views::training::{Action, TrainingView};
use crate::train::run::{Event, Trainer};

enum Msg {
    Event(Box<Event>),
    /// The run ended: how (an error or a panic's message).
    Done(Result<(), String>),
}

/// Watches `trainer` run until it ends and the user leaves.
pub fn run(mut trainer: Trainer) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let pause = Arc::new(AtomicBool::new(false));
    let (tx, rx) = channel();
    let worker = {
        let (stop, pause) = (stop.clone(), pause.clone());
        std::thread::Builder::new()
            .name("lmscope-train".into())
            .spawn(move || {
                let events = tx.clone();
                let result = catch_unwind(AssertUnwindSafe(|| {
                    trainer.run_pausable(
                        &mut |e| {
                            let _ = events.send(Msg::Event(Box::new(e.clone())));
                        },
                        &stop,
                        &pause,
                    )
                }));
                let done = match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(panic) => Err(format!(
                        "the training thread panicked: {}; the last checkpoint is intact",
                        panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default()
                    )),
                };
                let _ = tx.send(Msg::Done(done));
            })
            .context("starting the training thread")?
    };
    let mut view = TrainingView::default();
    let outcome = {
        let mut guard = TerminalGuard::enter().context("preparing the terminal")?;
        event_loop(&mut guard.terminal, &mut view, &rx, &stop, &pause)
    };
    stop.store(true, Ordering::Relaxed);
    pause.store(false, Ordering::Relaxed);
    let _ = worker.join();
    match outcome? {
        Some(Err(e)) => Err(anyhow::anyhow!(e)),
        _ => Ok(()),
    }
}

/// Draws until the user leaves a finished run; returns how the run ended
/// (None when the user left before it said).
fn event_loop(
    terminal: &mut Term,
    view: &mut TrainingView,
    rx: &Receiver<Msg>,
    stop: &AtomicBool,
    pause: &AtomicBool,
) -> anyhow::Result<Option<Result<(), String>>> {
    let theme = Theme::from_env();
    let mut done = None;
    loop {
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Event(e) => view.event(&e),
                Msg::Done(r) => {
                    if let Err(e) = &r {
                        view.finished = true;
                        view.message = Some((Level::Error, format!("{e} · q to leave")));
                    }
                    done = Some(r);
                }
            }
        }
        terminal.draw(|f| panes::training::render(&theme, view, f.area(), f.buffer_mut()))?;
        if !event::poll(Duration::from_millis(50))? {
            continue;
        }
        if let event::Event::Key(k) = event::read()?
            && k.kind != KeyEventKind::Release
        {
            match view.key(k) {
                Action::Pause(p) => pause.store(p, Ordering::Relaxed),
                Action::Stop => {
                    stop.store(true, Ordering::Relaxed);
                    pause.store(false, Ordering::Relaxed);
                }
                Action::Quit => return Ok(done),
                Action::None => {}
            }
        }
    }
}
