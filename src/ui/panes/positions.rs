//! The positions pane (the attention view's `p`): for the layer and head
//! shown, each rotary frequency pair (radians a token, wavelength, where
//! the last position has turned it, its share of the head's |q||k|), and
//! the head's query . key against distance beside the content-free bound,
//! as a chart. For learned positions (GPT-2): the mean cosine similarity
//! of the position embeddings against distance, and their position x
//! position similarity as a heatmap.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Widget};

use super::{Chrome, notice, pane};
use crate::analysis::positions::LearnedReport;
use crate::engine::types::AttentionRows;
use crate::ui::views::positions::PositionsView;
use crate::ui::widgets::heatmap::Heatmap;

pub fn render(c: &Chrome, v: &PositionsView, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    if let Some(l) = &v.learned {
        return learned(c, l, area, buf);
    }
    let t = c.theme;
    let title = match &v.report {
        Some(r) => format!(
            " Positions · layer {} · head {} · RoPE {:?}, base {} · {} positions ",
            r.layer + 1,
            r.head + 1,
            r.style,
            r.base,
            r.positions
        ),
        None => " Positions ".into(),
    };
    let inner = pane(t, Line::from(title), true, area, buf);
    if c.info.is_some_and(|i| i.backend.is_some()) {
        let why = "positions are not available from a server: it returns no queries or keys";
        return notice(t, why, inner, buf);
    }
    let Some(r) = &v.report else {
        let why = v.missing.as_deref().unwrap_or("computing…");
        notice(t, why, inner, buf);
        return;
    };
    let [table, chart] = Layout::horizontal([Constraint::Length(50), Constraint::Fill(1)])
        .spacing(1)
        .areas(inner);
    let mut pairs: Vec<_> = r.pairs.iter().collect();
    pairs.sort_by(|a, b| b.share.total_cmp(&a.share));
    let mut lines = vec![Line::styled(
        "pair  rad/token  wavelength  at last  share",
        t.dim(),
    )];
    for p in pairs.iter().take(table.height.saturating_sub(2) as usize) {
        lines.push(Line::from(format!(
            "{:>4}  {:>9.4}  {:>10.1}  {:>6.0}°  {:>5.1}%",
            p.index,
            p.theta,
            p.wavelength,
            p.angle_at_last,
            p.share * 100.0
        )));
    }
    lines.push(Line::styled("pairs by share of the head's |q||k|", t.dim()));
    Paragraph::new(lines).render(table, buf);

    let points = |ys: &[f32]| -> Vec<(f64, f64)> {
        ys.iter()
            .enumerate()
            .map(|(d, &y)| (d as f64, y as f64))
            .collect()
    };
    let (score, bound) = (points(&r.falloff.score), points(&r.falloff.bound));
    let (lo, hi) = score
        .iter()
        .chain(&bound)
        .fold((0f64, 0f64), |(lo, hi), &(_, y)| (lo.min(y), hi.max(y)));
    let max_d = (r.falloff.score.len().saturating_sub(1)) as f64;
    let datasets = vec![
        Dataset::default()
            .name("q·k/√d of this head")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(t.accent())
            .data(&score),
        Dataset::default()
            .name("content-free bound")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(t.dim())
            .data(&bound),
    ];
    let label = |x: f64| format!("{x:.1}");
    Chart::new(datasets)
        .x_axis(
            Axis::default()
                .title("distance (tokens)")
                .bounds([0.0, max_d.max(1.0)])
                .labels(["0".to_string(), format!("{max_d:.0}")])
                .style(Style::default()),
        )
        .y_axis(
            Axis::default()
                .bounds([lo, hi.max(lo + 1e-6)])
                .labels([label(lo), label(hi)]),
        )
        .render(chart, buf);
}

fn learned(c: &Chrome, r: &LearnedReport, area: Rect, buf: &mut Buffer) {
    let t = c.theme;
    let title = format!(
        " Positions · learned, {} positions of {} dims · cosine similarity ",
        r.positions, r.d_model
    );
    let inner = pane(t, Line::from(title), true, area, buf);
    let [chart, map] = Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)])
        .spacing(1)
        .areas(inner);
    let points: Vec<(f64, f64)> = r
        .by_distance
        .iter()
        .enumerate()
        .map(|(d, &y)| (d as f64, y as f64))
        .collect();
    let lo = points.iter().fold(0f64, |lo, &(_, y)| lo.min(y));
    let max_d = r.by_distance.len().saturating_sub(1) as f64;
    Chart::new(vec![
        Dataset::default()
            .name("mean similarity at distance")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(t.accent())
            .data(&points),
    ])
    .x_axis(
        Axis::default()
            .title("distance (positions)")
            .bounds([0.0, max_d.max(1.0)])
            .labels(["0".to_string(), format!("{max_d:.0}")]),
    )
    .y_axis(
        Axis::default()
            .bounds([lo, 1.0])
            .labels([format!("{lo:.2}"), "1".to_string()]),
    )
    .render(chart, buf);
    // Position i (down) against each earlier position j (across); the
    // heatmap draws weights, so dissimilar (negative) pairs show as 0.
    let n = r.positions;
    let rows = AttentionRows {
        n_layer: 1,
        n_head: 1,
        n_query: n,
        n_key: n,
        first_query: 0,
        data: r.similarity.iter().flatten().map(|&v| v.max(0.0)).collect(),
    };
    let [label, cells] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(map);
    Paragraph::new(Line::styled(
        "position × earlier position (similarity ≥ 0)",
        t.dim(),
    ))
    .render(label, buf);
    Heatmap {
        rows: &rows,
        head: 0,
        queries: 0..n,
        keys: 0..n,
        theme: *t,
        per_row: false,
        causal: true,
    }
    .render(cells, buf);
}
