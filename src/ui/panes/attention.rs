//! Attention with the selected token as query: a query x key heatmap per
//! head (half-block cells, zoom and scroll for long sequences), an overview
//! of all heads of a layer, the mean over heads, and the keys the query
//! attends to most.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

use super::Chrome;
use super::{fit, notice, pane, visible};
use crate::engine::handle::LayerAttention;
use crate::ui::keymap::{Action, Context};
use crate::ui::state::{EngineState, Focus};
use crate::ui::theme::Theme;
use crate::ui::views::attention::AttentionView;
use crate::ui::views::output::OutputView;
use crate::ui::widgets::bars::bar;
use crate::ui::widgets::heatmap::Heatmap;

/// What the attention panes draw from: the view, the shown run's tokens
/// and which run that is.
pub struct Shown<'a> {
    pub view: &'a AttentionView,
    pub output: &'a OutputView,
    pub run: u64,
}

fn title(c: &Chrome, v: &AttentionView) -> Line<'static> {
    let n_layer = c.info.map_or(0, |i| i.n_layer);
    let n_head = c.info.map_or(0, |i| i.n_head);
    let head = if v.mean {
        "mean of heads".to_string()
    } else {
        format!("head {}/{n_head}", v.head + 1)
    };
    let view = if v.overview { " · all heads" } else { "" };
    // A sliding-window layer says so (its rows are zero left of it).
    let window = c
        .info
        .and_then(|i| i.layer_windows.get(v.layer).copied().flatten())
        .map_or(String::new(), |w| format!(" (sliding window {w})"));
    Line::from(format!(
        " Attention · layer {}/{n_layer}{window} · {head}{view} · zoom {}x ",
        v.layer + 1,
        v.zoom
    ))
}

/// The data to draw, or why there is none.
fn data<'a>(c: &Chrome, s: &Shown<'a>) -> Result<&'a LayerAttention, &'static str> {
    if c.info.is_some_and(|i| i.backend.is_some()) {
        return Err(
            "attention is not available from a server: it returns tokens and their probabilities, not attention weights",
        );
    }
    if s.output.tokens.is_empty() {
        return Err(match c.engine {
            EngineState::Loading => "loading the model…",
            _ => "run a prompt to see attention",
        });
    }
    if !s.output.captures {
        return Err(
            "attention was not captured for this run; F5 turns capture on for the next run",
        );
    }
    s.view
        .rows_for(s.output.sequence(s.run))
        .ok_or("computing attention…")
}

/// One heatmap with a gutter column marking the query's row.
fn heatmap(c: &Chrome, s: &Shown, d: &LayerAttention, head: usize, area: Rect, buf: &mut Buffer) {
    if area.width < 2 || area.height == 0 {
        return;
    }
    let seq = s.output.sequence(s.run);
    let (queries, keys) = s.view.window(seq);
    let map = Heatmap {
        rows: &d.rows,
        head,
        queries,
        keys,
        theme: *c.theme,
        per_row: s.view.per_row,
        causal: true,
    };
    let [gutter, cells] =
        Layout::horizontal([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    map.render(cells, buf);
    if let Some(row) = seq.query.and_then(|q| map.row_of(q, cells.height)) {
        buf.set_string(gutter.x, gutter.y + row, "▶", c.theme.accent());
    }
}

fn overview(c: &Chrome, s: &Shown, d: &LayerAttention, area: Rect, buf: &mut Buffer) {
    let n = d.rows.n_head.max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let row_areas = Layout::vertical(vec![Constraint::Fill(1); rows]).split(area);
    for (r, row_area) in row_areas.iter().enumerate() {
        let col_areas = Layout::horizontal(vec![Constraint::Fill(1); cols])
            .spacing(1)
            .split(*row_area);
        for (i, cell) in col_areas.iter().enumerate() {
            let h = r * cols + i;
            if h >= n || cell.height < 2 {
                continue;
            }
            let selected = !s.view.mean && h == s.view.head;
            let style = if selected {
                c.theme.accent()
            } else {
                c.theme.dim()
            };
            buf.set_stringn(
                cell.x,
                cell.y,
                format!("head {}", h + 1),
                cell.width as usize,
                style,
            );
            let body = Rect::new(cell.x, cell.y + 1, cell.width, cell.height - 1);
            heatmap(c, s, d, h, body, buf);
        }
    }
}

fn body(c: &Chrome, s: &Shown, area: Rect, buf: &mut Buffer) {
    match data(c, s) {
        Err(why) => notice(c.theme, why, area, buf),
        Ok(d) if s.view.overview => overview(c, s, d, area, buf),
        Ok(d) => heatmap(c, s, d, s.view.head_index(), area, buf),
    }
}

/// The pane on the main screen.
pub fn render_small(c: &Chrome, s: &Shown, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let inner = pane(
        c.theme,
        title(c, s.view),
        c.focus == Focus::Attention,
        area,
        buf,
    );
    body(c, s, inner, buf);
}

/// The full-screen view: heatmap (or all heads) and a side panel.
pub fn render_full(c: &Chrome, s: &Shown, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let inner = pane(c.theme, title(c, s.view), true, area, buf);
    if inner.width >= 76 {
        let [map, side] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(34)])
            .spacing(1)
            .areas(inner);
        body(c, s, map, buf);
        sidebar(c, s, side, buf);
    } else {
        body(c, s, inner, buf);
    }
}

fn sidebar(c: &Chrome, s: &Shown, area: Rect, buf: &mut Buffer) {
    let t = c.theme;
    let seq = s.output.sequence(s.run);
    let w = area.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    if let Some(q) = seq.query {
        let text = s
            .output
            .tokens
            .get(q)
            .map_or(String::new(), |t| visible(&t.text));
        lines.push(Line::from(vec![
            Span::raw("query "),
            Span::styled(format!("#{q} “{}”", fit(&text, 18)), t.accent()),
        ]));
        if q != s.output.cursor {
            lines.push(Line::styled(
                format!("(#{} is not read yet)", s.output.cursor),
                t.dim(),
            ));
        }
        let (qs, ks) = s.view.window(seq);
        lines.push(Line::styled(
            format!(
                "rows {}–{} · keys {}–{}",
                qs.start,
                qs.end.saturating_sub(1),
                ks.start,
                ks.end.saturating_sub(1)
            ),
            t.dim(),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("most attended", t.title(false)));
    let top = s.view.top_attended(seq.query, 10);
    if top.is_empty() {
        lines.push(Line::styled("—", t.dim()));
    }
    for (k, weight) in top {
        let text = s
            .output
            .tokens
            .get(k)
            .map_or(String::new(), |t| visible(&t.text));
        let bw = w.saturating_sub(7 + 12 + 6).max(1);
        lines.push(Line::from(vec![
            Span::raw(format!("{:>5} {:<12}", format!("#{k}"), fit(&text, 12))),
            Span::styled(bar(weight, bw), t.accent()),
            Span::raw(format!(" {weight:.2}")),
        ]));
    }
    lines.push(Line::raw(""));
    let mut legend = vec![Span::styled("0 ", t.dim())];
    for i in 0..16 {
        let v = i as f32 / 15.0;
        if t.color {
            legend.push(Span::styled(
                "█",
                ratatui::style::Style::new().fg(t.heat(v.sqrt())),
            ));
        } else {
            legend.push(Span::raw(Theme::shade(v.sqrt()).to_string()));
        }
    }
    let of = if s.view.per_row {
        "row max (√)"
    } else {
        "max (√ scale)"
    };
    legend.push(Span::styled(format!(" {of}"), t.dim()));
    lines.push(Line::from(legend));
    lines.push(Line::raw(""));
    let k = |a| c.keymap.keys_for(Context::Attention, a);
    for (keys, what) in [
        (
            format!("{} {}", k(Action::LayerPrev), k(Action::LayerNext)),
            "layer",
        ),
        (
            format!("{} {}", k(Action::HeadPrev), k(Action::HeadNext)),
            "head",
        ),
        (k(Action::MeanHeads), "mean of heads"),
        (k(Action::RowScale), "scale per row"),
        (k(Action::Overview), "all heads"),
        (
            format!("{} {}", k(Action::ZoomIn), k(Action::ZoomOut)),
            "zoom",
        ),
        (
            format!("{} {}", k(Action::PanKeysLeft), k(Action::PanKeysRight)),
            "scroll keys",
        ),
        (
            format!("{} {}", k(Action::TokenPrev), k(Action::TokenNext)),
            "query token",
        ),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<16}", fit(&keys, 16)), t.accent()),
            Span::styled(what, t.dim()),
        ]));
    }
    for (i, line) in lines.into_iter().take(area.height as usize).enumerate() {
        buf.set_line(area.x, area.y + i as u16, &line, area.width);
    }
}
