//! The selected token's alternatives: raw and post-sampler probability
//! bars, its rank and the entropy, and the sampler stage that removed each
//! alternative.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};

use super::Chrome;
use super::{fit, notice, pane, visible};
use crate::engine::types::StepRecord;
use crate::ui::keymap::{Action, Context};
use crate::ui::state::Focus;
use crate::ui::theme::Theme;
use crate::ui::views::output::OutputView;
use crate::ui::views::probs::ProbsView;
use crate::ui::widgets::bars::bar;

fn pct(p: f32) -> String {
    if !p.is_finite() {
        return "   ?  ".into();
    }
    let v = p * 100.0;
    if v > 0.0 && v < 0.1 {
        " <0.1%".into()
    } else {
        format!("{v:5.1}%")
    }
}

pub fn render(c: &Chrome, out: &OutputView, v: &ProbsView, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let t = c.theme;
    let focused = c.focus == Focus::Probabilities;
    let title = if focused && out.selected_record().is_some() {
        let k = |a| c.keymap.keys_for(Context::Probabilities, a);
        format!(
            " Probabilities · {}/{} pick · {} branch ",
            k(Action::AltPrev),
            k(Action::AltNext),
            k(Action::Branch)
        )
    } else {
        " Probabilities ".to_string()
    };
    let title = fit(&title, area.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), focused, area, buf);
    if inner.is_empty() {
        return;
    }
    let Some(tok) = out.tokens.get(out.cursor) else {
        return notice(t, "select a token to see its alternatives", inner, buf);
    };
    let w = inner.width as usize;
    let Some(r) = tok.record.as_deref() else {
        let text = format!(
            "#{} “{}” is a prompt token: it was given, not predicted",
            out.cursor,
            visible(&tok.text)
        );
        return notice(t, &text, inner, buf);
    };
    let picked = focused.then(|| v.alt.min(r.top.len().saturating_sub(1)));
    let lines = record_lines(t, r, w, picked);
    for (i, line) in lines.into_iter().take(inner.height as usize).enumerate() {
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
}

/// A record's summary line, a header, and a row per alternative (the
/// picked one, if any, marked), for a pane `w` wide.
pub fn record_lines(
    t: &Theme,
    r: &StepRecord,
    w: usize,
    picked: Option<usize>,
) -> Vec<Line<'static>> {
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!("#{} “{}”", r.position, fit(&visible(&r.text), 16)),
            t.accent(),
        ),
        Span::raw(if r.p_final.is_nan() {
            // A server's token: its model probability and rank among the
            // alternatives it returned, nothing of the sampler's stages.
            format!(
                "  p {}  rank {}  (from a server: no sampler trace, no entropy)",
                pct(r.p_raw).trim(),
                if r.rank == 0 {
                    format!(">{}", r.top.len())
                } else {
                    r.rank.to_string()
                }
            )
        } else {
            format!(
                "  p {} → {}  rank {}  entropy {:.2} nats",
                pct(r.p_raw).trim(),
                pct(r.p_final).trim(),
                r.rank,
                r.entropy
            )
        }),
    ])];
    // Columns: marker(2) token(tw) raw% bar final% bar removed-by
    let tw = 14.min(w / 4).max(4);
    let removed_w = 12;
    let fixed = 2 + tw + 1 + 6 + 1 + 1 + 6 + 1 + 1 + removed_w;
    let bw = w.saturating_sub(fixed) / 2;
    lines.push(Line::styled(
        format!(
            "  {:<tw$} {:>6} {:bw$} {:>6} {:bw$} {}",
            "token", "raw", "", "final", "", "removed by"
        ),
        t.dim(),
    ));
    for (i, c) in r.top.iter().enumerate() {
        let chosen = c.token_id == r.token_id;
        let marker = match (chosen, picked == Some(i)) {
            (_, true) => "› ",
            (true, false) => "▶ ",
            (false, false) => "  ",
        };
        let text_style = if picked == Some(i) {
            row_style_of(t, chosen, c.removed_by.is_some()).patch(t.selected())
        } else {
            row_style_of(t, chosen, c.removed_by.is_some())
        };
        let removed = c
            .removed_by
            .map_or_else(|| "—".to_string(), |s| s.name().to_string());
        let row_style = row_style_of(t, chosen, c.removed_by.is_some());
        lines.push(Line::from(vec![
            Span::styled(marker, row_style),
            Span::styled(format!("{:<tw$}", fit(&visible(&c.text), tw)), text_style),
            Span::raw(format!(" {} ", pct(c.p_raw))),
            Span::styled(bar(c.p_raw, bw), t.prob(c.p_raw)),
            Span::raw(format!(" {} ", pct(c.p_final))),
            Span::styled(bar(c.p_final, bw), t.prob(c.p_final)),
            Span::styled(
                format!(" {}", fit(&removed, removed_w)),
                if c.removed_by.is_some() {
                    t.warn()
                } else {
                    t.dim()
                },
            ),
        ]));
    }
    if !r.top.iter().any(|c| c.token_id == r.token_id) {
        lines.push(Line::styled(
            format!(
                "▶ the chosen token is rank {}, outside the top {}",
                r.rank,
                r.top.len()
            ),
            t.warn(),
        ));
    }
    lines
}

fn row_style_of(t: &Theme, chosen: bool, removed: bool) -> Style {
    if chosen {
        t.accent()
    } else if removed {
        t.dim()
    } else {
        Style::new()
    }
}
