//! The help screen, generated from the keymap in use.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{fit, pane};
use crate::ui::app::App;
use crate::ui::keymap::Context;

pub fn lines(app: &App) -> Vec<Line<'static>> {
    let t = &app.theme;
    let mut out = vec![
        Line::styled(format!("config: {}", app.config_path), t.dim()),
        Line::styled(
            "keys are set in its [keys.CONTEXT] tables; the prompt pane types any unbound character",
            t.dim(),
        ),
    ];
    for ctx in Context::ALL {
        out.push(Line::raw(""));
        out.push(Line::styled(format!("[{}]", ctx.name()), t.title(true)));
        for (action, keys) in app.keymap.bindings(ctx) {
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            out.push(Line::from(vec![
                Span::styled(format!("  {:<24}", fit(&keys.join(" "), 24)), t.accent()),
                Span::raw(action.description()),
                Span::styled(format!("  ({})", action.name()), t.dim()),
            ]));
        }
    }
    out
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let inner = pane(&app.theme, Line::from(" Help · keys "), true, area, buf);
    let all = lines(app);
    let max_top = all.len().saturating_sub(inner.height as usize);
    for (i, line) in all
        .into_iter()
        .skip(app.help_scroll.min(max_top))
        .take(inner.height as usize)
        .enumerate()
    {
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
}
