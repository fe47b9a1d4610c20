//! The interface's speed figures (issue 3, item 7), printed, not asserted:
//!
//!   cargo test --test ui_bench -- --ignored --nocapture
//!
//! 1. Time to draw the attention view at 200x60 over a 1,000-token
//!    sequence (single head, mean of heads, all heads), target <= 5 ms.
//! 2. Delay from a key press to the frame that shows it while the real
//!    model generates, target p99 <= 33 ms: keys are injected into the real
//!    event loop (TestBackend 200x60) every 30 ms while the engine thread
//!    streams tokens with attention capture on and the attention pane open.

mod ui_common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use lmscope::engine::handle::{EngineEvent, EngineHandle};
use lmscope::engine::model::Precision;
use lmscope::engine::types::PromptRecord;
use lmscope::store::config::Config;
use lmscope::ui::app::App;
use lmscope::ui::event_loop::{self, Probe};
use lmscope::ui::keymap::{Action, Keymap};
use lmscope::ui::state::Focus;
use lmscope::ui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn attention_view_draw_time_1000_tokens_200x60() {
    let n = 1000;
    let mut app = ui_common::app(Theme::from_env());
    let id = app.tree.newest;
    // Replace the fixture's run with a 1,000-token one.
    app.on_engine(EngineEvent::Prefilled {
        id,
        prompt: PromptRecord {
            token_ids: vec![0; n],
            texts: (0..n).map(|i| format!(" w{i}")).collect(),
            attention: None,
        },
        cache_len: n,
    });
    app.on_engine(EngineEvent::Attention(ui_common::attention(id, 0, 9, n)));
    app.update(Action::AttentionView);
    app.update(Action::TokenPrev);
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    app.size = ratatui::layout::Rect::new(0, 0, 200, 60);
    println!("attention view, 200x60, {n} tokens, 9 heads (TestBackend, this build's profile):");
    for (label, setup) in [
        ("single head", None),
        ("mean of heads", Some(Action::MeanHeads)),
        ("all heads", Some(Action::Overview)),
    ] {
        if let Some(a) = setup {
            app.update(a);
        }
        let mut times = Vec::new();
        for i in 0..60 {
            // Alternate the query so every frame redraws the heatmap.
            app.update(if i % 2 == 0 {
                Action::TokenPrev
            } else {
                Action::TokenNext
            });
            let t = Instant::now();
            event_loop::draw(&mut term, &app).unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "  {label:<14} median {}  p99 {}  max {}",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(times[times.len() - 1])
        );
    }
}

#[test]
#[ignore = "benchmark: needs the real model; run with --ignored --nocapture"]
fn key_to_frame_latency_while_generating() {
    let model = lmscope::store::models::resolve(None).expect("the default model");
    let mut config = Config::defaults();
    config.generation.max_tokens = 2000;
    config.generation.chat = false;
    let mut app = App::new(
        config,
        Keymap::defaults(),
        Theme::from_env(),
        "bench".into(),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = EngineHandle::spawn(model, Precision::Quantized, tx).unwrap();
    let loaded = rx.blocking_recv().expect("engine event");
    assert!(matches!(loaded, EngineEvent::Loaded(_)), "{loaded:?}");
    app.on_engine(loaded);
    app.prompt
        .editor
        .insert_str("The history of the Roman Empire begins");
    app.run();
    app.focus = Focus::Output;

    let (keys_tx, keys_rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<Event>>();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sent2 = sent.clone();
    let n_keys = 300;
    let injector = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2500)); // let the prompt run
        for i in 0..n_keys {
            let code = if i % 3 == 2 {
                KeyCode::Right
            } else {
                KeyCode::Left
            };
            sent2.lock().unwrap().push(Instant::now());
            let _ = keys_tx.send(Ok(Event::Key(KeyEvent::new(code, KeyModifiers::NONE))));
            std::thread::sleep(Duration::from_millis(30));
        }
        let _ = keys_tx.send(Ok(Event::Key(KeyEvent::new(
            KeyCode::Char('q'),
            KeyModifiers::CONTROL,
        ))));
    });
    let input = Box::pin(futures::stream::unfold(keys_rx, |mut rx| async move {
        rx.recv().await.map(|e| (e, rx))
    }));
    let mut term = Terminal::new(TestBackend::new(200, 60)).unwrap();
    let mut probe = Probe::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime
        .block_on(event_loop::run(
            &mut term,
            &mut app,
            input,
            &mut rx,
            &engine,
            Some(&mut probe),
        ))
        .unwrap();
    let elapsed = started.elapsed();
    injector.join().unwrap();
    let sent = sent.lock().unwrap().clone();
    // One frame per key (keys are drawn at once); the last key quits.
    let mut lat: Vec<Duration> = sent
        .iter()
        .zip(&probe.key_frames)
        .map(|(s, f)| f.saturating_duration_since(*s))
        .collect();
    lat.sort();
    let generated = app
        .output
        .tokens
        .len()
        .saturating_sub(app.output.prompt_len);
    println!(
        "key -> frame while generating (200x60 TestBackend, {} keys, {} frames, {generated} tokens in {:.1} s, still generating: {}):",
        lat.len(),
        probe.frames,
        elapsed.as_secs_f64(),
        app.state == lmscope::ui::state::EngineState::Running
    );
    println!(
        "  median {}  p90 {}  p99 {}  max {}",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.9)),
        ms(percentile(&lat, 0.99)),
        ms(lat[lat.len() - 1])
    );
    assert_eq!(lat.len(), n_keys, "every key got its frame");
}
