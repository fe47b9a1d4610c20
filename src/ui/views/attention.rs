//! The attention view's state: layer, head, zoom and pan, and the rows the
//! engine sent; which rows to ask for, and when. The query is the output
//! view's ([`super::output::OutputView::query`]); `len` below is the number
//! of positions the model has read.

use std::ops::Range;
use std::time::{Duration, Instant};

use ratatui::layout::Rect;

use crate::engine::handle::{EngineCommand, LayerAttention};
use crate::ui::keymap::Action;
use crate::ui::layout;
use crate::ui::widgets::heatmap::with_mean;

/// Attention rows asked for at once, at most (a window around the query).
pub const MAX_ATTENTION_ROWS: usize = 1024;
/// While the model streams, attention is refreshed at most this often.
pub const ATTENTION_REFRESH: Duration = Duration::from_millis(250);
/// A request not answered in this time is asked again.
const ATTENTION_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Debug)]
pub struct AttentionView {
    pub layer: usize,
    pub head: usize,
    pub mean: bool,
    pub overview: bool,
    /// Each heatmap row scaled by its own largest weight.
    pub per_row: bool,
    /// 1 shows the whole sequence; 2 half of it, and so on.
    pub zoom: usize,
    /// Keys axis offset from the query window, in tokens.
    pub pan: isize,
    /// One layer's rows with the mean over heads appended as head `n_head`.
    pub data: Option<LayerAttention>,
    pub in_flight: Option<(Instant, usize, Range<usize>)>,
    pub last_request: Option<Instant>,
}

impl Default for AttentionView {
    fn default() -> Self {
        Self {
            layer: 0,
            head: 0,
            mean: false,
            overview: false,
            per_row: false,
            zoom: 1,
            pan: 0,
            data: None,
            in_flight: None,
            last_request: None,
        }
    }
}

/// What the attention requests depend on besides the view's own state.
#[derive(Clone, Copy, Debug)]
pub struct Sequence {
    /// The run the rows belong to.
    pub run: u64,
    pub query: Option<usize>,
    /// Positions the model has read.
    pub len: usize,
}

impl AttentionView {
    /// The keys of the attention context; `n_layer` and `n_head` are the
    /// model's.
    pub fn update(&mut self, action: Action, n_layer: usize, n_head: usize, seq: Sequence) {
        use Action::*;
        match action {
            LayerPrev | LayerNext => {
                let n = n_layer.max(1);
                self.layer = if action == LayerNext {
                    (self.layer + 1) % n
                } else {
                    (self.layer + n - 1) % n
                };
            }
            HeadPrev | HeadNext => {
                let n = n_head.max(1);
                self.mean = false;
                self.head = if action == HeadNext {
                    (self.head + 1) % n
                } else {
                    (self.head + n - 1) % n
                };
            }
            MeanHeads => self.mean = !self.mean,
            RowScale => self.per_row = !self.per_row,
            Overview => self.overview = !self.overview,
            ZoomIn => self.zoom = (self.zoom * 2).min(256),
            ZoomOut => {
                self.zoom = (self.zoom / 2).max(1);
                if self.zoom == 1 {
                    self.pan = 0;
                }
            }
            PanKeysLeft | PanKeysRight => {
                let (q, _) = self.window(seq);
                let step = (q.len() / 4).max(1) as isize;
                self.pan += if action == PanKeysRight { step } else { -step };
            }
            _ => {}
        }
    }

    /// Rows from the engine (`n_head` heads; the mean is appended here).
    pub fn received(&mut self, la: LayerAttention) {
        self.in_flight = None;
        self.data = Some(LayerAttention {
            rows: with_mean(la.rows),
            ..la
        });
    }

    /// Another run is shown: its rows are asked for afresh.
    pub fn forget(&mut self) {
        self.data = None;
        self.in_flight = None;
        self.last_request = None;
    }

    /// The shown rows belong to `seq`'s run and the selected layer.
    pub fn rows_for(&self, seq: Sequence) -> Option<&LayerAttention> {
        self.data
            .as_ref()
            .filter(|d| d.id == seq.run && d.layer == self.layer)
    }

    /// Query rows and key columns the heatmap shows.
    pub fn window(&self, seq: Sequence) -> (Range<usize>, Range<usize>) {
        let len = seq.len;
        let Some(q) = seq.query else {
            return (0..0, 0..0);
        };
        let span = (len / self.zoom.max(1)).max(1);
        let qs = q.saturating_sub(span / 2).min(len - span);
        let ks = (qs as isize + self.pan).clamp(0, (len - span) as isize) as usize;
        (qs..qs + span, ks..ks + span)
    }

    /// The rows to ask the engine for: the visible window, widened to all
    /// queries when they fit.
    fn wanted_rows(&self, seq: Sequence) -> Option<Range<usize>> {
        let q = seq.query?;
        let len = seq.len;
        if len <= MAX_ATTENTION_ROWS {
            return Some(0..len);
        }
        let (window, _) = self.window(seq);
        // The visible rows when they fit, else rows centred on the query.
        let start = if window.len() <= MAX_ATTENTION_ROWS {
            window.start.min(len - MAX_ATTENTION_ROWS)
        } else {
            q.saturating_sub(MAX_ATTENTION_ROWS / 2)
                .min(len - MAX_ATTENTION_ROWS)
        };
        Some(start..start + MAX_ATTENTION_ROWS)
    }

    /// Whether rows `have` serve the view: the query's row, and every
    /// visible row when they fit in one request.
    fn rows_serve(&self, seq: Sequence, have: Range<usize>) -> bool {
        let Some(q) = seq.query else { return true };
        let (window, _) = self.window(seq);
        let needed = if window.len() <= MAX_ATTENTION_ROWS {
            window
        } else {
            q..q + 1
        };
        have.contains(&q) && have.start <= needed.start && have.end >= needed.end
    }

    /// The request the view needs now, if any (`streaming`: the run is
    /// still generating, so a shown layer is refreshed at a capped rate).
    pub fn request(
        &mut self,
        now: Instant,
        seq: Sequence,
        streaming: bool,
    ) -> Option<EngineCommand> {
        let want = self.wanted_rows(seq)?;
        let layer = self.layer;
        let covered = self.data.as_ref().is_some_and(|d| {
            let r = &d.rows;
            d.id == seq.run
                && d.layer == layer
                && self.rows_serve(seq, r.first_query..r.first_query + r.n_query)
        });
        if covered {
            return None;
        }
        if let Some((at, l, ref range)) = self.in_flight {
            let same = l == layer && self.rows_serve(seq, range.clone());
            if now.duration_since(at) < ATTENTION_TIMEOUT
                && (same || now.duration_since(at) < Duration::from_millis(50))
            {
                return None;
            }
        }
        let have_layer = self
            .data
            .as_ref()
            .is_some_and(|d| d.id == seq.run && d.layer == layer);
        if have_layer
            && streaming
            && self
                .last_request
                .is_some_and(|t| now.duration_since(t) < ATTENTION_REFRESH)
        {
            return None;
        }
        self.in_flight = Some((now, layer, want.clone()));
        self.last_request = Some(now);
        Some(EngineCommand::Attention {
            id: seq.run,
            layer,
            queries: want,
        })
    }

    /// The head index into the layer data (`n_head` is the mean).
    pub fn head_index(&self) -> usize {
        match (&self.data, self.mean) {
            (Some(d), true) => d.rows.n_head,
            _ => self.head,
        }
    }

    /// The keys the query attends to most: (position, weight), heaviest first.
    pub fn top_attended(&self, query: Option<usize>, n: usize) -> Vec<(usize, f32)> {
        let (Some(d), Some(q)) = (&self.data, query) else {
            return Vec::new();
        };
        let r = &d.rows;
        if q < r.first_query || q >= r.first_query + r.n_query {
            return Vec::new();
        }
        let start = (self.head_index() * r.n_query + (q - r.first_query)) * r.n_key;
        let Some(row) = r.data.get(start..start + (q + 1).min(r.n_key)) else {
            return Vec::new();
        };
        heaviest(row.iter().copied(), n)
    }

    /// Where the single-head heatmap's cells are in a pane at `area`
    /// (`full`: the full-screen view, with its sidebar).
    pub fn heatmap_cells(&self, area: Rect, full: bool) -> Option<Rect> {
        layout::heatmap_cells(area, self.overview, full)
    }

    /// The query row shown at screen row `y` of the heatmap's `cells`
    /// (`rows_per_cell`: 2 with colour, where a cell is a half block).
    pub fn query_at(
        &self,
        seq: Sequence,
        rows_per_cell: usize,
        cells: Rect,
        y: u16,
    ) -> Option<usize> {
        layout::query_at(self.window(seq).0, rows_per_cell, cells, y)
    }
}

/// The `n` heaviest keys of one row of weights: (position, weight),
/// heaviest first (weights that are not finite left out).
pub fn heaviest(row: impl Iterator<Item = f32>, n: usize) -> Vec<(usize, f32)> {
    let mut pairs: Vec<(usize, f32)> = row.enumerate().filter(|(_, w)| w.is_finite()).collect();
    pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
    pairs.truncate(n);
    pairs
}
