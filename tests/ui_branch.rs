//! Branching in the interface: picking an alternative in the probabilities
//! pane, the run tree it builds, moving through it, and what the engine is
//! asked for. No model: the engine's events are fed by hand.

mod ui_common;

use lmscope::engine::handle::{EngineCommand, EngineEvent};
use lmscope::engine::types::{FinishReason, Timings};
use lmscope::ui::app::App;
use lmscope::ui::keymap::Action;
use lmscope::ui::state::{EngineState, Focus};
use lmscope::ui::theme::Theme;
use ui_common::{GENERATED, PROMPT, app, step};

/// The fixture app with the probabilities pane focused on generated
/// token `at` (a step).
fn at_step(at: usize) -> App {
    let mut a = app(Theme::plain());
    a.update(Action::FocusNext); // output
    a.update(Action::FirstToken);
    for _ in 0..PROMPT.len() + at {
        a.update(Action::TokenNext);
    }
    a.focus = Focus::Probabilities;
    a.outbox.clear();
    a
}

/// Branches the shown run at `at` with alternative `alt` (index into the
/// record's top list) and feeds the engine's answer: `n` new tokens.
fn branch(a: &mut App, at: usize, alt: usize, n: usize) -> u64 {
    a.focus = Focus::Output;
    a.update(Action::FirstToken);
    for _ in 0..a.output.prompt_len + at {
        a.update(Action::TokenNext);
    }
    a.focus = Focus::Probabilities;
    for _ in 0..alt {
        a.update(Action::AltNext);
    }
    a.outbox.clear();
    a.update(Action::Branch);
    let id = a.tree.newest;
    assert!(
        a.outbox
            .iter()
            .any(|c| matches!(c, EngineCommand::Branch { id: i, .. } if *i == id)),
        "{:?}",
        a.outbox
    );
    a.on_engine(EngineEvent::Branched {
        id,
        parent_id: 1,
        step: at,
        cache_len: PROMPT.len() + at - 1,
    });
    for k in 0..n {
        let mut r = step(at + k, &format!(" b{id}.{k}"), 0.5);
        r.token_id = 200 + k as u32;
        a.on_engine(EngineEvent::Step {
            id,
            record: Box::new(r),
            text_delta: String::new(),
            cache_len: PROMPT.len() + at + k,
        });
    }
    a.on_engine(EngineEvent::Finished {
        id,
        reason: FinishReason::Length,
        timings: Timings::default(),
    });
    id
}

#[test]
fn picking_an_alternative_sends_a_branch_and_shows_the_new_run() {
    let mut a = at_step(2);
    assert_eq!(a.output.selected_record().unwrap().step, 2);
    a.update(Action::AltNext);
    assert_eq!(a.probs.alt, 1);
    a.update(Action::Branch);
    match a.outbox.as_slice() {
        [
            EngineCommand::Branch {
                id,
                parent_id,
                step,
                token,
            },
            ..,
        ] => {
            assert_eq!((*id, *parent_id, *step, *token), (2, 1, 2, 101));
        }
        other => panic!("expected a Branch command, got {other:?}"),
    }
    assert_eq!(a.state, EngineState::Running);
    assert_eq!(a.tree.shown, 2);
    assert_eq!(a.tree.runs.len(), 2, "the original run is kept");
    assert_eq!(
        a.output.tokens.len(),
        PROMPT.len() + 2,
        "the prefix before the branch point"
    );
    assert_eq!(
        a.tree.node(1).unwrap().tokens.len(),
        PROMPT.len() + GENERATED.len()
    );
    assert_eq!(a.tree.node(2).unwrap().parent, Some((1, 2)));
}

#[test]
fn branching_on_the_chosen_token_or_while_running_is_refused() {
    let mut a = at_step(2);
    a.update(Action::Branch); // alt 0 is the chosen token itself
    assert!(
        a.outbox
            .iter()
            .all(|c| !matches!(c, EngineCommand::Branch { .. }))
    );
    assert!(a.message.as_ref().unwrap().1.contains("pick another"));
    a.state = EngineState::Running;
    a.update(Action::AltNext);
    a.update(Action::Branch);
    assert!(
        a.outbox
            .iter()
            .all(|c| !matches!(c, EngineCommand::Branch { .. }))
    );
    assert_eq!(a.tree.runs.len(), 1);
}

#[test]
fn the_branch_streams_into_its_own_run_and_the_tree_can_be_walked() {
    let mut a = app(Theme::plain());
    let b1 = branch(&mut a, 2, 1, 3);
    assert_eq!(a.state, EngineState::Idle);
    assert_eq!(a.tree.shown, b1);
    assert_eq!(a.output.tokens.len(), PROMPT.len() + 2 + 3);
    assert_eq!(a.output.tokens[PROMPT.len() + 2].text, format!(" b{b1}.0"));
    let pos = a.tree.position().unwrap();
    assert_eq!((pos.index, pos.count, pos.parent), (1, 1, Some((1, 2))));
    assert_eq!(a.tree.marks(a.output.prompt_len), vec![PROMPT.len() + 2]);

    a.update(Action::BranchParent);
    assert_eq!(a.tree.shown, 1);
    assert_eq!(a.output.tokens.len(), PROMPT.len() + GENERATED.len());
    assert_eq!(
        a.output.cursor,
        PROMPT.len() + 2,
        "the cursor at the branch point"
    );
    assert_eq!(a.tree.marks(a.output.prompt_len), vec![PROMPT.len() + 2]);
    assert_eq!(a.tree.position().unwrap().children, 1);

    // A second branch from run 1 at the same step: siblings.
    let b2 = branch(&mut a, 2, 2, 2);
    assert_eq!(a.tree.node(b2).unwrap().parent, Some((1, 2)));
    assert_eq!(a.tree.siblings(), vec![b1, b2]);
    let pos = a.tree.position().unwrap();
    assert_eq!((pos.index, pos.count), (2, 2));
    a.update(Action::BranchPrev);
    assert_eq!(a.tree.shown, b1);
    a.update(Action::BranchNext);
    assert_eq!(a.tree.shown, b2);
    a.update(Action::BranchNext);
    assert_eq!(a.tree.shown, b1, "siblings wrap around");

    a.update(Action::BranchParent);
    a.update(Action::BranchChild);
    assert_eq!(a.tree.shown, b1, "the first branch leaving at the cursor");
}

#[test]
fn attention_requests_carry_the_shown_run() {
    let mut a = app(Theme::plain());
    let b1 = branch(&mut a, 2, 1, 3);
    let asked: Vec<u64> = a
        .outbox
        .iter()
        .filter_map(|c| match c {
            EngineCommand::Attention { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert!(
        !asked.is_empty() && asked.iter().all(|&i| i == b1),
        "{asked:?}"
    );
    // Attention of the parent (a stale answer) is not shown for the branch.
    a.on_engine(EngineEvent::Attention(ui_common::attention(1, 0, 9, 10)));
    assert!(a.attn.data.is_none());
    a.on_engine(EngineEvent::Attention(ui_common::attention(b1, 0, 9, 10)));
    assert_eq!(a.attn.data.as_ref().unwrap().id, b1);
}

#[test]
fn a_branch_the_engine_cannot_start_is_dropped_and_the_parent_shown() {
    let mut a = at_step(4);
    a.update(Action::AltNext);
    a.update(Action::Branch);
    let id = a.tree.newest;
    a.on_engine(EngineEvent::Error {
        id: Some(id),
        message: "run 1 is no longer kept by the engine".into(),
    });
    a.on_engine(EngineEvent::Finished {
        id,
        reason: FinishReason::Cancelled,
        timings: Timings::default(),
    });
    assert_eq!(a.tree.runs.len(), 1);
    assert_eq!(a.tree.shown, 1);
    assert_eq!(a.state, EngineState::Idle);
    assert_eq!(a.output.cursor, PROMPT.len() + 4);
    assert!(a.message.as_ref().unwrap().1.contains("no longer kept"));
}

#[test]
fn events_of_a_run_not_shown_go_to_its_node_only() {
    let mut a = app(Theme::plain());
    let b1 = branch(&mut a, 2, 1, 1);
    a.update(Action::BranchParent);
    let before = a.output.tokens.clone();
    a.on_engine(EngineEvent::Step {
        id: b1,
        record: Box::new(step(3, " late", 0.3)),
        text_delta: String::new(),
        cache_len: 9,
    });
    assert_eq!(a.output.tokens, before, "the shown run is untouched");
    assert_eq!(a.tree.node(b1).unwrap().tokens.len(), PROMPT.len() + 4);
}

#[test]
fn walking_the_tree_before_any_run_says_so_and_sends_nothing() {
    let mut a = App::new(
        lmscope::store::config::Config::defaults(),
        lmscope::ui::keymap::Keymap::defaults(),
        Theme::plain(),
        "model".into(),
    );
    for m in [
        Action::BranchNext,
        Action::BranchPrev,
        Action::BranchParent,
        Action::BranchChild,
    ] {
        a.message = None;
        a.update(m);
        assert!(a.outbox.is_empty(), "{m:?}");
        assert!(
            matches!(&a.message, Some((_, t)) if t.contains("no run yet")),
            "{m:?}: {:?}",
            a.message
        );
    }
}
