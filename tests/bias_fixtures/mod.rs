//! Fixed, synthetic bias results for the interface tests: a quick check,
//! a probe-suite report and a minimal-pairs report (no model needed).
#![allow(dead_code)]

use lmscope::analysis::bias::pairs::{self, Mode, PairDetail, PairResult, PairsReport};
use lmscope::analysis::bias::probe::{self, AttributeScore, ProbeReport, ProbeResult};
use lmscope::analysis::bias::quick;
use lmscope::analysis::bias::task::{AlignedToken, QuickCheck};
use lmscope::analysis::bias::{divergence, pairs::SentenceScore};

pub const VOCAB: [&str; 8] = [
    " was", " had", " would", " is", " could", " must", " loved", ".",
];

/// "The doctor said that he" against "... she", over an 8-token vocabulary.
pub fn quick_check() -> QuickCheck {
    let a = [3.0f32, 2.0, 1.5, 1.0, 0.5, 0.0, -1.0, -2.0];
    let b = [2.2f32, 2.4, 1.5, 0.2, 0.9, 0.0, 0.8, -2.0];
    let swap = quick::compare(
        "The doctor said that he",
        "The doctor said that she",
        1,
        &a,
        &b,
        5,
        &|i| VOCAB[i as usize].to_string(),
    );
    let aligned = [
        (" doctor", 1, -7.25, -7.25),
        (" said", 2, -3.5, -3.5),
        (" that", 3, -1.75, -1.75),
    ]
    .into_iter()
    .map(|(text, pos, la, lb)| AlignedToken {
        text: text.into(),
        pos_a: pos,
        pos_b: pos,
        logprob_a: la,
        logprob_b: lb,
    })
    .collect();
    QuickCheck { swap, aligned }
}

fn probe(cat: &str, frame: &str, a: &str, b: &str, shift: f32, diffs: &[f64]) -> ProbeResult {
    let la = divergence::log_softmax(&[2.0, 1.0, 0.5, 0.0]);
    let lb = divergence::log_softmax(&[2.0 - shift, 1.0 + shift, 0.5, 0.0]);
    let text = |i: u32| [" a", " the", " his", " her"][i as usize].to_string();
    ProbeResult {
        category: cat.into(),
        frame: frame.into(),
        term_a: a.into(),
        term_b: b.into(),
        prompt_a: format!("The {a} worked as"),
        prompt_b: format!("The {b} worked as"),
        divergence: divergence::compare_logprobs(&la, &lb, 3),
        top_a: probe::top_list(&la, 3, &text),
        top_b: probe::top_list(&lb, 3, &text),
        attributes: diffs
            .iter()
            .enumerate()
            .map(|(i, &d)| AttributeScore {
                attribute: [" a nurse", " a doctor", " an engineer"][i % 3].into(),
                logprob_a: -4.0 + d / 2.0,
                logprob_b: -4.0 - d / 2.0,
                diff: d,
                tokens_a: 2,
                tokens_b: 2,
            })
            .collect(),
    }
}

/// Three categories: gender with a clear positive difference, religion
/// around zero, age with no attributes (JS only).
pub fn probe_report() -> ProbeReport {
    let probes = vec![
        probe("gender", "worked_as", "woman", "man", 0.8, &[1.2, 0.9]),
        probe("gender", "worked_as", "mother", "father", 0.6, &[1.0, 1.4]),
        probe("gender", "known_for", "woman", "man", 0.3, &[0.7, 1.1]),
        probe("gender", "known_for", "mother", "father", 0.2, &[0.8, 0.6]),
        probe(
            "religion",
            "worked_as",
            "Muslim",
            "Christian",
            0.1,
            &[0.3, -0.4],
        ),
        probe(
            "religion",
            "known_for",
            "Jewish",
            "Hindu",
            0.05,
            &[-0.2, 0.1],
        ),
        probe(
            "religion",
            "worked_as",
            "Buddhist",
            "atheist",
            0.15,
            &[0.05, -0.1],
        ),
        probe("age", "worked_as", "old", "young", 0.4, &[]),
        probe("age", "known_for", "elderly", "teenage", 0.5, &[]),
    ];
    ProbeReport {
        suite: "default".into(),
        description: "synthetic".into(),
        top_k: 3,
        bootstrap_resamples: probe::BOOTSTRAP_RESAMPLES,
        bootstrap_seed: probe::BOOTSTRAP_SEED,
        categories: probe::summarise(&probes),
        partial: false,
        probes,
    }
}

fn pair(line: usize, cat: &str, more: f64, less: f64) -> PairResult {
    let s = |lp: &[f32]| SentenceScore {
        tokens: (0..lp.len() as u32).collect(),
        logprobs: lp.to_vec(),
    };
    let (m, l) = (s(&[-3.0, -1.5, -0.5]), s(&[-3.0, -2.5, -0.5]));
    PairResult {
        line,
        bias_type: cat.into(),
        stereo_antistereo: "stereo".into(),
        sent_more: format!("Pair {line} more stereotyping sentence."),
        sent_less: format!("Pair {line} less stereotyping sentence."),
        score_more: more,
        score_less: less,
        diff: more - less,
        stereotype: more > less,
        detail: Some(PairDetail::new(&m, &l, &|t| {
            [" She", " cooks", "."][t as usize].to_string()
        })),
    }
}

pub fn pairs_report() -> PairsReport {
    let mut results = Vec::new();
    for i in 0..12 {
        let d = if i % 4 == 0 {
            -0.5
        } else {
            1.0 + i as f64 / 10.0
        };
        results.push(pair(2 + i, "gender", -20.0 + d, -20.0));
    }
    for i in 0..6 {
        let d = if i % 2 == 0 { -0.3 } else { 0.2 };
        results.push(pair(20 + i, "religion", -25.0 + d, -25.0));
    }
    let (overall, categories) = pairs::summarise(&results);
    PairsReport {
        mode: Mode::Lmeval,
        mode_description: Mode::Lmeval.describe().into(),
        data_file: "assets/bias/example_pairs.csv".into(),
        data_sha256: "0".repeat(64),
        note: Some(pairs::EXAMPLE_NOTE.into()),
        prefix_token: 0,
        overall,
        categories,
        pairs: results,
        partial: false,
    }
}
