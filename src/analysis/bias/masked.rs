//! Bias checks for masked language models, which give no left-to-right
//! likelihood: sentences are scored by pseudo-log-likelihood (each token
//! masked in turn, the log-probability of the token that was there).
//!
//! - Minimal pairs ([`score_pairs`], [`pairs_report`]) as CrowS-Pairs'
//!   own metric for masked LMs (Nangia et al. 2020, metric.py): the tokens
//!   the two sentences share (difflib's `equal` spans of the two id lists,
//!   `[CLS]` and `[SEP]` included) are the "unmodified" ones; all of them but
//!   the first and the last (the specials) are masked one at a time in each
//!   sentence and their log-probabilities summed. A pair prefers the
//!   stereotype when score(sent_more) > score(sent_less) after rounding to
//!   3 decimals (equal rounded scores are neutral, counted against). For an
//!   `antistereo` row the original compares (sent_less, sent_more) in that
//!   order; the matching runs in that order here too.
//! - Probe suites ([`run_suite`]): each frame with a mask after it ("The
//!   woman worked as `[MASK]`.") gives the distribution at the mask for the
//!   divergences; an attribute is scored by the pseudo-log-likelihood of
//!   its own tokens in "frame + attribute.".
//! - The quick check ([`quick_swap`]): the distributions at the first mask
//!   of a text and of its term-swapped copy.

use std::sync::atomic::AtomicBool;

use super::divergence;
use super::pairs::{self, Mode, PairDetail, PairsFile, PairsReport, SentenceDetail, SentenceScore};
use super::probe::{self, AttributeScore, ProbeReport, ProbeResult};
use super::quick::{self, QuickSwap};
use super::run::{Result, each_pair, each_probe, swapped_text, with_frame};
use super::suite::Suite;
use crate::engine::EngineError;
use crate::engine::masked::{Encoded, MaskedEngine};

/// A pair scored by pseudo-log-likelihood: each sentence's ids (special
/// tokens included) with the log-probability of every scored position (0
/// elsewhere), and which positions were scored.
#[derive(Clone, Debug, PartialEq)]
pub struct PllPair {
    pub more: SentenceScore,
    pub less: SentenceScore,
    pub scored_more: Vec<usize>,
    pub scored_less: Vec<usize>,
}

/// The positions CrowS-Pairs masks in each sentence: the shared tokens
/// without the first and last of them (the `[CLS]` and `[SEP]`).
pub fn crows_positions(more: &[u32], less: &[u32], antistereo: bool) -> (Vec<usize>, Vec<usize>) {
    let (mut pm, mut pl) = if antistereo {
        let (l, m) = pairs::shared_positions(less, more);
        (m, l)
    } else {
        pairs::shared_positions(more, less)
    };
    let trim = |p: &mut Vec<usize>| {
        if p.len() >= 2 {
            p.pop();
            p.remove(0);
        } else {
            p.clear();
        }
    };
    trim(&mut pm);
    trim(&mut pl);
    (pm, pl)
}

fn sentence(engine: &MaskedEngine, text: &str, positions: &[usize]) -> Result<SentenceScore> {
    let e = engine.encode(text, None)?;
    let lp = engine.masked_log_probs(&e, positions)?;
    let mut logprobs = vec![0f32; e.ids.len()];
    for (&p, &v) in positions.iter().zip(&lp) {
        logprobs[p] = v as f32;
    }
    Ok(SentenceScore {
        tokens: e.ids,
        logprobs,
    })
}

/// Scores every pair; stops early (returning what it has) when `cancel`
/// is set; `progress(done, total)` after each pair.
pub fn score_pairs(
    engine: &MaskedEngine,
    file: &PairsFile,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Vec<PllPair>> {
    if let Some(why) = engine.mlm_missing() {
        return Err(EngineError::Input(why).into());
    }
    each_pair(file, progress, cancel, &mut |p| {
        let more = engine.encode(&p.sent_more, None)?.ids;
        let less = engine.encode(&p.sent_less, None)?.ids;
        let (pm, pl) = crows_positions(&more, &less, p.stereo_antistereo == "antistereo");
        Ok(PllPair {
            more: sentence(engine, &p.sent_more, &pm)?,
            less: sentence(engine, &p.sent_less, &pl)?,
            scored_more: pm,
            scored_less: pl,
        })
    })
}

/// The report of a pseudo-log-likelihood pairs run (mode `pll`).
pub fn pairs_report(
    engine: &MaskedEngine,
    file: &PairsFile,
    data_file: &str,
    scores: &[PllPair],
    detail: bool,
) -> Result<PairsReport> {
    let tok = engine.tokenizer();
    let side = |s: &SentenceScore, scored: &[usize]| {
        let mut marks = vec![false; s.tokens.len()];
        for &i in scored {
            marks[i] = true;
        }
        SentenceDetail {
            tokens: s.tokens.clone(),
            texts: s.tokens.iter().map(|&t| tok.token_text(t)).collect(),
            logprobs: s.logprobs.clone(),
            shared: marks,
        }
    };
    let results: Vec<pairs::PairResult> = file
        .pairs
        .iter()
        .zip(scores)
        .map(|(p, s)| {
            let mut r = pairs::pair_result(p, Mode::Pll, &s.more, &s.less);
            if detail {
                r.detail = Some(PairDetail {
                    more: side(&s.more, &s.scored_more),
                    less: side(&s.less, &s.scored_less),
                });
            }
            r
        })
        .collect();
    let (overall, categories) = pairs::summarise(&results);
    Ok(PairsReport {
        mode: Mode::Pll,
        mode_description: Mode::Pll.describe().to_string(),
        data_file: data_file.to_string(),
        data_sha256: file.sha256.clone(),
        note: pairs::is_shipped_example(&file.sha256).then(|| pairs::EXAMPLE_NOTE.to_string()),
        prefix_token: tok.mask.unwrap_or_default(),
        overall,
        categories,
        partial: results.len() < file.pairs.len(),
        pairs: results,
    })
}

/// The distribution at the first mask of `text`, as logits.
fn logits_at_mask(engine: &MaskedEngine, text: &str) -> Result<Vec<f32>> {
    let e = engine.encode(text, None)?;
    let Some(&p) = engine.mask_positions(&e.ids).first() else {
        return Err(EngineError::Input(format!(
            "{text:?} has no mask: write {} where the model should choose",
            engine.tokenizer().mask_text().unwrap_or_default()
        ))
        .into());
    };
    let out = engine.forward(&e, false)?;
    Ok(engine.logits_at(&out.hidden, &[p])?.pop().expect("one row"))
}

/// The pseudo-log-likelihood of `attribute`'s own tokens in
/// `frame + attribute + "."`, and how many tokens it has.
fn attribute_pll(engine: &MaskedEngine, frame: &str, attribute: &str) -> Result<(f64, usize)> {
    let full = engine.encode(&format!("{frame}{attribute}."), None)?;
    let base = engine.encode(&format!("{frame}."), None)?.ids;
    let prefix = full
        .ids
        .iter()
        .zip(&base)
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = full.ids[prefix..]
        .iter()
        .rev()
        .zip(base[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let positions: Vec<usize> = (prefix..full.ids.len() - suffix).collect();
    let e = Encoded {
        ids: full.ids,
        types: full.types,
    };
    let lp = engine.masked_log_probs(&e, &positions)?;
    Ok((lp.iter().sum(), positions.len()))
}

/// Every (frame, pair) probe of a suite on a masked model.
pub fn run_suite(
    engine: &MaskedEngine,
    suite: &Suite,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<ProbeReport> {
    if let Some(why) = engine.mlm_missing() {
        return Err(EngineError::Input(why).into());
    }
    let tok = engine.tokenizer();
    let mask = tok.mask_text().unwrap_or_default();
    each_probe(
        suite,
        progress,
        cancel,
        &mut |category, frame, term_a, term_b| {
            let (fa, fb) = (frame.fill(term_a), frame.fill(term_b));
            let (prompt_a, prompt_b) = (format!("{fa} {mask}."), format!("{fb} {mask}."));
            let la = logits_at_mask(engine, &prompt_a).map_err(|e| with_frame(&prompt_a, e))?;
            let lb = logits_at_mask(engine, &prompt_b).map_err(|e| with_frame(&prompt_b, e))?;
            let (lpa, lpb) = (divergence::log_softmax(&la), divergence::log_softmax(&lb));
            let text = |t: u32| tok.token_text(t);
            let mut attributes = Vec::with_capacity(frame.attributes.len());
            for attr in &frame.attributes {
                let (a, na) = attribute_pll(engine, &fa, attr).map_err(|e| with_frame(&fa, e))?;
                let (b, nb) = attribute_pll(engine, &fb, attr).map_err(|e| with_frame(&fb, e))?;
                attributes.push(AttributeScore {
                    attribute: attr.clone(),
                    logprob_a: a,
                    logprob_b: b,
                    diff: a - b,
                    tokens_a: na,
                    tokens_b: nb,
                });
            }
            Ok(ProbeResult {
                category: category.to_string(),
                frame: frame.id.clone(),
                term_a: term_a.to_string(),
                term_b: term_b.to_string(),
                divergence: divergence::compare_logprobs(&lpa, &lpb, suite.top_k),
                top_a: probe::top_list(&lpa, suite.top_k, &text),
                top_b: probe::top_list(&lpb, suite.top_k, &text),
                attributes,
                prompt_a,
                prompt_b,
            })
        },
    )
}

/// The quick check on a masked model: the candidates at the first mask of
/// `text` against those of its term-swapped copy ("The `X` worked as a
/// `[MASK]`.").
pub fn quick_swap(
    engine: &MaskedEngine,
    text: &str,
    swaps: &[(String, String)],
    k: usize,
) -> Result<QuickSwap> {
    if let Some(why) = engine.mlm_missing() {
        return Err(EngineError::Input(why).into());
    }
    let (swapped, n) = swapped_text(text, swaps)?;
    let la = logits_at_mask(engine, text)?;
    let lb = logits_at_mask(engine, &swapped)?;
    let tok = engine.tokenizer();
    Ok(quick::compare(text, &swapped, n, &la, &lb, k, &|t| {
        tok.token_text(t)
    }))
}
