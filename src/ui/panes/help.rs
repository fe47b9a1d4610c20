//! The help screen, generated from the keymap in use.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use super::{fit, pane};
use crate::ui::keymap::{Context, Keymap};
use crate::ui::theme::Theme;

/// The help text: where the config is, then every binding by context.
pub fn lines(t: &Theme, keymap: &Keymap, config_path: &str) -> Vec<Line<'static>> {
    let mut out = vec![
        Line::styled(format!("config: {}", config_path), t.dim()),
        Line::styled(
            "keys are set in its [keys.CONTEXT] tables; the prompt pane types any unbound character",
            t.dim(),
        ),
    ];
    for ctx in Context::ALL {
        out.push(Line::raw(""));
        out.push(Line::styled(format!("[{}]", ctx.name()), t.title(true)));
        for (action, keys) in keymap.bindings(ctx) {
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

pub fn render(
    t: &Theme,
    keymap: &Keymap,
    config_path: &str,
    scroll: usize,
    area: Rect,
    buf: &mut Buffer,
) {
    let inner = pane(t, Line::from(" Help · keys "), true, area, buf);
    let all = lines(t, keymap, config_path);
    let max_top = all.len().saturating_sub(inner.height as usize);
    for (i, line) in all
        .into_iter()
        .skip(scroll.min(max_top))
        .take(inner.height as usize)
        .enumerate()
    {
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
}
