//! The encoder mode on a real (tiny, random) BERT with its MLM and NSP
//! heads: the engine thread answers, the view takes its events, the screen
//! shows the tokens with [CLS]/[SEP] and masks, the candidates, the
//! bidirectional attention and the overview; masked generation streams one
//! step per mask; a tiny terminal gets a message.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lmscope::engine::masked::MaskedEngine;
use lmscope::engine::masked::handle::{MaskedEvent, MaskedHandle};
use lmscope::ui::theme::Theme;
use lmscope::ui::views::masked::{Focus, MaskedView, ModelLine};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn start(dir: &str) -> (MaskedView, MaskedHandle, Receiver<MaskedEvent>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let engine = MaskedEngine::load(&path).unwrap();
    let model = ModelLine::of(engine.info());
    let view = MaskedView::new(model, &engine.tokenizer().mask_text().unwrap());
    let (tx, rx) = channel();
    let handle = MaskedHandle::spawn(Arc::new(engine), tx).unwrap();
    (view, handle, rx)
}

fn key(view: &mut MaskedView, handle: &MaskedHandle, code: KeyCode, mods: KeyModifiers) {
    let out = view.key(KeyEvent::new(code, mods));
    for c in out.commands {
        handle.send(c);
    }
}

/// Feeds events to the view until `done` says so.
fn pump(
    view: &mut MaskedView,
    handle: &MaskedHandle,
    rx: &Receiver<MaskedEvent>,
    done: impl Fn(&MaskedView) -> bool,
) {
    while !done(view) {
        let e = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the engine answers");
        for c in view.event(e).commands {
            handle.send(c);
        }
    }
}

fn screen(view: &MaskedView, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| {
        lmscope::ui::panes::masked::render(&Theme { color: false }, view, f.area(), f.buffer_mut())
    })
    .unwrap();
    t.backend().to_string()
}

#[test]
fn encoder_mode_shows_tokens_candidates_and_attention() {
    let (mut view, handle, rx) = start("tests/fixtures/hf/tiny-bert");
    view.editor
        .set_text("the model reads the [MASK] and writes");
    key(&mut view, &handle, KeyCode::Enter, KeyModifiers::NONE);
    pump(&mut view, &handle, &rx, |v| !v.busy);
    assert_eq!(view.tokens.first().unwrap().text, "[CLS]");
    assert!(view.tokens.first().unwrap().special);
    assert_eq!(view.selected, 7, "the first mask is selected");
    let fill = view.selected_fill().expect("candidates at the mask");
    assert_eq!(fill.top.len(), 10);
    let attention = view.attention.as_ref().unwrap();
    assert_eq!(
        (attention.n_query, attention.n_key),
        (12, 12),
        "every query over every key"
    );
    // Moving through layers and heads, the mean included.
    key(&mut view, &handle, KeyCode::Tab, KeyModifiers::NONE);
    assert_eq!(view.focus, Focus::Tokens);
    key(&mut view, &handle, KeyCode::PageDown, KeyModifiers::NONE);
    key(&mut view, &handle, KeyCode::Up, KeyModifiers::NONE);
    assert_eq!(
        (view.layer, view.head),
        (1, 4),
        "layer 2, the mean of the 4 heads"
    );
    insta::assert_snapshot!(screen(&view, 110, 34));
}

#[test]
fn masked_generation_streams_one_step_per_mask() {
    let (mut view, handle, rx) = start("tests/fixtures/hf/tiny-bert");
    view.editor
        .set_text("the [MASK] reads the [MASK] and [MASK]");
    key(
        &mut view,
        &handle,
        KeyCode::Char('t'),
        KeyModifiers::CONTROL,
    ); // greedy
    assert_eq!(view.settings.temperature, 0.0);
    key(
        &mut view,
        &handle,
        KeyCode::Char('g'),
        KeyModifiers::CONTROL,
    );
    pump(&mut view, &handle, &rx, |v| !v.generating);
    // Then the filled text's attention arrives, the steps kept.
    pump(&mut view, &handle, &rx, |v| {
        v.attention.is_some() && !v.busy
    });
    assert_eq!(view.steps.len(), 3);
    let positions: std::collections::BTreeSet<usize> =
        view.steps.iter().map(|s| s.position).collect();
    assert_eq!(positions.len(), 3, "each mask filled once");
    assert!(
        view.generated
            .as_ref()
            .is_some_and(|t| !t.contains("[MASK]"))
    );
    // Greedy: every step took the most probable token.
    assert!(view.steps.iter().all(|s| s.rank == 1));
    // The tokens are the filled sequence, the last drawn one selected with
    // its trace (raw and final probabilities, what removed the others).
    let last = view.steps.last().unwrap();
    assert_eq!(view.selected, last.position);
    assert_eq!(view.tokens[last.position].token_id, last.token_id);
    assert!(view.selected_step().is_some());
    let a = view.attention.as_ref().unwrap();
    assert_eq!(
        a.n_query,
        view.tokens.len(),
        "attention over the filled text"
    );
    assert!(
        view.message
            .as_ref()
            .unwrap()
            .1
            .contains("masked generation: 3 steps")
    );
    insta::assert_snapshot!(screen(&view, 110, 34));
}

#[test]
fn a_model_without_an_mlm_head_says_why_and_a_tiny_terminal_says_so() {
    let (mut view, handle, rx) = start("tests/fixtures/hf/tiny-bert");
    view.model.mlm_head = false;
    key(
        &mut view,
        &handle,
        KeyCode::Char('g'),
        KeyModifiers::CONTROL,
    );
    assert!(!view.generating);
    assert!(view.message.as_ref().unwrap().1.contains("MLM head"));
    drop(rx);
    let s = screen(&view, 40, 10);
    assert!(s.contains("terminal too small"), "{s}");
}
