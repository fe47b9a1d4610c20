//! The quick check (f8) and the bias pane (f9): both take the whole middle
//! of the screen. Text only, clipped line by line, so that any size draws.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::Chrome;
use super::{fit, notice, pane, visible};
use crate::analysis::bias::pairs::{PairResult, SentenceDetail};
use crate::analysis::bias::probe::ProbeResult;
use crate::analysis::bias::quick::SwapRow;
use crate::analysis::bias::task::QuickCheck;
use crate::ui::keymap::{Action, Context, Keymap};
use crate::ui::theme::Theme;
use crate::ui::views::bias::{
    self, BiasState, BiasView, Items, Report, Row, RunKind, items, probe_size, sorted_rows,
};

pub fn render(c: &Chrome, b: &BiasState, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    match b.view {
        BiasView::Quick => render_quick(c, b, area, buf),
        BiasView::Pane => render_pane(c, b, area, buf),
        BiasView::None => {}
    }
}

/// Writes `lines` into `area`, one per row, each clipped to the width.
fn put(lines: &[Line<'_>], area: Rect, buf: &mut Buffer) {
    for (i, line) in lines.iter().take(area.height as usize).enumerate() {
        buf.set_line(area.x, area.y + i as u16, line, area.width);
    }
}

fn num(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:.decimals$}")
    } else {
        "–".into()
    }
}

fn signed(x: f64, decimals: usize) -> String {
    if x.is_finite() {
        format!("{x:+.decimals$}")
    } else {
        "–".into()
    }
}

/// A probability from a log-probability, as a percentage.
fn pct(logp: f64) -> String {
    let p = logp.exp() * 100.0;
    if !p.is_finite() {
        "–".into()
    } else if p >= 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.2}%")
    }
}

/// The end of `text` that fits in `width` columns ("…" when cut).
fn tail(text: &str, width: usize) -> String {
    let v = visible(text);
    let chars: Vec<char> = v.chars().collect();
    if chars.len() <= width {
        return v;
    }
    if width == 0 {
        return String::new();
    }
    let start = chars.len() - (width - 1);
    std::iter::once('…')
        .chain(chars[start..].iter().copied())
        .collect()
}

/// `text` padded or cut to exactly `width` columns.
fn cell(text: &str, width: usize) -> String {
    let s = fit(text, width);
    let w = Span::raw(s.as_str()).width();
    format!("{s}{}", " ".repeat(width.saturating_sub(w)))
}

fn hint(keymap: &Keymap, action: Action, what: &str) -> String {
    let keys = keymap.keys_for(Context::Bias, action);
    if keys.is_empty() {
        String::new()
    } else {
        format!("{keys} {what}")
    }
}

fn hints(keymap: &Keymap, list: &[(Action, &str)]) -> String {
    let mut parts: Vec<String> = list
        .iter()
        .map(|(a, w)| hint(keymap, *a, w))
        .filter(|s| !s.is_empty())
        .collect();
    parts.push("esc close".into());
    parts.join(" · ")
}

// ---- the quick check -----------------------------------------------------

fn render_quick(c: &Chrome, b: &BiasState, area: Rect, buf: &mut Buffer) {
    let t = c.theme;
    let q = &b.quick;
    let title = match (&q.result, q.id) {
        (_, Some(_)) => " Quick check · running · Esc cancels ".to_string(),
        (Some(r), None) => format!(
            " Quick check · {} · {} replacement{} ",
            q.source,
            r.swap.replacements,
            if r.swap.replacements == 1 { "" } else { "s" }
        ),
        (None, None) => " Quick check ".to_string(),
    };
    let title = fit(&title, area.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), true, area, buf);
    if inner.is_empty() {
        return;
    }
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(if inner.height >= 8 { 2 } else { 0 }),
        Constraint::Fill(1),
        Constraint::Length(if inner.height >= 5 { 1 } else { 0 }),
    ])
    .areas(inner);
    // Swaps (or their editor) and the keys.
    let swaps = match &q.editing {
        Some(text) => Line::from(vec![
            Span::styled("swaps: ", t.accent()),
            Span::raw(format!("{text}▏")),
            Span::styled("  enter runs · esc cancels", t.dim()),
        ]),
        None => Line::from(vec![
            Span::styled("swaps: ", t.dim()),
            Span::raw(bias::swaps_label(q)),
        ]),
    };
    put(
        &[
            swaps,
            Line::styled(
                hints(
                    c.keymap,
                    &[
                        (Action::BiasRun, "run again"),
                        (Action::BiasSwaps, "edit swaps"),
                        (Action::BiasSave, "save"),
                        (Action::LineDown, "scroll"),
                    ],
                ),
                t.dim(),
            ),
        ],
        head,
        buf,
    );
    let Some(r) = &q.result else {
        let text = match (&q.error, q.id) {
            (_, Some(_)) => "checking both prompts on the engine thread…".to_string(),
            (Some(e), None) => e.clone(),
            (None, None) => {
                "f8 swaps he/she (and the like) in the prompt and compares the model's next token"
                    .to_string()
            }
        };
        if q.error.is_some() && q.id.is_none() {
            Paragraph::new(text)
                .style(t.error())
                .wrap(Wrap { trim: true })
                .render(body, buf);
        } else {
            notice(t, &text, body, buf);
        }
        return;
    };
    if let Some(e) = q.error.as_ref().filter(|_| q.id.is_none()) {
        put(&[Line::styled(e.clone(), t.error())], foot, buf);
    }
    quick_body(b, t, r, body, buf);
}

fn divergence_line(r: &QuickCheck) -> Line<'static> {
    let d = &r.swap.divergence;
    Line::from(format!(
        "JS {} · KL(A‖B) {} · KL(B‖A) {} nats · TV {} · top-{} overlap {}%",
        num(d.js, 4),
        num(d.kl_ab, 4),
        num(d.kl_ba, 4),
        num(d.tv, 4),
        d.top_k,
        num(d.top_k_overlap * 100.0, 0)
    ))
}

fn quick_body(b: &BiasState, t: &Theme, r: &QuickCheck, area: Rect, buf: &mut Buffer) {
    let s = &r.swap;
    let w = area.width as usize;
    let prompts = [
        Line::from(vec![
            Span::styled("A ", t.accent()),
            Span::raw(tail(&s.prompt_a, w.saturating_sub(2))),
        ]),
        Line::from(vec![
            Span::styled("B ", t.accent()),
            Span::raw(tail(&s.prompt_b, w.saturating_sub(2))),
        ]),
        divergence_line(r),
    ];
    let k = s.top_a.len().max(s.top_b.len()) as u16;
    let [p_area, lists, rest] = Layout::vertical([
        Constraint::Length(if area.height >= 6 { 4 } else { 0 }),
        Constraint::Length(k + 1),
        Constraint::Fill(1),
    ])
    .areas(area);
    put(&prompts, p_area, buf);
    let [la, lb] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(lists);
    put(&top_lines(t, "after A", &s.top_a, true, la.width), la, buf);
    put(&top_lines(t, "after B", &s.top_b, false, lb.width), lb, buf);
    let [ma, aa] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(rest);
    let mut moved = vec![
        Line::raw(""),
        Line::styled("moved most (p A → B)", t.title(false)),
    ];
    moved.extend(moved_lines(r, 8).into_iter().map(Line::from));
    put(&moved, ma, buf);
    let mut al = vec![
        Line::raw(""),
        Line::styled(
            format!(
                "aligned tokens, largest |Δ log p| ({} shared)",
                r.aligned.len()
            ),
            t.title(false),
        ),
    ];
    al.extend(
        aligned_lines(r, b.quick.scroll, aa.height as usize)
            .into_iter()
            .map(Line::from),
    );
    put(&al, aa, buf);
}

/// A top-k list: token, p under A, p under B, Δ log p (B − A).
fn top_lines(
    t: &Theme,
    title: &str,
    rows: &[SwapRow],
    a_side: bool,
    width: u16,
) -> Vec<Line<'static>> {
    let tw = (width as usize).saturating_sub(27).clamp(4, 16);
    let mut out = vec![Line::styled(
        format!(
            "{} {:>7} {:>7} {:>7}",
            cell(&format!("token {title}"), tw),
            "p A",
            "p B",
            "Δlogp"
        ),
        t.title(false),
    )];
    for r in rows {
        let own = if a_side { r.logprob_a } else { r.logprob_b };
        out.push(Line::from(vec![
            Span::styled(cell(&visible(&r.text), tw), t.prob(own.exp() as f32)),
            Span::raw(format!(
                " {:>7} {:>7} {:>7}",
                pct(r.logprob_a),
                pct(r.logprob_b),
                signed(r.delta, 2)
            )),
        ]));
    }
    out
}

/// The tokens of both lists whose probability changed most.
pub fn moved_lines(r: &QuickCheck, n: usize) -> Vec<String> {
    let mut all: Vec<&SwapRow> = Vec::new();
    for row in r.swap.top_a.iter().chain(&r.swap.top_b) {
        if !all.iter().any(|x| x.token_id == row.token_id) {
            all.push(row);
        }
    }
    let change = |x: &SwapRow| x.logprob_b.exp() - x.logprob_a.exp();
    all.sort_by(|a, b| {
        change(b)
            .abs()
            .total_cmp(&change(a).abs())
            .then(a.token_id.cmp(&b.token_id))
    });
    all.into_iter()
        .take(n)
        .map(|x| {
            format!(
                "{} {:>7} → {:<7} {:>+6.1} pp",
                cell(&visible(&x.text), 12),
                pct(x.logprob_a),
                pct(x.logprob_b),
                change(x) * 100.0
            )
        })
        .collect()
}

/// Aligned tokens by |Δ log p|, from `scroll`.
pub fn aligned_lines(r: &QuickCheck, scroll: usize, n: usize) -> Vec<String> {
    let mut v: Vec<_> = r.aligned.iter().collect();
    v.sort_by(|a, b| {
        b.delta()
            .abs()
            .total_cmp(&a.delta().abs())
            .then(a.pos_a.cmp(&b.pos_a))
    });
    v.into_iter()
        .skip(scroll)
        .take(n)
        .map(|a| {
            format!(
                "#{:<4} {} {:>7} {:>7} {:>7}",
                a.pos_a,
                cell(&visible(&a.text), 12),
                num(a.logprob_a, 2),
                num(a.logprob_b, 2),
                signed(a.delta(), 2)
            )
        })
        .collect()
}

// ---- the bias pane ---------------------------------------------------------

fn render_pane(c: &Chrome, b: &BiasState, area: Rect, buf: &mut Buffer) {
    let t = c.theme;
    let p = &b.pane;
    let title = match &p.report {
        Some(r) => format!(" Bias · {} · sorted by {} ", r.label(), p.sort.label()),
        None => " Bias ".to_string(),
    };
    let title = fit(&title, area.width.saturating_sub(2) as usize);
    let inner = pane(t, Line::from(title), true, area, buf);
    if inner.is_empty() {
        return;
    }
    let [status, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(if inner.height >= 6 { 1 } else { 0 }),
    ])
    .areas(inner);
    put(&[status_line(b, t, inner.width)], status, buf);
    put(
        &[Line::styled(
            hints(
                c.keymap,
                &[
                    (Action::BiasRun, "suite"),
                    (Action::BiasPairs, "pairs"),
                    (Action::BiasOpen, "file"),
                    (Action::BiasSort, "sort"),
                    (Action::BiasDetail, "detail"),
                    (Action::BiasSave, "save JSON"),
                ],
            ),
            t.dim(),
        )],
        foot,
        buf,
    );
    let Some(report) = &p.report else {
        let text = if p.id.is_some() {
            "running on the engine thread…"
        } else {
            "r runs the built-in probe suite (assets/bias/default.toml); p scores the example minimal pairs"
        };
        return notice(t, text, body, buf);
    };
    if p.detail {
        render_detail(b, t, report, body, buf);
    } else {
        render_table(b, t, report, body, buf);
    }
}

fn status_line(b: &BiasState, t: &Theme, width: u16) -> Line<'static> {
    let p = &b.pane;
    if let Some(text) = &p.editing {
        return Line::from(vec![
            Span::styled("suite (name or .toml) or pairs (.csv): ", t.accent()),
            Span::raw(format!("{text}▏")),
            Span::styled("  enter runs · esc cancels", t.dim()),
        ]);
    }
    if p.id.is_some() {
        let (done, total) = p.progress;
        let what = match p.running {
            Some(RunKind::Pairs) => "pairs",
            _ => "probes",
        };
        let frac = if total == 0 {
            0.0
        } else {
            done as f64 / total as f64
        };
        let cells = (width as usize).saturating_sub(40).min(30);
        let filled = ((frac * cells as f64).round() as usize).min(cells);
        return Line::from(vec![
            Span::styled(format!("running: {done}/{total} {what} "), t.accent()),
            Span::raw(format!(
                "▕{}{}▏ {:.0}% · Esc cancels",
                "█".repeat(filled),
                "░".repeat(cells - filled),
                frac * 100.0
            )),
        ]);
    }
    if let Some(e) = &p.error {
        return Line::styled(format!("error: {e}"), t.error());
    }
    match &p.report {
        Some(r) => {
            let mut s = if r.partial() {
                "partial results (cancelled)".to_string()
            } else {
                "finished".to_string()
            };
            if let Some(path) = &p.saved {
                s.push_str(&format!(" · saved {}", path.display()));
            }
            let style = if r.partial() { t.warn() } else { t.ok() };
            Line::styled(s, style)
        }
        None => Line::styled("no results yet", t.dim()),
    }
}

/// An interval as a text bar: `─` from lo to hi, `●` at the estimate,
/// `┆` at "no difference", over [min, max].
pub fn interval_bar(row: &Row, min: f64, max: f64, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let mut cells = vec![' '; width];
    let span = max - min;
    let col = |x: f64| -> Option<usize> {
        if !x.is_finite() || span <= 0.0 {
            return None;
        }
        let f = ((x - min) / span).clamp(0.0, 1.0);
        Some(((f * (width - 1) as f64).round() as usize).min(width - 1))
    };
    if let (Some(a), Some(b)) = (col(row.lo), col(row.hi)) {
        for c in &mut cells[a.min(b)..=a.max(b)] {
            *c = '─';
        }
    }
    if let Some(z) = col(row.null) {
        cells[z] = '┆';
    }
    if let Some(m) = col(row.effect) {
        cells[m] = '●';
    }
    cells.into_iter().collect()
}

/// The bar's range: symmetric around 0 for differences, 0..1 for shares.
fn bar_range(report: &Report, rows: &[Row]) -> (f64, f64) {
    match report {
        Report::Pairs(_) => (0.0, 1.0),
        Report::Probes(_) => {
            let m = rows
                .iter()
                .flat_map(|r| [r.lo.abs(), r.hi.abs(), r.effect.abs()])
                .filter(|x| x.is_finite())
                .fold(0.0f64, f64::max);
            let m = if m > 0.0 { m } else { 1.0 };
            (-m, m)
        }
    }
}

fn render_table(b: &BiasState, t: &Theme, report: &Report, area: Rect, buf: &mut Buffer) {
    let rows = sorted_rows(report, b.pane.sort);
    let (legend, effect_name, extra_name) = match report {
        Report::Probes(_) => (
            "Δ: attribute log-prob, term A − term B (nats), mean, bootstrap 95% CI · *: CI excludes 0 (uncorrected)",
            "Δ",
            "JS",
        ),
        Report::Pairs(r) => (
            if r.note.is_some() {
                "pct_stereotype, Wilson 95% CI · * Holm-adjusted p < 0.05 · (small): n < 30 · example data, not comparable to published scores"
            } else {
                "pct_stereotype, Wilson 95% CI · * Holm-adjusted p < 0.05 · (small): n < 30"
            },
            "pct",
            "LLdiff",
        ),
    };
    let w = area.width as usize;
    let name_w = 20usize.min(w / 4).max(4);
    let fixed = name_w + 2 + 5 + 25 + 8 + 10 + 10;
    let bar_w = w.saturating_sub(fixed).min(40);
    let (min, max) = bar_range(report, &rows);
    let pairs = matches!(report, Report::Pairs(_));
    let header = format!(
        "  {} {:>4} {:>24} {} {:>7} {:>9}",
        cell("category", name_w),
        "n",
        format!("{effect_name} [95% CI]"),
        cell("", bar_w),
        extra_name,
        if pairs { "p_holm" } else { "" }
    );
    let [legend_area, head_area, table] = Layout::vertical([
        Constraint::Length(if area.height >= 6 { 1 } else { 0 }),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(area);
    Paragraph::new(legend)
        .style(t.dim())
        .render(legend_area, buf);
    put(&[Line::styled(header, t.title(false))], head_area, buf);
    let h = table.height as usize;
    let sel = b.pane.selected.min(rows.len().saturating_sub(1));
    let top = if h == 0 { 0 } else { sel.saturating_sub(h - 1) };
    let lines: Vec<Line> = rows
        .iter()
        .enumerate()
        .skip(top)
        .take(h)
        .map(|(i, r)| {
            let (e, lo, hi) = if pairs {
                (
                    format!("{}%", num(r.effect * 100.0, 1)),
                    num(r.lo * 100.0, 1),
                    num(r.hi * 100.0, 1),
                )
            } else {
                (signed(r.effect, 3), signed(r.lo, 3), signed(r.hi, 3))
            };
            let mark = match (r.significant, r.too_small) {
                (true, true) => "* (small)",
                (true, false) => "*",
                (false, true) => "(small)",
                (false, false) => "",
            };
            let interval = if r.effect.is_finite() {
                format!("{e} [{lo}, {hi}]")
            } else {
                "–".to_string()
            };
            let p = match r.p {
                Some(p) => num(p, 4),
                None if pairs => "–".to_string(),
                None => String::new(),
            };
            let text = format!(
                "{} {} {:>4} {:>24} {} {:>7} {:>9} {}",
                if i == sel { "▶" } else { " " },
                cell(&r.name, name_w),
                r.n,
                interval,
                interval_bar(r, min, max, bar_w),
                num(r.extra, 3),
                p,
                mark
            );
            let style = if i == sel {
                t.selected()
            } else if r.significant {
                t.warn()
            } else {
                Style::new()
            };
            Line::styled(text, style)
        })
        .collect();
    put(&lines, table, buf);
}

fn render_detail(b: &BiasState, t: &Theme, report: &Report, area: Rect, buf: &mut Buffer) {
    let Some(cat) = b.selected_category() else {
        return notice(t, "no category selected", area, buf);
    };
    let items = items(report, &cat);
    if items.is_empty() {
        return notice(t, "no items in this category", area, buf);
    }
    let sel = b.pane.item.min(items.len() - 1);
    let list_h = (area.height / 3).max(2).min(items.len() as u16 + 1);
    let [list, detail] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Fill(1)]).areas(area);
    let h = (list.height as usize).saturating_sub(1);
    let top = if h == 0 { 0 } else { sel.saturating_sub(h - 1) };
    let mut lines = vec![Line::styled(
        format!(
            "{cat}: {} items, largest difference first (j/k moves, q back)",
            items.len()
        ),
        t.title(false),
    )];
    let w = list.width as usize;
    match &items {
        Items::Probes(v) => {
            for (i, p) in v.iter().enumerate().skip(top).take(h) {
                let text = format!(
                    "{} {} {} vs {}  JS {}  |Δ| {}",
                    if i == sel { "▶" } else { " " },
                    cell(&p.frame, 18),
                    p.term_a,
                    p.term_b,
                    num(p.divergence.js, 4),
                    num(probe_size(p), 3)
                );
                let style = if i == sel { t.selected() } else { Style::new() };
                lines.push(Line::styled(fit(&text, w), style));
            }
        }
        Items::Pairs(v) => {
            for (i, p) in v.iter().enumerate().skip(top).take(h) {
                let text = format!(
                    "{} line {:<4} Δ {:>7}  {}  {}",
                    if i == sel { "▶" } else { " " },
                    p.line,
                    signed(p.diff, 2),
                    if p.stereotype {
                        "prefers more"
                    } else {
                        "prefers less"
                    },
                    visible(&p.sent_more)
                );
                let style = if i == sel { t.selected() } else { Style::new() };
                lines.push(Line::styled(fit(&text, w), style));
            }
        }
    }
    put(&lines, list, buf);
    match &items {
        Items::Probes(v) => probe_detail(t, v[sel], detail, buf),
        Items::Pairs(v) => pair_detail(t, v[sel], detail, buf),
    }
}

fn probe_detail(t: &Theme, p: &ProbeResult, area: Rect, buf: &mut Buffer) {
    let w = area.width as usize;
    let head = vec![
        Line::raw(""),
        Line::from(vec![
            Span::styled("A ", t.accent()),
            Span::raw(fit(&p.prompt_a, w.saturating_sub(2))),
        ]),
        Line::from(vec![
            Span::styled("B ", t.accent()),
            Span::raw(fit(&p.prompt_b, w.saturating_sub(2))),
        ]),
        Line::from(format!(
            "JS {} · KL(A‖B) {} · KL(B‖A) {} · TV {} · top-{} overlap {}%",
            num(p.divergence.js, 4),
            num(p.divergence.kl_ab, 4),
            num(p.divergence.kl_ba, 4),
            num(p.divergence.tv, 4),
            p.divergence.top_k,
            num(p.divergence.top_k_overlap * 100.0, 0)
        )),
    ];
    let [h, body] = Layout::vertical([Constraint::Length(4), Constraint::Fill(1)]).areas(area);
    put(&head, h, buf);
    let [la, lb, attrs] = Layout::horizontal([
        Constraint::Percentage(27),
        Constraint::Percentage(27),
        Constraint::Percentage(46),
    ])
    .areas(body);
    for (side, list, a) in [("A", &p.top_a, la), ("B", &p.top_b, lb)] {
        let tw = (a.width as usize).saturating_sub(9).clamp(3, 14);
        let mut lines = vec![Line::styled(
            format!("{} {:>7}", cell(&format!("next after {side}"), tw), "p"),
            t.title(false),
        )];
        for x in list.iter() {
            lines.push(Line::from(vec![
                Span::styled(cell(&visible(&x.text), tw), t.prob(x.logprob.exp() as f32)),
                Span::raw(format!(" {:>7}", pct(x.logprob))),
            ]));
        }
        put(&lines, a, buf);
    }
    let aw = (attrs.width as usize).saturating_sub(27).clamp(4, 18);
    let mut lines = vec![Line::styled(
        format!(
            "{} {:>8} {:>8} {:>8}",
            cell("attribute", aw),
            "logp A",
            "logp B",
            "A − B"
        ),
        t.title(false),
    )];
    if p.attributes.is_empty() {
        lines.push(Line::styled("(this frame scores no attributes)", t.dim()));
    }
    for a in &p.attributes {
        lines.push(Line::raw(format!(
            "{} {:>8} {:>8} {:>8}",
            cell(&visible(&a.attribute), aw),
            num(a.logprob_a, 2),
            num(a.logprob_b, 2),
            signed(a.diff, 2)
        )));
    }
    put(&lines, attrs, buf);
}

fn sentence_line(
    t: &Theme,
    label: &str,
    score: f64,
    d: Option<&SentenceDetail>,
    text: &str,
) -> Line<'static> {
    let mut spans = vec![Span::styled(
        format!("{label} ({}) ", num(score, 2)),
        t.accent(),
    )];
    match d {
        Some(d) => {
            for (tok, lp) in d.texts.iter().zip(&d.logprobs) {
                spans.push(Span::styled(visible(tok), t.prob(lp.exp())));
            }
        }
        None => spans.push(Span::raw(text.to_string())),
    }
    Line::from(spans)
}

fn pair_detail(t: &Theme, p: &PairResult, area: Rect, buf: &mut Buffer) {
    let more = p.detail.as_ref().map(|d| &d.more);
    let less = p.detail.as_ref().map(|d| &d.less);
    let mut lines = vec![
        Line::raw(""),
        Line::from(format!(
            "line {} · {} · {} · score more − less {}",
            p.line,
            p.bias_type,
            p.stereo_antistereo,
            signed(p.diff, 3)
        )),
        sentence_line(t, "more", p.score_more, more, &p.sent_more),
        sentence_line(t, "less", p.score_less, less, &p.sent_less),
        Line::styled(
            "tokens coloured by their log-probability (red unlikely, green likely)",
            t.dim(),
        ),
    ];
    if let Some(d) = &p.detail {
        lines.push(Line::raw(""));
        for (label, s) in [("more", &d.more), ("less", &d.less)] {
            let per: Vec<String> = s
                .texts
                .iter()
                .zip(&s.logprobs)
                .map(|(x, lp)| format!("{}:{}", visible(x), num(*lp as f64, 2)))
                .collect();
            lines.push(Line::raw(format!("{label}: {}", per.join(" "))));
        }
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(area, buf);
}
