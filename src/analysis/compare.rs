//! Side-by-side runs: what each column's output looks like in numbers, and
//! where the columns first part ways.

use std::collections::HashSet;

use serde::Serialize;

use crate::engine::types::StepRecord;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ColumnStats {
    pub tokens: usize,
    pub tok_s: f64,
    /// Mean ln p_raw of the chosen tokens.
    pub mean_logprob: f64,
    /// exp(-mean_logprob): the model's perplexity on its own output.
    pub perplexity: f64,
    /// Mean entropy of the raw distributions, in nats.
    pub mean_entropy: f64,
    /// Distinct unigrams / unigrams.
    pub distinct_1: f64,
    /// Distinct bigrams / bigrams.
    pub distinct_2: f64,
    /// Share of trigrams that already occurred earlier in the output.
    pub repetition_rate: f64,
}

fn distinct(ids: &[u32], n: usize) -> f64 {
    if ids.len() < n || n == 0 {
        return f64::NAN;
    }
    let grams: Vec<&[u32]> = ids.windows(n).collect();
    let unique: HashSet<&[u32]> = grams.iter().copied().collect();
    unique.len() as f64 / grams.len() as f64
}

fn repetition_rate(ids: &[u32]) -> f64 {
    if ids.len() < 3 {
        return 0.0;
    }
    let mut seen = HashSet::new();
    let mut repeats = 0;
    let grams: Vec<&[u32]> = ids.windows(3).collect();
    for g in &grams {
        if !seen.insert(*g) {
            repeats += 1;
        }
    }
    repeats as f64 / grams.len() as f64
}

pub fn column_stats(steps: &[StepRecord], decode_s: f64) -> ColumnStats {
    let n = steps.len();
    let mean = |f: &dyn Fn(&StepRecord) -> f64| {
        if n == 0 {
            f64::NAN
        } else {
            steps.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let mean_logprob = mean(&|s| s.logprob as f64);
    let ids: Vec<u32> = steps.iter().map(|s| s.token_id).collect();
    ColumnStats {
        tokens: n,
        tok_s: if decode_s > 0.0 {
            n as f64 / decode_s
        } else {
            0.0
        },
        mean_logprob,
        perplexity: (-mean_logprob).exp(),
        mean_entropy: mean(&|s| s.entropy as f64),
        distinct_1: distinct(&ids, 1),
        distinct_2: distinct(&ids, 2),
        repetition_rate: repetition_rate(&ids),
    }
}

/// The first step at which the columns chose different tokens.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Divergence {
    pub step: usize,
    /// Each column's token there.
    pub tokens: Vec<u32>,
    /// `probs[c][j]`: column c's raw probability of column j's token (None
    /// when that token is outside column c's recorded alternatives).
    pub probs: Vec<Vec<Option<f32>>>,
}

pub fn first_divergence(columns: &[&[StepRecord]]) -> Option<Divergence> {
    let shortest = columns.iter().map(|c| c.len()).min()?;
    let step = (0..shortest).find(|&i| {
        columns
            .iter()
            .any(|c| c[i].token_id != columns[0][i].token_id)
    })?;
    let tokens: Vec<u32> = columns.iter().map(|c| c[step].token_id).collect();
    let probs = columns
        .iter()
        .map(|c| {
            tokens
                .iter()
                .map(|&t| {
                    c[step]
                        .top
                        .iter()
                        .find(|a| a.token_id == t)
                        .map(|a| a.p_raw)
                })
                .collect()
        })
        .collect();
    Some(Divergence {
        step,
        tokens,
        probs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::types::TopToken;

    fn step(i: usize, id: u32, p: f32, alt: u32) -> StepRecord {
        StepRecord {
            step: i,
            position: 10 + i,
            token_id: id,
            text: String::new(),
            p_raw: p,
            p_final: p,
            logprob: p.ln(),
            rank: 1,
            entropy: 1.0,
            top: vec![
                TopToken {
                    token_id: id,
                    text: String::new(),
                    p_raw: p,
                    p_final: p,
                    removed_by: None,
                },
                TopToken {
                    token_id: alt,
                    text: String::new(),
                    p_raw: 1.0 - p,
                    p_final: 0.0,
                    removed_by: None,
                },
            ],
            attention: None,
        }
    }

    #[test]
    fn stats_of_a_repetitive_output() {
        let steps: Vec<StepRecord> = [1, 2, 3, 1, 2, 3]
            .iter()
            .enumerate()
            .map(|(i, &t)| step(i, t, 0.5, 9))
            .collect();
        let s = column_stats(&steps, 2.0);
        assert_eq!(s.tokens, 6);
        assert_eq!(s.tok_s, 3.0);
        assert!((s.perplexity - 2.0).abs() < 1e-6);
        assert_eq!(s.distinct_1, 0.5);
        assert_eq!(s.distinct_2, 3.0 / 5.0);
        assert_eq!(s.repetition_rate, 1.0 / 4.0);
    }

    #[test]
    fn divergence_reports_both_columns_views() {
        let a: Vec<StepRecord> = vec![step(0, 5, 0.9, 6), step(1, 7, 0.6, 8)];
        let b: Vec<StepRecord> = vec![step(0, 5, 0.9, 6), step(1, 8, 0.3, 7)];
        let d = first_divergence(&[&a, &b]).unwrap();
        assert_eq!(d.step, 1);
        assert_eq!(d.tokens, vec![7, 8]);
        assert_eq!(d.probs[0], vec![Some(0.6), Some(1.0 - 0.6)]);
        assert!(first_divergence(&[&a, &a]).is_none());
    }
}
