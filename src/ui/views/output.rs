//! The output view: the shown run's tokens (prompt and generated), the
//! token cursor and the scroll position. Which run is shown is the run
//! tree's business ([`super::runs`]); this view holds a copy of it.

use std::time::Instant;

use ratatui::layout::Rect;

use super::attention::Sequence;
use super::runs::RunNode;
use crate::engine::types::{FinishReason, StepRecord, Timings};
use crate::store::config::ColorBy;
use crate::ui::state::Tok;
use crate::ui::text;

#[derive(Clone, Debug)]
pub struct OutputView {
    pub tokens: Vec<Tok>,
    pub prompt_len: usize,
    /// Positions the model has read in this run (attention exists below).
    pub cache_len: usize,
    pub cursor: usize,
    /// The cursor follows the newest token.
    pub follow: bool,
    /// The first line on screen.
    pub top: usize,
    pub color_by: ColorBy,
    /// Whether the shown run captures attention.
    pub captures: bool,
    pub timings: Timings,
    /// When the prompt finished running (live decode speed).
    prefilled_at: Option<Instant>,
    pub finish: Option<FinishReason>,
}

impl OutputView {
    pub fn new(color_by: ColorBy) -> Self {
        Self {
            tokens: Vec::new(),
            prompt_len: 0,
            cache_len: 0,
            cursor: 0,
            follow: true,
            top: 0,
            color_by,
            captures: false,
            timings: Timings::default(),
            prefilled_at: None,
            finish: None,
        }
    }

    /// The tokens wrapped into lines `width` columns wide.
    pub fn lines(&self, width: u16) -> Vec<Vec<text::Seg>> {
        text::layout_lines(self.tokens.iter().map(|t| t.text.as_str()), width)
    }

    /// Moves the cursor to token `tok` (clamped); true when it moved to
    /// another token.
    pub fn select(&mut self, tok: usize) -> bool {
        if self.tokens.is_empty() {
            return false;
        }
        let tok = tok.min(self.tokens.len() - 1);
        let moved = tok != self.cursor;
        self.cursor = tok;
        self.follow = self.cursor + 1 == self.tokens.len();
        moved
    }

    /// The token `delta` lines up or down from the cursor, in a pane whose
    /// inside is `inner`.
    pub fn line_from_cursor(&self, inner: Rect, delta: isize) -> Option<usize> {
        let lines = self.lines(inner.width);
        let (row, col) = text::position_of(&lines, self.cursor)?;
        let target =
            (row as isize + delta).clamp(0, lines.len().saturating_sub(1) as isize) as usize;
        text::token_near(&lines, target, col)
    }

    /// The token under screen cell (`x`, `y`) of a pane whose inside is `inner`.
    pub fn token_at(&self, inner: Rect, x: u16, y: u16) -> Option<usize> {
        let lines = self.lines(inner.width);
        text::token_at(&lines, self.top + (y - inner.y) as usize, x - inner.x)
    }

    /// Keeps the cursor inside the tokens and on screen.
    pub fn scroll(&mut self, inner: Rect) {
        if !self.tokens.is_empty() {
            self.cursor = self.cursor.min(self.tokens.len() - 1);
        }
        if inner.height == 0 || inner.width == 0 {
            return;
        }
        let lines = self.lines(inner.width);
        let h = inner.height as usize;
        let row = text::position_of(&lines, self.cursor).map_or(0, |(r, _)| r);
        if self.follow {
            self.top = lines.len().saturating_sub(h);
        }
        if row < self.top {
            self.top = row;
        } else if row >= self.top + h {
            self.top = row + 1 - h;
        }
    }

    pub fn selected_record(&self) -> Option<&StepRecord> {
        self.tokens
            .get(self.cursor)
            .and_then(|t| t.record.as_deref())
    }

    /// The query the attention views look from: the selected token, or the
    /// newest position the model has read when the selected token has not
    /// been read yet (the newest sampled token).
    pub fn query(&self) -> Option<usize> {
        if self.cache_len == 0 || self.tokens.is_empty() {
            return None;
        }
        Some(self.cursor.min(self.cache_len - 1))
    }

    /// What the attention views look at, for run `run` (the shown one).
    pub fn sequence(&self, run: u64) -> Sequence {
        Sequence {
            run,
            query: self.query(),
            len: self.cache_len,
        }
    }

    /// Shows run `n`; the cursor stays where it was when the run has a
    /// token there.
    pub fn show(&mut self, n: &RunNode) {
        self.tokens = n.tokens.clone();
        self.prompt_len = n.prompt_len;
        self.cache_len = n.cache_len;
        self.captures = n.captures;
        self.timings = n.timings;
        self.finish = n.finish;
        if !self.tokens.is_empty() {
            self.cursor = self.cursor.min(self.tokens.len() - 1);
            self.follow = self.cursor + 1 == self.tokens.len();
        }
    }

    /// Shows nothing.
    pub fn clear(&mut self) {
        self.tokens.clear();
        self.prompt_len = 0;
        self.cache_len = 0;
        self.finish = None;
    }

    /// A new run is shown from its start.
    pub fn restart(&mut self) {
        self.cursor = 0;
        self.follow = true;
        self.top = 0;
    }

    /// The prompt has been read.
    pub fn prefilled(&mut self, tokens: Vec<Tok>, cache_len: usize) {
        self.prompt_len = tokens.len();
        self.tokens = tokens;
        self.cache_len = cache_len;
        self.timings.prompt_tokens = self.prompt_len;
        self.prefilled_at = Some(Instant::now());
        if self.follow {
            self.select(usize::MAX);
        }
    }

    /// A branch has been set up in the engine.
    pub fn branched(&mut self, cache_len: usize) {
        self.cache_len = cache_len;
        self.prefilled_at = Some(Instant::now());
    }

    /// One more generated token.
    pub fn step(&mut self, tok: Tok, cache_len: usize) {
        self.tokens.push(tok);
        self.cache_len = cache_len;
        self.timings.generated += 1;
        if let Some(at) = self.prefilled_at {
            self.timings.decode_s = at.elapsed().as_secs_f64();
        }
        if self.follow {
            self.cursor = self.tokens.len() - 1;
        }
    }

    pub fn finished(&mut self, reason: FinishReason, timings: Timings) {
        self.timings = timings;
        self.finish = Some(reason);
    }
}
