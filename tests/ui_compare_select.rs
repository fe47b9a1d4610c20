//! Selecting a token in a compare column: the cursor's moves, the record
//! shown, and the attention asked of the engine's kept column.

mod ui_common;

use lmscope::engine::handle::{EngineCommand, EngineEvent, compare_column_id};
use lmscope::engine::types::PromptRecord;
use lmscope::ui::app::App;
use lmscope::ui::keymap::Action;
use lmscope::ui::theme::Theme;
use lmscope::ui::views::compare::compare_query;

fn selected(a: &App) -> Option<(usize, usize)> {
    a.compare.as_ref().unwrap().selected
}

/// The selected token's (preset, text).
fn picked(a: &App) -> (String, String) {
    let (preset, r) = a.compare.as_ref().unwrap().selected_record().unwrap();
    (preset.to_string(), r.text.clone())
}

#[test]
fn the_cursor_moves_within_and_between_columns() {
    let mut a = ui_common::compare_app(Theme::plain());
    assert_eq!(selected(&a), None);
    a.update(Action::ColumnNext); // the first press selects
    assert_eq!(selected(&a), Some((0, 0)));
    a.update(Action::TokenNext);
    a.update(Action::TokenNext);
    assert_eq!(selected(&a), Some((0, 2)));
    assert_eq!(picked(&a).1, " sat");
    a.update(Action::ColumnNext);
    a.update(Action::ColumnNext);
    assert_eq!(selected(&a), Some((2, 2)));
    assert_eq!(picked(&a), ("creative".into(), " purred".into()));
    a.update(Action::LastToken);
    assert_eq!(selected(&a), Some((2, 3)), "creative has 4 tokens");
    a.update(Action::ColumnPrev);
    assert_eq!(selected(&a), Some((1, 3)));
    a.update(Action::LastToken);
    a.update(Action::ColumnNext);
    assert_eq!(selected(&a), Some((2, 3)), "clamped to the shorter column");
    a.update(Action::ColumnNext);
    assert_eq!(selected(&a), Some((0, 3)), "columns wrap around");
    a.update(Action::FirstToken);
    a.update(Action::TokenPrev);
    assert_eq!(selected(&a), Some((0, 0)));
    // The main view's cursor is not moved by the compare view's keys.
    assert_eq!(a.output.cursor, a.output.tokens.len() - 1);
}

#[test]
fn the_selected_token_asks_the_kept_column_for_its_attention_row() {
    let mut a = ui_common::compare_app(Theme::plain());
    let id = a.compare.as_ref().unwrap().id;
    a.on_engine(EngineEvent::Prefilled {
        id,
        prompt: PromptRecord {
            token_ids: (0..6).collect(),
            texts: ui_common::PROMPT.iter().map(|s| s.to_string()).collect(),
            attention: None,
        },
        cache_len: 6,
    });
    assert_eq!(a.compare.as_ref().unwrap().prompt.len(), 6);
    assert!(a.output.tokens.len() > 6, "the main view keeps its run");
    a.outbox.clear();
    a.update(Action::ColumnNext);
    a.update(Action::ColumnNext);
    a.update(Action::TokenNext);
    let q = compare_query(a.compare.as_ref().unwrap(), 1, 1).unwrap();
    assert_eq!(q, ui_common::PROMPT.len() + 1);
    let asked: Vec<_> = a
        .outbox
        .iter()
        .filter_map(|c| match c {
            EngineCommand::Attention { id, queries, .. } => Some((*id, queries.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(asked.last(), Some(&(compare_column_id(id, 1), q..q + 1)));
    // Asked once per token and layer.
    let n = asked.len();
    a.tick(std::time::Instant::now());
    assert_eq!(
        a.outbox
            .iter()
            .filter(|c| matches!(c, EngineCommand::Attention { .. }))
            .count(),
        n
    );
    // The answer: a row over q+1 keys, heaviest on the first token.
    let mut rows = ui_common::attention(compare_column_id(id, 1), 0, 9, q + 1);
    let n_key = rows.rows.n_key;
    let mut data = Vec::new();
    for h in 0..9 {
        let start = (h * rows.rows.n_query + q) * n_key;
        data.extend_from_slice(&rows.rows.data[start..start + n_key]);
    }
    rows.rows.n_query = 1;
    rows.rows.first_query = q;
    rows.rows.data = data;
    a.on_engine(EngineEvent::Attention(rows));
    let top = a.compare.as_ref().unwrap().attended(3);
    assert_eq!(top.len(), 3);
    assert_eq!((top[0].0, top[0].1.as_str()), (0, "The"));
    assert!(top[0].2 > top[1].2);

    // The last token of a column is never fed: its query is the newest read.
    let last = a.compare.as_ref().unwrap().columns[2].records.len() - 1;
    assert_eq!(
        compare_query(a.compare.as_ref().unwrap(), 2, last),
        Some(ui_common::PROMPT.len() + last - 1)
    );
}

#[test]
fn no_attention_is_asked_while_the_columns_run() {
    let mut a = ui_common::app(Theme::plain());
    a.prompt.editor.insert_str("Tell me about the cat");
    a.update(Action::Compare);
    let id = a.tree.newest;
    a.on_engine(EngineEvent::CompareStep {
        id,
        column: 0,
        record: Box::new(ui_common::compare_step(0, 1, " The", 0.62, &[])),
        text_delta: " The".into(),
    });
    a.outbox.clear();
    a.update(Action::ColumnNext);
    assert_eq!(selected(&a), Some((0, 0)));
    assert!(a.compare.as_ref().unwrap().selected_record().is_some());
    assert!(
        a.outbox
            .iter()
            .all(|c| !matches!(c, EngineCommand::Attention { .. })),
        "the engine serves nothing else while a comparison runs"
    );
}
