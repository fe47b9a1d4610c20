//! Fine-tuning: the base model the trainer reads from a GGUF (dequantised,
//! llama.cpp's Q/K order undone) is the model the engine runs; task data
//! is rendered through the chat template with the loss on the answers;
//! LoRA trains its adapters alone and exports a merged model; a run from
//! the command line keeps the best checkpoint, which the engine opens.

mod common;

use candle_core::D;
use lmscope::engine::model::Logits;
use lmscope::train::base;
use lmscope::train::nets;
use lmscope::train::params::Params;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_base_read_from_gguf_is_the_model_the_engine_runs() {
    let base = base::load(common::model_path()).unwrap();
    let engine = common::engine_f32();
    let text =
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nParis";
    let ids = engine.tokenizer().encode(text, true).unwrap();
    let params = Params::from_tensors(base.tensors, 0);
    let net = nets::build(&base.cfg, &params).unwrap();
    assert!(params.fresh().is_empty(), "{:?}", params.fresh());
    let ours: Vec<Vec<f32>> = net.probe(&ids).unwrap().1.to_vec2().unwrap();
    let model = engine.model();
    let mut cache = model.new_cache(false);
    let logits = model.forward(&ids, &mut cache, Logits::All).unwrap();
    let theirs: Vec<Vec<f32>> = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .to_vec2()
        .unwrap();
    let worst = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| max_diff(a, b))
        .fold(0.0, f32::max);
    eprintln!("trainer vs engine f32 log-probabilities: max |diff| {worst:.2e}");
    assert!(worst < 1e-3, "{worst}");
}

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use lmscope::engine::Engine;
use lmscope::engine::model::Precision;
use lmscope::train::instruct::InstructData;
use lmscope::train::lora::LoraConfig;
use lmscope::train::nets::{Arch, NetConfig};
use lmscope::train::run::{Event, Finetune, TrainConfig, Trainer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first `n` question-answer pairs we ship.
fn task_data(dir: &Path, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(root().join("assets/train/qa.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().take(n).collect();
    let path = dir.join("qa.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn settings(data: &Path, out: &Path, model: &Path, steps: usize) -> TrainConfig {
    TrainConfig {
        corpus: data.to_path_buf(),
        out: out.to_path_buf(),
        steps,
        batch: 4,
        seq_len: 128,
        lr: 1e-2,
        warmup: 1,
        min_lr_ratio: 0.1,
        weight_decay: 0.0,
        clip: 1.0,
        seed: 5,
        eval_every: 3,
        val_fraction: 0.2,
        vocab_size: 0,
        probe: None,
        finetune: Some(Finetune {
            model: model.to_path_buf(),
            patience: None,
        }),
    }
}

/// A tiny Llama folder of our own (a few steps on the primer): a base
/// that fine-tunes in seconds.
fn tiny_base(dir: &Path) -> PathBuf {
    let cfg = NetConfig {
        d_model: 32,
        n_layer: 2,
        n_head: 2,
        n_kv_head: Some(1),
        d_ff: 64,
        max_positions: 128,
        ..NetConfig::preset(Arch::Llama, "tiny").unwrap()
    };
    let out = dir.join("base");
    let train = TrainConfig {
        corpus: root().join("assets/corpus/primer.txt"),
        val_fraction: 0.1,
        vocab_size: 300,
        finetune: None,
        seq_len: 32,
        eval_every: 3,
        ..settings(Path::new(""), &out, Path::new(""), 3)
    };
    let mut t = Trainer::pretrain(train, cfg, None).unwrap();
    t.run(&mut |_| {}, &AtomicBool::new(false)).unwrap();
    out.join("best")
}

fn lora() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec!["q_proj".into(), "v_proj".into(), "up_proj".into()],
    }
}

fn run(t: &mut Trainer, stop_at: Option<usize>) -> Vec<Event> {
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

fn log_probs(net: &dyn nets::Net, ids: &[u32]) -> Vec<Vec<f32>> {
    net.probe(ids).unwrap().1.to_vec2().unwrap()
}

fn worst(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| max_diff(x, y))
        .fold(0.0, f32::max)
}

#[test]
fn lora_trains_the_adapters_alone_and_exports_the_model_it_trained() {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = tiny_base(dir.path());
    let data = task_data(dir.path(), 24);
    let out = dir.path().join("tuned");
    let base = base::load(&base_dir).unwrap();
    let plain = Params::from_tensors(base.tensors.clone(), 0);
    let plain = nets::build(&base.cfg, &plain).unwrap();
    let ids: Vec<u32> = (5..40).collect();

    let mut t = Trainer::finetune(settings(&data, &out, &base_dir, 12), Some(lora())).unwrap();
    // B starts at zero: before a step the adapted net is the base.
    assert_eq!(
        worst(&log_probs(t.net(), &ids), &log_probs(plain.as_ref(), &ids)),
        0.0
    );
    let events = run(&mut t, None);
    let Some(Event::Started {
        parameters,
        frozen_parameters,
        ..
    }) = events.first()
    else {
        panic!("no start")
    };
    // Per layer: q (4x32 + 32x4), v (4x32 + 16x4), up (4x32 + 64x4).
    assert_eq!(*parameters, 2 * (256 + 192 + 384));
    assert_eq!(*frozen_parameters, plain_count(&base_dir));
    let evals: Vec<(usize, f64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Eval {
                step,
                val_loss,
                metrics,
                ..
            } => {
                assert_eq!(metrics[0].0, "exact_match");
                Some((*step, *val_loss))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        evals.first().map(|e| e.0),
        Some(0),
        "the base is measured first"
    );
    assert!(evals.last().unwrap().1 < evals[0].1, "{evals:?}");

    // The saved model has the adapters merged: as a plain net it is the
    // net that trained, and the layers without adapters are the base's.
    let last = out.join("last");
    assert!(last.join("adapter_model.safetensors").is_file());
    let saved = base::load(&last).unwrap();
    let k = "model.layers.0.self_attn.k_proj.weight";
    let same = (&saved.tensors[k] - &base.tensors[k])
        .unwrap()
        .abs()
        .unwrap();
    assert_eq!(same.max_all().unwrap().to_scalar::<f32>().unwrap(), 0.0);
    let q = "model.layers.0.self_attn.q_proj.weight";
    let moved = (&saved.tensors[q] - &base.tensors[q])
        .unwrap()
        .abs()
        .unwrap();
    assert!(moved.max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
    let merged = Params::from_tensors(saved.tensors, 0);
    let merged = nets::build(&saved.cfg, &merged).unwrap();
    let trained = log_probs(t.net(), &ids);
    let d = worst(&log_probs(merged.as_ref(), &ids), &trained);
    assert!(d < 1e-4, "merged vs adapted: {d}");
    // ... and the engine opens it as it is.
    let engine = Engine::load(&last, Precision::F32).unwrap();
    let mut cache = engine.model().new_cache(false);
    let logits = engine
        .model()
        .forward(&ids, &mut cache, Logits::All)
        .unwrap();
    let theirs: Vec<Vec<f32>> = candle_nn::ops::log_softmax(&logits, D::Minus1)
        .unwrap()
        .to_vec2()
        .unwrap();
    let d = worst(&theirs, &trained);
    assert!(d < 1e-4, "engine vs trainer: {d}");
    assert!(engine.info().chat_template.is_some());
}

fn plain_count(dir: &Path) -> usize {
    let t =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    t.values().map(|v| v.elem_count()).sum()
}

#[test]
fn a_resumed_lora_run_is_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = tiny_base(dir.path());
    let data = task_data(dir.path(), 16);
    let mut first = Trainer::finetune(
        settings(&data, &dir.path().join("a"), &base_dir, 7),
        Some(lora()),
    )
    .unwrap();
    run(&mut first, None);
    let out = dir.path().join("b");
    let mut part = Trainer::finetune(settings(&data, &out, &base_dir, 7), Some(lora())).unwrap();
    run(&mut part, Some(4));
    let mut rest = Trainer::resume(&out, None).unwrap();
    assert_eq!(rest.step_index(), 4);
    run(&mut rest, None);
    assert_eq!(first.history.train_loss, rest.history.train_loss);
    assert_eq!(first.history.val_loss, rest.history.val_loss);
    let a = std::fs::read(dir.path().join("a/last/model.safetensors")).unwrap();
    let b = std::fs::read(out.join("last/model.safetensors")).unwrap();
    assert!(a == b, "the same merged weights at the end");
}

#[test]
fn patience_stops_a_run_whose_validation_loss_stopped_improving() {
    let dir = tempfile::tempdir().unwrap();
    let base_dir = tiny_base(dir.path());
    let data = task_data(dir.path(), 16);
    let mut cfg = settings(&data, &dir.path().join("run"), &base_dir, 60);
    // A rate this high overfits four training batches within a few evaluations.
    cfg.lr = 3e-2;
    cfg.eval_every = 2;
    cfg.finetune.as_mut().unwrap().patience = Some(2);
    let mut t = Trainer::finetune(cfg, None).unwrap();
    let events = run(&mut t, None);
    let Some(Event::Finished {
        step,
        best: Some(best),
        early_stopped: true,
        ..
    }) = events.last()
    else {
        panic!("not stopped early: {:?}", events.last())
    };
    assert!(*step < 60);
    assert_eq!(*step, best.step + 2 * 2, "two evaluations past the best");
    assert!(dir.path().join("run/best/model.safetensors").is_file());
}

#[test]
fn task_data_that_cannot_train_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let base = base::load(common::model_path()).unwrap();
    let read = |text: &str| {
        let p = dir.path().join("bad.jsonl");
        std::fs::write(&p, text).unwrap();
        let pad = base.cfg.special.pad.unwrap();
        InstructData::read(&p, &base.tokenizer, &base.template, 64, 2, 0.1, 0, pad)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    };
    let ok = r#"{"question": "Two plus two?", "answer": "Four"}"#;
    let e = read(&format!("{ok}\n{{\"question\": \"no answer\"}}\n"));
    assert!(e.contains("line 2") && e.contains("not an example"), "{e}");
    let e = read(&format!(
        "{ok}\n{{\"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}\n"
    ));
    assert!(e.contains("line 2") && e.contains("assistant"), "{e}");
    let long = "word ".repeat(200);
    let e = read(&format!(
        "{ok}\n{{\"question\": \"{long}\", \"answer\": \"x\"}}\n"
    ));
    assert!(e.contains("line 2") && e.contains("--seq-len 64"), "{e}");
    let e = read(&format!("{ok}\n"));
    assert!(e.contains("at least two"), "{e}");
}

/// The real model, from the command line: the evaluation's exact match
/// is what greedy decoding in the engine gets from the saved checkpoint.
#[test]
fn smollm2_finetuned_from_the_command_line_decodes_its_reported_exact_match() {
    let dir = tempfile::tempdir().unwrap();
    let data = task_data(dir.path(), 40);
    let out = dir.path().join("run");
    let model = common::model_path().to_str().unwrap();
    let o = common::lmscope(&[
        "train",
        "finetune",
        "--model",
        model,
        "--data",
        data.to_str().unwrap(),
        "--lora",
        "--lr",
        "3e-3",
        "--steps",
        "3",
        "--batch",
        "4",
        "--eval-every",
        "3",
        "--val-fraction",
        "0.5",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let events: Vec<serde_json::Value> = common::stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let evals: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "eval").collect();
    assert_eq!(evals.len(), 2, "before and after");
    assert_eq!(evals[0]["step"], 0);
    let exact = evals[1]["metrics"][0][1].as_f64().unwrap();

    // The same validation split, decoded greedily from the saved model.
    let base = base::load(common::model_path()).unwrap();
    let pad = base.cfg.special.pad.unwrap();
    let split =
        InstructData::read(&data, &base.tokenizer, &base.template, 256, 4, 0.5, 0, pad).unwrap();
    let engine = Engine::load(&out.join("last"), Precision::F32).unwrap();
    let m = engine.model();
    let mut matched = 0;
    for ex in &split.val {
        let answer = &ex.ids[ex.answer_from..];
        let mut cache = m.new_cache(false);
        let mut logits = m
            .forward(&ex.ids[..ex.answer_from], &mut cache, Logits::Last)
            .unwrap();
        let mut written = Vec::new();
        while written.len() < answer.len() {
            let next: u32 = logits
                .flatten_all()
                .unwrap()
                .argmax(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            written.push(next);
            if engine.tokenizer().is_end_of_generation(next) {
                break;
            }
            logits = m.forward(&[next], &mut cache, Logits::Last).unwrap();
        }
        matched += (written == answer) as usize;
    }
    let decoded = matched as f64 / split.val.len() as f64;
    eprintln!("exact match: evaluation {exact:.3}, greedy decoding {decoded:.3}");
    assert!(
        (decoded - exact).abs() < 1e-9,
        "evaluation {exact} vs decoding {decoded}"
    );
    assert!(matched > 0, "three updates teach it some answers");
}
