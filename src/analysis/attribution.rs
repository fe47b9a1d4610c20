//! Attribution by occlusion: how much each input token matters to one
//! output token, measured by leaving it out and scoring the output again.
//! Model-agnostic and exact for what it asks (no gradients), one forward
//! pass per input token.

use serde::Serialize;

use super::bias::divergence::log_softmax;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TokenScore {
    pub position: usize,
    pub token_id: u32,
    pub text: String,
    /// ln p(target) with every token minus ln p(target) without this one:
    /// positive when the token supports the target.
    pub score: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribution {
    pub method: &'static str,
    pub target: u32,
    pub target_text: String,
    /// ln p(target | the whole prompt).
    pub logprob: f64,
    pub tokens: Vec<TokenScore>,
}

/// Scores from the intact logits and, for each position, the logits
/// without that token (`None` where it cannot be left out: the BOS).
pub fn occlusion(
    target: u32,
    tokens: &[u32],
    intact: &[f32],
    without: &[Option<Vec<f32>>],
    text: &dyn Fn(u32) -> String,
) -> Attribution {
    let lp = |logits: &[f32]| log_softmax(logits)[target as usize];
    let base = lp(intact);
    Attribution {
        method: "occlusion (leave one token out)",
        target,
        target_text: text(target),
        logprob: base,
        tokens: tokens
            .iter()
            .zip(without)
            .enumerate()
            .map(|(position, (&token_id, w))| TokenScore {
                position,
                token_id,
                text: text(token_id),
                score: w.as_ref().map_or(0.0, |w| base - lp(w)),
            })
            .collect(),
    }
}
