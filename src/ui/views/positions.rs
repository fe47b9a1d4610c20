//! The positions view's state (inside the attention view): whether it is
//! open, which head's vectors were asked for, and the report made from the
//! engine's answer (`analysis::positions`).

use crate::analysis::positions::{LearnedReport, RotaryReport, learned_report, rotary_report};
use crate::engine::handle::{EngineCommand, HeadVectors};

/// Distances the falloff is drawn over.
pub const MAX_DISTANCE: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct PositionsView {
    pub open: bool,
    /// (run, layer, head) of the last request.
    asked: Option<(u64, usize, usize)>,
    pub report: Option<RotaryReport>,
    /// The position embeddings' similarity, for learned positions.
    pub learned: Option<LearnedReport>,
    /// Why there is no report (a layer that does not rotate).
    pub missing: Option<String>,
}

impl PositionsView {
    pub fn toggle(&mut self) {
        self.open = !self.open;
    }

    /// The request for `run`'s vectors of `layer` and `head` when the view
    /// shows another head's (or none yet).
    pub fn request(&mut self, run: u64, layer: usize, head: usize) -> Option<EngineCommand> {
        if !self.open || self.asked == Some((run, layer, head)) {
            return None;
        }
        self.asked = Some((run, layer, head));
        Some(EngineCommand::HeadVectors {
            id: run,
            layer,
            head,
        })
    }

    /// Forgets what was asked (a new run, new positions).
    pub fn invalidate(&mut self) {
        self.asked = None;
    }

    pub fn received(&mut self, hv: HeadVectors) {
        if self.asked != Some((hv.id, hv.layer, hv.head)) {
            return; // an answer to an older request
        }
        self.learned = None;
        match hv.rotary {
            Some(rot) if !hv.k.is_empty() => {
                let max = MAX_DISTANCE
                    .min(hv.k.len() / rot.head_dim.max(1) - 1)
                    .max(1);
                self.report = Some(rotary_report(rot, hv.layer, hv.head, &hv.q, 0, &hv.k, max));
                self.missing = None;
            }
            Some(_) => self.missing = Some("no positions yet".into()),
            None if hv.learned.as_ref().is_some_and(|(_, t)| !t.is_empty()) => {
                let (d, table) = hv.learned.expect("checked");
                self.report = None;
                self.learned = Some(learned_report(&table, d));
                self.missing = None;
            }
            None => {
                self.report = None;
                self.missing = Some(format!(
                    "layer {} does not encode positions by rotation",
                    hv.layer + 1
                ));
            }
        }
    }
}
