//! The sampler chain and generation settings, edited in place; the next
//! run uses them. Every change is validated as a whole before it is kept.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::Chrome;
use super::{fit, pane};
use crate::store::config::Config;
use crate::ui::fields::{FIELDS, value_of};
use crate::ui::keymap::{Action, Context};
use crate::ui::views::settings::SettingsView;

/// `defaults`: a value that differs from them is highlighted.
pub fn render(c: &Chrome, v: &SettingsView, defaults: &Config, area: Rect, buf: &mut Buffer) {
    let t = c.theme;
    let inner = pane(
        t,
        Line::from(" Settings · used by the next run · Enter edits · +/- steps · r resets "),
        true,
        area,
        buf,
    );
    let vw = 30.min(inner.width as usize / 3);
    for (i, field) in FIELDS.iter().enumerate().take(inner.height as usize) {
        let selected = i == v.selected;
        let value = match (&v.editing, selected) {
            (Some(text), true) => format!("{text}▏"),
            _ => value_of(c.config, *field),
        };
        let changed = value_of(defaults, *field) != value_of(c.config, *field);
        let name_style = if selected {
            t.selected()
        } else {
            ratatui::style::Style::new()
        };
        let line = Line::from(vec![
            Span::styled(format!(" {:<18}", field.name), name_style),
            Span::styled(
                format!(" {:<vw$}", fit(&value, vw)),
                if changed {
                    t.accent()
                } else {
                    ratatui::style::Style::new()
                },
            ),
            Span::styled(format!(" {}", field.help), t.dim()),
        ]);
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
    // The bottom line: naming a preset, or how to.
    if inner.height as usize > FIELDS.len() {
        let y = inner.y + inner.height - 1;
        let line = match &v.naming {
            Some(name) => Line::from(vec![
                Span::styled(" save the sampler settings as preset: ", t.accent()),
                Span::styled(format!("{name}▏"), t.selected()),
                Span::styled("  Enter saves · Esc cancels", t.dim()),
            ]),
            None => Line::styled(
                format!(
                    " {} saves the sampler settings as a named preset (for the compare view)",
                    c.keymap.keys_for(Context::Settings, Action::SavePreset)
                ),
                t.dim(),
            ),
        };
        buf.set_line(inner.x, y, &line, inner.width);
    }
}
