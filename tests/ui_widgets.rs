//! Edge cases of the widgets and of the interface as a whole: NaN and
//! all-zero attention, a 1x1 area, a sequence far longer than the pane,
//! every terminal size, mouse selection, cancelling.

mod bias_fixtures;
mod ui_common;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use lmscope::engine::handle::EngineCommand;
use lmscope::engine::types::AttentionRows;
use lmscope::ui::keymap::Action;
use lmscope::ui::panes;
use lmscope::ui::state::{EngineState, Focus};
use lmscope::ui::theme::Theme;
use lmscope::ui::widgets::heatmap::{Heatmap, with_mean};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ui_common::{app, draw};

fn rows(
    n_head: usize,
    first_query: usize,
    n_query: usize,
    n_key: usize,
    value: f32,
) -> AttentionRows {
    AttentionRows {
        n_layer: 1,
        n_head,
        n_query,
        n_key,
        first_query,
        data: vec![value; n_head * n_query * n_key],
    }
}

fn render(
    r: &AttentionRows,
    head: usize,
    q: std::ops::Range<usize>,
    k: std::ops::Range<usize>,
    area: Rect,
    theme: Theme,
) -> Buffer {
    let mut buf = Buffer::empty(Rect::new(0, 0, 30, 12));
    Heatmap {
        rows: r,
        head,
        queries: q,
        keys: k,
        theme,
        per_row: head % 2 == 1,
        causal: true,
    }
    .render(area, &mut buf);
    buf
}

fn text(buf: &Buffer) -> String {
    buf.content().iter().map(|c| c.symbol()).collect()
}

#[test]
fn nan_attention_draws_as_empty() {
    let r = rows(2, 0, 8, 8, f32::NAN);
    let buf = render(&r, 0, 0..8, 0..8, Rect::new(0, 0, 30, 12), Theme::plain());
    assert!(
        text(&buf).chars().all(|c| c == ' '),
        "NaN weights draw nothing: {:?}",
        text(&buf)
    );
    let mut r = rows(2, 0, 8, 8, 0.1);
    r.data[5] = f32::NAN;
    r.data[9] = f32::INFINITY;
    render(
        &r,
        1,
        0..8,
        0..8,
        Rect::new(0, 0, 30, 12),
        Theme { color: true },
    );
    let m = with_mean(r);
    assert!(
        m.data[m.n_head * 64..].iter().all(|v| v.is_finite()),
        "the mean skips non-finite weights"
    );
}

#[test]
fn all_zero_attention_draws_as_empty() {
    let r = rows(1, 0, 5, 5, 0.0);
    let buf = render(&r, 0, 0..5, 0..5, Rect::new(0, 0, 30, 12), Theme::plain());
    assert!(text(&buf).chars().all(|c| c == ' '));
}

#[test]
fn tiny_and_outside_areas_do_not_panic() {
    let r = rows(1, 0, 4, 4, 0.25);
    for area in [
        Rect::new(0, 0, 1, 1),
        Rect::new(0, 0, 0, 0),
        Rect::new(29, 11, 5, 5),
        Rect::new(100, 100, 3, 3),
    ] {
        for theme in [Theme::plain(), Theme { color: true }] {
            render(&r, 0, 0..4, 0..4, area, theme);
        }
    }
    // A head past the data, empty and out-of-data ranges.
    render(&r, 7, 0..4, 0..4, Rect::new(0, 0, 10, 5), Theme::plain());
    render(&r, 0, 0..0, 0..4, Rect::new(0, 0, 10, 5), Theme::plain());
    render(
        &r,
        0,
        2..90,
        50..400,
        Rect::new(0, 0, 10, 5),
        Theme::plain(),
    );
}

#[test]
fn a_sequence_far_longer_than_the_pane_is_pooled_keeping_sharp_weights() {
    // 4,000 keys into 30 columns: one key with all the weight must show.
    let (n_query, n_key) = (50, 4000);
    let mut r = rows(1, 3950, n_query, n_key, 0.0);
    for q in 0..n_query {
        r.data[q * n_key + 1234] = 1.0;
    }
    let buf = render(
        &r,
        0,
        3950..4000,
        0..4000,
        Rect::new(0, 0, 30, 12),
        Theme::plain(),
    );
    let col = 1234 * 30 / 4000;
    for y in 0..12 {
        assert_eq!(buf[(col as u16, y)].symbol(), "█", "row {y}");
        assert_eq!(buf[(0, y)].symbol(), " ");
    }
}

#[test]
fn every_terminal_size_draws_without_panicking() {
    let mut a = app(Theme { color: true });
    for (w, h) in [
        (1, 1),
        (2, 40),
        (39, 11),
        (40, 12),
        (41, 13),
        (60, 12),
        (40, 50),
        (99, 19),
        (100, 20),
        (250, 70),
    ] {
        for view in [false, true] {
            a.attention_view = view;
            let term = draw(&mut a, w, h);
            let s = term.backend().to_string();
            if w < 40 || h < 12 {
                assert!(s.contains("too") || w < 10, "{w}x{h}: {s}");
            }
        }
    }
    a.attention_view = true;
    a.update(Action::Overview);
    for _ in 0..10 {
        a.update(Action::ZoomIn);
        draw(&mut a, 40, 12);
    }
    for p in [Action::PanKeysLeft, Action::PanKeysRight] {
        for _ in 0..20 {
            a.update(p);
            draw(&mut a, 45, 13);
        }
    }
}

#[test]
fn panes_draw_into_a_one_cell_area() {
    let a = app(Theme::plain());
    let mut buf = Buffer::empty(Rect::new(0, 0, 1, 1));
    let one = Rect::new(0, 0, 1, 1);
    let c = lmscope::ui::draw::chrome(&a);
    let shown = panes::attention::Shown {
        view: &a.attn,
        output: &a.output,
        run: a.tree.shown,
    };
    let facts = panes::status::Facts {
        model: &a.model_label,
        tokens: 0,
        tree: &a.tree,
        timings: &a.output.timings,
        checking_bias: false,
    };
    panes::output::render(&c, &a.output, &[], one, &mut buf);
    panes::probs::render(&c, &a.output, &a.probs, one, &mut buf);
    panes::prompt::render(&c, &a.prompt, one, &mut buf);
    panes::attention::render_small(&c, &shown, one, &mut buf);
    panes::attention::render_full(&c, &shown, one, &mut buf);
    panes::status::render(&c, &facts, one, &mut buf);
    panes::status::render_message(&c, None, one, &mut buf);
    panes::help::render(&a.theme, &a.keymap, "", 0, one, &mut buf);
    panes::settings::render(&c, &a.settings, &a.defaults, one, &mut buf);
    panes::sessions::render(&c, &a.sessions, one, &mut buf);
    panes::compare::render(&c, None, 0, one, &mut buf);
    panes::bias::render(&c, &a.bias, one, &mut buf);
    lmscope::ui::draw::draw(&a, one, &mut buf);
}

#[test]
fn a_click_selects_the_token_under_it() {
    let mut a = app(Theme { color: true });
    draw(&mut a, 120, 36);
    // "The cat sat" starts at column 1, row 2 of the screen: " cat" covers 4..8.
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row: 2,
        modifiers: KeyModifiers::NONE,
    };
    assert!(a.on_terminal(&Event::Mouse(click)));
    assert_eq!(a.focus, Focus::Output);
    assert_eq!(a.output.cursor, 1);
    assert!(
        !a.output.follow,
        "selecting an older token stops following the stream"
    );
}

#[test]
fn keys_move_the_cursor_and_esc_cancels_a_running_generation() {
    let mut a = app(Theme { color: true });
    a.focus = Focus::Output;
    let key = |c| Event::Key(KeyEvent::new(c, KeyModifiers::NONE));
    let before = a.output.cursor;
    a.on_terminal(&key(KeyCode::Left));
    assert_eq!(a.output.cursor, before - 1);
    a.on_terminal(&key(KeyCode::Home));
    assert_eq!(a.output.cursor, 0);
    a.on_terminal(&key(KeyCode::Down));
    assert!(a.output.cursor > 0, "down moves to the next line");

    a.state = EngineState::Running;
    a.outbox.clear();
    a.on_terminal(&key(KeyCode::Esc));
    assert!(matches!(a.outbox.as_slice(), [EngineCommand::Cancel]));
}

#[test]
fn typing_works_while_the_model_generates_and_enter_refuses_a_second_run() {
    let mut a = app(Theme { color: true });
    a.state = EngineState::Running;
    a.focus = Focus::Prompt;
    for c in "hi".chars() {
        a.on_terminal(&Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    assert_eq!(a.prompt.editor.text(), "hi");
    a.outbox.clear();
    a.on_terminal(&Event::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    assert!(a.outbox.is_empty());
    assert!(a.message.as_ref().is_some_and(|(_, m)| m.contains("Esc")));
}

#[test]
fn history_recalls_earlier_prompts() {
    let mut a = app(Theme { color: true });
    a.focus = Focus::Prompt;
    a.prompt.editor.insert_str("draft");
    a.update(Action::HistoryPrev);
    assert_eq!(a.prompt.editor.text(), "The cat sat on the mat");
    a.update(Action::HistoryNext);
    assert_eq!(a.prompt.editor.text(), "draft");
}

#[test]
fn long_sequences_ask_for_a_window_of_rows_around_the_query() {
    use lmscope::engine::types::PromptRecord;
    let mut a = app(Theme { color: true });
    let id = a.tree.newest;
    let n = 3000;
    a.on_engine(lmscope::engine::handle::EngineEvent::Prefilled {
        id,
        prompt: PromptRecord {
            token_ids: vec![0; n],
            texts: vec![" x".into(); n],
            attention: None,
        },
        cache_len: n,
    });
    a.outbox.clear();
    a.attn.in_flight = None;
    a.update(Action::AttentionView);
    a.focus = Focus::Output;
    a.output.cursor = 2500;
    a.output.follow = false;
    a.update(Action::ZoomIn);
    let asked: Vec<_> = a
        .outbox
        .iter()
        .filter_map(|c| match c {
            EngineCommand::Attention { queries, .. } => Some(queries.clone()),
            _ => None,
        })
        .collect();
    let q = asked.last().expect("an attention request");
    assert!(
        q.contains(&2500) && q.len() <= lmscope::ui::views::attention::MAX_ATTENTION_ROWS,
        "{q:?}"
    );
    let (rows, keys) = a.attn.window(a.sequence());
    assert!(
        rows.contains(&2500) && rows.len() == n / 2 && keys.len() == n / 2,
        "{rows:?} {keys:?}"
    );
    draw(&mut a, 80, 20);
}

#[test]
fn a_click_on_a_heatmap_row_makes_that_token_the_query() {
    let mut a = app(Theme::plain());
    a.update(Action::AttentionView);
    draw(&mut a, 110, 30);
    let cells = a
        .attn
        .heatmap_cells(a.areas().attention, a.attention_view)
        .expect("heatmap cells");
    let click = |row| {
        Event::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: cells.x + 2,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    a.on_terminal(&click(cells.y));
    assert_eq!(a.output.cursor, 0);
    a.on_terminal(&click(cells.bottom() - 1));
    assert_eq!(a.output.query(), Some(a.output.cache_len - 1));
    assert_eq!(a.output.cursor, a.output.cache_len - 1);
}

#[test]
fn f7_compares_the_prompt_under_the_presets_and_esc_cancels_then_closes() {
    let mut a = app(Theme { color: true });
    let key = |c| Event::Key(KeyEvent::new(c, KeyModifiers::NONE));
    // Nothing to compare: a notice, no command.
    a.on_terminal(&key(KeyCode::F(7)));
    assert!(a.outbox.is_empty());
    assert!(!a.compare_view);

    a.prompt.editor.insert_str("Tell me about the cat");
    a.on_terminal(&key(KeyCode::F(7)));
    let seed = a.config.sampler.seed;
    match a.outbox.as_slice() {
        [
            EngineCommand::Compare {
                id,
                request,
                presets,
            },
        ] => {
            assert_eq!(*id, a.tree.newest);
            // Captured as the settings say, so that a selected token's
            // attention can be served from the kept columns.
            assert_eq!(
                request.capture_attention,
                a.config.generation.capture_attention
            );
            let names: Vec<&str> = presets.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["greedy", "balanced", "creative"]);
            assert!(presets.iter().all(|(_, s)| s.seed == seed), "one seed");
            assert_eq!(presets[0].1.temperature, 0.0);
        }
        other => panic!("expected one Compare command, got {other:?}"),
    }
    assert!(a.compare_view);
    assert_eq!(a.state, EngineState::Running);
    assert!(a.prompt.editor.is_blank(), "the prompt went to the history");

    // ctrl-o is the same action; refused while a comparison runs.
    a.outbox.clear();
    a.on_terminal(&Event::Key(KeyEvent::new(
        KeyCode::Char('o'),
        KeyModifiers::CONTROL,
    )));
    assert!(a.outbox.is_empty());

    // Typing does not reach the hidden prompt; Esc cancels, then closes.
    a.on_terminal(&key(KeyCode::Char('x')));
    assert!(a.prompt.editor.is_blank());
    a.on_terminal(&key(KeyCode::Esc));
    assert!(matches!(a.outbox.as_slice(), [EngineCommand::Cancel]));
    let id = a.tree.newest;
    for column in 0..3 {
        a.on_engine(lmscope::engine::handle::EngineEvent::CompareFinished {
            id,
            column,
            reason: lmscope::engine::types::FinishReason::Cancelled,
            timings: Default::default(),
        });
    }
    assert_eq!(a.state, EngineState::Idle);
    a.on_terminal(&key(KeyCode::Esc));
    assert!(!a.compare_view);
}

#[test]
fn compare_view_draws_at_every_small_size() {
    let mut a = ui_common::compare_app(Theme { color: true });
    for w in 1..=60 {
        for h in 1..=20 {
            draw(&mut a, w, h);
        }
    }
    a.compare = None;
    draw(&mut a, 40, 12);
}

#[test]
fn compare_takes_the_first_four_config_presets_and_refuses_unknown_ones() {
    let mut a = app(Theme { color: true });
    a.prompt.editor.insert_str("Tell me about the cat");
    a.config.compare.presets = ["greedy", "nope", "creative"].map(String::from).to_vec();
    a.update(Action::Compare);
    assert!(a.outbox.is_empty());
    let (_, msg) = a.message.clone().expect("a message");
    assert!(msg.contains("`nope`") && msg.contains("known:"), "{msg}");
    assert!(!a.compare_view && a.state == EngineState::Idle);

    a.config.compare.presets = ["precise", "creative", "greedy", "balanced", "creative"]
        .map(String::from)
        .to_vec();
    a.update(Action::Compare);
    match a.outbox.as_slice() {
        [EngineCommand::Compare { presets, .. }] => {
            let names: Vec<&str> = presets.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["precise", "creative", "greedy", "balanced"]);
        }
        other => panic!("expected one Compare command, got {other:?}"),
    }
    assert_eq!(a.compare.as_ref().map(|c| c.columns.len()), Some(4));
    draw(&mut a, 40, 12);
}

#[test]
fn bias_views_draw_at_every_size() {
    use lmscope::engine::handle::{EngineCommand, EngineEvent};
    let answer = |a: &mut lmscope::ui::app::App, out: Box<dyn std::any::Any + Send>| {
        let id = match a.outbox.pop() {
            Some(EngineCommand::Task { id, .. }) => id,
            other => panic!("expected a task, got {other:?}"),
        };
        a.on_engine(EngineEvent::TaskDone {
            id,
            result: Ok(out),
        });
    };
    let mut quick = app(Theme { color: true });
    quick.prompt.editor.insert_str("he said");
    quick.update(Action::QuickCheck);
    // Empty and in flight first, then with a result.
    for (w, h) in [(1, 1), (40, 12), (250, 70)] {
        draw(&mut quick, w, h);
    }
    answer(&mut quick, Box::new(bias_fixtures::quick_check()));
    let mut suite = app(Theme { color: true });
    suite.update(Action::BiasPane);
    suite.update(Action::BiasRun);
    answer(&mut suite, Box::new(bias_fixtures::probe_report()));
    let mut detail = app(Theme::plain());
    detail.update(Action::BiasPane);
    detail.update(Action::BiasPairs);
    answer(&mut detail, Box::new(bias_fixtures::pairs_report()));
    detail.update(Action::BiasDetail);
    let mut probe_detail = app(Theme::plain());
    probe_detail.update(Action::BiasPane);
    probe_detail.update(Action::BiasRun);
    answer(&mut probe_detail, Box::new(bias_fixtures::probe_report()));
    probe_detail.update(Action::BiasDetail);
    for a in [&mut quick, &mut suite, &mut detail, &mut probe_detail] {
        for w in (1..=250).step_by(7).chain([1, 2, 39, 40, 41, 99, 100, 250]) {
            for h in (1..=70).step_by(3).chain([1, 11, 12, 13, 70]) {
                draw(a, w, h);
            }
        }
        // Scrolling past either end stays in range.
        for _ in 0..30 {
            a.update(Action::LineDown);
            draw(a, 60, 14);
        }
        for _ in 0..30 {
            a.update(Action::PageUp);
        }
        draw(a, 60, 14);
    }
    // A pane with no results, and one with an empty report.
    let mut empty = app(Theme::plain());
    empty.update(Action::BiasPane);
    draw(&mut empty, 40, 12);
    empty.update(Action::BiasRun);
    let mut r = bias_fixtures::probe_report();
    r.probes.clear();
    r.categories.clear();
    answer(&mut empty, Box::new(r));
    empty.update(Action::BiasDetail);
    for (w, h) in [(1, 1), (40, 12), (120, 36)] {
        draw(&mut empty, w, h);
    }
}

#[test]
fn an_encoder_heatmap_shows_keys_after_the_query() {
    use lmscope::engine::types::AttentionRows;
    let rows = AttentionRows {
        n_layer: 1,
        n_head: 1,
        n_query: 2,
        n_key: 2,
        first_query: 0,
        data: vec![0.5, 0.5, 0.5, 0.5],
    };
    let cell = |causal: bool| {
        let mut buf = Buffer::empty(Rect::new(0, 0, 2, 2));
        Heatmap {
            rows: &rows,
            head: 0,
            queries: 0..2,
            keys: 0..2,
            theme: Theme { color: false },
            per_row: false,
            causal,
        }
        .render(Rect::new(0, 0, 2, 2), &mut buf);
        buf[(1, 0)].symbol().to_string()
    };
    assert_eq!(cell(true), " ", "a decoder's query 0 never sees key 1");
    assert_ne!(cell(false), " ", "an encoder's does");
}
