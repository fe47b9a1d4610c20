//! The prompt editor, with its mode (chat or plain) in the title.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;

use super::Chrome;
use super::{char_width, pane};
use crate::ui::state::{Focus, Overlay};
use crate::ui::views::prompt::PromptView;

pub fn render(c: &Chrome, v: &PromptView, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let t = c.theme;
    let mode = if c.config.generation.chat {
        "chat"
    } else {
        "plain"
    };
    let submit = c.keymap.keys_for(
        crate::ui::keymap::Context::Prompt,
        crate::ui::keymap::Action::Submit,
    );
    let newline = c.keymap.keys_for(
        crate::ui::keymap::Context::Prompt,
        crate::ui::keymap::Action::Newline,
    );
    let title = Line::from(format!(
        " Prompt ({mode}) · {submit} runs · {newline} new line "
    ));
    let focused = c.focus == Focus::Prompt && c.overlay == Overlay::None;
    let inner = pane(t, title, focused, area, buf);
    if inner.is_empty() {
        return;
    }
    let (row, col) = v.editor.cursor();
    let h = inner.height as usize;
    let top = (row + 1).saturating_sub(h);
    for (i, line) in v.editor.lines().iter().enumerate().skip(top).take(h) {
        let y = inner.y + (i - top) as u16;
        // Scroll long lines so the cursor stays visible.
        let cursor_x: usize = if i == row {
            line.chars().take(col).map(char_width).sum()
        } else {
            0
        };
        let skip_cols = (cursor_x + 1).saturating_sub(inner.width as usize);
        let mut x = 0usize;
        let mut shown = String::new();
        for c in line.chars() {
            let w = char_width(c);
            if x >= skip_cols {
                shown.push(c);
            }
            x += w;
        }
        buf.set_stringn(
            inner.x,
            y,
            &shown,
            inner.width as usize,
            ratatui::style::Style::new(),
        );
        if i == row && focused {
            let cx = inner.x + (cursor_x - skip_cols).min(inner.width as usize - 1) as u16;
            if let Some(cell) = buf.cell_mut((cx, y)) {
                cell.set_style(t.selected());
            }
        }
    }
}
