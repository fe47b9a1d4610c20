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
