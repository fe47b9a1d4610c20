//! Where each pane goes, as a pure function of the state and the terminal
//! area: rendering and mouse hit-testing use the same answer.

use ratatui::layout::{Constraint, Layout, Margin, Rect};

use super::app::{App, Overlay};

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

pub fn areas(app: &App, area: Rect) -> Areas {
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
    if app.overlay != Overlay::None {
        let w = middle.width.min(100);
        let h = middle.height.min(34);
        a.popup = Rect::new(
            middle.x + (middle.width - w) / 2,
            middle.y + (middle.height - h) / 2,
            w,
            h,
        );
    }
    if app.bias.is_open() {
        a.bias = middle;
        return a;
    }
    if app.compare_view {
        a.compare = middle;
        return a;
    }
    if app.attention_view {
        a.attention = middle;
        return a;
    }
    let prompt_h = (app.editor.lines().len() as u16 + 2)
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
            let probs_h = (app.config.generation.top_n as u16 + 5).clamp(8, right.height / 2);
            let [probs, attention] =
                Layout::vertical([Constraint::Length(probs_h), Constraint::Fill(1)]).areas(right);
            a.probs = probs;
            a.attention = attention;
        } else {
            a.probs = right;
        }
    } else {
        let probs_h = if middle.height >= 18 {
            (middle.height / 3).min(app.config.generation.top_n as u16 + 5)
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
