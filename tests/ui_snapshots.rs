//! A TestBackend snapshot of every pane with fixed data (tests/ui_common).
//! Colours are not in the text snapshots, so the attention views are also
//! snapshotted colourless (NO_COLOR), where the heatmap is in shading
//! characters.

mod ui_common;

use lmscope::engine::handle::EngineEvent;
use lmscope::ui::app::{App, Focus, Overlay};
use lmscope::ui::keymap::Action;
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
    a.editor.insert_str("Why is the sky blue?");
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
    a.run_captures = false;
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
