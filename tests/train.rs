//! Training runs end to end on small nets: a resumed run is the
//! uninterrupted one exactly, a tiny model memorises 16 sentences, the
//! checkpoints open in lmscope's engine with the trainer's numbers, and
//! bad settings are refused in one line.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use lmscope::train::nets::{Arch, NetConfig};
use lmscope::train::run::{Event, TrainConfig, Trainer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn primer() -> PathBuf {
    root().join("assets/corpus/primer.txt")
}

/// A net small enough for a test to train in seconds.
fn mini(arch: Arch, dropout: f32) -> NetConfig {
    NetConfig {
        d_model: 32,
        n_layer: 2,
        n_head: 2,
        n_kv_head: (arch == Arch::Llama).then_some(1),
        d_ff: 64,
        max_positions: 64,
        dropout,
        ..NetConfig::preset(arch, "tiny").unwrap()
    }
}

fn settings(corpus: &Path, out: &Path, steps: usize) -> TrainConfig {
    TrainConfig {
        corpus: corpus.to_path_buf(),
        out: out.to_path_buf(),
        steps,
        batch: 4,
        seq_len: 32,
        lr: 2e-3,
        warmup: 2,
        min_lr_ratio: 0.1,
        weight_decay: 0.01,
        clip: 1.0,
        seed: 3,
        eval_every: 3,
        val_fraction: 0.1,
        vocab_size: 300,
        probe: None,
        finetune: None,
    }
}

/// Trains, stopping after `stop_at` steps when given; the events seen.
fn train(t: &mut Trainer, stop_at: Option<usize>) -> Vec<Event> {
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    t.run(
        &mut |e| {
            if let Event::Step { step, .. } = e
                && Some(*step) == stop_at
            {
                stop.store(true, Ordering::Relaxed);
            }
            events.push(e.clone());
        },
        &stop,
    )
    .unwrap();
    events
}

fn resumed_equals_uninterrupted(arch: Arch) {
    let dir = tempfile::tempdir().unwrap();
    // One tokenizer for both runs (a learned one can break ties either way).
    let tok = dir.path().join("tokenizer.json");
    let mut first = Trainer::pretrain(
        settings(&primer(), &dir.path().join("a"), 7),
        mini(arch, 0.1),
        None,
    )
    .unwrap();
    first.tokenizer().save(&tok, false).unwrap();
    train(&mut first, None);

    let out = dir.path().join("b");
    let mut part =
        Trainer::pretrain(settings(&primer(), &out, 7), mini(arch, 0.1), Some(&tok)).unwrap();
    let events = train(&mut part, Some(4));
    assert!(matches!(
        events.last(),
        Some(Event::Finished {
            step: 4,
            stopped: true,
            ..
        })
    ));
    let mut rest = Trainer::resume(&out, None).unwrap();
    assert_eq!(rest.step_index(), 4);
    train(&mut rest, None);

    assert_eq!(first.history.train_loss.len(), 7);
    assert_eq!(
        first.history.train_loss, rest.history.train_loss,
        "{arch:?}: the resumed run's losses are the uninterrupted run's"
    );
    assert_eq!(first.history.val_loss, rest.history.val_loss);
    let a = std::fs::read(dir.path().join("a/last/model.safetensors")).unwrap();
    let b = std::fs::read(out.join("last/model.safetensors")).unwrap();
    assert!(a == b, "{arch:?}: the same weights at the end");
}

#[test]
fn a_resumed_bert_run_is_the_uninterrupted_one() {
    resumed_equals_uninterrupted(Arch::Bert);
}

#[test]
fn a_resumed_gpt2_run_is_the_uninterrupted_one() {
    resumed_equals_uninterrupted(Arch::Gpt2);
}

#[test]
fn a_tiny_model_memorises_sixteen_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<String> = std::fs::read_to_string(primer())
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .take(16)
        .map(String::from)
        .collect();
    let corpus = dir.path().join("sixteen.txt");
    std::fs::write(&corpus, text.join("\n") + "\n").unwrap();
    let cfg = TrainConfig {
        steps: 150,
        batch: 8,
        seq_len: 64,
        lr: 3e-3,
        warmup: 10,
        val_fraction: 0.0,
        eval_every: 150,
        vocab_size: 300,
        ..settings(&corpus, &dir.path().join("run"), 150)
    };
    let net = NetConfig {
        d_model: 64,
        n_head: 4,
        d_ff: 128,
        ..mini(Arch::Gpt2, 0.0)
    };
    let mut t = Trainer::pretrain(cfg, net, None).unwrap();
    train(&mut t, None);
    let last: Vec<f32> = t.history.train_loss.iter().rev().take(5).copied().collect();
    assert!(
        last.iter().all(|&l| l < 0.05),
        "the last losses {last:?} are below 0.05 (first {})",
        t.history.train_loss[0]
    );
}

fn lmscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmscope"))
        .args(args)
        .output()
        .unwrap()
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn the_cli_trains_a_bert_that_fill_then_opens_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let size = dir.path().join("mini.toml");
    std::fs::write(
        &size,
        "d_model = 32\nn_layer = 2\nn_head = 2\nd_ff = 64\nmax_positions = 64\n",
    )
    .unwrap();
    let probe = "the model reads the [MASK] one token at a time .";
    let o = lmscope(&[
        "train",
        "pretrain",
        primer().to_str().unwrap(),
        "--arch",
        "bert",
        "--size",
        size.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--batch",
        "4",
        "--seq-len",
        "32",
        "--vocab-size",
        "300",
        "--probe",
        probe,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let events = json_lines(&o);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "started");
    assert_eq!(kinds.iter().filter(|k| **k == "step").count(), 6);
    assert_eq!(kinds.iter().filter(|k| **k == "eval").count(), 2);
    assert_eq!(*kinds.last().unwrap(), "finished");
    let eval = events.iter().rfind(|e| e["event"] == "eval").unwrap();
    let heads = eval["probe"]["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 4, "2 layers x 2 heads scored");
    let trained = &eval["probe"]["predictions"][0][1];

    // The best checkpoint (the last evaluation's, if it improved) opens in
    // the engine's encoder, which must give the trainer's probabilities.
    let best = events
        .iter()
        .rfind(|e| e["event"] == "eval" && e["best"] == true)
        .unwrap();
    assert_eq!(best["step"], eval["step"], "the validation loss fell");
    let fill = lmscope(&[
        "fill",
        "-m",
        out.join("best").to_str().unwrap(),
        probe,
        "--json",
        "--top-k",
        "5",
    ]);
    assert!(
        fill.status.success(),
        "{}",
        String::from_utf8_lossy(&fill.stderr)
    );
    let fill: serde_json::Value = serde_json::from_slice(&fill.stdout).unwrap();
    let top = fill["masks"][0]["top"].as_array().unwrap();
    for (i, t) in top.iter().enumerate() {
        let (text, p) = (&trained[i][0], trained[i][1].as_f64().unwrap());
        assert_eq!(
            t["text"].as_str().unwrap().trim_start_matches("##"),
            text.as_str().unwrap().trim_start_matches("##")
        );
        assert!(
            (t["p"].as_f64().unwrap() - p).abs() < 1e-5,
            "{t} vs trainer {p}"
        );
    }
}

#[test]
fn a_decoder_checkpoint_scores_as_the_trainer_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut t =
        Trainer::pretrain(settings(&primer(), &out, 3), mini(Arch::Llama, 0.0), None).unwrap();
    train(&mut t, None);
    let text = "The model reads the text one token at a time.";
    let ids: Vec<u32> = t
        .tokenizer()
        .encode(text, false)
        .unwrap()
        .get_ids()
        .to_vec();
    let file = dir.path().join("text.txt");
    std::fs::write(&file, text).unwrap();
    let o = lmscope(&[
        "score",
        "-m",
        out.join("best").to_str().unwrap(),
        file.to_str().unwrap(),
        "--json",
        "--ctx",
        "64",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scored: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let probe: Vec<Vec<f32>> = t.net().probe(&ids).unwrap().1.to_vec2().unwrap();
    let per = scored["per_token"].as_array().unwrap();
    assert_eq!(per.len(), ids.len() - 1);
    for p in per {
        let at = p["position"].as_u64().unwrap() as usize;
        assert_eq!(p["token_id"].as_u64().unwrap() as u32, ids[at]);
        let ours = probe[at - 1][ids[at] as usize];
        assert!(
            (p["logprob"].as_f64().unwrap() - ours as f64).abs() < 1e-4,
            "position {at}: engine {} vs trainer {ours}",
            p["logprob"]
        );
    }
}

fn assert_refused(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.lines().count() == 1 && err.starts_with("error: "),
        "one line: {err}"
    );
    assert!(err.contains(needle), "`{needle}` in {err}");
}

#[test]
fn bad_training_settings_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.txt");
    std::fs::write(&one, "Only one sentence here.\n").unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let p = primer();
    let p = p.to_str().unwrap();
    assert_refused(
        &lmscope(&["train", "pretrain", one.to_str().unwrap(), "--out", o]),
        "1 sentence",
    );
    assert_refused(
        &lmscope(&["train", "pretrain", p, "--size", "huge", "--out", o]),
        "neither tiny, small nor a TOML file",
    );
    assert_refused(
        &lmscope(&["train", "pretrain", p, "--lr", "0", "--out", o]),
        "--lr",
    );
    assert_refused(
        &lmscope(&["train", "pretrain", p, "--seq-len", "4096", "--out", o]),
        "positions",
    );
    assert_refused(
        &lmscope(&[
            "train",
            "pretrain",
            "--resume",
            dir.path().to_str().unwrap(),
        ]),
        "no resumable checkpoint",
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "d_model = 30\nn_layer = 1\nn_head = 4\nd_ff = 8\nmax_positions = 16\n",
    )
    .unwrap();
    assert_refused(
        &lmscope(&[
            "train",
            "pretrain",
            p,
            "--size",
            bad.to_str().unwrap(),
            "--out",
            o,
        ]),
        "multiple of n_head",
    );
}

#[test]
fn a_changed_corpus_is_not_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::copy(primer(), &corpus).unwrap();
    let out = dir.path().join("run");
    let mut t = Trainer::pretrain(settings(&corpus, &out, 3), mini(Arch::Gpt2, 0.0), None).unwrap();
    train(&mut t, None);
    std::fs::write(&corpus, "Another text.\nWith two sentences.\n").unwrap();
    let err = Trainer::resume(&out, Some(6)).err().expect("refused");
    assert!(
        err.to_string().contains("changed since the run began"),
        "{err}"
    );
}

#[test]
fn train_bench_reports_speed_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let size = dir.path().join("mini.toml");
    std::fs::write(
        &size,
        "d_model = 32\nn_layer = 1\nn_head = 2\nd_ff = 64\nmax_positions = 32\n",
    )
    .unwrap();
    let o = lmscope(&[
        "train",
        "bench",
        "--arch",
        "gpt2",
        "--size",
        size.to_str().unwrap(),
        "--vocab-size",
        "100",
        "--batch",
        "2",
        "--seq-len",
        "16",
        "--steps",
        "1",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["parameters"].as_u64().unwrap() > 0);
    assert_refused(
        &lmscope(&[
            "train",
            "bench",
            "--size",
            size.to_str().unwrap(),
            "--seq-len",
            "64",
        ]),
        "positions",
    );
}
