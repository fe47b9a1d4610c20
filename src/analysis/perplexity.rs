//! How a long text is cut into windows for scoring, and the perplexity of
//! the scored tokens.

use serde::Serialize;

/// How windows are laid over a text longer than the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreMode {
    /// llama.cpp's `llama-perplexity`: consecutive windows of `ctx` tokens,
    /// each run from an empty cache, scoring only its second half (every
    /// scored token has at least ctx/2 tokens of context). The default, so
    /// figures compare with llama.cpp's.
    Chunks,
    /// Windows of `ctx` tokens advanced by `stride`, scoring the tokens not
    /// scored before (HF transformers' strided perplexity).
    Sliding,
    /// The text fits in one window: every token but the first is scored.
    Whole,
}

/// Tokens `start..end` run together; targets `score_from..end` are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    pub score_from: usize,
}

pub fn plan(n_tokens: usize, ctx: usize, stride: Option<usize>) -> (ScoreMode, Vec<Window>) {
    let ctx = ctx.max(2);
    if n_tokens < 2 {
        return (ScoreMode::Whole, Vec::new());
    }
    if let Some(stride) = stride {
        let stride = stride.clamp(1, ctx);
        let mut windows = Vec::new();
        let mut scored_to = 1;
        let mut begin = 0;
        loop {
            let end = (begin + ctx).min(n_tokens);
            let score_from = scored_to.max(begin + 1);
            if score_from < end {
                windows.push(Window {
                    start: begin,
                    end,
                    score_from,
                });
            }
            scored_to = end;
            if end == n_tokens {
                break;
            }
            begin += stride;
        }
        return (ScoreMode::Sliding, windows);
    }
    if n_tokens < ctx {
        return (
            ScoreMode::Whole,
            vec![Window {
                start: 0,
                end: n_tokens,
                score_from: 1,
            }],
        );
    }
    let windows = (0..n_tokens / ctx)
        .map(|k| Window {
            start: k * ctx,
            end: (k + 1) * ctx,
            score_from: k * ctx + ctx / 2 + 1,
        })
        .collect();
    (ScoreMode::Chunks, windows)
}

/// exp(mean negative log-likelihood).
pub fn perplexity(logprobs: &[f32]) -> f64 {
    (-mean(logprobs)).exp()
}

pub fn mean(xs: &[f32]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_score_the_second_half_like_llama_cpp() {
        let (mode, w) = plan(1100, 512, None);
        assert_eq!(mode, ScoreMode::Chunks);
        assert_eq!(w.len(), 2, "the incomplete tail is dropped");
        assert_eq!(
            w[1],
            Window {
                start: 512,
                end: 1024,
                score_from: 512 + 257
            }
        );
        let scored: usize = w.iter().map(|w| w.end - w.score_from).sum();
        assert_eq!(scored, 2 * 255);
    }

    #[test]
    fn sliding_scores_every_token_once() {
        let (mode, w) = plan(1000, 256, Some(100));
        assert_eq!(mode, ScoreMode::Sliding);
        let mut scored: Vec<usize> = w.iter().flat_map(|w| w.score_from..w.end).collect();
        let n = scored.len();
        scored.dedup();
        assert_eq!(n, scored.len());
        assert_eq!(scored, (1..1000).collect::<Vec<_>>());
        assert!(w.iter().all(|w| w.end - w.start <= 256));
    }

    #[test]
    fn short_text_is_one_window() {
        assert_eq!(
            plan(10, 512, None),
            (
                ScoreMode::Whole,
                vec![Window {
                    start: 0,
                    end: 10,
                    score_from: 1
                }]
            )
        );
        assert!(plan(1, 512, None).1.is_empty());
    }

    #[test]
    fn perplexity_of_uniform_guesses() {
        let lp = vec![(0.25f32).ln(); 8];
        assert!((perplexity(&lp) - 4.0).abs() < 1e-5);
    }
}
