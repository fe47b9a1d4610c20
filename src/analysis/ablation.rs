//! Head ablation: what switching heads off does to the next-token
//! distribution. Plain logits in (the engine's `forward_ablated`), one
//! effect out per ablation.

use serde::Serialize;

use super::bias::divergence::{kl, log_softmax};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AblationEffect {
    /// (layer, head) pairs switched off together.
    pub heads: Vec<(usize, usize)>,
    /// KL(intact || ablated) of the next-token distributions, in nats.
    pub kl: f64,
    /// ln p(the intact model's top token) ablated minus intact.
    pub delta_logprob: f64,
    /// The ablated model's top token.
    pub top_token: u32,
    pub top_text: String,
    pub top_p: f64,
}

/// The effect of one ablation given the intact and the ablated logits.
pub fn effect(
    heads: Vec<(usize, usize)>,
    intact: &[f32],
    ablated: &[f32],
    text: &dyn Fn(u32) -> String,
) -> AblationEffect {
    let (li, la) = (log_softmax(intact), log_softmax(ablated));
    let argmax = |l: &[f64]| {
        (0..l.len())
            .max_by(|&a, &b| l[a].total_cmp(&l[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    let (best, top) = (argmax(&li), argmax(&la));
    AblationEffect {
        heads,
        kl: kl(&li, &la),
        delta_logprob: la[best] - li[best],
        top_token: top as u32,
        top_text: text(top as u32),
        top_p: la[top].exp(),
    }
}

#[cfg(test)]
mod tests {
    use super::effect;

    #[test]
    fn no_change_is_no_effect_and_a_flip_is_seen() {
        let a = [2.0f32, 1.0, 0.0];
        let same = effect(vec![(0, 0)], &a, &a, &|t| t.to_string());
        assert!(same.kl.abs() < 1e-12 && same.delta_logprob.abs() < 1e-12);
        let flipped = effect(vec![(0, 1)], &a, &[0.0, 1.0, 2.0], &|t| t.to_string());
        assert!(flipped.kl > 0.5 && flipped.delta_logprob < -1.0);
        assert_eq!(flipped.top_token, 2);
    }
}
