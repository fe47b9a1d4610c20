//! A TestBackend snapshot of every pane with fixed data (tests/ui_common).
//! Colours are not in the text snapshots, so the attention views are also
//! snapshotted colourless (NO_COLOR), where the heatmap is in shading
//! characters.

mod ui_common;

use lmscope::engine::handle::EngineEvent;
use lmscope::ui::app::App;
use lmscope::ui::keymap::Action;
use lmscope::ui::state::{Focus, Overlay};
use lmscope::ui::theme::Theme;
use ui_common::{app, draw};

fn screen(app: &mut App, w: u16, h: u16) -> String {
    draw(app, w, h).backend().to_string()
}

#[test]
fn main_screen_wide() {
    let mut a = app(Theme { color: true });
    a.update(Action::FocusNext); // the output pane
    a.update(Action::TokenPrev);
    a.update(Action::TokenPrev);
    insta::assert_snapshot!(screen(&mut a, 120, 36));
}

#[test]
fn main_screen_narrow_shows_output_probabilities_and_prompt() {
    let mut a = app(Theme { color: true });
    a.prompt.editor.insert_str("Why is the sky blue?");
    insta::assert_snapshot!(screen(&mut a, 80, 24));
}

#[test]
fn status_while_loading() {
    let mut a = App::new(
        lmscope::store::config::Config::defaults(),
        lmscope::ui::keymap::Keymap::defaults(),
        Theme { color: true },
        "SmolLM2-135M-Instruct.Q4_1".into(),
    );
    insta::assert_snapshot!(screen(&mut a, 60, 14));
}

#[test]
fn output_coloured_by_entropy_and_a_prompt_token_selected() {
    let mut a = app(Theme { color: true });
    a.focus = Focus::Output;
    a.update(Action::ToggleColor);
    a.update(Action::FirstToken);
    insta::assert_snapshot!(screen(&mut a, 100, 24));
}

#[test]
fn attention_view_single_head_no_color() {
    let mut a = app(Theme::plain());
    a.update(Action::AttentionView);
    a.update(Action::TokenPrev);
    insta::assert_snapshot!(screen(&mut a, 110, 30));
}

#[test]
fn attention_view_overview_of_all_heads_no_color() {
    let mut a = app(Theme::plain());
    a.update(Action::AttentionView);
    a.update(Action::Overview);
    insta::assert_snapshot!(screen(&mut a, 110, 34));
}

#[test]
fn attention_view_mean_of_heads_colour() {
    let mut a = app(Theme { color: true });
    a.update(Action::AttentionView);
    a.update(Action::MeanHeads);
    a.update(Action::ZoomIn);
    a.update(Action::RowScale);
    insta::assert_snapshot!(screen(&mut a, 100, 24));
}

#[test]
fn attention_not_captured() {
    let mut a = app(Theme { color: true });
    a.output.captures = false;
    a.update(Action::AttentionView);
    insta::assert_snapshot!(screen(&mut a, 80, 16));
}

#[test]
fn attention_of_another_layer_is_being_computed() {
    let mut a = app(Theme { color: true });
    a.update(Action::AttentionView);
    a.update(Action::LayerNext);
    assert!(
        a.outbox.iter().any(|c| matches!(
            c,
            lmscope::engine::handle::EngineCommand::Attention { layer: 1, .. }
        )),
        "switching layers asks the engine for that layer"
    );
    insta::assert_snapshot!(screen(&mut a, 80, 16));
}

#[test]
fn help_is_generated_from_the_keymap() {
    let mut a = app(Theme { color: true });
    a.update(Action::Help);
    assert_eq!(a.overlay, Overlay::Help);
    insta::assert_snapshot!(screen(&mut a, 110, 40));
}

#[test]
fn settings_with_a_changed_value_and_an_edit_in_progress() {
    let mut a = app(Theme { color: true });
    a.update(Action::Settings);
    a.update(Action::Decrease); // temperature 0.8 -> 0.7
    a.update(Action::SettingNext);
    a.update(Action::EditSetting);
    a.settings.editing = Some("12".into());
    insta::assert_snapshot!(screen(&mut a, 100, 24));
}

#[test]
fn engine_error_is_shown_and_the_interface_keeps_running() {
    let mut a = app(Theme { color: true });
    a.on_engine(EngineEvent::Error {
        id: None,
        message: "the engine panicked: boom (see the log file)".into(),
    });
    insta::assert_snapshot!(screen(&mut a, 80, 14));
}

#[test]
fn too_small_notice() {
    let mut a = app(Theme { color: true });
    insta::assert_snapshot!(screen(&mut a, 39, 12));
}

#[test]
fn compare_view_three_presets_with_the_first_divergence() {
    let mut a = ui_common::compare_app(Theme { color: true });
    assert!(a.compare_view);
    assert_eq!(a.state, lmscope::ui::state::EngineState::Idle);
    insta::assert_snapshot!(screen(&mut a, 120, 24));
}

#[test]
fn compare_view_no_color_marks_the_divergent_token() {
    let mut a = ui_common::compare_app(Theme::plain());
    let term = ui_common::draw(&mut a, 120, 24);
    // The divergent token (step 2) is drawn reversed, in every column.
    let buf = term.backend().buffer();
    // Inside the columns: below their titles, above the divergence lines.
    let marked = (3..19u16)
        .flat_map(|y| (2..118u16).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::REVERSED)
        })
        .count();
    assert_eq!(
        marked,
        " sat".len() * 2 + " purred".len(),
        "three columns' step 2"
    );
}

#[test]
fn compare_view_at_the_smallest_size() {
    let mut a = ui_common::compare_app(Theme { color: true });
    insta::assert_snapshot!(screen(&mut a, 40, 12));
}

#[test]
fn compare_view_while_running_with_an_empty_column_and_one_finished_early() {
    let mut a = app(Theme { color: true });
    a.prompt.editor.insert_str("Tell me about the cat");
    a.update(Action::Compare);
    let id = a.tree.newest;
    a.on_engine(EngineEvent::CompareStep {
        id,
        column: 0,
        record: Box::new(ui_common::compare_step(0, 1, " The", 0.62, &[])),
        text_delta: " The".into(),
    });
    a.on_engine(EngineEvent::CompareFinished {
        id,
        column: 1,
        reason: lmscope::engine::types::FinishReason::Eos,
        timings: Default::default(),
    });
    assert_eq!(a.state, lmscope::ui::state::EngineState::Running);
    insta::assert_snapshot!(screen(&mut a, 90, 18));
}

// ---- bias: the quick check (f8) and the bias pane (f9) ----------------------

mod bias_fixtures;

/// The fixture app with a task of the bias views answered by `out`.
/// The id of the engine task the app just sent.
fn sent_task(a: &mut App) -> u64 {
    match a.outbox.pop() {
        Some(lmscope::engine::handle::EngineCommand::Task { id, .. }) => id,
        other => panic!("expected a task, got {other:?}"),
    }
}

fn bias_app(action: Action, out: Box<dyn std::any::Any + Send>) -> App {
    let mut a = app(Theme::plain());
    a.bias.save_dir = "/home/user/.local/share/lmscope/bias".into();
    if action == Action::QuickCheck {
        a.prompt.editor.insert_str("The doctor said that he");
        a.update(action);
    } else {
        a.update(action);
        a.update(Action::BiasRun);
    }
    let id = sent_task(&mut a);
    a.on_engine(EngineEvent::TaskDone {
        id,
        result: Ok(out),
    });
    a.message = None;
    a
}

#[test]
fn quick_check_side_by_side_with_divergences_and_aligned_tokens() {
    let mut a = bias_app(Action::QuickCheck, Box::new(bias_fixtures::quick_check()));
    insta::assert_snapshot!(screen(&mut a, 110, 30));
}

#[test]
fn bias_pane_suite_table_sorted_by_effect() {
    let mut a = bias_app(Action::BiasPane, Box::new(bias_fixtures::probe_report()));
    a.update(Action::BiasSort);
    insta::assert_snapshot!(screen(&mut a, 120, 24));
}

#[test]
fn bias_pane_detail_of_a_suite_category() {
    let mut a = bias_app(Action::BiasPane, Box::new(bias_fixtures::probe_report()));
    a.update(Action::BiasDetail);
    insta::assert_snapshot!(screen(&mut a, 110, 30));
}

#[test]
fn bias_pane_pairs_with_holm_marks_and_token_detail() {
    let mut a = app(Theme::plain());
    a.update(Action::BiasPane);
    a.update(Action::BiasPairs);
    let id = sent_task(&mut a);
    a.on_engine(EngineEvent::TaskDone {
        id,
        result: Ok(Box::new(bias_fixtures::pairs_report())),
    });
    a.message = None;
    let table = screen(&mut a, 120, 16);
    a.update(Action::BiasDetail);
    let detail = screen(&mut a, 120, 24);
    insta::assert_snapshot!(format!("{table}\n{detail}"));
}

#[test]
fn bias_pane_while_running_shows_progress() {
    let mut a = app(Theme::plain());
    a.update(Action::BiasPane);
    a.update(Action::BiasRun);
    let id = sent_task(&mut a);
    a.on_engine(EngineEvent::TaskProgress {
        id,
        done: 30,
        total: 120,
    });
    a.message = None;
    insta::assert_snapshot!(screen(&mut a, 100, 16));
}

/// The fixture run branched at step 2 with its second alternative (" and"),
/// three tokens streamed into the branch.
fn branched_app(theme: Theme) -> App {
    let mut a = app(theme);
    let id = ui_common::start_branch(&mut a, 2, 1);
    for (k, text) in [" and", " the", " dog"].into_iter().enumerate() {
        let mut r = ui_common::step(2 + k, text, 0.4);
        r.token_id = 300 + k as u32;
        r.top[0].token_id = r.token_id;
        a.on_engine(EngineEvent::Step {
            id,
            record: Box::new(r),
            text_delta: text.into(),
            cache_len: ui_common::PROMPT.len() + 2 + k,
        });
    }
    a.on_engine(EngineEvent::Finished {
        id,
        reason: lmscope::engine::types::FinishReason::Length,
        timings: Default::default(),
    });
    a.message = None;
    a.outbox.clear();
    a
}

#[test]
fn branch_indicator_in_the_status_line_and_a_picked_alternative() {
    let mut a = branched_app(Theme { color: true });
    // A sibling: the same point, the third alternative.
    a.update(Action::BranchParent);
    a.focus = Focus::Probabilities;
    a.update(Action::AltNext);
    a.update(Action::AltNext);
    a.update(Action::Branch);
    let id = a.tree.newest;
    a.on_engine(EngineEvent::Finished {
        id,
        reason: lmscope::engine::types::FinishReason::Cancelled,
        timings: Default::default(),
    });
    // Never started: dropped again; the parent is shown with one branch.
    assert_eq!(a.tree.runs.len(), 2);
    a.update(Action::BranchChild);
    a.focus = Focus::Probabilities;
    a.update(Action::FirstToken);
    a.update(Action::TokenNext);
    a.update(Action::LastToken);
    a.update(Action::TokenPrev);
    a.update(Action::AltNext);
    a.message = None;
    let term = draw(&mut a, 120, 36);
    // The token where the branch left its parent is underlined.
    let buf = term.backend().buffer();
    let underlined = (0..36u16)
        .flat_map(|y| (0..70u16).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            buf[(x, y)]
                .modifier
                .contains(ratatui::style::Modifier::UNDERLINED)
        })
        .count();
    assert_eq!(underlined, " and".len());
    insta::assert_snapshot!(term.backend().to_string());
}

#[test]
fn branch_siblings_in_the_status_line_no_color() {
    let mut a = branched_app(Theme::plain());
    a.update(Action::BranchParent);
    a.focus = Focus::Probabilities;
    a.update(Action::AltNext);
    a.update(Action::AltNext);
    a.update(Action::Branch);
    let id = a.tree.newest;
    a.on_engine(EngineEvent::Branched {
        id,
        parent_id: 1,
        step: 2,
        cache_len: ui_common::PROMPT.len() + 1,
    });
    let mut r = ui_common::step(2, ",", 0.2);
    r.token_id = 102;
    a.on_engine(EngineEvent::Step {
        id,
        record: Box::new(r),
        text_delta: ",".into(),
        cache_len: ui_common::PROMPT.len() + 2,
    });
    a.on_engine(EngineEvent::Finished {
        id,
        reason: lmscope::engine::types::FinishReason::Eos,
        timings: Default::default(),
    });
    a.message = None;
    insta::assert_snapshot!(screen(&mut a, 100, 20));
}

#[test]
fn compare_view_a_selected_token_shows_its_probabilities_and_attention() {
    let mut a = ui_common::compare_app(Theme::plain());
    a.update(Action::ColumnNext);
    a.update(Action::ColumnNext);
    a.update(Action::ColumnNext);
    a.update(Action::TokenNext);
    a.update(Action::TokenNext);
    let id = a.compare.as_ref().unwrap().id;
    let col = lmscope::engine::handle::compare_column_id(id, 2);
    let q = lmscope::ui::views::compare::compare_query(a.compare.as_ref().unwrap(), 2, 2).unwrap();
    let mut la = ui_common::attention(col, 0, 9, q + 1);
    let n = la.rows.n_key;
    let data: Vec<f32> = (0..9)
        .flat_map(|h| la.rows.data[(h * n + q) * n..(h * n + q + 1) * n].to_vec())
        .collect();
    la.rows.n_query = 1;
    la.rows.first_query = q;
    la.rows.data = data;
    a.on_engine(EngineEvent::Attention(la));
    insta::assert_snapshot!(screen(&mut a, 120, 30));
}

#[test]
fn session_list_newest_first_with_a_corrupt_file() {
    use lmscope::store::session::SessionEntry;
    let mut a = app(Theme::plain());
    a.update(Action::Sessions);
    let entry = |name: &str, created: u64, prompt: &str, runs: usize| SessionEntry {
        path: format!("/data/sessions/{name}.json").into(),
        name: name.into(),
        created_unix: created,
        model: "SmolLM2 135M Instruct".into(),
        prompt: prompt.into(),
        runs,
        error: None,
    };
    a.set_sessions(vec![
        entry("session-1764349200", 1_764_349_200, "Why is the sky blue?", 3),
        SessionEntry {
            error: Some(
                "/data/sessions/broken.json is not a readable session file (EOF while parsing a list at line 1 column 24); it was left untouched".into(),
            ),
            ..entry("broken", 1_764_300_000, "", 0)
        },
        entry("session-1764200000", 1_764_200_000, "The cat sat on the mat", 1),
    ]);
    a.update(Action::LineDown);
    insta::assert_snapshot!(screen(&mut a, 100, 16));
}

#[test]
fn settings_naming_a_preset() {
    let mut a = app(Theme::plain());
    a.update(Action::Settings);
    a.update(Action::SavePreset);
    a.settings.naming = Some("warm".into());
    insta::assert_snapshot!(screen(&mut a, 100, 30));
}

/// `p` in the attention view asks for the head's vectors and, given them,
/// shows each rotary pair and the falloff chart.
#[test]
fn positions_pane_from_a_heads_vectors() {
    use lmscope::engine::handle::HeadVectors;
    use lmscope::engine::model::RopeStyle;
    use lmscope::engine::model::Rotary;
    let (mut a, (id, layer, head)) = positions_pane_asking();
    assert_eq!((layer, head), (0, 0));
    // Eight positions of one 8-wide head, the same content rotated.
    let d = 8;
    let row: Vec<f32> = (0..8 * d)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    a.on_engine(EngineEvent::HeadVectors(HeadVectors {
        id,
        layer,
        head,
        rotary: Some(Rotary {
            base: 10_000.0,
            style: RopeStyle::Adjacent,
            head_dim: d,
        }),
        q: row.clone(),
        k: row,
        learned: None,
    }));
    let s = screen(&mut a, 110, 20);
    assert!(s.contains("Positions · layer 1 · head 1"), "{s}");
    insta::assert_snapshot!(s);
}

/// The positions pane for a model with learned positions (GPT-2): the
/// embeddings' similarity against distance and as a heatmap.
#[test]
fn positions_pane_for_learned_positions() {
    use lmscope::engine::handle::HeadVectors;
    let (mut a, (id, layer, head)) = positions_pane_asking();
    // Twelve positions of 4 dims turning slowly: neighbours alike.
    let d = 4;
    let table: Vec<f32> = (0..12)
        .flat_map(|p| {
            let t = p as f32 * 0.3;
            [t.cos(), t.sin(), 1.0, 0.5]
        })
        .collect();
    a.on_engine(EngineEvent::HeadVectors(HeadVectors {
        id,
        layer,
        head,
        rotary: None,
        q: vec![0.0; 12 * d],
        k: vec![0.0; 12 * d],
        learned: Some((d, table)),
    }));
    let s = screen(&mut a, 110, 20);
    assert!(s.contains("learned, 12 positions of 4 dims"), "{s}");
    insta::assert_snapshot!(s);
}

/// The app with the positions pane open (`p` in the attention view), and
/// the (run, layer, head) whose vectors it asked the engine for.
fn positions_pane_asking() -> (App, (u64, usize, usize)) {
    use lmscope::engine::handle::EngineCommand;
    let mut a = app(Theme::plain());
    a.update(Action::AttentionView);
    a.outbox.clear();
    a.update(Action::Positions);
    let Some(&EngineCommand::HeadVectors { id, layer, head }) = a
        .outbox
        .iter()
        .find(|c| matches!(c, EngineCommand::HeadVectors { .. }))
    else {
        panic!("p asks for the head's vectors: {:?}", a.outbox);
    };
    (a, (id, layer, head))
}
