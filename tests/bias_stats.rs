//! The bias statistics against scipy / statsmodels / numpy values in
//! tests/fixtures/bias_stats.json (made by scripts/reference/bias_fixtures.py).

use lmscope::analysis::bias::{divergence, stats};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/bias_stats.json"
    ))
    .expect("fixture present");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(f).collect()
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * b.abs()
}

#[test]
fn wilson_matches_statsmodels() {
    let fx = fixture();
    for c in fx["wilson"].as_array().unwrap() {
        let (k, n) = (c["k"].as_u64().unwrap(), c["n"].as_u64().unwrap());
        let w = stats::wilson(k, n, stats::Z95).unwrap();
        assert!(
            close(w.lo, f(&c["lo"]), 1e-12, 1e-14),
            "{k}/{n}: lo {} vs {}",
            w.lo,
            c["lo"]
        );
        assert!(
            close(w.hi, f(&c["hi"]), 1e-12, 1e-14),
            "{k}/{n}: hi {} vs {}",
            w.hi,
            c["hi"]
        );
    }
}

#[test]
fn binomial_test_matches_scipy() {
    let fx = fixture();
    for c in fx["binom"].as_array().unwrap() {
        let (k, n, p) = (
            c["k"].as_u64().unwrap(),
            c["n"].as_u64().unwrap(),
            f(&c["p"]),
        );
        let ours = stats::binom_test(k, n, p).unwrap();
        let want = f(&c["p_value"]);
        assert!(
            close(ours, want, 1e-9, 1e-300),
            "binomtest({k}, {n}, {p}): {ours} vs scipy {want}"
        );
    }
}

#[test]
fn holm_matches_statsmodels() {
    let fx = fixture();
    for c in fx["holm"].as_array().unwrap() {
        let ours = stats::holm(&floats(&c["p"]));
        for (a, b) in ours.iter().zip(floats(&c["adjusted"])) {
            assert!(
                close(*a, b, 1e-12, 1e-15),
                "{ours:?} vs {:?}",
                c["adjusted"]
            );
        }
    }
}

#[test]
fn percentile_matches_numpy() {
    let fx = fixture();
    for c in fx["percentile"].as_array().unwrap() {
        let x = floats(&c["x"]);
        for (q, want) in floats(&c["q"]).into_iter().zip(floats(&c["values"])) {
            let ours = stats::percentile(&x, q).unwrap();
            assert!(
                close(ours, want, 1e-12, 1e-12),
                "q {q}: {ours} vs numpy {want}"
            );
        }
    }
}

/// Our bootstrap and scipy's draw different random resamples, so the
/// intervals agree only up to Monte Carlo error: with 20,000 resamples each
/// end point's error is a few percent of the standard error, so 15% of it
/// (scipy's own bootstrap standard error) is a loose but meaningful bound.
#[test]
fn bootstrap_agrees_with_scipy_up_to_resampling_noise() {
    let fx = fixture();
    for c in fx["bootstrap"].as_array().unwrap() {
        let x = floats(&c["x"]);
        let n = c["n_resamples"].as_u64().unwrap() as usize;
        let se = f(&c["standard_error"]);
        let ours = stats::bootstrap_mean(&x, n, 0.95, 1234).unwrap();
        assert!(
            (ours.lo - f(&c["lo"])).abs() < 0.15 * se,
            "lo {} vs scipy {} (se {se})",
            ours.lo,
            c["lo"]
        );
        assert!(
            (ours.hi - f(&c["hi"])).abs() < 0.15 * se,
            "hi {} vs scipy {} (se {se})",
            ours.hi,
            c["hi"]
        );
    }
}

#[test]
fn divergences_match_scipy() {
    let fx = fixture();
    for c in fx["divergence"].as_array().unwrap() {
        let a: Vec<f32> = floats(&c["logits_a"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let b: Vec<f32> = floats(&c["logits_b"])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let k = c["k"].as_u64().unwrap() as usize;
        let d = divergence::compare_logits(&a, &b, k);
        assert!(
            close(d.js, f(&c["js"]), 1e-9, 1e-15),
            "js {} vs {}",
            d.js,
            c["js"]
        );
        assert!(
            close(d.kl_ab, f(&c["kl_ab"]), 1e-9, 1e-15),
            "kl_ab {} vs {}",
            d.kl_ab,
            c["kl_ab"]
        );
        assert!(
            close(d.kl_ba, f(&c["kl_ba"]), 1e-9, 1e-15),
            "kl_ba {} vs {}",
            d.kl_ba,
            c["kl_ba"]
        );
        assert_eq!(d.top_k_overlap, f(&c["topk_overlap"]));
    }
}
