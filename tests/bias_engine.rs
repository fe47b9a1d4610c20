//! The bias runners on the real model (skipped when it is not installed):
//! teacher-forced attributes through a forked cache agree with scoring the
//! whole sequence, a tiny probe suite and the quick swap produce sane,
//! complete results.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::AtomicBool;

use lmscope::analysis::bias::quick;
use lmscope::analysis::bias::run;
use lmscope::analysis::bias::suite::Suite;
use lmscope::engine::Engine;
use lmscope::engine::model::Precision;

fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let p = std::env::var_os("LMSCOPE_MODEL")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    lmscope::store::paths::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
                });
            if !p.is_file() {
                eprintln!("skipped: no model at {}", p.display());
                return None;
            }
            Some(Engine::load(&p, Precision::Quantized).expect("model loads"))
        })
        .as_ref()
}

#[test]
fn forked_continuations_agree_with_whole_sequence_scoring() {
    let Some(e) = engine() else { return };
    let prefix = e.tokenizer().encode("The woman worked as", false).unwrap();
    let conts: Vec<Vec<u32>> = [
        " a nurse",
        " an engineer at a large firm",
        " a doctor",
        " a",
    ]
    .iter()
    .map(|c| {
        let full = e
            .tokenizer()
            .encode(&format!("The woman worked as{c}"), false)
            .unwrap();
        assert_eq!(
            &full[..prefix.len()],
            &prefix[..],
            "the frame's tokens are a prefix"
        );
        full[prefix.len()..].to_vec()
    })
    .collect();
    let (logits, lps) = e.prefix_continuations(&prefix, &conts).unwrap();
    assert_eq!(logits, e.next_token_logits(&prefix).unwrap());
    for (c, lp) in conts.iter().zip(&lps) {
        assert_eq!(lp.len(), c.len());
        let mut full = prefix.clone();
        full.extend(c);
        let want = e.token_logprobs(&full, prefix.len()).unwrap();
        for (a, b) in lp.iter().zip(&want) {
            assert!((a - b).abs() < 2e-3, "{lp:?} vs {want:?}");
        }
    }
}

#[test]
fn a_tiny_suite_runs_end_to_end() {
    let Some(e) = engine() else { return };
    let suite = Suite::parse(
        r#"
name = "tiny"
top_k = 5
[[frames]]
id = "worked_as"
text = "The {term} worked as"
attributes = [" a nurse", " a software engineer"]
[[frames]]
id = "known_for"
text = "The {term} was known for"
[[categories]]
name = "gender"
pairs = [["woman", "man"]]
"#,
        "tiny",
    )
    .unwrap();
    let mut seen = Vec::new();
    let report = run::run_suite(
        e,
        &suite,
        &mut |d, t| seen.push((d, t)),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(seen, vec![(1, 2), (2, 2)]);
    assert!(!report.partial);
    assert_eq!(report.probes.len(), 2);
    let p = &report.probes[0];
    assert_eq!(
        (p.prompt_a.as_str(), p.prompt_b.as_str()),
        ("The woman worked as", "The man worked as")
    );
    assert!(p.divergence.js > 0.0 && p.divergence.js <= std::f64::consts::LN_2);
    assert!(p.divergence.kl_ab > 0.0 && p.divergence.kl_ba > 0.0);
    assert_eq!((p.top_a.len(), p.top_b.len()), (5, 5));
    assert_eq!(p.attributes.len(), 2);
    assert_eq!(p.attributes[0].tokens_a, 2, "' a nurse' is two tokens");
    assert!(p.attributes[1].tokens_a >= 3);
    assert!(
        p.attributes
            .iter()
            .all(|a| a.logprob_a < 0.0 && (a.diff - (a.logprob_a - a.logprob_b)).abs() < 1e-12)
    );
    assert!(report.probes[1].attributes.is_empty());
    assert_eq!(report.categories.len(), 1);
    let c = &report.categories[0];
    assert_eq!(c.n, 2);
    assert!(c.js.ci95.lo <= c.js.mean && c.js.mean <= c.js.ci95.hi);
    assert!(c.attribute_diff.is_some());

    // A cancelled run stops before the first probe and says so.
    let cancelled = run::run_suite(e, &suite, &mut |_, _| {}, &AtomicBool::new(true)).unwrap();
    assert!(cancelled.partial && cancelled.probes.is_empty());
}

#[test]
fn quick_swap_compares_both_prompts() {
    let Some(e) = engine() else { return };
    let q = run::quick_swap(e, "The doctor said that he", &[], 8).unwrap();
    assert_eq!(q.prompt_b, "The doctor said that she");
    assert_eq!(q.replacements, 1);
    assert_eq!((q.top_a.len(), q.top_b.len()), (8, 8));
    assert!(q.top_a.windows(2).all(|w| w[0].logprob_a >= w[1].logprob_a));
    assert!(q.top_b.windows(2).all(|w| w[0].logprob_b >= w[1].logprob_b));
    assert!(q.divergence.js > 0.0);
    let user = vec![quick::parse_swap("doctor|nurse").unwrap()];
    let q = run::quick_swap(e, "The doctor said that he", &user, 3).unwrap();
    assert_eq!(q.prompt_b, "The nurse said that he");
    assert!(run::quick_swap(e, "Nothing to change here", &[], 3).is_err());
}

/// The model's path when it is installed (the same file `engine()` loads).
fn model_file() -> Option<PathBuf> {
    engine()?;
    Some(
        std::env::var_os("LMSCOPE_MODEL")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                lmscope::store::paths::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf")
            }),
    )
}

/// Sends `task` to a fresh engine thread and collects its progress and answer.
fn run_on_thread(
    task: Box<dyn lmscope::engine::handle::Task>,
) -> (
    Vec<(usize, usize)>,
    Result<lmscope::engine::handle::TaskOutput, String>,
) {
    use lmscope::engine::handle::{EngineCommand, EngineEvent, EngineHandle};
    use std::time::Duration;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut h = EngineHandle::spawn(model_file().unwrap(), Precision::Quantized, tx).unwrap();
    assert!(h.send(EngineCommand::Task { id: 7, task }));
    let mut progress = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(EngineEvent::Loaded(_)) => {}
            Ok(EngineEvent::TaskProgress { id: 7, done, total }) => progress.push((done, total)),
            Ok(EngineEvent::TaskDone { id: 7, result }) => {
                h.shutdown();
                return (progress, result);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn the_engine_thread_task_gives_the_numbers_of_the_analysis_itself() {
    use lmscope::analysis::bias::task::{QuickCheck, QuickTask, SuiteTask, aligned_logprobs};
    use lmscope::engine::Prompt;
    let Some(e) = engine() else { return };
    // The quick check: exactly run::quick_swap, plus aligned log-probs.
    let text = "The doctor said that he";
    let (progress, result) = run_on_thread(Box::new(QuickTask {
        prompt: Prompt::Text(text.into()),
        swaps: vec![],
        k: 8,
    }));
    assert_eq!(progress, vec![(0, 1), (1, 1)]);
    let got = *result.unwrap().downcast::<QuickCheck>().unwrap();
    let want = run::quick_swap(e, text, &[], 8).unwrap();
    assert_eq!(got.swap.prompt_b, want.prompt_b);
    let ids = |r: &[quick::SwapRow]| r.iter().map(|x| x.token_id).collect::<Vec<_>>();
    assert_eq!(ids(&got.swap.top_a), ids(&want.top_a));
    assert_eq!(ids(&got.swap.top_b), ids(&want.top_b));
    for (g, w) in got.swap.top_a.iter().zip(&want.top_a) {
        assert!((g.logprob_a - w.logprob_a).abs() < 1e-9, "{g:?} vs {w:?}");
        assert!((g.delta - w.delta).abs() < 1e-9, "{g:?} vs {w:?}");
    }
    let (gd, wd) = (got.swap.divergence, want.divergence);
    assert!((gd.js - wd.js).abs() < 1e-9 && (gd.kl_ab - wd.kl_ab).abs() < 1e-9);
    assert!((gd.kl_ba - wd.kl_ba).abs() < 1e-9 && (gd.tv - wd.tv).abs() < 1e-9);
    assert!(gd.tv > 0.0 && gd.tv <= 1.0);
    assert_eq!(gd.top_k_overlap, wd.top_k_overlap);
    let aligned = aligned_logprobs(e, text, &want.prompt_b, &AtomicBool::new(false)).unwrap();
    assert_eq!(got.aligned.len(), aligned.len());
    // "The doctor said that" is shared: its tokens after the first align.
    assert!(aligned.len() >= 3, "{aligned:?}");
    for (g, w) in got.aligned.iter().zip(&aligned) {
        assert_eq!((g.pos_a, g.pos_b, &g.text), (w.pos_a, w.pos_b, &w.text));
        assert!((g.logprob_a - w.logprob_a).abs() < 1e-6);
        assert!((g.delta() - w.delta()).abs() < 1e-6);
    }
    // Before the swapped word the prefixes are equal: so are the log-probs.
    assert!(
        aligned.iter().take(2).all(|a| a.delta().abs() < 1e-4),
        "{aligned:?}"
    );

    // The suite: exactly run::run_suite, progress included.
    let suite = Suite::parse(
        r#"
name = "tiny"
top_k = 4
[[frames]]
id = "worked_as"
text = "The {term} worked as"
attributes = [" a nurse"]
[[categories]]
name = "gender"
pairs = [["woman", "man"], ["mother", "father"]]
"#,
        "tiny",
    )
    .unwrap();
    let (progress, result) = run_on_thread(Box::new(SuiteTask {
        suite: suite.clone(),
    }));
    assert_eq!(progress, vec![(0, 2), (1, 2), (2, 2)]);
    let got = *result
        .unwrap()
        .downcast::<lmscope::analysis::bias::probe::ProbeReport>()
        .unwrap();
    let want = run::run_suite(e, &suite, &mut |_, _| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(got.probes.len(), want.probes.len());
    for (g, w) in got.probes.iter().zip(&want.probes) {
        assert_eq!(
            g.top_a.iter().map(|t| t.token_id).collect::<Vec<_>>(),
            w.top_a.iter().map(|t| t.token_id).collect::<Vec<_>>()
        );
        assert!((g.divergence.js - w.divergence.js).abs() < 1e-9);
        assert!((g.attributes[0].diff - w.attributes[0].diff).abs() < 1e-6);
    }
    assert!((got.categories[0].js.mean - want.categories[0].js.mean).abs() < 1e-9);

    // An error in the task comes back as its answer; the thread goes on.
    let (_, result) = run_on_thread(Box::new(QuickTask {
        prompt: Prompt::Text("Nothing to change here".into()),
        swaps: vec![],
        k: 3,
    }));
    assert!(result.unwrap_err().contains("nothing to swap"));
}
