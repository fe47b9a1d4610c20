//! One module per pane; each `render` only reads the state.

pub mod attention;
pub mod bias;
pub mod compare;
pub mod help;
pub mod output;
pub mod probs;
pub mod prompt;
pub mod sessions;
pub mod settings;
pub mod status;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Clear, Paragraph, Widget, Wrap};

use super::app::App;

use super::layout::{self, MIN_HEIGHT, MIN_WIDTH};
use super::state::Overlay;
use super::theme::Theme;

/// Draws the whole interface.
pub use crate::ui::text::{char_width, visible};

pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let a = layout::areas(&app.screen(), area);
    if a.too_small {
        let text = format!(
            "terminal too small: {MIN_WIDTH}x{MIN_HEIGHT} needed, this is {}x{}",
            area.width, area.height
        );
        Paragraph::new(text)
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    status::render(app, a.status, buf);
    status::render_message(app, a.message, buf);
    if app.bias.is_open() {
        bias::render(app, a.bias, buf);
    } else if app.compare_view {
        compare::render(app, a.compare, buf);
    } else if app.attention_view {
        attention::render_full(app, a.attention, buf);
    } else {
        output::render(app, a.output, buf);
        prompt::render(app, a.prompt, buf);
        probs::render(app, a.probs, buf);
        attention::render_small(app, a.attention, buf);
    }
    match app.overlay {
        Overlay::None => {}
        Overlay::Help => {
            Clear.render(a.popup, buf);
            help::render(app, a.popup, buf);
        }
        Overlay::Settings => {
            Clear.render(a.popup, buf);
            settings::render(app, a.popup, buf);
        }
        Overlay::Sessions => {
            Clear.render(a.popup, buf);
            sessions::render(app, a.popup, buf);
        }
    }
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
