//! Draws the training view: the loss curves (training per step, validation
//! per evaluation) and the learning rate as ratatui Charts, the progress
//! bar with speed, time left and memory, the probe's predictions, its
//! per-head scores and the selected head's attention.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, Gauge, GraphType, Paragraph, Widget};

use crate::ui::state::Level;
use crate::ui::theme::Theme;
use crate::ui::views::training::TrainingView;
use crate::ui::widgets::heatmap::Heatmap;

/// Below this the view says how large the terminal must be instead.
const MIN: (u16, u16) = (60, 20);

fn bounds(points: &[(f64, f64)]) -> [f64; 2] {
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        [lo, hi]
    } else {
        [0.0, lo.max(0.0) + 1.0]
    }
}

fn duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

pub fn render(theme: &Theme, v: &TrainingView, area: Rect, buf: &mut Buffer) {
    if area.width < MIN.0 || area.height < MIN.1 {
        Paragraph::new(format!(
            "the training view needs {}x{} (this terminal is {}x{}); training goes on",
            MIN.0, MIN.1, area.width, area.height
        ))
        .render(area, buf);
        return;
    }
    let [head, bar, charts, bottom, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Percentage(45),
        Constraint::Min(6),
        Constraint::Length(1),
    ])
    .areas(area);
    Paragraph::new(Line::from(vec![
        Span::styled(
            "lmscope train ",
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(&v.title),
    ]))
    .render(head, buf);

    let l = &v.latest;
    let ratio = if v.total_steps > 0 {
        v.step as f64 / v.total_steps as f64
    } else {
        0.0
    };
    let mem = l
        .peak_rss_mib
        .map(|m| format!(" · peak {m:.0} MiB"))
        .unwrap_or_default();
    let state = if v.paused {
        " · paused"
    } else if v.stopping && !v.finished {
        " · stopping"
    } else {
        ""
    };
    Gauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .gauge_style(if theme.color {
            Style::default().fg(Color::Green)
        } else {
            Style::default()
        })
        .label(format!(
            "step {}/{} · {:.0} tok/s · {} elapsed · {} left{mem}{state}",
            v.step,
            v.total_steps,
            l.tokens_per_s,
            duration(l.elapsed_s),
            duration(l.eta_s)
        ))
        .render(bar, buf);

    let [loss_area, rate_area] =
        Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(charts);
    loss_chart(theme, v, loss_area, buf);
    rate_chart(v, rate_area, buf);

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(bottom);
    probe_text(v, left, buf);
    attention(theme, v, right, buf);

    let footer = match &v.message {
        Some((level, m)) => {
            let style = match level {
                Level::Error => Style::default().fg(Color::Red),
                Level::Warn => Style::default().fg(Color::Yellow),
                Level::Info => Style::default(),
            };
            Line::styled(m.clone(), style)
        }
        None => {
            Line::raw("p pause/resume · PgUp/PgDn layer · ↑/↓ head · q stop (saved, resumable)")
        }
    };
    Paragraph::new(footer).render(foot, buf);
}

fn loss_chart(theme: &Theme, v: &TrainingView, area: Rect, buf: &mut Buffer) {
    let all: Vec<(f64, f64)> = v.train_loss.iter().chain(&v.val_loss).copied().collect();
    let y = bounds(&all);
    let x = [0.0, v.total_steps.max(1) as f64];
    let colour = |c: Color| {
        if theme.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    };
    let parts: Vec<String> = v
        .latest
        .parts
        .iter()
        .map(|(k, x)| format!("{k} {x:.3}"))
        .collect();
    let best = v
        .best
        .map(|(s, l)| format!(" · best {l:.3} @{s}"))
        .unwrap_or_default();
    let val = v
        .val_loss
        .last()
        .map(|(_, l)| format!(" · • val {l:.3}"))
        .unwrap_or_default();
    let metrics: String = v
        .metrics
        .iter()
        .map(|(k, x)| format!(" · {} {:.1}%", k.replace('_', " "), x * 100.0))
        .collect();
    let parts = match parts.is_empty() {
        true => String::new(),
        false => format!(" ({})", parts.join(", ")),
    };
    let title = format!(
        "loss · ─ train {:.3}{parts}{val}{metrics}{best}",
        v.latest.loss
    );
    let datasets = vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(colour(Color::Cyan))
            .data(&v.train_loss),
        Dataset::default()
            .marker(Marker::Dot)
            .graph_type(GraphType::Line)
            .style(colour(Color::Yellow))
            .data(&v.val_loss),
    ];
    Chart::new(datasets)
        .block(Block::default().borders(Borders::ALL).title(title))
        .x_axis(
            Axis::default()
                .bounds(x)
                .labels(["0".to_string(), v.total_steps.to_string()]),
        )
        .y_axis(
            Axis::default()
                .bounds(y)
                .labels([format!("{:.2}", y[0]), format!("{:.2}", y[1])]),
        )
        .render(area, buf);
}

fn rate_chart(v: &TrainingView, area: Rect, buf: &mut Buffer) {
    let y = [
        0.0,
        v.rate.iter().map(|p| p.1).fold(0.0, f64::max).max(1e-12),
    ];
    let x = [0.0, v.total_steps.max(1) as f64];
    Chart::new(vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .data(&v.rate),
    ])
    .block(Block::default().borders(Borders::ALL).title(format!(
        "learning rate {:.2e} · |g| {:.2}",
        v.latest.lr, v.latest.grad_norm
    )))
    .x_axis(Axis::default().bounds(x))
    .y_axis(
        Axis::default()
            .bounds(y)
            .labels(["0".to_string(), format!("{:.1e}", y[1])]),
    )
    .render(area, buf);
}

fn probe_text(v: &TrainingView, area: Rect, buf: &mut Buffer) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title("probe · heads (prev-token, induction)");
    let Some(p) = &v.probe else {
        let hint =
            "each evaluation shows --probe TEXT here: its predictions, attention and head scores";
        Paragraph::new(hint).block(block).render(area, buf);
        return;
    };
    let mut lines = vec![Line::raw(format!("\"{}\"", p.text))];
    for (at, top) in &p.predictions {
        let top: Vec<String> = top
            .iter()
            .map(|(t, q)| format!("{t} {:.1}%", q * 100.0))
            .collect();
        lines.push(Line::raw(format!("@{at}: {}", top.join("  "))));
    }
    for (i, h) in p.heads.iter().enumerate() {
        let selected = h.layer == v.layer && h.head == v.head;
        let style = if selected {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        let strong = |x: f32| {
            if x > 0.4 {
                "●"
            } else if x > 0.15 {
                "○"
            } else {
                " "
            }
        };
        lines.push(Line::styled(
            format!(
                "L{} H{:<2} prev {:.2}{} ind {:.2}{}",
                h.layer,
                h.head,
                h.previous_token,
                strong(h.previous_token),
                h.induction,
                strong(h.induction)
            ),
            style,
        ));
        if i > 64 {
            break;
        }
    }
    Paragraph::new(lines).block(block).render(area, buf);
}

fn attention(theme: &Theme, v: &TrainingView, area: Rect, buf: &mut Buffer) {
    let title = format!(
        "attention · layer {} head {} (query x key)",
        v.layer, v.head
    );
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner = block.inner(area);
    block.render(area, buf);
    let Some(rows) = v.attention_rows() else {
        return;
    };
    let masked = v.title.starts_with("bert");
    Heatmap {
        rows: &rows,
        head: v.head,
        queries: 0..rows.n_query,
        keys: 0..rows.n_key,
        theme: *theme,
        per_row: false,
        causal: !masked,
    }
    .render(inner, buf);
}
