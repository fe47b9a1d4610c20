//! The statistics of a bias report: Wilson score intervals, the exact
//! two-sided binomial test, Holm's step-down adjustment, numpy's linear
//! percentile and a seeded percentile bootstrap of the mean.
//!
//! Checked against statsmodels and scipy in `tests/bias_stats.rs`
//! (fixture `tests/fixtures/bias_stats.json`, made by
//! `scripts/reference/bias_fixtures.py`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The standard normal quantile for a 95% two-sided interval
/// (`scipy.stats.norm.isf(0.025)`).
pub const Z95: f64 = 1.959_963_984_540_054;

/// A two-sided interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

/// Wilson score interval for `k` successes in `n` trials at normal quantile
/// `z` (statsmodels `proportion_confint(method="wilson")`). None when n = 0.
pub fn wilson(k: u64, n: u64, z: f64) -> Option<Interval> {
    if n == 0 || k > n {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let z2 = z * z;
    let denom = n + z2;
    let center = (k + z2 / 2.0) / denom;
    let half = z / denom * (k * (n - k) / n + z2 / 4.0).sqrt();
    Some(Interval {
        lo: center - half,
        hi: center + half,
    })
}

/// ln(i!) for i in 0..=n.
fn ln_factorials(n: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut acc = 0.0f64;
    out.push(0.0);
    for i in 1..=n {
        acc += (i as f64).ln();
        out.push(acc);
    }
    out
}

/// Exact two-sided binomial test of `k` successes in `n` trials against
/// success probability `p`, as scipy's `binomtest(k, n, p).pvalue`: the
/// total probability of every outcome no more likely than `k` (with scipy's
/// relative tolerance of 1e-7 for ties). None when n = 0, k > n or p is not
/// in [0, 1].
pub fn binom_test(k: u64, n: u64, p: f64) -> Option<f64> {
    if n == 0 || k > n || !(0.0..=1.0).contains(&p) {
        return None;
    }
    if p == 0.0 {
        return Some(if k == 0 { 1.0 } else { 0.0 });
    }
    if p == 1.0 {
        return Some(if k == n { 1.0 } else { 0.0 });
    }
    if (k as f64) == p * n as f64 {
        return Some(1.0);
    }
    let lf = ln_factorials(n);
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let lpmf = |i: u64| {
        lf[n as usize] - lf[i as usize] - lf[(n - i) as usize] + i as f64 * lp + (n - i) as f64 * lq
    };
    let threshold = lpmf(k) + (1.0f64 + 1e-7).ln();
    let terms: Vec<f64> = (0..=n).map(lpmf).filter(|&l| l <= threshold).collect();
    let max = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = terms.iter().map(|l| (l - max).exp()).sum();
    Some((max + sum.ln()).exp().min(1.0))
}

/// Holm's step-down adjusted p-values, in the order given
/// (statsmodels `multipletests(method="holm")`).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// The q-th percentile (0..=100) with linear interpolation between order
/// statistics (numpy's default). None for an empty slice or q outside 0..=100.
pub fn percentile(x: &[f64], q: f64) -> Option<f64> {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    percentile_sorted(&s, q)
}

fn percentile_sorted(s: &[f64], q: f64) -> Option<f64> {
    if s.is_empty() || !(0.0..=100.0).contains(&q) {
        return None;
    }
    let h = (s.len() - 1) as f64 * q / 100.0;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    Some(s[lo] + (h - lo as f64) * (s[hi] - s[lo]))
}

pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Percentile bootstrap interval of the mean at `level` (0.95 for 95%):
/// `n_resamples` resamples with replacement drawn by ChaCha8 seeded with
/// `seed`, so the same data and seed give the same interval. None for an
/// empty sample or no resamples.
pub fn bootstrap_mean(x: &[f64], n_resamples: usize, level: f64, seed: u64) -> Option<Interval> {
    if x.is_empty() || n_resamples == 0 || !(0.0..1.0).contains(&level) {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = x.len();
    let mut means: Vec<f64> = (0..n_resamples)
        .map(|_| (0..n).map(|_| x[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let alpha = (1.0 - level) / 2.0;
    Some(Interval {
        lo: percentile_sorted(&means, alpha * 100.0)?,
        hi: percentile_sorted(&means, (1.0 - alpha) * 100.0)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_contains_the_proportion_and_stays_in_unit_interval() {
        for (k, n) in [(0, 5), (5, 5), (3, 7), (50, 100)] {
            let w = wilson(k, n, Z95).unwrap();
            let p = k as f64 / n as f64;
            assert!(
                w.lo <= p && p <= w.hi && w.lo >= -1e-12 && w.hi <= 1.0 + 1e-12,
                "{k}/{n}: {w:?}"
            );
        }
        assert!(wilson(0, 0, Z95).is_none());
        assert!(wilson(3, 2, Z95).is_none());
    }

    #[test]
    fn binomial_test_hand_values() {
        // n = 10, k = 0 or 10 at p = 0.5: 2 / 1024.
        assert!((binom_test(0, 10, 0.5).unwrap() - 2.0 / 1024.0).abs() < 1e-15);
        assert!((binom_test(10, 10, 0.5).unwrap() - 2.0 / 1024.0).abs() < 1e-15);
        assert_eq!(binom_test(5, 10, 0.5), Some(1.0));
        // k = 2: P(X <= 2) + P(X >= 8) = 2 * 56 / 1024.
        assert!((binom_test(2, 10, 0.5).unwrap() - 112.0 / 1024.0).abs() < 1e-14);
        assert!(binom_test(1, 0, 0.5).is_none());
    }

    #[test]
    fn holm_is_monotone_and_capped() {
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        assert_eq!(adj, vec![0.03, 0.06, 0.06, 0.02]);
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn percentile_interpolates() {
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0], 25.0), Some(1.25));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn bootstrap_is_seeded() {
        let x: Vec<f64> = (0..30).map(|i| (i as f64 * 0.37).sin()).collect();
        let a = bootstrap_mean(&x, 2000, 0.95, 7).unwrap();
        assert_eq!(a, bootstrap_mean(&x, 2000, 0.95, 7).unwrap());
        assert_ne!(a, bootstrap_mean(&x, 2000, 0.95, 8).unwrap());
        let m = mean(&x);
        assert!(a.lo < m && m < a.hi);
        // A constant sample has a zero-width interval.
        let c = bootstrap_mean(&[2.0; 5], 100, 0.95, 1).unwrap();
        assert_eq!((c.lo, c.hi), (2.0, 2.0));
    }
}
