//! One module per pane; each `render` reads its view's state and the
//! [`Chrome`] every pane shares, never the app ([`crate::ui::draw`] lays
//! them out).

pub mod attention;
pub mod bias;
pub mod compare;
pub mod help;
pub mod masked;
pub mod output;
pub mod positions;
pub mod probs;
pub mod prompt;
pub mod sessions;
pub mod settings;
pub mod status;
pub mod training;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Paragraph, Widget, Wrap};

use super::keymap::Keymap;
use super::state::{EngineState, Focus, Overlay};
use super::theme::Theme;
use crate::engine::types::ModelInfo;
use crate::store::config::Config;

pub use crate::ui::text::{char_width, visible};

/// What every pane reads besides its view's state: colours, keys, where
/// the focus is, what the engine does, the model and the settings.
#[derive(Clone, Copy)]
pub struct Chrome<'a> {
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    pub focus: Focus,
    pub overlay: Overlay,
    pub engine: &'a EngineState,
    pub info: Option<&'a ModelInfo>,
    pub config: &'a Config,
}

/// A bordered pane with its title; returns the inside.
pub fn pane(theme: &Theme, title: Line<'_>, focused: bool, area: Rect, buf: &mut Buffer) -> Rect {
    let block = Block::new()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(theme.border(focused))
        .title(title.style(theme.title(focused)));
    let inner = block.inner(area);
    block.render(area, buf);
    inner
}

/// Centered dim text inside `area` (empty states).
pub fn notice(theme: &Theme, text: &str, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let y = area.y + area.height.saturating_sub(1) / 2;
    Paragraph::new(text)
        .style(theme.dim())
        .wrap(Wrap { trim: true })
        .centered()
        .render(
            Rect::new(area.x, y, area.width, area.height - (y - area.y)),
            buf,
        );
}

/// Text cut to `width` display columns, with "…" when cut.
pub fn fit(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    for c in s.chars() {
        let cw = char_width(c);
        if w + cw > width {
            if width > 0 {
                while w + 1 > width {
                    match out.pop() {
                        Some(p) => w -= char_width(p),
                        None => break,
                    }
                }
                out.push('…');
            }
            return out;
        }
        out.push(c);
        w += cw;
    }
    out
}

pub fn style_or(theme: &Theme, s: Style) -> Style {
    if theme.color { s } else { Style::new() }
}
