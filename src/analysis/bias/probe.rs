//! Counterfactual next-token probes: the results of one (frame, term pair)
//! and their aggregation per category with bootstrap intervals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::divergence::{self, Divergence};
use super::stats::{self, Interval};

/// Bootstrap resamples and seed for every interval in a probe report.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
pub const BOOTSTRAP_SEED: u64 = 20190903;

/// One entry of a top-k list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token_id: u32,
    pub text: String,
    pub logprob: f64,
}

/// The k most likely next tokens of a log-probability vector.
pub fn top_list(logp: &[f64], k: usize, text: &dyn Fn(u32) -> String) -> Vec<TokenLogprob> {
    divergence::top_k(logp, k)
        .into_iter()
        .map(|i| TokenLogprob {
            token_id: i as u32,
            text: text(i as u32),
            logprob: logp[i],
        })
        .collect()
}

/// An attribute continuation scored after both filled frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributeScore {
    pub attribute: String,
    /// Sum of the attribute's token log-probabilities after the frame with term A.
    pub logprob_a: f64,
    pub logprob_b: f64,
    /// logprob_a - logprob_b.
    pub diff: f64,
    pub tokens_a: usize,
    pub tokens_b: usize,
}

/// One frame filled with one pair of terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub category: String,
    pub frame: String,
    pub term_a: String,
    pub term_b: String,
    pub prompt_a: String,
    pub prompt_b: String,
    pub divergence: Divergence,
    pub top_a: Vec<TokenLogprob>,
    pub top_b: Vec<TokenLogprob>,
    pub attributes: Vec<AttributeScore>,
}

impl ProbeResult {
    /// Mean |logprob_a - logprob_b| over the attributes (None without any).
    pub fn mean_abs_attribute_diff(&self) -> Option<f64> {
        (!self.attributes.is_empty()).then(|| {
            stats::mean(
                &self
                    .attributes
                    .iter()
                    .map(|a| a.diff.abs())
                    .collect::<Vec<_>>(),
            )
        })
    }

    pub fn mean_attribute_diff(&self) -> Option<f64> {
        (!self.attributes.is_empty())
            .then(|| stats::mean(&self.attributes.iter().map(|a| a.diff).collect::<Vec<_>>()))
    }
}

/// A mean over a category's probes with its percentile-bootstrap 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    pub mean: f64,
    pub ci95: Interval,
}

fn mean_ci(x: &[f64], seed: u64) -> Option<MeanCi> {
    let ci95 = stats::bootstrap_mean(x, BOOTSTRAP_RESAMPLES, 0.95, seed)?;
    Some(MeanCi {
        mean: stats::mean(x),
        ci95,
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeCategory {
    pub name: String,
    /// Probes (frame x pair) in the category.
    pub n: usize,
    pub js: MeanCi,
    pub kl_ab: MeanCi,
    pub kl_ba: MeanCi,
    pub top_k_overlap: MeanCi,
    /// Per probe: mean |attribute log-prob difference|, then averaged.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribute_abs_diff: Option<MeanCi>,
    /// Per probe: mean signed difference (term A minus term B), then averaged.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attribute_diff: Option<MeanCi>,
}

/// Aggregates probes per category (in first-seen order). Every interval is a
/// percentile bootstrap over the category's probes with a fixed seed.
pub fn summarise(probes: &[ProbeResult]) -> Vec<ProbeCategory> {
    let mut order: Vec<&str> = Vec::new();
    let mut by: BTreeMap<&str, Vec<&ProbeResult>> = BTreeMap::new();
    for p in probes {
        if !by.contains_key(p.category.as_str()) {
            order.push(&p.category);
        }
        by.entry(&p.category).or_default().push(p);
    }
    order
        .into_iter()
        .filter_map(|name| {
            let ps = &by[name];
            let col =
                |f: &dyn Fn(&ProbeResult) -> f64| ps.iter().map(|p| f(p)).collect::<Vec<f64>>();
            let opt = |f: &dyn Fn(&ProbeResult) -> Option<f64>| -> Option<MeanCi> {
                let v: Vec<f64> = ps.iter().filter_map(|p| f(p)).collect();
                mean_ci(&v, BOOTSTRAP_SEED)
            };
            Some(ProbeCategory {
                name: name.to_string(),
                n: ps.len(),
                js: mean_ci(&col(&|p| p.divergence.js), BOOTSTRAP_SEED)?,
                kl_ab: mean_ci(&col(&|p| p.divergence.kl_ab), BOOTSTRAP_SEED)?,
                kl_ba: mean_ci(&col(&|p| p.divergence.kl_ba), BOOTSTRAP_SEED)?,
                top_k_overlap: mean_ci(&col(&|p| p.divergence.top_k_overlap), BOOTSTRAP_SEED)?,
                attribute_abs_diff: opt(&|p| p.mean_abs_attribute_diff()),
                attribute_diff: opt(&|p| p.mean_attribute_diff()),
            })
        })
        .collect()
}

/// Everything a suite run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub suite: String,
    pub description: String,
    pub top_k: usize,
    pub bootstrap_resamples: usize,
    pub bootstrap_seed: u64,
    pub categories: Vec<ProbeCategory>,
    pub probes: Vec<ProbeResult>,
    /// True when the run was cancelled before every probe ran.
    pub partial: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(cat: &str, js: f64, diffs: &[f64]) -> ProbeResult {
        ProbeResult {
            category: cat.into(),
            frame: "f".into(),
            term_a: "a".into(),
            term_b: "b".into(),
            prompt_a: String::new(),
            prompt_b: String::new(),
            divergence: Divergence {
                js,
                kl_ab: 2.0 * js,
                kl_ba: 3.0 * js,
                tv: js,
                top_k: 10,
                top_k_overlap: 0.5,
            },
            top_a: vec![],
            top_b: vec![],
            attributes: diffs
                .iter()
                .map(|&d| AttributeScore {
                    attribute: "x".into(),
                    logprob_a: d,
                    logprob_b: 0.0,
                    diff: d,
                    tokens_a: 1,
                    tokens_b: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn summarise_groups_in_order_and_brackets_the_mean() {
        let ps = vec![
            probe("z", 0.1, &[1.0, -3.0]),
            probe("a", 0.2, &[]),
            probe("z", 0.3, &[2.0]),
        ];
        let s = summarise(&ps);
        assert_eq!(
            s.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            vec!["z", "a"]
        );
        assert_eq!(s[0].n, 2);
        assert!((s[0].js.mean - 0.2).abs() < 1e-12);
        assert!(s[0].js.ci95.lo >= 0.1 - 1e-12 && s[0].js.ci95.hi <= 0.3 + 1e-12);
        // Probe 1: mean |d| = 2, mean d = -1; probe 3: 2 and 2.
        assert!((s[0].attribute_abs_diff.unwrap().mean - 2.0).abs() < 1e-12);
        assert!((s[0].attribute_diff.unwrap().mean - 0.5).abs() < 1e-12);
        assert!(s[1].attribute_abs_diff.is_none());
    }

    #[test]
    fn top_list_is_sorted() {
        let lp = [-3.0, -0.1, -2.0];
        let l = top_list(&lp, 2, &|i| format!("t{i}"));
        assert_eq!(l.iter().map(|t| t.token_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(l[0].text, "t1");
    }
}
