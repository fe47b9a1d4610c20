//! Text as the interface lays it out: display widths, tokens made visible,
//! and the output's tokens wrapped into lines (pure functions, shared by
//! drawing and by hit-testing).

pub fn char_width(c: char) -> usize {
    let mut b = [0u8; 4];
    ratatui::text::Span::raw(&*c.encode_utf8(&mut b)).width()
}

/// A token's text made visible: whitespace and control characters shown.
pub fn visible(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            '\n' => '↵',
            '\t' => '→',
            ' ' => '·',
            c if c.is_control() => '�',
            c => c,
        })
        .collect()
}

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
pub fn layout_lines<'a>(tokens: impl IntoIterator<Item = &'a str>, width: u16) -> Vec<Vec<Seg>> {
    let mut lines: Vec<Vec<Seg>> = vec![Vec::new()];
    if width == 0 {
        return lines;
    }
    let mut x: u16 = 0;
    for (i, text) in tokens.into_iter().enumerate() {
        let mut seg = Seg {
            tok: i,
            x,
            text: String::new(),
            width: 0,
        };
        let text = if text.is_empty() { "∅" } else { text };
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
