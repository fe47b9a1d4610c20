//! The sequence as it streams: prompt tokens dim, generated tokens coloured
//! by probability (or entropy), the selected token reversed. Tokens are
//! laid out by hand so a click maps back to its token.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::Line;

use super::Chrome;
use super::{notice, pane};
use crate::store::config::ColorBy;
use crate::ui::state::{EngineState, Focus};
use crate::ui::views::output::OutputView;

/// `marks`: token indices where branches leave (or the shown branch left).
pub fn render(c: &Chrome, v: &OutputView, marks: &[usize], area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let t = c.theme;
    let generated = v.tokens.len() - v.prompt_len.min(v.tokens.len());
    let by = match v.color_by {
        ColorBy::Probability => "probability",
        ColorBy::Entropy => "entropy",
    };
    let title = Line::from(format!(
        " Output · {} prompt + {generated} generated · colour: {by} ",
        v.prompt_len
    ));
    let inner = pane(t, title, c.focus == Focus::Output, area, buf);
    if v.tokens.is_empty() {
        let text = match c.engine {
            EngineState::Loading => "loading the model…",
            EngineState::Running => "running the prompt…",
            EngineState::Failed => "no model loaded",
            EngineState::Idle => "type a prompt below and press Enter",
        };
        return notice(t, text, inner, buf);
    }
    let lines = v.lines(inner.width);
    for (row, line) in lines
        .iter()
        .skip(v.top)
        .take(inner.height as usize)
        .enumerate()
    {
        for seg in line {
            let tok = &v.tokens[seg.tok];
            let mut style = match &tok.record {
                None => t.dim(),
                Some(r) => match v.color_by {
                    ColorBy::Probability => t.prob(r.p_raw),
                    ColorBy::Entropy => t.entropy(r.entropy),
                },
            };
            if marks.binary_search(&seg.tok).is_ok() {
                // Where a branch leaves (or this branch left its parent).
                style = style.add_modifier(Modifier::UNDERLINED);
            }
            if seg.tok == v.cursor {
                style = style.patch(t.selected());
            }
            buf.set_stringn(
                inner.x + seg.x,
                inner.y + row as u16,
                &seg.text,
                (inner.width - seg.x.min(inner.width)) as usize,
                style,
            );
        }
    }
}
