//! Masked text generation: a text with several masks filled one token at a
//! time, each step a full pass over the text as it now stands (the tokens
//! already filled are context for the rest). Which mask goes next is the
//! order's choice: the one the model is most sure of, or left to right;
//! Gibbs-style then re-masks each filled position in turn and draws it
//! again given all the others, for a number of sweeps. Every draw goes
//! through the sampler chain and is recorded like a decoder's token.

use serde::{Deserialize, Serialize};

use super::{MaskedEngine, softmax};
use crate::engine::error::{EngineError, Result};
use crate::engine::sampling::Sampler;
use crate::engine::types::StepRecord;

/// Which mask is filled next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "order")]
pub enum FillOrder {
    /// The mask whose best candidate is most probable.
    Confident,
    LeftToRight,
    /// Left to right, then `sweeps` passes re-drawing every filled
    /// position given all the others.
    Gibbs {
        sweeps: usize,
    },
}

impl FillOrder {
    pub fn describe(self) -> String {
        match self {
            Self::Confident => "confident first".into(),
            Self::LeftToRight => "left to right".into(),
            Self::Gibbs { sweeps } => format!("Gibbs, {sweeps} sweeps"),
        }
    }
}

pub struct MaskedGeneration {
    ids: Vec<u32>,
    types: Vec<u32>,
    /// The positions that were masks, in the text's order.
    targets: Vec<usize>,
    /// Masks not filled yet.
    open: Vec<usize>,
    order: FillOrder,
    sampler: Sampler,
    top_n: usize,
    /// Gibbs: the re-draws still to do, next first.
    redraws: std::collections::VecDeque<usize>,
    /// Tokens taken instead of a draw, by step (a branch, a replay).
    forced: std::collections::BTreeMap<usize, u32>,
    steps: Vec<StepRecord>,
}

impl MaskedGeneration {
    /// Starts on `text`, whose masks are the positions to fill.
    pub fn new(
        engine: &MaskedEngine,
        text: &str,
        order: FillOrder,
        sampler: Sampler,
        top_n: usize,
    ) -> Result<Self> {
        if let Some(why) = engine.mlm_missing() {
            return Err(EngineError::Input(why));
        }
        let e = engine.encode(text, None)?;
        let targets = engine.mask_positions(&e.ids);
        if targets.is_empty() {
            return Err(EngineError::Input(format!(
                "the text has no mask to fill; write {} for each token to generate",
                engine.tokenizer().mask_text().unwrap_or_default()
            )));
        }
        let redraws = match order {
            FillOrder::Gibbs { sweeps } => (0..sweeps).flat_map(|_| targets.clone()).collect(),
            _ => Default::default(),
        };
        Ok(Self {
            ids: e.ids,
            types: e.types,
            open: targets.clone(),
            targets,
            order,
            sampler,
            top_n,
            redraws,
            forced: Default::default(),
            steps: Vec::new(),
        })
    }

    /// Takes `token` at `step` instead of a draw (traced like any other):
    /// a branch forces its parent's tokens up to where it parts, then its
    /// own. The same seed and forced tokens give the same run.
    pub fn force(&mut self, step: usize, token: u32) {
        self.forced.insert(step, token);
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The positions that were masks.
    pub fn targets(&self) -> &[usize] {
        &self.targets
    }

    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }

    pub fn finished(&self) -> bool {
        self.open.is_empty() && self.redraws.is_empty()
    }

    /// The text as it stands, special tokens left out.
    pub fn text(&self, engine: &MaskedEngine) -> String {
        engine.tokenizer().decode(&self.ids)
    }

    /// Fills (or re-draws) one position; None once done.
    pub fn step(&mut self, engine: &MaskedEngine) -> Result<Option<StepRecord>> {
        let mask = engine.tokenizer().mask.expect("checked at start");
        // One pass over the text as it stands gives every open mask's
        // distribution: the order chooses among them, the draw uses it.
        let candidates: Vec<usize> = if !self.open.is_empty() {
            match self.order {
                FillOrder::Confident => self.open.clone(),
                _ => vec![self.open[0]],
            }
        } else if let Some(p) = self.redraws.pop_front() {
            self.ids[p] = mask;
            vec![p]
        } else {
            return Ok(None);
        };
        let e = super::Encoded {
            ids: self.ids.clone(),
            types: self.types.clone(),
        };
        let out = engine.forward(&e, false)?;
        let rows = engine.logits_at(&out.hidden, &candidates)?;
        let pick = rows
            .iter()
            .map(|r| softmax(r).into_iter().fold(0f32, f32::max))
            .enumerate()
            // The most confident; the leftmost among equals.
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let position = candidates[pick];
        self.open.retain(|&p| p != position);
        let logits = &rows[pick];
        // The penalties see the text's other tokens, masks and specials
        // left out.
        let history: Vec<u32> = self
            .ids
            .iter()
            .enumerate()
            .filter(|&(i, &id)| i != position && id != mask && !engine.tokenizer().is_special(id))
            .map(|(_, &id)| id)
            .collect();
        let step = self.steps.len();
        let s = self.sampler.sample_drawing(
            logits,
            &history,
            self.top_n,
            self.forced.get(&step).copied(),
            step as u64,
        );
        self.ids[position] = s.token_id;
        let tok = engine.tokenizer();
        let record = StepRecord::from_sampled(&s, step, position, &|t| tok.token_text(t), None);
        self.steps.push(record.clone());
        Ok(Some(record))
    }
}
