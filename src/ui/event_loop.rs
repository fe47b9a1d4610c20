//! The interface's loop: terminal events, engine events and a frame tick
//! under one `tokio::select!`. A key is drawn at once; engine events only
//! mark the screen dirty and are drawn on the next tick, so a fast stream
//! costs at most `max_fps` frames a second.

use std::time::{Duration, Instant};

use crossterm::event::Event;
use futures::{Stream, StreamExt};
use ratatui::Terminal;
use ratatui::backend::Backend;
use ratatui::layout::Rect;
use tokio::sync::mpsc::UnboundedReceiver;

use super::app::App;

use super::draw;
use super::state::{EngineState, Level};
use crate::engine::handle::{EngineCommand, EngineEvent, EngineHandle};

/// Frame completion times of draws that showed a key press (benchmarks).
#[derive(Debug, Default)]
pub struct Probe {
    pub key_frames: Vec<Instant>,
    pub frames: usize,
}

pub fn frame_period(max_fps: u32) -> Duration {
    Duration::from_secs(1) / max_fps.clamp(1, 240)
}

pub fn draw<B: Backend>(terminal: &mut Terminal<B>, app: &App) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    terminal.draw(|f| {
        let area = f.area();
        draw::draw(app, area, f.buffer_mut());
    })?;
    Ok(())
}

pub async fn run<B, S>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut input: S,
    events: &mut UnboundedReceiver<EngineEvent>,
    engine: &EngineHandle,
    mut probe: Option<&mut Probe>,
) -> anyhow::Result<()>
where
    B: Backend,
    B::Error: Send + Sync + 'static,
    S: Stream<Item = std::io::Result<Event>> + Unpin,
{
    let frame = frame_period(app.config.ui.max_fps);
    let mut tick = tokio::time::interval(frame);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let size = terminal.size()?;
    app.size = Rect::new(0, 0, size.width, size.height);
    draw(terminal, app)?;
    let mut last_draw = Instant::now();
    let mut dirty = false;
    let mut engine_gone = false;
    let mut effects = super::effects::Ctx::from_env();
    loop {
        let mut urgent = false;
        let mut key = false;
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    if app.on_terminal(&ev) {
                        dirty = true;
                        urgent = true;
                        key = matches!(ev, Event::Key(_));
                    }
                }
                Some(Err(e)) => return Err(anyhow::anyhow!("reading the terminal: {e}")),
                None => break,
            },
            ev = events.recv(), if !engine_gone => match ev {
                Some(ev) => {
                    app.on_engine(ev);
                    // Drain what else is queued before drawing.
                    while let Ok(ev) = events.try_recv() {
                        app.on_engine(ev);
                    }
                    dirty = true;
                }
                None => {
                    engine_gone = true;
                    if app.state != EngineState::Failed {
                        app.state = EngineState::Failed;
                        app.say(Level::Error, "the engine thread has stopped; see the log file");
                    }
                    dirty = true;
                }
            },
            _ = tick.tick() => app.tick(Instant::now()),
        }
        let commands: Vec<EngineCommand> = app.outbox.drain(..).collect();
        for command in commands {
            match command {
                EngineCommand::Cancel => engine.cancel(),
                other => {
                    if !engine.send(other) {
                        app.say(
                            Level::Error,
                            "the engine thread has stopped; see the log file",
                        );
                    }
                }
            }
        }
        for effect in std::mem::take(&mut app.effects) {
            super::effects::apply(app, effect, &mut effects);
            dirty = true;
            urgent = true;
        }
        if super::effects::poll(app, &mut effects) {
            dirty = true;
        }
        if app.quit {
            break;
        }
        if dirty && (urgent || last_draw.elapsed() >= frame) {
            draw(terminal, app)?;
            last_draw = Instant::now();
            dirty = false;
            if let Some(p) = probe.as_deref_mut() {
                p.frames += 1;
                if key {
                    p.key_frames.push(last_draw);
                }
            }
        }
    }
    // An autosave still waiting for the model's hash is done before leaving.
    super::effects::finish(app, &mut effects);
    Ok(())
}
