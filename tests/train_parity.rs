//! The trainer's numbers against PyTorch's: one step on the tiny fixture
//! models (same weights, same batch, dropout off), and gradients against
//! finite differences. Reference: scripts/reference/train_step_reference.py
//! (transformers fp32, eager attention) wrote tests/fixtures/train/*.json.

use std::path::PathBuf;

use candle_nn::Optimizer;
use lmscope::train::nets::{self, Batch, NetConfig};
use lmscope::train::ops::Dropout;
use lmscope::train::optim::{AdamW, ParamsAdamW, clip_grad_norm};
use lmscope::train::params::Params;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Value {
    let path = root().join(format!("tests/fixtures/train/{name}-step.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rows<T: serde::de::DeserializeOwned>(v: &Value) -> Vec<Vec<T>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn batch(fx: &Value) -> Batch {
    let b = &fx["batch"];
    let ids: Vec<Vec<u32>> = rows(&b["input_ids"]);
    let types = if b["token_type_ids"].is_null() {
        ids.iter().map(|r| vec![0; r.len()]).collect()
    } else {
        rows(&b["token_type_ids"])
    };
    Batch {
        mask: rows(&b["attention_mask"]),
        labels: rows(&b["labels"]),
        next: serde_json::from_value(b["next_sentence_label"].clone()).ok(),
        types,
        ids,
    }
}

fn load(name: &str) -> (Params, Box<dyn nets::Net>) {
    let dir = root().join("tests/fixtures/hf").join(name);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let mut cfg = NetConfig::from_hf(&config).unwrap();
    cfg.dropout = 0.0;
    let params = Params::from_safetensors(&dir.join("model.safetensors"), 0).unwrap();
    let net = nets::build(&cfg, &params).unwrap();
    assert!(
        params.fresh().is_empty(),
        "{name}: missing {:?}",
        params.fresh()
    );
    (params, net)
}

fn one_step_matches_pytorch(name: &str) {
    let fx = fixture(name);
    let (params, net) = load(name);
    let b = batch(&fx);
    let loss = net.loss(&b, &mut Dropout::off()).unwrap();
    let value = loss.total.to_scalar::<f32>().unwrap() as f64;
    let want = fx["loss"].as_f64().unwrap();
    assert!(
        (value - want).abs() < 1e-4,
        "{name}: loss {value} vs PyTorch {want}"
    );

    let mut grads = loss.total.backward().unwrap();
    let named = params.vars();
    let want_norms = fx["grad_norms"].as_object().unwrap();
    assert_eq!(named.len(), want_norms.len(), "{name}: parameter count");
    let mut worst = 0.0f64;
    for (n, var) in &named {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("{name}: no gradient for {n}"));
        let norm = (g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64)
            .sqrt();
        let want = want_norms[n]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: PyTorch has no {n}"));
        worst = worst.max((norm - want).abs());
        assert!(
            (norm - want).abs() < 1e-4,
            "{name}: |grad {n}| {norm} vs PyTorch {want}"
        );
    }
    eprintln!(
        "{name}: loss {value:.6} (PyTorch {want:.6}), worst gradient-norm difference {worst:.2e}"
    );

    let vars: Vec<_> = named.iter().map(|(_, v)| v.clone()).collect();
    let total = clip_grad_norm(&mut grads, &vars, fx["max_norm"].as_f64().unwrap()).unwrap();
    let want_total = fx["clipped_norm"].as_f64().unwrap();
    assert!(
        (total - want_total).abs() < 1e-4,
        "{name}: total norm {total} vs {want_total}"
    );
    let o = &fx["optimizer"];
    let mut opt = AdamW::named(
        named,
        ParamsAdamW {
            lr: o["lr"].as_f64().unwrap(),
            beta1: o["beta1"].as_f64().unwrap(),
            beta2: o["beta2"].as_f64().unwrap(),
            eps: o["eps"].as_f64().unwrap(),
            weight_decay: o["weight_decay"].as_f64().unwrap(),
        },
    )
    .unwrap();
    opt.step(&grads).unwrap();
    let after = net
        .loss(&b, &mut Dropout::off())
        .unwrap()
        .total
        .to_scalar::<f32>()
        .unwrap() as f64;
    let want_after = fx["after_step"].as_f64().unwrap();
    assert!(
        (after - want_after).abs() < 1e-4,
        "{name}: after one AdamW step {after} vs PyTorch {want_after}"
    );
}

#[test]
fn bert_step_matches_pytorch() {
    one_step_matches_pytorch("tiny-bert");
}

#[test]
fn gpt2_step_matches_pytorch() {
    one_step_matches_pytorch("tiny-gpt2");
}

#[test]
fn llama_step_matches_pytorch() {
    one_step_matches_pytorch("tiny-llama");
}

/// Each net's analytic gradient against central finite differences, at
/// the element of largest gradient in several tensors of every kind.
fn gradients_match_finite_differences(name: &str) {
    let fx = fixture(name);
    let (params, net) = load(name);
    let b = batch(&fx);
    let loss_of = || {
        net.loss(&b, &mut Dropout::off())
            .unwrap()
            .total
            .to_scalar::<f32>()
            .unwrap() as f64
    };
    let grads = net
        .loss(&b, &mut Dropout::off())
        .unwrap()
        .total
        .backward()
        .unwrap();
    let named = params.vars();
    let mut checked = 0;
    for (n, var) in named.iter().step_by(3) {
        let g: Vec<f32> = grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (at, &want) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        if want.abs() < 1e-3 {
            continue;
        }
        let orig: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let h = 1e-2f32;
        let nudge = |d: f32| {
            let mut v = orig.clone();
            v[at] += d;
            var.set(&candle_core::Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                .unwrap();
            loss_of()
        };
        let fd = (nudge(h) - nudge(-h)) / (2.0 * h as f64);
        var.set(&candle_core::Tensor::from_vec(orig, var.shape(), var.device()).unwrap())
            .unwrap();
        let err = (fd - want as f64).abs();
        assert!(
            err < 2e-3 + 0.03 * (want as f64).abs(),
            "{name}: d loss / d {n}[{at}] analytic {want} vs finite difference {fd}"
        );
        checked += 1;
    }
    assert!(checked >= 5, "{name}: only {checked} tensors checked");
}

#[test]
fn bert_gradients_match_finite_differences() {
    gradients_match_finite_differences("tiny-bert");
}

#[test]
fn gpt2_gradients_match_finite_differences() {
    gradients_match_finite_differences("tiny-gpt2");
}

#[test]
fn llama_gradients_match_finite_differences() {
    gradients_match_finite_differences("tiny-llama");
}

/// 300 steps of the tiny GPT-2 on fixed blocks in order, with PyTorch's
/// optimiser, schedule and clipping settings: the losses along the way and
/// at the end against PyTorch's (scripts/reference/train_run_reference.py).
#[test]
fn a_300_step_run_ends_within_2_percent_of_pytorch() {
    use lmscope::train::data::CausalData;
    use lmscope::train::optim::Schedule;

    let path = root().join("tests/fixtures/train/tiny-gpt2-300.json");
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (params, net) = load("tiny-gpt2");
    let blocks: Vec<Vec<u32>> = rows(&fx["blocks"]);
    let data = CausalData::from_blocks(blocks, vec![], fx["batch"].as_u64().unwrap() as usize, 0);
    let s = &fx["schedule"];
    let schedule = Schedule {
        peak: s["peak"].as_f64().unwrap(),
        warmup: s["warmup"].as_u64().unwrap() as usize,
        total: s["total"].as_u64().unwrap() as usize,
        min_ratio: s["min_ratio"].as_f64().unwrap(),
    };
    let named = params.vars();
    let vars: Vec<_> = named.iter().map(|(_, v)| v.clone()).collect();
    let mut opt = AdamW::named(
        named,
        ParamsAdamW {
            lr: schedule.peak,
            ..ParamsAdamW::default()
        },
    )
    .unwrap();
    let want: Vec<f64> = serde_json::from_value(fx["losses"].clone()).unwrap();
    let mut ours = Vec::new();
    for step in 0..want.len() {
        let loss = net
            .loss(&data.train_batch(step), &mut Dropout::off())
            .unwrap()
            .total;
        ours.push(loss.to_scalar::<f32>().unwrap() as f64);
        let mut grads = loss.backward().unwrap();
        clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
        opt.set_learning_rate(schedule.rate(step));
        opt.step(&grads).unwrap();
    }
    let tail = |v: &[f64]| v[v.len() - 10..].iter().sum::<f64>() / 10.0;
    let (a, b) = (tail(&ours), tail(&want));
    eprintln!(
        "last 10 steps' mean loss: lmscope {a:.6}, PyTorch {b:.6} (first {:.6} vs {:.6})",
        ours[0], want[0]
    );
    assert!(
        (a - b).abs() <= 0.02 * b,
        "the run ends at {a} vs PyTorch's {b}"
    );
    for step in [0, 50, 100, 200] {
        let (x, y) = (ours[step], want[step]);
        assert!(
            (x - y).abs() <= 0.02 * y,
            "step {step}: {x} vs PyTorch's {y}"
        );
    }
}
