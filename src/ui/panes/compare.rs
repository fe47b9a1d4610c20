//! The compare view: the prompt under 2-4 presets side by side, each
//! column's text coloured by probability above its statistics, and a line
//! under the columns naming the first step where they part ways.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::Chrome;
use super::{char_width, fit, notice, pane, probs, visible};
use crate::analysis::compare::{Divergence, column_stats, first_divergence};
use crate::engine::types::StepRecord;
use crate::ui::state::EngineState;
use crate::ui::theme::Theme;
use crate::ui::views::compare::{CompareColumn, CompareState};
use crate::ui::widgets::bars::bar;

/// `layer`: the attention view's layer, asked for a selected token.
pub fn render(
    c: &Chrome,
    compare: Option<&CompareState>,
    layer: usize,
    area: Rect,
    buf: &mut Buffer,
) {
    if area.is_empty() {
        return;
    }
    let t = c.theme;
    let title = match compare {
        Some(cmp) => format!(
            " Compare · {} presets · one prefill, seed {} · Esc {} ",
            cmp.columns.len(),
            c.config.sampler.seed,
            if *c.engine == EngineState::Running && !cmp.finished() {
                "cancels"
            } else {
                "closes"
            }
        ),
        None => " Compare ".to_string(),
    };
    let title = fit(&title, area.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), true, area, buf);
    let Some(cmp) = compare.filter(|cmp| !cmp.columns.is_empty()) else {
        return notice(
            t,
            "type a prompt and press f7 to compare presets",
            inner,
            buf,
        );
    };
    if inner.is_empty() {
        return;
    }
    let div_h = if inner.height >= 14 {
        2
    } else if inner.height >= 6 {
        1
    } else {
        0
    };
    let [cols_area, div_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(div_h)]).areas(inner);
    // A selected token's probabilities and attention go under the columns.
    let detail_h = if cmp.selected.is_some() && cols_area.height >= 12 {
        (c.config.generation.top_n as u16 + 4).clamp(6, cols_area.height / 2)
    } else {
        0
    };
    let [cols_area, detail_area] =
        Layout::vertical([Constraint::Fill(1), Constraint::Length(detail_h)]).areas(cols_area);
    let divergence = divergence(cmp);
    let n = cmp.columns.len() as u32;
    let areas = Layout::horizontal((0..n).map(|_| Constraint::Ratio(1, n))).split(cols_area);
    let marked = divergence.as_ref().map(|d| d.step);
    for (i, (col, &r)) in cmp.columns.iter().zip(areas.iter()).enumerate() {
        let selected = cmp.selected.filter(|(c, _)| *c == i).map(|(_, s)| s);
        render_column(c, col, marked, selected, r, buf);
    }
    render_selection(t, cmp, layer, detail_area, buf);
    if let Some(text) = divergence_lines(cmp, divergence.as_ref(), div_h) {
        Paragraph::new(text)
            .style(t.accent())
            .wrap(Wrap { trim: false })
            .render(div_area, buf);
    }
}

/// Where the columns first chose different tokens.
pub fn divergence(cmp: &CompareState) -> Option<Divergence> {
    if cmp.columns.len() < 2 {
        return None;
    }
    let steps: Vec<&[StepRecord]> = cmp.columns.iter().map(|c| c.records.as_slice()).collect();
    first_divergence(&steps)
}

fn prob(p: f32) -> String {
    if p >= 0.1 {
        format!("{p:.2}")
    } else {
        format!("{p:.3}")
    }
}

fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "–".into()
    }
}

/// The divergence text: each column's token with its own probability, then
/// (second line) each column's probabilities of every column's token.
fn divergence_lines(
    cmp: &CompareState,
    d: Option<&Divergence>,
    height: u16,
) -> Option<Vec<Line<'static>>> {
    if height == 0 {
        return None;
    }
    let Some(d) = d else {
        let finished = cmp.finished();
        let any = cmp.columns.iter().any(|c| !c.records.is_empty());
        let text = if finished && any {
            "the columns never diverge"
        } else if any {
            "no divergence yet"
        } else {
            ""
        };
        return Some(vec![Line::from(text)]);
    };
    let token = |c: usize| {
        cmp.columns
            .get(c)
            .and_then(|col| col.records.get(d.step))
            .map_or_else(String::new, |r| visible(&r.text))
    };
    let own: Vec<String> = cmp
        .columns
        .iter()
        .enumerate()
        .map(|(c, col)| {
            let p = d
                .probs
                .get(c)
                .and_then(|row| row.get(c))
                .copied()
                .flatten()
                .map_or_else(|| "–".into(), prob);
            format!("{} '{}' {p}", col.preset, token(c))
        })
        .collect();
    let mut lines = vec![Line::from(format!(
        "first divergence at step {}: {}",
        d.step,
        own.join(" | ")
    ))];
    if height >= 2 {
        let tokens: Vec<String> = (0..cmp.columns.len())
            .map(|c| format!("'{}'", token(c)))
            .collect();
        let views: Vec<String> = cmp
            .columns
            .iter()
            .zip(&d.probs)
            .map(|(col, row)| {
                let ps: Vec<String> = row
                    .iter()
                    .map(|p| p.map_or_else(|| "–".into(), prob))
                    .collect();
                format!("{} {}", col.preset, ps.join("/"))
            })
            .collect();
        lines.push(Line::from(format!(
            "p of {}: {}",
            tokens.join("/"),
            views.join(" | ")
        )));
    }
    Some(lines)
}

/// The statistics as short items, packed into lines of `width`.
fn stats_lines(col: &CompareColumn, width: usize) -> Vec<String> {
    let s = column_stats(&col.records, col.timings.decode_s);
    let items = [
        format!("{} tok", s.tokens),
        format!("{} tok/s", num(s.tok_s, 1)),
        format!("lp {}", num(s.mean_logprob, 2)),
        format!("ppl {}", num(s.perplexity, 2)),
        format!("H {}", num(s.mean_entropy, 2)),
        format!("d1 {}", num(s.distinct_1, 2)),
        format!("d2 {}", num(s.distinct_2, 2)),
        format!("rep {}", num(s.repetition_rate, 2)),
    ];
    let mut lines: Vec<String> = Vec::new();
    for item in items {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + item.chars().count() <= width => {
                l.push(' ');
                l.push_str(&item);
            }
            _ => lines.push(fit(&item, width)),
        }
    }
    lines
}

/// Cells of one line: (x, char, step).
type Row = Vec<(u16, char, usize)>;

/// The column's tokens wrapped to `width`; line breaks in the text start
/// new lines.
fn wrap_tokens(records: &[StepRecord], width: u16) -> Vec<Row> {
    let mut rows: Vec<Row> = vec![Vec::new()];
    let mut x = 0u16;
    if width == 0 {
        return rows;
    }
    for (i, r) in records.iter().enumerate() {
        for c in r.text.chars() {
            if c == '\n' {
                rows.push(Vec::new());
                x = 0;
                continue;
            }
            let c = if c.is_control() { '�' } else { c };
            let w = char_width(c) as u16;
            if x > 0 && x + w > width {
                rows.push(Vec::new());
                x = 0;
            }
            if let Some(row) = rows.last_mut() {
                row.push((x, c, i));
            }
            x += w;
        }
    }
    rows
}

/// The selected token's alternatives (left) and the keys its query
/// attends to most, mean over heads (right).
fn render_selection(t: &Theme, cmp: &CompareState, layer: usize, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let Some((preset, r)) = cmp.selected_record() else {
        return;
    };
    let [left, right] = if area.width >= 70 {
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area)
    } else {
        [area, Rect::default()]
    };
    let title = format!(" {preset} · step {} · probabilities ", r.step);
    let title = fit(&title, left.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), true, left, buf);
    let lines = probs::record_lines(t, r, inner.width as usize, None);
    for (i, line) in lines.into_iter().take(inner.height as usize).enumerate() {
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
    if right.is_empty() {
        return;
    }
    let layer = cmp.attention.as_ref().map_or(layer, |a| a.layer);
    let title = format!(" Attention · layer {layer} · mean of heads ");
    let title = fit(&title, right.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), false, right, buf);
    let attended = cmp.attended(inner.height as usize);
    if attended.is_empty() {
        let text = if !cmp.captures {
            "attention was not captured (toggle capture, then compare again)"
        } else if !cmp.finished() {
            "attention is served once every column has finished"
        } else {
            "computing…"
        };
        return notice(t, text, inner, buf);
    }
    let w = inner.width as usize;
    let tw = 12.min(w / 3).max(3);
    for (i, (k, text, weight)) in attended.into_iter().enumerate() {
        let bw = w.saturating_sub(tw + 14);
        let line = Line::from(vec![
            Span::raw(format!("#{k:<4} ")),
            Span::styled(format!("{:<tw$}", fit(&visible(&text), tw)), t.accent()),
            Span::raw(format!(" {weight:.3} ")),
            Span::styled(bar(weight, bw), t.prob(weight)),
        ]);
        buf.set_line(inner.x, inner.y + i as u16, &line, inner.width);
    }
}

fn render_column(
    c: &Chrome,
    col: &CompareColumn,
    marked: Option<usize>,
    selected: Option<usize>,
    area: Rect,
    buf: &mut Buffer,
) {
    if area.width < 3 || area.height < 3 {
        return;
    }
    let status = match col.finish {
        Some(r) => r.as_str(),
        None if *c.engine == EngineState::Running => "…",
        None => "",
    };
    let t = c.theme;
    let mark = if selected.is_some() { "▸" } else { "" };
    let title = fit(
        &format!(" {mark}{} {} ", col.preset, status),
        area.width.saturating_sub(2) as usize,
    );
    let inner = pane(t, Line::from(title), selected.is_some(), area, buf);
    if inner.is_empty() {
        return;
    }
    let width = inner.width as usize;
    let mut stats = stats_lines(col, width);
    stats.truncate((inner.height / 2) as usize);
    let text_h = inner.height - stats.len() as u16;
    for (i, line) in stats.iter().enumerate() {
        buf.set_stringn(inner.x, inner.y + text_h + i as u16, line, width, t.dim());
    }
    if col.records.is_empty() {
        let text = if col.finish.is_some() {
            "(no tokens)"
        } else {
            "waiting…"
        };
        let area = Rect::new(inner.x, inner.y, inner.width, text_h);
        return notice(t, text, area, buf);
    }
    // The newest lines, as the stream grows.
    let rows = wrap_tokens(&col.records, inner.width);
    let mut skip = rows.len().saturating_sub(text_h as usize);
    // Keep the selected token in sight.
    if let Some(row) = selected.and_then(|s| rows.iter().position(|r| r.iter().any(|c| c.2 == s)))
        && row < skip
    {
        skip = row;
    }
    for (y, row) in rows.iter().skip(skip).enumerate() {
        for &(x, c, step) in row {
            let mut style = t.prob(col.records[step].p_raw);
            if Some(step) == marked {
                style = style.patch(divergent(t));
            }
            if Some(step) == selected {
                style = style.patch(t.selected().add_modifier(Modifier::UNDERLINED));
            }
            let mut b = [0u8; 4];
            buf.set_stringn(
                inner.x + x,
                inner.y + y as u16,
                c.encode_utf8(&mut b),
                (inner.width - x) as usize,
                style,
            );
        }
    }
}

/// The first divergent token stands out in colour and without it.
fn divergent(t: &Theme) -> Style {
    t.selected().add_modifier(Modifier::BOLD)
}
