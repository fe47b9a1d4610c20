//! Side-by-side runs, branching and session files.

mod common;

use common::{engine, generate_saved, lmscope, stdout};
use lmscope::engine::sampling::SamplerSettings;
use lmscope::engine::{Prompt, Request};
use lmscope::store::session::{BranchPoint, Run, Session, SessionError};

fn sampling() -> SamplerSettings {
    SamplerSettings {
        temperature: 1.0,
        top_k: 40,
        top_p: 0.95,
        min_p: 0.0,
        seed: 11,
        ..Default::default()
    }
}

fn request(max_tokens: usize) -> Request {
    Request {
        sampler: sampling(),
        max_tokens,
        top_n: 8,
        ..Request::new(Prompt::Text("The old lighthouse keeper".into()))
    }
}

fn ids(g: &lmscope::engine::Generation) -> Vec<u32> {
    g.steps().iter().map(|s| s.token_id).collect()
}

#[test]
fn a_branch_continues_exactly_as_a_fresh_run_forced_through_its_prefix() {
    let e = engine();
    let mut original = e.start(&request(12)).unwrap();
    while original.step(e).unwrap().is_some() {}
    let at = 4;
    let alternative = original.steps()[at]
        .top
        .iter()
        .find(|t| t.token_id != original.steps()[at].token_id)
        .unwrap()
        .token_id;

    let mut branch = original.fork(e, at, Some(alternative), sampling()).unwrap();
    while branch.step(e).unwrap().is_some() {}
    assert_eq!(ids(&original).len(), 12, "the original is kept");
    assert_eq!(&ids(&branch)[..at], &ids(&original)[..at]);
    assert_eq!(ids(&branch)[at], alternative);

    let mut fresh = e.start(&request(12)).unwrap();
    fresh.force(ids(&original)[..at].iter().copied().chain([alternative]));
    while fresh.step(e).unwrap().is_some() {}
    assert_eq!(ids(&branch), ids(&fresh));
    for (a, b) in branch.steps().iter().zip(fresh.steps()) {
        assert!(
            (a.p_raw - b.p_raw).abs() < 1e-5,
            "step {}: {} vs {}",
            a.step,
            a.p_raw,
            b.p_raw
        );
    }
    assert!(!branch.text().is_empty() && branch.text() != original.text());
}

#[test]
fn sessions_round_trip_with_attention() {
    let e = engine();
    let req = Request {
        attach_attention: true,
        ..request(5)
    };
    let mut g = e.start(&req).unwrap();
    while g.step(e).unwrap().is_some() {}
    let mut session = Session::new(
        Session::identify(e.info()).unwrap(),
        req.prompt.clone(),
        g.prompt_tokens().to_vec(),
        None,
    );
    session.runs.push(Run::from_generation("main", &req, &g));
    let mut branch = Run::from_generation("branch", &req, &g);
    branch.parent = Some(BranchPoint { run: 0, step: 2 });
    session.runs.push(branch);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    session.save(&path).unwrap();
    assert!(
        path.with_extension("attn").is_file(),
        "attention goes to the sidecar"
    );
    let back = Session::load(&path).unwrap();
    assert_eq!(back.runs.len(), 2);
    assert_eq!(back.model, session.model);
    for (a, b) in back.runs[0].steps.iter().zip(&session.runs[0].steps) {
        assert_eq!((a.token_id, a.p_raw, &a.top), (b.token_id, b.p_raw, &b.top));
        let (x, y) = (a.attention.as_ref().unwrap(), b.attention.as_ref().unwrap());
        assert_eq!(
            (x.n_layer, x.n_head, x.n_key, x.first_query),
            (y.n_layer, y.n_head, y.n_key, y.first_query)
        );
        let worst = x
            .data
            .iter()
            .zip(&y.data)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "f16 storage: {worst}");
    }
    assert_eq!(back.runs[1].parent, Some(BranchPoint { run: 0, step: 2 }));
}

#[test]
fn corrupt_truncated_and_future_files_are_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "truncated.json",
            r#"{"version": 1, "created_unix": 5, "model": {"#.to_string(),
        ),
        ("garbage.json", "\u{0}\u{1} not json".to_string()),
        (
            "future.json",
            r#"{"version": 99, "anything": "new"}"#.to_string(),
        ),
        (
            "wrong-shape.json",
            r#"{"version": 1, "runs": 3}"#.to_string(),
        ),
    ];
    for (name, body) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, &body).unwrap();
        let err = Session::load(&path).unwrap_err();
        match (name, &err) {
            ("future.json", SessionError::TooNew { found: 99, .. }) => {}
            ("future.json", e) => panic!("{e}"),
            (_, SessionError::Corrupt { .. }) => {}
            (_, e) => panic!("{name}: {e}"),
        }
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            body,
            "{name} untouched"
        );
    }
}

#[test]
fn compare_runs_presets_side_by_side_deterministically() {
    let run = || {
        let out = lmscope(&[
            "compare",
            "The recipe needs",
            "--preset",
            "greedy",
            "--preset",
            "creative",
            "-n",
            "10",
            "--seed",
            "3",
            "--json",
        ]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let a = run();
    let cols = a["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 2);
    assert_eq!(cols[0]["preset"], "greedy");
    assert_eq!(cols[1]["settings"]["seed"], 3);
    for c in cols {
        assert_eq!(c["token_ids"].as_array().unwrap().len(), 10);
        let st = &c["stats"];
        assert!(st["perplexity"].as_f64().unwrap() >= 1.0);
        assert!(st["distinct_1"].as_f64().unwrap() <= 1.0);
    }
    let d = &a["divergence"];
    let step = d["step"].as_u64().unwrap() as usize;
    let (t0, t1) = (&cols[0]["token_ids"][step], &cols[1]["token_ids"][step]);
    assert_ne!(t0, t1);
    assert_eq!(
        cols[0]["token_ids"].as_array().unwrap()[..step],
        cols[1]["token_ids"].as_array().unwrap()[..step]
    );
    let b = run();
    assert_eq!(
        a["columns"][1]["token_ids"], b["columns"][1]["token_ids"],
        "same seed, same tokens"
    );
}

#[test]
fn replay_confirms_a_saved_run_and_catches_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.json");
    let p = path.to_str().unwrap();
    generate_saved(p);
    let out = lmscope(&["session", "replay", p]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(stdout(&out).contains("same 6 tokens"), "{}", stdout(&out));

    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["runs"][0]["steps"][3]["token_id"] = 17.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let out = lmscope(&["session", "replay", p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("DIFFERENT from step 3"),
        "{}",
        stdout(&out)
    );

    for (format, needle) in [
        ("md", "| step | token |"),
        ("csv", "step,position,token_id"),
        ("json", "\"steps\""),
    ] {
        let out = lmscope(&["session", "export", p, "--format", format]);
        assert!(out.status.success());
        assert!(stdout(&out).contains(needle), "{format}");
    }
}

#[test]
fn replay_of_a_cancelled_run_stops_where_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    let p = path.to_str().unwrap();
    generate_saved(p);
    // As the interface saves a run cancelled after 4 tokens.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["runs"][0]["steps"].as_array_mut().unwrap().truncate(4);
    v["runs"][0]["finish"] = "cancelled".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let out = lmscope(&["session", "replay", p]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains("same 4 tokens"), "{}", stdout(&out));
}
