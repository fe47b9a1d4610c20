//! The bias checks as engine-thread tasks ([`crate::engine::handle::Task`]),
//! so that the interface can run them without blocking: each calls the
//! same functions as `lmscope bias` ([`super::run`]) and hands back their
//! report as it is.
//!
//! - [`QuickTask`] -> [`QuickCheck`]: [`run::quick_swap`] on the rendered
//!   prompt, plus the per-token log-probabilities of both prompts where
//!   their tokens align;
//! - [`SuiteTask`] -> [`super::probe::ProbeReport`]: [`run::run_suite`];
//! - [`PairsTask`] -> [`super::pairs::PairsReport`]: [`run::score_pairs`] then
//!   [`run::pairs_report`] (with token detail, for the drill-down).

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::pairs::{self, Mode, PairsFile};
use super::quick::QuickSwap;
use super::run::{self, RunError};
use super::suite::Suite;
use crate::engine::handle::{Task, TaskOutput};
use crate::engine::{Engine, Prompt};

/// The shipped example pairs (ours, a smoke test, not CrowS-Pairs).
pub const EXAMPLE_PAIRS: &[u8] = include_bytes!("../../../assets/bias/example_pairs.csv");
pub const EXAMPLE_PAIRS_NAME: &str = "assets/bias/example_pairs.csv";

/// One token at a position where the two prompts' tokens align (difflib's
/// matching blocks, as for minimal pairs), with its log-probability after
/// each prompt's own prefix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlignedToken {
    pub text: String,
    /// Position in prompt A and in prompt B.
    pub pos_a: usize,
    pub pos_b: usize,
    pub logprob_a: f64,
    pub logprob_b: f64,
}

impl AlignedToken {
    /// logprob_b - logprob_a.
    pub fn delta(&self) -> f64 {
        self.logprob_b - self.logprob_a
    }
}

/// What the interface's quick check shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuickCheck {
    /// Exactly [`run::quick_swap`]'s answer for the rendered prompt.
    pub swap: QuickSwap,
    /// Shared tokens after the first (which has no prefix to score from).
    pub aligned: Vec<AlignedToken>,
}

/// Per-token log-probabilities of `a` and `b` where their tokens align.
pub fn aligned_logprobs(
    engine: &Engine,
    text_a: &str,
    text_b: &str,
    cancel: &AtomicBool,
) -> Result<Vec<AlignedToken>, RunError> {
    let tok = engine.tokenizer();
    let (ta, tb) = (tok.encode(text_a, true)?, tok.encode(text_b, true)?);
    if ta.len() < 2 || tb.len() < 2 || cancel.load(Ordering::Relaxed) {
        return Ok(Vec::new());
    }
    // Log-probs of tokens 1.. (token 0 has nothing before it).
    let la = engine.token_logprobs(&ta, 1)?;
    if cancel.load(Ordering::Relaxed) {
        return Ok(Vec::new());
    }
    let lb = engine.token_logprobs(&tb, 1)?;
    let (pa, pb) = pairs::shared_positions(&ta, &tb);
    Ok(pa
        .into_iter()
        .zip(pb)
        .filter(|&(i, j)| i > 0 && j > 0)
        .filter_map(|(i, j)| {
            Some(AlignedToken {
                text: tok.token_text(ta[i]),
                pos_a: i,
                pos_b: j,
                logprob_a: *la.get(i - 1)? as f64,
                logprob_b: *lb.get(j - 1)? as f64,
            })
        })
        .collect())
}

/// The quick check on a prompt (chat prompts are rendered with the model's
/// template first, so the check sees what a run would).
#[derive(Clone, Debug)]
pub struct QuickTask {
    pub prompt: Prompt,
    /// Empty: [`super::quick::DEFAULT_SWAPS`].
    pub swaps: Vec<(String, String)>,
    pub k: usize,
}

impl QuickTask {
    pub fn check(self, engine: &Engine, cancel: &AtomicBool) -> Result<QuickCheck, RunError> {
        let text = engine.prompt_text(&self.prompt)?;
        let swap = run::quick_swap(engine, &text, &self.swaps, self.k)?;
        let aligned = aligned_logprobs(engine, &swap.prompt_a, &swap.prompt_b, cancel)?;
        Ok(QuickCheck { swap, aligned })
    }
}

fn cancelled(cancel: &AtomicBool) -> Result<(), String> {
    if cancel.load(Ordering::Relaxed) {
        Err("cancelled".into())
    } else {
        Ok(())
    }
}

impl Task for QuickTask {
    fn name(&self) -> &str {
        "quick check"
    }

    fn run(
        self: Box<Self>,
        engine: &Engine,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<TaskOutput, String> {
        progress(0, 1);
        let out = self.check(engine, cancel).map_err(|e| e.to_string())?;
        cancelled(cancel)?;
        progress(1, 1);
        Ok(Box::new(out))
    }
}

/// A probe suite, all of it (a cancelled run reports what it has).
#[derive(Clone, Debug)]
pub struct SuiteTask {
    pub suite: Suite,
}

impl Task for SuiteTask {
    fn name(&self) -> &str {
        "probe suite"
    }

    fn run(
        self: Box<Self>,
        engine: &Engine,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<TaskOutput, String> {
        progress(0, self.suite.n_probes());
        let report =
            run::run_suite(engine, &self.suite, progress, cancel).map_err(|e| e.to_string())?;
        Ok(Box::new(report))
    }
}

/// A pairs file scored in one mode, with token detail for every pair.
#[derive(Clone, Debug)]
pub struct PairsTask {
    pub file: PairsFile,
    /// The data file's name as the report records it.
    pub data_file: String,
    pub mode: Mode,
}

impl PairsTask {
    /// The example pairs shipped with lmscope.
    pub fn example(mode: Mode) -> Result<Self, String> {
        let file = pairs::read_pairs(EXAMPLE_PAIRS).map_err(|e| e.to_string())?;
        Ok(Self {
            file,
            data_file: EXAMPLE_PAIRS_NAME.into(),
            mode,
        })
    }
}

impl Task for PairsTask {
    fn name(&self) -> &str {
        "minimal pairs"
    }

    fn run(
        self: Box<Self>,
        engine: &Engine,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<TaskOutput, String> {
        progress(0, self.file.pairs.len());
        let scores =
            run::score_pairs(engine, &self.file, progress, cancel).map_err(|e| e.to_string())?;
        let report = run::pairs_report(
            engine,
            &self.file,
            &self.data_file,
            &scores,
            self.mode,
            true,
        )
        .map_err(|e| e.to_string())?;
        Ok(Box::new(report))
    }
}
