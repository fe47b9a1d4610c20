//! The session list overlay: saved sessions, newest first, with their
//! date, model and the first words of the prompt; a file that cannot be
//! read says why (and is left untouched).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::Chrome;
use super::{fit, notice, pane};
use crate::store::session::format_utc;
use crate::ui::keymap::{Action, Context};
use crate::ui::views::sessions::SessionsView;

pub fn render(c: &Chrome, s: &SessionsView, area: Rect, buf: &mut Buffer) {
    let t = c.theme;
    let k = |a| c.keymap.keys_for(Context::Sessions, a);
    let title = format!(
        " Sessions · newest first · {} opens · {} closes ",
        k(Action::OpenSession),
        k(Action::CloseView)
    );
    let title = fit(&title, area.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), true, area, buf);
    if inner.is_empty() {
        return;
    }
    if !s.listed {
        return notice(t, "reading the sessions folder…", inner, buf);
    }
    if s.entries.is_empty() {
        return notice(
            t,
            "no saved sessions yet: every finished run is saved here",
            inner,
            buf,
        );
    }
    let w = inner.width as usize;
    let h = inner.height as usize;
    let top = s.selected.saturating_sub(h.saturating_sub(1));
    for (row, (i, e)) in s.entries.iter().enumerate().skip(top).take(h).enumerate() {
        let selected = i == s.selected;
        let base = if selected { t.selected() } else { Style::new() };
        let line = match &e.error {
            Some(err) => Line::from(vec![
                Span::styled(format!("{:<24} ", fit(&e.name, 24)), base),
                Span::styled(format!("✗ {err}"), base.patch(t.error())),
            ]),
            None => Line::from(vec![
                Span::styled(
                    format!("{} ", format_utc(e.created_unix)),
                    base.patch(t.dim()),
                ),
                Span::styled(format!("{:<20} ", fit(&e.model, 20)), base),
                Span::styled(
                    format!("{:>2} run{} ", e.runs, if e.runs == 1 { " " } else { "s" }),
                    base.patch(t.dim()),
                ),
                Span::styled(format!("“{}”", e.prompt), base.patch(t.accent())),
            ]),
        };
        let y = inner.y + row as u16;
        if selected {
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), t.selected());
        }
        buf.set_line(inner.x, y, &line, w as u16);
    }
}
