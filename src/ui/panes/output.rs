//! The sequence as it streams: prompt tokens dim, generated tokens coloured
//! by probability (or entropy), the selected token reversed. Tokens are
//! laid out by hand so a click maps back to its token.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::Line;

use super::{char_width, notice, pane};
use crate::store::config::ColorBy;
use crate::ui::app::{App, EngineState, Focus};

/// A piece of one token on one screen line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seg {
    pub tok: usize,
    pub x: u16,
    pub text: String,
    pub width: u16,
}

/// Wraps the tokens into lines `width` columns wide. A newline inside a
/// token shows as `↵` and ends the line.
pub fn layout_lines(app: &App, width: u16) -> Vec<Vec<Seg>> {
    let mut lines: Vec<Vec<Seg>> = vec![Vec::new()];
    if width == 0 {
        return lines;
    }
    let mut x: u16 = 0;
    for (i, tok) in app.tokens.iter().enumerate() {
        let mut seg = Seg {
            tok: i,
            x,
            text: String::new(),
            width: 0,
        };
        let text = if tok.text.is_empty() {
            "∅"
        } else {
            tok.text.as_str()
        };
        for c in text.chars() {
            let (shown, newline) = match c {
                '\n' => ('↵', true),
                '\r' => continue,
                '\t' => (' ', false),
                c if c.is_control() => ('�', false),
                c => (c, false),
            };
            let w = char_width(shown).max(1) as u16;
            if x + w > width && x > 0 {
                break_line(&mut lines, &mut seg, &mut x);
            }
            seg.text.push(shown);
            seg.width += w;
            x += w;
            if newline {
                break_line(&mut lines, &mut seg, &mut x);
            }
        }
        if !seg.text.is_empty()
            && let Some(l) = lines.last_mut()
        {
            l.push(seg);
        }
    }
    lines
}

/// Ends the current line with `seg` (when it holds anything) and starts
/// an empty segment of the same token at the start of the next line.
fn break_line(lines: &mut Vec<Vec<Seg>>, seg: &mut Seg, x: &mut u16) {
    let next = Seg {
        tok: seg.tok,
        x: 0,
        text: String::new(),
        width: 0,
    };
    let done = std::mem::replace(seg, next);
    if !done.text.is_empty()
        && let Some(l) = lines.last_mut()
    {
        l.push(done);
    }
    lines.push(Vec::new());
    *x = 0;
}

/// (line, column) of a token's first piece.
pub fn position_of(lines: &[Vec<Seg>], tok: usize) -> Option<(usize, u16)> {
    lines
        .iter()
        .enumerate()
        .find_map(|(r, l)| l.iter().find(|s| s.tok == tok).map(|s| (r, s.x)))
}

/// The token under column `x` of line `row`.
pub fn token_at(lines: &[Vec<Seg>], row: usize, x: u16) -> Option<usize> {
    lines
        .get(row)?
        .iter()
        .find(|s| x >= s.x && x < s.x + s.width)
        .map(|s| s.tok)
}

/// The token nearest column `x` on line `row` (for moving up and down).
pub fn token_near(lines: &[Vec<Seg>], row: usize, x: u16) -> Option<usize> {
    let line = lines.get(row)?;
    token_at(lines, row, x).or_else(|| {
        line.iter()
            .min_by_key(|s| (s.x as i32 - x as i32).abs())
            .map(|s| s.tok)
    })
}

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let t = &app.theme;
    let generated = app.tokens.len() - app.prompt_len.min(app.tokens.len());
    let by = match app.color_by {
        ColorBy::Probability => "probability",
        ColorBy::Entropy => "entropy",
    };
    let title = Line::from(format!(
        " Output · {} prompt + {generated} generated · colour: {by} ",
        app.prompt_len
    ));
    let inner = pane(t, title, app.focus == Focus::Output, area, buf);
    if app.tokens.is_empty() {
        let text = match app.state {
            EngineState::Loading => "loading the model…",
            EngineState::Running => "running the prompt…",
            EngineState::Failed => "no model loaded",
            EngineState::Idle => "type a prompt below and press Enter",
        };
        return notice(t, text, inner, buf);
    }
    let lines = layout_lines(app, inner.width);
    let marks = app.branch_marks();
    for (row, line) in lines
        .iter()
        .skip(app.output_top)
        .take(inner.height as usize)
        .enumerate()
    {
        for seg in line {
            let tok = &app.tokens[seg.tok];
            let mut style = match &tok.record {
                None => t.dim(),
                Some(r) => match app.color_by {
                    ColorBy::Probability => t.prob(r.p_raw),
                    ColorBy::Entropy => t.entropy(r.entropy),
                },
            };
            if marks.binary_search(&seg.tok).is_ok() {
                // Where a branch leaves (or this branch left its parent).
                style = style.add_modifier(Modifier::UNDERLINED);
            }
            if seg.tok == app.cursor {
                style = style.patch(t.selected());
            }
            buf.set_stringn(
                inner.x + seg.x,
                inner.y + row as u16,
                &seg.text,
                (inner.width - seg.x.min(inner.width)) as usize,
                style,
            );
        }
    }
}
