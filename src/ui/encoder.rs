//! The workbench on a masked language model (the encoder mode, chosen from
//! the model): its own screen ([`panes::masked`]) over [`MaskedView`], the
//! model on its own thread ([`MaskedHandle`]). The decoder's panes (the
//! sampler trace of a continuation, compare, sessions) have nothing to show
//! for an encoder, so this mode leaves them out and says so.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use anyhow::Context as _;
use crossterm::event::{self, Event, KeyEventKind};

use super::panes;
use super::state::Level;
use super::terminal::{Term, TerminalGuard};
use super::theme::Theme;
use super::views::masked::{MaskedView, ModelLine};
use crate::engine::masked::MaskedEngine;
use crate::engine::masked::handle::{MaskedEvent, MaskedHandle};
use crate::store::masked_session::{MaskedRun, MaskedSession};
use crate::store::paths;

/// Opens the encoder mode on `engine` until the user quits.
pub fn run(engine: MaskedEngine) -> anyhow::Result<()> {
    let info = engine.info();
    let model = ModelLine {
        name: info.name.clone(),
        architecture: info.architecture.clone(),
        layers: info.config.n_layer,
        heads: info.config.n_head,
        width: info.config.d_model,
        mlm_head: info.mlm_head,
        nsp_head: info.nsp_head,
    };
    let mask = engine
        .tokenizer()
        .mask_text()
        .unwrap_or_else(|| "[MASK]".into());
    let mut view = MaskedView::new(model, &mask);
    let (tx, rx) = channel();
    let engine = Arc::new(engine);
    let handle = MaskedHandle::spawn(engine.clone(), tx).context("starting the engine thread")?;
    let mut first = Default::default();
    view.analyze(&mut first);
    for c in first.commands {
        handle.send(c);
    }
    let mut guard = TerminalGuard::enter().context("preparing the terminal")?;
    event_loop(&mut guard.terminal, &mut view, &handle, &rx, &engine)
}

/// Writes the run as a masked session in the sessions folder's `masked/`
/// (apart from the decoder sessions the session list reads), atomically.
fn save(engine: &MaskedEngine, text: &str, run: MaskedRun) -> anyhow::Result<std::path::PathBuf> {
    let ids = engine.encode(text, None)?.ids;
    let mut session = MaskedSession::new(engine.info(), text, ids)?;
    session.runs.push(run);
    let dir = paths::sessions_dir().join("masked");
    let path = dir.join(format!("{}.json", session.created_unix));
    session.save(&path)?;
    Ok(path)
}

fn event_loop(
    terminal: &mut Term,
    view: &mut MaskedView,
    handle: &MaskedHandle,
    events: &Receiver<MaskedEvent>,
    engine: &MaskedEngine,
) -> anyhow::Result<()> {
    let theme = Theme::from_env();
    loop {
        while let Ok(e) = events.try_recv() {
            for c in view.event(e).commands {
                handle.send(c);
            }
        }
        terminal.draw(|f| panes::masked::render(&theme, view, f.area(), f.buffer_mut()))?;
        if !event::poll(Duration::from_millis(40))? {
            continue;
        }
        match event::read()? {
            Event::Key(k) if k.kind != KeyEventKind::Release => {
                let out = view.key(k);
                if out.cancel {
                    handle.cancel();
                }
                for c in out.commands {
                    handle.send(c);
                }
                if let Some((text, run)) = out.save {
                    view.message = Some(match save(engine, &text, run) {
                        Ok(p) => (
                            Level::Info,
                            format!(
                                "saved {}; `lmscope session replay` runs it again",
                                p.display()
                            ),
                        ),
                        Err(e) => (Level::Error, format!("could not save the session: {e:#}")),
                    });
                }
                if out.quit {
                    return Ok(());
                }
            }
            Event::Paste(text) if view.focus == super::views::masked::Focus::Text => {
                view.editor.insert_str(&text.replace('\n', " "));
            }
            _ => {}
        }
    }
}
