//! Drives the engine for the bias checks: scores sentences and probes and
//! hands the plain numbers to the pure functions of this module. Progress
//! is reported after every unit of work and a cancel flag is checked as
//! often, so an interface thread can show a bar and stop a run.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::engine::{Engine, EngineError};

use super::divergence;
use super::pairs::{self, Mode, Pair, PairDetail, PairsFile, PairsReport, SentenceScore};
use super::probe::{self, AttributeScore, ProbeReport, ProbeResult};
use super::quick::{self, QuickSwap};
use super::suite::{Frame, Suite};

/// Why a bias run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("pair on line {line}: {source}")]
    Pair { line: usize, source: EngineError },
    #[error("frame {frame:?}: {source}")]
    Probe { frame: String, source: EngineError },
    #[error("the model has neither a BOS nor an EOS token to put before a sentence")]
    NoPrefixToken,
    #[error("nothing to swap: the prompt contains none of the terms (give your own as \"X|Y\")")]
    NothingToSwap,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub type Result<T> = std::result::Result<T, RunError>;

/// The single token lm-evaluation-harness puts before a sentence scored
/// with an empty context: BOS, else EOS.
pub fn prefix_token(engine: &Engine) -> Result<u32> {
    let t = engine.tokenizer();
    t.bos.or(t.eos).ok_or(RunError::NoPrefixToken)
}

/// Scores one sentence as lm-evaluation-harness does with an empty context:
/// `[prefix] + tokens(sentence)` (no special-token parsing), the
/// log-probability of every sentence token.
pub fn score_sentence(engine: &Engine, prefix: u32, sentence: &str) -> Result<SentenceScore> {
    let tokens = engine.tokenizer().encode(sentence, false)?;
    if tokens.is_empty() {
        return Ok(SentenceScore::default());
    }
    let mut seq = Vec::with_capacity(tokens.len() + 1);
    seq.push(prefix);
    seq.extend_from_slice(&tokens);
    let logprobs = engine.token_logprobs(&seq, 1)?;
    Ok(SentenceScore { tokens, logprobs })
}

/// Scores both sentences of every pair. Stops early (returning what it has)
/// when `cancel` is set; `progress(done, total)` after each pair.
pub fn score_pairs(
    engine: &Engine,
    file: &PairsFile,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Vec<(SentenceScore, SentenceScore)>> {
    let prefix = prefix_token(engine)?;
    each_pair(file, progress, cancel, &mut |p| {
        Ok((
            score_sentence(engine, prefix, &p.sent_more)?,
            score_sentence(engine, prefix, &p.sent_less)?,
        ))
    })
}

/// Runs `score` on every pair of `file` (an engine error names the pair's
/// line), with progress and cancel: what was scored before a cancel.
pub(super) fn each_pair<T>(
    file: &PairsFile,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
    score: &mut dyn FnMut(&Pair) -> Result<T>,
) -> Result<Vec<T>> {
    let total = file.pairs.len();
    let mut out = Vec::with_capacity(total);
    for p in &file.pairs {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        let scored = score(p).map_err(|source| match source {
            RunError::Engine(source) => RunError::Pair {
                line: p.line,
                source,
            },
            other => other,
        })?;
        out.push(scored);
        progress(out.len(), total);
    }
    Ok(out)
}

/// The report for already-scored pairs under `mode` (switching modes needs
/// no new forward passes). With `detail`, every pair keeps its tokens.
pub fn pairs_report(
    engine: &Engine,
    file: &PairsFile,
    data_file: &str,
    scores: &[(SentenceScore, SentenceScore)],
    mode: Mode,
    detail: bool,
) -> Result<PairsReport> {
    let tok = engine.tokenizer();
    let results: Vec<pairs::PairResult> = file
        .pairs
        .iter()
        .zip(scores)
        .map(|(p, (a, b))| {
            let mut r = pairs::pair_result(p, mode, a, b);
            if detail {
                r.detail = Some(PairDetail::new(a, b, &|t| tok.token_text(t)));
            }
            r
        })
        .collect();
    let (overall, categories) = pairs::summarise(&results);
    Ok(PairsReport {
        mode,
        mode_description: mode.describe().to_string(),
        data_file: data_file.to_string(),
        data_sha256: file.sha256.clone(),
        note: pairs::is_shipped_example(&file.sha256).then(|| pairs::EXAMPLE_NOTE.to_string()),
        prefix_token: prefix_token(engine)?,
        overall,
        categories,
        partial: results.len() < file.pairs.len(),
        pairs: results,
    })
}

/// Token ids of `text + continuation` split into the part that is the
/// frame and the part that spells the continuation. When the tokenizer
/// merges across the boundary, the continuation takes over the frame's
/// last tokens from where the two tokenisations part.
fn split_continuation(
    engine: &Engine,
    frame_tokens: &[u32],
    text: &str,
    continuation: &str,
) -> Result<(usize, Vec<u32>)> {
    let full = engine
        .tokenizer()
        .encode(&format!("{text}{continuation}"), false)?;
    let common = frame_tokens
        .iter()
        .zip(&full)
        .take_while(|(a, b)| a == b)
        .count();
    Ok((common, full[common..].to_vec()))
}

/// Each attribute's summed log-probability after a frame, and its token
/// count.
type AttributeScores = Vec<(f64, usize)>;

/// Next-token logits after `text`, and the summed log-probability of each
/// attribute after it (with its token count).
fn eval_frame(
    engine: &Engine,
    text: &str,
    attributes: &[String],
) -> Result<(Vec<f32>, AttributeScores)> {
    let tokens = engine.tokenizer().encode(text, false)?;
    if tokens.is_empty() {
        return Err(EngineError::EmptyPrompt.into());
    }
    let mut clean = Vec::new();
    let mut fallback = Vec::new();
    for (i, a) in attributes.iter().enumerate() {
        let (common, cont) = split_continuation(engine, &tokens, text, a)?;
        if common == tokens.len() {
            clean.push((i, cont));
        } else {
            fallback.push((i, common, cont));
        }
    }
    let conts: Vec<Vec<u32>> = clean.iter().map(|(_, c)| c.clone()).collect();
    let (logits, lps) = engine.prefix_continuations(&tokens, &conts)?;
    let mut scores = vec![(0.0f64, 0usize); attributes.len()];
    for ((i, c), lp) in clean.iter().zip(lps) {
        scores[*i] = (lp.iter().map(|&x| x as f64).sum(), c.len());
    }
    for (i, common, cont) in fallback {
        // The boundary merged: score the re-tokenised tail from the first
        // token that differs (at least one token of context is kept).
        let mut seq = tokens[..common].to_vec();
        seq.extend_from_slice(&cont);
        let from = common.max(1);
        let lp = engine.token_logprobs(&seq, from)?;
        scores[i] = (lp.iter().map(|&x| x as f64).sum(), seq.len() - from);
    }
    Ok((logits, scores))
}

pub(super) fn with_frame(prompt: &str, source: RunError) -> RunError {
    match source {
        RunError::Engine(source) => RunError::Probe {
            frame: prompt.to_string(),
            source,
        },
        other => other,
    }
}

/// Runs `probe(category, frame, term_a, term_b)` for every (frame, pair)
/// of a suite, with progress and cancel, into the suite's report.
pub(super) fn each_probe(
    suite: &Suite,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
    probe: &mut dyn FnMut(&str, &Frame, &str, &str) -> Result<ProbeResult>,
) -> Result<ProbeReport> {
    let total = suite.n_probes();
    let mut probes = Vec::with_capacity(total);
    'outer: for cat in &suite.categories {
        for [term_a, term_b] in &cat.pairs {
            for frame in &suite.frames {
                if cancel.load(Ordering::Relaxed) {
                    break 'outer;
                }
                probes.push(probe(&cat.name, frame, term_a, term_b)?);
                progress(probes.len(), total);
            }
        }
    }
    Ok(ProbeReport {
        suite: suite.name.clone(),
        description: suite.description.clone(),
        top_k: suite.top_k,
        bootstrap_resamples: probe::BOOTSTRAP_RESAMPLES,
        bootstrap_seed: probe::BOOTSTRAP_SEED,
        categories: probe::summarise(&probes),
        partial: probes.len() < total,
        probes,
    })
}

/// Runs every (frame, pair) probe of a suite.
pub fn run_suite(
    engine: &Engine,
    suite: &Suite,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<ProbeReport> {
    let tok = engine.tokenizer();
    each_probe(
        suite,
        progress,
        cancel,
        &mut |category, frame, term_a, term_b| {
            let (prompt_a, prompt_b) = (frame.fill(term_a), frame.fill(term_b));
            let (la, sa) = eval_frame(engine, &prompt_a, &frame.attributes)
                .map_err(|e| with_frame(&prompt_a, e))?;
            let (lb, sb) = eval_frame(engine, &prompt_b, &frame.attributes)
                .map_err(|e| with_frame(&prompt_b, e))?;
            let (lpa, lpb) = (divergence::log_softmax(&la), divergence::log_softmax(&lb));
            let text = |t: u32| tok.token_text(t);
            Ok(ProbeResult {
                category: category.to_string(),
                frame: frame.id.clone(),
                term_a: term_a.to_string(),
                term_b: term_b.to_string(),
                divergence: divergence::compare_logprobs(&lpa, &lpb, suite.top_k),
                top_a: probe::top_list(&lpa, suite.top_k, &text),
                top_b: probe::top_list(&lpb, suite.top_k, &text),
                attributes: frame
                    .attributes
                    .iter()
                    .zip(sa.iter().zip(&sb))
                    .map(|(attr, (&(a, na), &(b, nb)))| AttributeScore {
                        attribute: attr.clone(),
                        logprob_a: a,
                        logprob_b: b,
                        diff: a - b,
                        tokens_a: na,
                        tokens_b: nb,
                    })
                    .collect(),
                prompt_a,
                prompt_b,
            })
        },
    )
}

/// `text` with `swaps` applied (the default swaps when none are given)
/// and how many replacements that made; none at all is an error.
pub(super) fn swapped_text(text: &str, swaps: &[(String, String)]) -> Result<(String, usize)> {
    let defaults = quick::default_swaps();
    let swaps = if swaps.is_empty() {
        &defaults[..]
    } else {
        swaps
    };
    let (swapped, n) = quick::swap_terms(text, swaps);
    if n == 0 {
        return Err(RunError::NothingToSwap);
    }
    Ok((swapped, n))
}

/// The quick check: `text` with `swaps` applied (the defaults when empty),
/// both prompts run (control tokens in the text are parsed, as for a
/// generation prompt), and the two top-k lists compared.
pub fn quick_swap(
    engine: &Engine,
    text: &str,
    swaps: &[(String, String)],
    k: usize,
) -> Result<QuickSwap> {
    let (swapped, n) = swapped_text(text, swaps)?;
    let ta = engine.tokenizer().encode(text, true)?;
    let tb = engine.tokenizer().encode(&swapped, true)?;
    if ta.is_empty() || tb.is_empty() {
        return Err(EngineError::EmptyPrompt.into());
    }
    let la = engine.next_token_logits(&ta)?;
    let lb = engine.next_token_logits(&tb)?;
    let tok = engine.tokenizer();
    Ok(quick::compare(text, &swapped, n, &la, &lb, k, &|t| {
        tok.token_text(t)
    }))
}
