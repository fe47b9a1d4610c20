//! Attention with the selected token as query: a query x key heatmap per
//! head (half-block cells, zoom and scroll for long sequences), an overview
//! of all heads of a layer, the mean over heads, and the keys the query
//! attends to most.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};

use super::{fit, notice, pane, visible};
use crate::engine::handle::LayerAttention;
use crate::ui::app::App;
use crate::ui::keymap::{Action, Context};
use crate::ui::state::{EngineState, Focus};
use crate::ui::theme::Theme;
use crate::ui::widgets::bars::bar;
use crate::ui::widgets::heatmap::Heatmap;

fn title(app: &App) -> Line<'static> {
    let n_layer = app.info.as_ref().map_or(0, |i| i.n_layer);
    let n_head = app.info.as_ref().map_or(0, |i| i.n_head);
    let head = if app.attn.mean {
        "mean of heads".to_string()
    } else {
        format!("head {}/{n_head}", app.attn.head + 1)
    };
    let view = if app.attn.overview {
        " · all heads"
    } else {
        ""
    };
    Line::from(format!(
        " Attention · layer {}/{n_layer} · {head}{view} · zoom {}x ",
        app.attn.layer + 1,
        app.attn.zoom
    ))
}

/// The data to draw, or why there is none.
fn data(app: &App) -> Result<&LayerAttention, &'static str> {
    if app.tokens.is_empty() {
        return Err(match app.state {
            EngineState::Loading => "loading the model…",
            _ => "run a prompt to see attention",
        });
    }
    if !app.run_captures {
        return Err(
            "attention was not captured for this run; F5 turns capture on for the next run",
        );
    }
    match &app.attn.data {
        Some(d) if d.id == app.shown && d.layer == app.attn.layer => Ok(d),
        _ => Err("computing attention…"),
    }
}

/// One heatmap with a gutter column marking the query's row.
fn heatmap(app: &App, d: &LayerAttention, head: usize, area: Rect, buf: &mut Buffer) {
    if area.width < 2 || area.height == 0 {
        return;
    }
    let (queries, keys) = app.attention_window();
    let map = Heatmap {
        rows: &d.rows,
        head,
        queries,
        keys,
        theme: app.theme,
        per_row: app.attn.per_row,
    };
    let [gutter, cells] =
        Layout::horizontal([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    map.render(cells, buf);
    if let Some(row) = app.query().and_then(|q| map.row_of(q, cells.height)) {
        buf.set_string(gutter.x, gutter.y + row, "▶", app.theme.accent());
    }
}

fn overview(app: &App, d: &LayerAttention, area: Rect, buf: &mut Buffer) {
    let n = d.rows.n_head.max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let row_areas = Layout::vertical(vec![Constraint::Fill(1); rows]).split(area);
    for (r, row_area) in row_areas.iter().enumerate() {
        let col_areas = Layout::horizontal(vec![Constraint::Fill(1); cols])
            .spacing(1)
            .split(*row_area);
        for (c, cell) in col_areas.iter().enumerate() {
            let h = r * cols + c;
            if h >= n || cell.height < 2 {
                continue;
            }
            let selected = !app.attn.mean && h == app.attn.head;
            let style = if selected {
                app.theme.accent()
            } else {
                app.theme.dim()
            };
            buf.set_stringn(
                cell.x,
                cell.y,
                format!("head {}", h + 1),
                cell.width as usize,
                style,
            );
            let body = Rect::new(cell.x, cell.y + 1, cell.width, cell.height - 1);
            heatmap(app, d, h, body, buf);
        }
    }
}

fn body(app: &App, area: Rect, buf: &mut Buffer) {
    match data(app) {
        Err(why) => notice(&app.theme, why, area, buf),
        Ok(d) if app.attn.overview => overview(app, d, area, buf),
        Ok(d) => heatmap(app, d, app.head_index(), area, buf),
    }
}

/// The pane on the main screen.
pub fn render_small(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let inner = pane(
        &app.theme,
        title(app),
        app.focus == Focus::Attention,
        area,
        buf,
    );
    body(app, inner, buf);
}

/// The full-screen view: heatmap (or all heads) and a side panel.
pub fn render_full(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let inner = pane(&app.theme, title(app), true, area, buf);
    if inner.width >= 76 {
        let [map, side] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(34)])
            .spacing(1)
            .areas(inner);
        body(app, map, buf);
        sidebar(app, side, buf);
    } else {
        body(app, inner, buf);
    }
}

fn sidebar(app: &App, area: Rect, buf: &mut Buffer) {
    let t = &app.theme;
    let w = area.width as usize;
    let mut lines: Vec<Line> = Vec::new();
    if let Some(q) = app.query() {
        let text = app
            .tokens
            .get(q)
            .map_or(String::new(), |t| visible(&t.text));
        lines.push(Line::from(vec![
            Span::raw("query "),
            Span::styled(format!("#{q} “{}”", fit(&text, 18)), t.accent()),
        ]));
        if q != app.cursor {
            lines.push(Line::styled(
                format!("(#{} is not read yet)", app.cursor),
                t.dim(),
            ));
        }
        let (qs, ks) = app.attention_window();
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
    let top = app.top_attended(10);
    if top.is_empty() {
        lines.push(Line::styled("—", t.dim()));
    }
    for (k, weight) in top {
        let text = app
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
    let of = if app.attn.per_row {
        "row max (√)"
    } else {
        "max (√ scale)"
    };
    legend.push(Span::styled(format!(" {of}"), t.dim()));
    lines.push(Line::from(legend));
    lines.push(Line::raw(""));
    let k = |a| app.keymap.keys_for(Context::Attention, a);
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
