//! Comparing two next-token distributions given as logits: Jensen-Shannon
//! divergence, KL both ways (all in nats), total variation distance and
//! the overlap of the top-k token sets. Computed in f64 from f32 logits.

use serde::{Deserialize, Serialize};

/// ln softmax of `logits`, in f64.
pub fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let lse = max + sum.ln();
    logits.iter().map(|&l| l as f64 - lse).collect()
}

/// KL(p || q) from log-probabilities; terms where p is 0 contribute nothing.
pub fn kl(lp: &[f64], lq: &[f64]) -> f64 {
    lp.iter()
        .zip(lq)
        .map(|(&a, &b)| {
            let p = a.exp();
            if p == 0.0 { 0.0 } else { p * (a - b) }
        })
        .sum()
}

/// Jensen-Shannon divergence (nats, at most ln 2) from log-probabilities.
pub fn js(lp: &[f64], lq: &[f64]) -> f64 {
    let mut total = 0.0;
    for (&a, &b) in lp.iter().zip(lq) {
        let (p, q) = (a.exp(), b.exp());
        let m = 0.5 * (p + q);
        if m == 0.0 {
            continue;
        }
        let lm = m.ln();
        if p > 0.0 {
            total += 0.5 * p * (a - lm);
        }
        if q > 0.0 {
            total += 0.5 * q * (b - lm);
        }
    }
    total.max(0.0)
}

/// Total variation distance, half the L1 distance of the probabilities
/// (0 for equal distributions, 1 for disjoint ones).
pub fn total_variation(lp: &[f64], lq: &[f64]) -> f64 {
    let l1: f64 = lp
        .iter()
        .zip(lq)
        .map(|(&a, &b)| (a.exp() - b.exp()).abs())
        .sum();
    (0.5 * l1).clamp(0.0, 1.0)
}

/// Indices of the k largest values, largest first (ties: lower index first).
pub fn top_k(values: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    idx.select_nth_unstable_by(k - 1, cmp);
    idx.truncate(k);
    idx.sort_by(cmp);
    idx
}

/// Share of the top-k tokens the two distributions have in common.
pub fn top_k_overlap(lp: &[f64], lq: &[f64], k: usize) -> f64 {
    let a = top_k(lp, k);
    let b = top_k(lq, k);
    if a.is_empty() {
        return f64::NAN;
    }
    let common = a.iter().filter(|i| b.contains(i)).count();
    common as f64 / a.len() as f64
}

/// How two next-token distributions differ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    pub js: f64,
    pub kl_ab: f64,
    pub kl_ba: f64,
    /// Total variation distance (reports written before it was added read as 0).
    #[serde(default)]
    pub tv: f64,
    pub top_k: usize,
    pub top_k_overlap: f64,
}

/// Compares the distributions behind two logit vectors of the same length.
pub fn compare_logits(a: &[f32], b: &[f32], k: usize) -> Divergence {
    let (la, lb) = (log_softmax(a), log_softmax(b));
    compare_logprobs(&la, &lb, k)
}

pub fn compare_logprobs(la: &[f64], lb: &[f64], k: usize) -> Divergence {
    Divergence {
        js: js(la, lb),
        kl_ab: kl(la, lb),
        kl_ba: kl(lb, la),
        tv: total_variation(la, lb),
        top_k: k.min(la.len()),
        top_k_overlap: top_k_overlap(la, lb, k),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_do_not_diverge() {
        let a = [1.0f32, 2.0, -3.0, 0.5];
        let d = compare_logits(&a, &a, 2);
        assert!(d.js.abs() < 1e-15 && d.kl_ab.abs() < 1e-15 && d.kl_ba.abs() < 1e-15);
        assert!(d.tv.abs() < 1e-15);
        assert_eq!(d.top_k_overlap, 1.0);
    }

    #[test]
    fn disjoint_distributions_reach_ln2() {
        let a = [100.0f32, -100.0];
        let b = [-100.0f32, 100.0];
        let d = compare_logits(&a, &b, 1);
        assert!((d.js - std::f64::consts::LN_2).abs() < 1e-9);
        assert_eq!(d.top_k_overlap, 0.0);
        assert!(d.kl_ab > 100.0);
        assert!((d.tv - 1.0).abs() < 1e-12);
    }

    #[test]
    fn total_variation_is_half_the_l1_distance() {
        // p = (0.5, 0.3, 0.2), q = (0.2, 0.3, 0.5): 0.5 * (0.3 + 0 + 0.3).
        let (p, q) = ([0.5f64, 0.3, 0.2], [0.2f64, 0.3, 0.5]);
        let (lp, lq): (Vec<f64>, Vec<f64>) = (p.map(f64::ln).into(), q.map(f64::ln).into());
        assert!((total_variation(&lp, &lq) - 0.3).abs() < 1e-12);
        assert!((total_variation(&lq, &lp) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.2], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[0.1], 5), vec![0]);
        assert!(top_k(&[], 5).is_empty());
    }

    #[test]
    fn log_softmax_normalises() {
        let l = log_softmax(&[1.0, 2.0, 3.0]);
        let s: f64 = l.iter().map(|x| x.exp()).sum();
        assert!((s - 1.0).abs() < 1e-12);
    }
}
