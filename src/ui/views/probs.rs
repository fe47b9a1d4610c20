//! The probabilities view: which of the selected token's alternatives is
//! picked (the one a branch takes).

use crate::engine::types::StepRecord;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbsView {
    /// An index into the selected record's `top`.
    pub alt: usize,
}

impl ProbsView {
    pub fn prev(&mut self) {
        self.alt = self.alt.saturating_sub(1);
    }

    pub fn next(&mut self, record: Option<&StepRecord>) {
        let n = record.map_or(0, |r| r.top.len());
        self.alt = (self.alt + 1).min(n.saturating_sub(1));
    }

    /// Another token was selected.
    pub fn reset(&mut self) {
        self.alt = 0;
    }
}
