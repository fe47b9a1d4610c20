//! The compare view: one prompt run under several presets from a shared
//! prefill, side by side; a token selected in a column shows its
//! probabilities and what its query attended to.

use super::Out;
use super::attention::heaviest;
use crate::engine::Request;
use crate::engine::handle::{EngineCommand, EngineEvent, LayerAttention, compare_column_id};
use crate::engine::sampling::SamplerSettings;
use crate::engine::types::{FinishReason, StepRecord, Timings};
use crate::ui::keymap::Action;
use crate::ui::state::{Effect, EngineState};

/// Most columns the compare view shows.
pub const MAX_COMPARE_COLUMNS: usize = 4;

/// One column of a comparison: a preset's run from the shared prefill.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompareColumn {
    pub preset: String,
    pub settings: SamplerSettings,
    pub records: Vec<StepRecord>,
    pub text: String,
    pub timings: Timings,
    pub finish: Option<FinishReason>,
}

/// A comparison run (`id` tags its events) and its columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompareState {
    pub id: u64,
    pub columns: Vec<CompareColumn>,
    /// The prompt's tokens (from the engine's prefill).
    pub prompt: Vec<String>,
    /// Whether the columns captured attention (it can be asked for once
    /// every column has finished).
    pub captures: bool,
    /// The selected token: (column, step).
    pub selected: Option<(usize, usize)>,
    /// The selected token's attention row (one query, all heads).
    pub attention: Option<LayerAttention>,
    /// The last attention request: (column, step, layer).
    pub asked: Option<(usize, usize, usize)>,
    /// The request the columns share (each with its preset's sampler).
    pub request: Option<Request>,
}

impl CompareState {
    /// A comparison of `request` under each of `presets`, before it runs.
    pub fn new(id: u64, request: &Request, presets: &[(String, SamplerSettings)]) -> Self {
        Self {
            id,
            captures: request.capture_attention,
            request: Some(request.clone()),
            columns: presets
                .iter()
                .map(|(name, settings)| CompareColumn {
                    preset: name.clone(),
                    settings: settings.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn finished(&self) -> bool {
        self.columns.iter().all(|c| c.finish.is_some())
    }

    /// Moves the token cursor (columns, steps).
    pub fn select(&mut self, action: Action) {
        let n = self.columns.len();
        let len = |c: usize| self.columns.get(c).map_or(0, |col| col.records.len());
        let Some((mut col, mut step)) = self
            .selected
            .or_else(|| (0..n).find(|&c| len(c) > 0).map(|c| (c, 0)))
        else {
            return;
        };
        let was = self.selected;
        if was.is_some() {
            match action {
                Action::ColumnPrev => col = (col + n - 1) % n,
                Action::ColumnNext => col = (col + 1) % n,
                Action::TokenPrev => step = step.saturating_sub(1),
                Action::TokenNext => step += 1,
                Action::FirstToken => step = 0,
                _ => step = usize::MAX,
            }
        }
        if len(col) == 0 {
            return;
        }
        step = step.min(len(col) - 1);
        self.selected = Some((col, step));
        if self.selected != was {
            self.attention = None;
        }
    }

    /// The request for the selected token's attention row at `layer`, if
    /// it is due (the engine keeps the columns once all have finished).
    pub fn attention_request(
        &mut self,
        layer: usize,
        engine: &EngineState,
    ) -> Option<EngineCommand> {
        let (col, step) = self.selected?;
        if !self.captures || !self.finished() || *engine == EngineState::Running {
            return None;
        }
        if self.asked == Some((col, step, layer)) {
            return None;
        }
        let q = compare_query(self, col, step)?;
        self.asked = Some((col, step, layer));
        Some(EngineCommand::Attention {
            id: compare_column_id(self.id, col),
            layer,
            queries: q..q + 1,
        })
    }

    /// Whether `event` is this comparison's.
    pub fn owns(&self, event: &EngineEvent) -> bool {
        match event {
            EngineEvent::Prefilled { id, .. }
            | EngineEvent::CompareStep { id, .. }
            | EngineEvent::CompareFinished { id, .. } => *id == self.id,
            EngineEvent::Attention(la) => self
                .selected
                .is_some_and(|(c, _)| compare_column_id(self.id, c) == la.id),
            _ => false,
        }
    }

    /// One of this comparison's events.
    pub fn on_event(&mut self, event: EngineEvent, out: &mut Out) {
        if !self.owns(&event) {
            return;
        }
        match event {
            EngineEvent::Prefilled { prompt, .. } => self.prompt = prompt.texts,
            EngineEvent::Attention(la) => self.attention = Some(la),
            EngineEvent::CompareStep {
                column,
                record,
                text_delta,
                ..
            } => {
                if let Some(c) = self.columns.get_mut(column) {
                    c.text.push_str(&text_delta);
                    c.records.push(*record);
                    c.timings.generated = c.records.len();
                }
            }
            EngineEvent::CompareFinished {
                column,
                reason,
                timings,
                ..
            } => {
                if let Some(c) = self.columns.get_mut(column) {
                    c.finish = Some(reason);
                    c.timings = timings;
                }
                if self.finished() {
                    out.effect(Effect::Autosave);
                    out.engine = Some(EngineState::Idle);
                    out.note(
                        "comparison finished; arrows select a token (its probabilities and attention); Esc closes",
                    );
                }
            }
            _ => {}
        }
    }

    /// The engine stopped (a panic): columns still running end cancelled.
    pub fn abort(&mut self) {
        for c in &mut self.columns {
            c.finish.get_or_insert(FinishReason::Cancelled);
        }
    }

    /// The selected token's record: (column's preset, record).
    pub fn selected_record(&self) -> Option<(&str, &StepRecord)> {
        let (c, s) = self.selected?;
        let col = self.columns.get(c)?;
        Some((col.preset.as_str(), col.records.get(s)?))
    }

    /// The keys the selected token's query attends to most, mean over
    /// heads: (position, token text, weight), heaviest first.
    pub fn attended(&self, n: usize) -> Vec<(usize, String, f32)> {
        let (Some((c, s)), Some(a)) = (self.selected, self.attention.as_ref()) else {
            return Vec::new();
        };
        let Some(q) = compare_query(self, c, s) else {
            return Vec::new();
        };
        let r = &a.rows;
        if r.n_query != 1 || r.first_query != q || r.n_head == 0 {
            return Vec::new();
        }
        let keys = (q + 1).min(r.n_key);
        let mut mean = vec![0.0f32; keys];
        for h in 0..r.n_head {
            let row = &r.data[h * r.n_key..h * r.n_key + keys];
            for (m, w) in mean.iter_mut().zip(row) {
                *m += w / r.n_head as f32;
            }
        }
        let records = &self.columns[c].records;
        let text = |k: usize| {
            self.prompt.get(k).cloned().unwrap_or_else(|| {
                let first = records.first().map_or(0, |r| r.position);
                k.checked_sub(first)
                    .and_then(|i| records.get(i))
                    .map_or_else(String::new, |r| r.text.clone())
            })
        };
        heaviest(mean.into_iter(), n)
            .into_iter()
            .map(|(k, w)| (k, text(k), w))
            .collect()
    }
}

/// The attention query for compare column `col`'s step `step`: its own
/// position, or the newest the column's cache has read (a column's last
/// token is never fed to the model).
pub fn compare_query(cmp: &CompareState, col: usize, step: usize) -> Option<usize> {
    let records = &cmp.columns.get(col)?.records;
    let r = records.get(step)?;
    let first = records.first()?.position;
    let read = (first + records.len()).checked_sub(2)?;
    Some(r.position.min(read))
}
