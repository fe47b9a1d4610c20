//! A query x key attention heatmap in half-block cells: each terminal cell
//! shows two rows (top in the foreground of `▀`, bottom in the background),
//! so a 60-row pane shows 120 query rows. Without colour, one row per cell
//! in shading characters.
//!
//! Long sequences are pooled: each cell shows the largest weight of the
//! block of (query, key) pairs it covers, so a sharp weight never vanishes
//! when zoomed out. Values are scaled by the largest visible weight, with a
//! square root so small weights stay visible.

use std::ops::Range;

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

use crate::engine::types::AttentionRows;
use crate::ui::theme::Theme;

/// At most this many query rows are read per pooled block (keys are always
/// read in full): bounds the cost of drawing a zoomed-out long sequence.
const MAX_QUERY_SAMPLES: usize = 4;

pub struct Heatmap<'a> {
    /// One layer (`n_layer == 1`); `head` may index past `n_head` when the
    /// caller appended a mean over heads.
    pub rows: &'a AttentionRows,
    pub head: usize,
    /// Absolute query positions shown top to bottom.
    pub queries: Range<usize>,
    /// Absolute key positions shown left to right.
    pub keys: Range<usize>,
    pub theme: Theme,
    /// Scale each row by its own largest weight (else by the largest
    /// visible weight): shows where late queries look, which the early
    /// rows' large weights would otherwise drown.
    pub per_row: bool,
    /// A decoder's rows stop at the diagonal; an encoder's see every key.
    pub causal: bool,
}

impl Heatmap<'_> {
    /// Weight of (query, key); 0 outside the data, above the diagonal, or
    /// when not a number.
    #[inline]
    fn value(&self, q: usize, k: usize) -> f32 {
        let r = self.rows;
        if q < r.first_query
            || q >= r.first_query + r.n_query
            || k >= r.n_key
            || (self.causal && k > q)
        {
            return 0.0;
        }
        let heads = r.data.len() / (r.n_query * r.n_key).max(1);
        if self.head >= heads {
            return 0.0;
        }
        let v = r.data[(self.head * r.n_query + (q - r.first_query)) * r.n_key + k];
        if v.is_finite() { v } else { 0.0 }
    }

    /// Largest value of the block `qs` x `ks` (query rows subsampled).
    fn pooled(&self, qs: Range<usize>, ks: Range<usize>) -> f32 {
        let step = qs.len().div_ceil(MAX_QUERY_SAMPLES).max(1);
        let r = self.rows;
        let heads = r.data.len() / (r.n_query * r.n_key).max(1);
        let mut best = 0.0f32;
        for q in qs.step_by(step) {
            if q < r.first_query || q >= r.first_query + r.n_query || self.head >= heads {
                continue;
            }
            let row = (self.head * r.n_query + (q - r.first_query)) * r.n_key;
            let end = if self.causal {
                ks.end.min(r.n_key).min(q + 1)
            } else {
                ks.end.min(r.n_key)
            };
            if ks.start >= end {
                continue;
            }
            for &v in &r.data[row + ks.start..row + end] {
                if v > best {
                    best = v; // NaN compares false and is skipped.
                }
            }
        }
        best
    }

    /// The block of positions pixel `i` of `n` covers in `range`.
    fn block(range: &Range<usize>, i: usize, n: usize) -> Range<usize> {
        let len = range.len();
        let a = range.start + i * len / n;
        let b = range.start + ((i + 1) * len / n).max(i * len / n + 1);
        a..b.min(range.end.max(a + 1))
    }

    pub fn render(&self, area: Rect, buf: &mut Buffer) {
        let area = area.intersection(buf.area);
        if area.is_empty() || self.queries.is_empty() || self.keys.is_empty() {
            return;
        }
        let half = self.theme.color;
        let pw = area.width as usize;
        let ph = area.height as usize * if half { 2 } else { 1 };
        let mut pixels = vec![0.0f32; pw * ph];
        let mut max = 0.0f32;
        for py in 0..ph {
            let qs = Self::block(&self.queries, py, ph);
            for px in 0..pw {
                let ks = Self::block(&self.keys, px, pw);
                let v = if qs.len() == 1 && ks.len() == 1 {
                    self.value(qs.start, ks.start)
                } else {
                    self.pooled(qs.clone(), ks)
                };
                pixels[py * pw + px] = v;
                max = max.max(v);
            }
        }
        let inverse = |m: f32| {
            if m.is_finite() && m > 0.0 {
                1.0 / m
            } else {
                0.0
            }
        };
        let scales: Vec<f32> = if self.per_row {
            pixels
                .chunks(pw)
                .map(|row| inverse(row.iter().fold(0.0f32, |a, &b| a.max(b))))
                .collect()
        } else {
            vec![inverse(max); ph]
        };
        for cy in 0..area.height as usize {
            for px in 0..pw {
                let Some(cell) = buf.cell_mut((area.x + px as u16, area.y + cy as u16)) else {
                    continue;
                };
                if half {
                    let top = (pixels[(2 * cy) * pw + px] * scales[2 * cy]).sqrt();
                    let bottom = (pixels[(2 * cy + 1) * pw + px] * scales[2 * cy + 1]).sqrt();
                    cell.set_char('▀')
                        .set_fg(self.theme.heat(top))
                        .set_bg(self.theme.heat(bottom));
                } else {
                    cell.set_char(Theme::shade((pixels[cy * pw + px] * scales[cy]).sqrt()))
                        .set_fg(Color::Reset)
                        .set_bg(Color::Reset);
                }
            }
        }
    }

    /// The cell row (0-based, within the area) that shows query `q`.
    pub fn row_of(&self, q: usize, height: u16) -> Option<u16> {
        if !self.queries.contains(&q) || height == 0 {
            return None;
        }
        let ph = height as usize * if self.theme.color { 2 } else { 1 };
        let py = (q - self.queries.start) * ph / self.queries.len();
        Some((py / if self.theme.color { 2 } else { 1 }) as u16)
    }
}

/// Appends the mean over heads as one more head (index `n_head`).
pub fn with_mean(mut rows: AttentionRows) -> AttentionRows {
    let per_head = rows.n_query * rows.n_key;
    if rows.n_head == 0 || per_head == 0 || rows.data.len() < rows.n_head * per_head {
        return rows;
    }
    let mut mean = vec![0.0f32; per_head];
    for h in 0..rows.n_head {
        for (m, &v) in mean
            .iter_mut()
            .zip(&rows.data[h * per_head..(h + 1) * per_head])
        {
            *m += if v.is_finite() { v } else { 0.0 };
        }
    }
    let n = rows.n_head as f32;
    rows.data.extend(mean.into_iter().map(|m| m / n));
    rows
}
