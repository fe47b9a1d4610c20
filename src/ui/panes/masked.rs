//! The encoder mode's screen, from [`MaskedView`]: the text, its tokens
//! (`[CLS]`/`[SEP]` and masks marked), the selected mask's candidates and the
//! masked generation's steps, the selected layer and head's attention
//! (every query over every key), and the layer x head overview of the
//! selected token's row.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::{char_width, pane};
use crate::engine::types::AttentionRows;
use crate::ui::state::Level;
use crate::ui::theme::Theme;
use crate::ui::views::masked::{Focus, MaskedView, order_name};
use crate::ui::widgets::bars::bar;
use crate::ui::widgets::heatmap::{Heatmap, with_mean};

pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 18;

/// One layer of the full attention, heads (and their mean) as heads.
fn layer_rows(all: &AttentionRows, layer: usize) -> AttentionRows {
    let per_layer = all.n_head * all.n_query * all.n_key;
    let start = layer * per_layer;
    with_mean(AttentionRows {
        n_layer: 1,
        data: all.data[start..start + per_layer].to_vec(),
        ..all.clone()
    })
}

/// The attention row of `query` in (layer, head); `head == n_head` is the
/// mean over heads.
fn row(all: &AttentionRows, layer: usize, head: usize, query: usize) -> Vec<f32> {
    if head < all.n_head {
        return all.row(layer, head, query).to_vec();
    }
    let mut mean = vec![0f32; all.n_key];
    for h in 0..all.n_head {
        for (m, v) in mean.iter_mut().zip(all.row(layer, h, query)) {
            *m += v / all.n_head as f32;
        }
    }
    mean
}

fn token_style(theme: &Theme, v: &MaskedView, i: usize) -> Style {
    let t = &v.tokens[i];
    let base = if v.selected_fill().is_some_and(|f| f.position == i)
        || v.fills
            .as_ref()
            .is_ok_and(|f| f.iter().any(|f| f.position == i))
    {
        theme.warn()
    } else if t.special {
        theme.accent()
    } else {
        Style::default()
    };
    if i == v.selected && v.focus == Focus::Tokens {
        theme.selected()
    } else {
        base
    }
}

pub fn render(theme: &Theme, v: &MaskedView, area: Rect, buf: &mut Buffer) {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small: {MIN_WIDTH}x{MIN_HEIGHT} needed, this is {}x{}",
            area.width, area.height
        );
        Paragraph::new(msg).style(theme.warn()).render(area, buf);
        return;
    }
    let overview_rows = (v.model.layers as u16 + 3).min(area.height / 4);
    let [header, text, tokens, main, overview, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Length(3),
        Constraint::Fill(1),
        Constraint::Length(overview_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    let m = &v.model;
    let heads_line = format!(
        " lmscope · {} · {} encoder · {} layers x {} heads · width {} · MLM head {} · NSP head {} ",
        m.name,
        m.architecture,
        m.layers,
        m.heads,
        m.width,
        if m.mlm_head { "yes" } else { "no" },
        if m.nsp_head { "yes" } else { "no" },
    );
    buf.set_stringn(
        header.x,
        header.y,
        heads_line,
        header.width as usize,
        theme.status_bar(),
    );

    let inner = pane(
        theme,
        Line::from(" Text  (Enter runs it · Ctrl-G fills the masks step by step) "),
        v.focus == Focus::Text,
        text,
        buf,
    );
    let line = v.editor.text().replace('\n', " ");
    buf.set_stringn(
        inner.x,
        inner.y,
        &line,
        inner.width as usize,
        Style::default(),
    );
    if v.focus == Focus::Text {
        let col = v.editor.cursor().1;
        let x: usize = line.chars().take(col).map(char_width).sum();
        if (x as u16) < inner.width
            && let Some(cell) = buf.cell_mut((inner.x + x as u16, inner.y))
        {
            cell.set_style(theme.selected());
        }
    }

    let inner = pane(
        theme,
        Line::from(" Tokens as the model reads them  (Tab here · ←/→ select · m next mask) "),
        v.focus == Focus::Tokens,
        tokens,
        buf,
    );
    let mut spans = Vec::new();
    for (i, t) in v.tokens.iter().enumerate() {
        spans.push(Span::styled(t.text.clone(), token_style(theme, v, i)));
        spans.push(Span::raw(" "));
    }
    if spans.is_empty() {
        spans.push(Span::styled("not run yet", theme.dim()));
    }
    Paragraph::new(Line::from(spans)).render(inner, buf);

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Fill(1)]).areas(main);
    candidates(theme, v, left, buf);
    attention(theme, v, right, buf);
    heads_overview(theme, v, overview, buf);

    let help = " Ctrl-O fill order · Ctrl-T greedy/sampled · Esc stops · Ctrl-S saves · Ctrl-Q quits · compare: decoders only";
    let (style, text) = match &v.message {
        Some((Level::Error, m)) => (theme.error(), format!(" {m}")),
        Some((Level::Warn, m)) => (theme.warn(), format!(" {m}")),
        Some((Level::Info, m)) => (theme.status_bar(), format!(" {m}")),
        None if v.busy => (theme.status_bar(), " working…".to_string()),
        None => (theme.status_bar(), help.to_string()),
    };
    buf.set_stringn(status.x, status.y, text, status.width as usize, style);
}

fn candidates(theme: &Theme, v: &MaskedView, area: Rect, buf: &mut Buffer) {
    let title = format!(
        " Candidates · fill {}, T {} ",
        order_name(v.order),
        v.settings.temperature
    );
    let inner = pane(theme, Line::from(title), false, area, buf);
    let mut lines: Vec<Line> = Vec::new();
    if let Some(s) = v.selected_step() {
        // A generated token: its draw, traced like a decoder's.
        lines.push(Line::styled(
            format!(
                "step {} at token {}: {} (p {:.3}, raw {:.3}, rank {})",
                s.step,
                s.position,
                crate::ui::text::visible(&s.text),
                s.p_final,
                s.p_raw,
                s.rank
            ),
            theme.accent(),
        ));
        lines.push(Line::styled(
            format!(
                "{:<14} {:>6} {:>6}  removed by",
                "candidate", "raw", "final"
            ),
            theme.dim(),
        ));
        for c in &s.top {
            let removed = c.removed_by.map(|st| st.name()).unwrap_or("");
            let style = if c.token_id == s.token_id {
                theme.selected()
            } else if c.removed_by.is_some() {
                theme.dim()
            } else {
                Style::default()
            };
            lines.push(Line::styled(
                format!(
                    "{:<14} {:>6.3} {:>6.3}  {removed}",
                    crate::ui::text::visible(&c.text),
                    c.p_raw,
                    c.p_final
                ),
                style,
            ));
        }
    } else {
        match (&v.fills, v.selected_fill()) {
            (Err(why), _) => lines.push(Line::styled(why.clone(), theme.dim())),
            (Ok(_), None) => lines.push(Line::styled(
                "the selected token is not a mask (m jumps to the next)",
                theme.dim(),
            )),
            (Ok(_), Some(f)) => {
                lines.push(Line::styled(
                    format!("mask at token {}", f.position),
                    theme.accent(),
                ));
                let width = (inner.width as usize).saturating_sub(28).clamp(4, 20);
                for c in &f.top {
                    lines.push(Line::from(vec![
                        Span::raw(format!("{:<14} ", crate::ui::text::visible(&c.text))),
                        Span::styled(bar(c.p, width), theme.prob(c.p)),
                        Span::raw(format!(" {:5.1}%", 100.0 * c.p)),
                    ]));
                }
            }
        }
    }
    if !v.steps.is_empty() || v.generating {
        lines.push(Line::raw(""));
        lines.push(Line::styled("masked generation", theme.accent()));
        if let Some(t) = &v.generated {
            lines.push(Line::raw(t.clone()));
        }
        for s in v.steps.iter().rev().take(inner.height as usize) {
            lines.push(Line::from(vec![
                Span::raw(format!("{:>2} @{:<3} ", s.step, s.position)),
                Span::styled(
                    format!("{:<12}", crate::ui::text::visible(&s.text)),
                    theme.prob(s.p_raw),
                ),
                Span::styled(
                    format!(" p {:.3} raw {:.3} #{}", s.p_final, s.p_raw, s.rank),
                    theme.dim(),
                ),
            ]));
        }
    }
    Paragraph::new(lines).render(inner, buf);
}

fn attention(theme: &Theme, v: &MaskedView, area: Rect, buf: &mut Buffer) {
    let head_name = if v.head >= v.model.heads {
        "mean of heads".to_string()
    } else {
        format!("head {}", v.head + 1)
    };
    let title = format!(
        " Attention · layer {} {} · query x key, both directions  (PgUp/PgDn layer · ↑/↓ head) ",
        v.layer + 1,
        head_name
    );
    let inner = pane(theme, Line::from(title), false, area, buf);
    let Some(all) = &v.attention else {
        Paragraph::new(Line::styled("not run yet", theme.dim())).render(inner, buf);
        return;
    };
    let n = all.n_query;
    if n == 0 || inner.height < 4 {
        return;
    }
    let [map_area, legend] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(2)]).areas(inner);
    let rows = layer_rows(all, v.layer);
    let map = Heatmap {
        rows: &rows,
        head: v.head.min(all.n_head),
        queries: 0..n,
        keys: 0..n,
        theme: *theme,
        per_row: false,
        causal: false,
    };
    let [gutter, cells] =
        Layout::horizontal([Constraint::Length(1), Constraint::Fill(1)]).areas(map_area);
    map.render(cells, buf);
    if let Some(r) = map.row_of(v.selected, cells.height) {
        buf.set_string(gutter.x, gutter.y + r, "▶", theme.accent());
    }
    // Where the selected token looks, strongest first; specials marked.
    if v.selected < n {
        let weights = row(all, v.layer, v.head.min(all.n_head), v.selected);
        let mut order: Vec<usize> = (0..weights.len()).collect();
        order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
        let mut spans = vec![Span::styled(
            format!(
                "{} looks at: ",
                crate::ui::text::visible(
                    &v.tokens
                        .get(v.selected)
                        .map(|t| t.text.clone())
                        .unwrap_or_default()
                )
            ),
            theme.accent(),
        )];
        for &k in order.iter().take(6) {
            let t = v.tokens.get(k);
            let style = if t.is_some_and(|t| t.special) {
                theme.accent()
            } else {
                Style::default()
            };
            spans.push(Span::styled(
                format!(
                    "{}@{} {:.2}  ",
                    crate::ui::text::visible(&t.map(|t| t.text.clone()).unwrap_or_default()),
                    k,
                    weights[k]
                ),
                style,
            ));
        }
        Paragraph::new(Line::from(spans)).render(legend, buf);
    }
}

/// Each layer's heads: the selected token's attention entropy (how spread
/// it looks), dark = focused on one key, bright = spread over all.
fn heads_overview(theme: &Theme, v: &MaskedView, area: Rect, buf: &mut Buffer) {
    let inner = pane(
        theme,
        Line::from(" Layers x heads · the selected token's attention entropy (bright = spread) "),
        false,
        area,
        buf,
    );
    let Some(all) = &v.attention else {
        return;
    };
    if v.selected >= all.n_query || all.n_key < 2 {
        return;
    }
    let max_h = (all.n_key as f32).ln();
    for l in 0..all.n_layer.min(inner.height as usize) {
        let y = inner.y + l as u16;
        buf.set_stringn(inner.x, y, format!("L{:<3}", l + 1), 4, theme.dim());
        for h in 0..all.n_head {
            let x = inner.x + 5 + 3 * h as u16;
            if x + 2 >= inner.x + inner.width {
                break;
            }
            let r = all.row(l, h, v.selected);
            let entropy: f32 = r.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln()).sum();
            let share = (entropy / max_h).clamp(0.0, 1.0);
            let mark = if l == v.layer && h == v.head {
                "[]"
            } else {
                "██"
            };
            let style = if theme.color {
                Style::default().fg(theme.heat(share))
            } else {
                Style::default()
            };
            let text = if theme.color {
                mark.to_string()
            } else {
                Theme::shade(share).to_string().repeat(2)
            };
            buf.set_stringn(x, y, text, 2, style);
        }
    }
}
