//! The status bar (model, quantisation, context, speeds, capture, engine
//! state) and the message line under everything.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::Chrome;
use crate::engine::types::Timings;
use crate::ui::keymap::{Action, Context};
use crate::ui::state::{EngineState, Level};
use crate::ui::views::runs::{BranchPosition, RunTree};

/// What the status bar reports beyond the [`Chrome`].
pub struct Facts<'a> {
    /// The model as the user named it (its file name).
    pub model: &'a str,
    /// Tokens in the shown sequence (of the context).
    pub tokens: usize,
    pub tree: &'a RunTree,
    pub timings: &'a Timings,
    /// The engine's work is a bias check.
    pub checking_bias: bool,
}

pub fn render(c: &Chrome, f: &Facts, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let t = c.theme;
    buf.set_style(area, t.status_bar());
    let state = Span::styled(
        format!(
            " {} ",
            if *c.engine == EngineState::Running && f.checking_bias {
                "checking bias"
            } else {
                c.engine.label()
            }
        ),
        match c.engine {
            EngineState::Running => t.accent(),
            EngineState::Failed => t.error(),
            EngineState::Loading => t.warn(),
            EngineState::Idle => t.ok(),
        },
    );
    let mut parts = vec![f.model.to_string()];
    if let Some(i) = c.info {
        let precision = match i.precision {
            crate::engine::model::Precision::Quantized => "quantized",
            crate::engine::model::Precision::F32 => "f32",
        };
        parts.push(format!("{} {precision}", i.file_type));
        parts.push(format!("ctx {}/{}", f.tokens, i.context_length));
    }
    // The run tree, once there is more than one run.
    if f.tree.runs.len() > 1
        && let Some(b) = f.tree.position()
    {
        parts.push(branch_indicator(&b));
    }
    let tm = f.timings;
    if tm.prompt_tokens > 0 {
        let prefill = if tm.prefill_s > 0.0 {
            format!("{:.0}", tm.prefill_tok_s())
        } else {
            "–".into()
        };
        parts.push(format!(
            "prefill {prefill} · decode {:.1} tok/s",
            tm.decode_tok_s()
        ));
    }
    let capture = if c.config.generation.capture_attention {
        "on"
    } else {
        "off"
    };
    parts.push(format!("capture {capture}"));
    parts.push(if c.config.generation.chat {
        "chat".into()
    } else {
        "plain".into()
    });
    let line = Line::from(vec![
        Span::raw(" lmscope "),
        state,
        Span::raw(format!(" {}", parts.join(" │ "))),
    ]);
    buf.set_line(area.x, area.y, &line, area.width);
}

pub fn render_message(c: &Chrome, message: Option<&(Level, String)>, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let t = c.theme;
    let line = match message {
        Some((level, text)) => Line::styled(
            format!(" {text}"),
            match level {
                Level::Info => t.dim(),
                Level::Warn => t.warn(),
                Level::Error => t.error(),
            },
        ),
        None => {
            let k = |a| c.keymap.keys_for(Context::Global, a);
            Line::styled(
                format!(
                    " {} help · {} settings · {} attention · {} focus · esc cancel · {} quit",
                    k(Action::Help),
                    k(Action::Settings),
                    k(Action::AttentionView),
                    k(Action::FocusNext),
                    k(Action::Quit)
                ),
                t.dim(),
            )
        }
    };
    buf.set_line(area.x, area.y, &line, area.width);
}

/// The shown run's place in the tree: `run 1/2 ⑂2` for a prompt's run
/// (⑂: branches leaving it), `branch 2/3 ◂ ▸ of run 1 @4` for a branch.
pub fn branch_indicator(b: &BranchPosition) -> String {
    let arrows = if b.count > 1 { " ◂ ▸" } else { "" };
    let mut s = match b.parent {
        None => format!("run {}/{}{arrows}", b.index, b.count),
        Some((run, step)) => format!(
            "branch {}/{}{arrows} of run {run} @{step}",
            b.index, b.count
        ),
    };
    if b.children > 0 {
        s.push_str(&format!(" ⑂{}", b.children));
    }
    s
}
