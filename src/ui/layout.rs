//! Where each pane goes, as pure functions of plain facts about the screen
//! and the terminal area: rendering and mouse hit-testing use the same
//! answer.

use std::ops::Range;

use ratatui::layout::{Constraint, Layout, Margin, Rect};

/// What the layout depends on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Screen {
    /// Help or the settings are open over the middle.
    pub overlay: bool,
    pub bias: bool,
    pub compare: bool,
    pub attention_view: bool,
    /// Lines in the prompt editor.
    pub prompt_lines: usize,
    /// Alternatives shown per token.
    pub top_n: usize,
}

/// Below this the interface shows only a "too small" notice.
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 12;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Areas {
    pub too_small: bool,
    pub status: Rect,
    pub output: Rect,
    pub prompt: Rect,
    pub probs: Rect,
    pub attention: Rect,
    pub message: Rect,
    /// The compare view (the whole middle while it is open).
    pub compare: Rect,
    /// The quick check or the bias pane (the whole middle while open).
    pub bias: Rect,
    /// Over the middle, for help and settings.
    pub popup: Rect,
}

/// The inside of a bordered pane.
pub fn inner(r: Rect) -> Rect {
    r.inner(Margin::new(1, 1))
}

pub fn areas(s: &Screen, area: Rect) -> Areas {
    let mut a = Areas::default();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        a.too_small = true;
        return a;
    }
    let [status, middle, message] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    a.status = status;
    a.message = message;
    if s.overlay {
        let w = middle.width.min(100);
        let h = middle.height.min(34);
        a.popup = Rect::new(
            middle.x + (middle.width - w) / 2,
            middle.y + (middle.height - h) / 2,
            w,
            h,
        );
    }
    if s.bias {
        a.bias = middle;
        return a;
    }
    if s.compare {
        a.compare = middle;
        return a;
    }
    if s.attention_view {
        a.attention = middle;
        return a;
    }
    let prompt_h = (s.prompt_lines as u16 + 2)
        .clamp(3, 8)
        .min(middle.height / 3)
        .max(3);
    if middle.width >= 100 {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)])
                .areas(middle);
        let [output, prompt] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(prompt_h)]).areas(left);
        a.output = output;
        a.prompt = prompt;
        if right.height >= 20 {
            let probs_h = (s.top_n as u16 + 5).clamp(8, right.height / 2);
            let [probs, attention] =
                Layout::vertical([Constraint::Length(probs_h), Constraint::Fill(1)]).areas(right);
            a.probs = probs;
            a.attention = attention;
        } else {
            a.probs = right;
        }
    } else {
        let probs_h = if middle.height >= 18 {
            (middle.height / 3).min(s.top_n as u16 + 5)
        } else {
            0
        };
        let [output, probs, prompt] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(probs_h),
            Constraint::Length(prompt_h),
        ])
        .areas(middle);
        a.output = output;
        a.probs = probs;
        a.prompt = prompt;
    }
    a
}

/// Where the single-head heatmap's cells are for a pane at `area` (the
/// same split as the render functions), for mouse hit-testing.
pub fn heatmap_cells(area: Rect, overview: bool, full_view: bool) -> Option<Rect> {
    if area.is_empty() || overview {
        return None;
    }
    let inner = inner(area);
    let map = if full_view && inner.width >= 76 {
        let [map, _] = Layout::horizontal([Constraint::Fill(1), Constraint::Length(34)])
            .spacing(1)
            .areas::<2>(inner);
        map
    } else {
        inner
    };
    let [_, cells] = Layout::horizontal([Constraint::Length(1), Constraint::Fill(1)]).areas(map);
    (!cells.is_empty()).then_some(cells)
}

/// The query row shown at screen row `y` of the heatmap's cells.
pub fn query_at(queries: Range<usize>, rows_per_cell: usize, cells: Rect, y: u16) -> Option<usize> {
    if queries.is_empty() || y < cells.y || y >= cells.bottom() {
        return None;
    }
    let per_cell = rows_per_cell;
    let ph = cells.height as usize * per_cell;
    let py = (y - cells.y) as usize * per_cell;
    Some(queries.start + py * queries.len() / ph)
}
