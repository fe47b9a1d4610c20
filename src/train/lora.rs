//! LoRA (Hu et al., 2021): a frozen weight `W` learns only a low-rank
//! change, `W + (alpha / rank) * B A`, with `A` (rank x in) drawn small and
//! `B` (out x rank) starting at zero so the first step sees the base
//! model. The adapters live under PEFT's names beside the layer
//! (`...q_proj.lora_A.weight`); an exported checkpoint has them merged
//! into the weights, so it is an ordinary model.

use std::collections::HashMap;

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// Which layers learn an adapter, and its size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    /// Layer names (the last part of the parameter's path: `q_proj`,
    /// `v_proj`, ...).
    pub targets: Vec<String>,
}

/// The default targets: the attention's query and value projections, as
/// the LoRA paper and PEFT's defaults for Llama choose.
pub const DEFAULT_TARGETS: &[&str] = &["q_proj", "v_proj"];

/// Every layer a Llama block has that an adapter can sit on.
pub const LLAMA_LAYERS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

pub const A: &str = "lora_A.weight";
pub const B: &str = "lora_B.weight";

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Whether the layer at `path` (`model.layers.3.self_attn.q_proj`) learns
    /// an adapter.
    pub fn targets(&self, path: &str) -> bool {
        let last = path.rsplit('.').next().unwrap_or(path);
        self.targets.iter().any(|t| t == last)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.rank == 0 {
            return Err("--lora-rank must be at least 1".into());
        }
        if !(self.alpha > 0.0 && self.alpha.is_finite()) {
            return Err("--lora-alpha must be a positive number".into());
        }
        if self.targets.is_empty() {
            return Err("--lora-targets names no layer".into());
        }
        if let Some(t) = self
            .targets
            .iter()
            .find(|t| !LLAMA_LAYERS.contains(&t.as_str()))
        {
            return Err(format!(
                "--lora-targets: `{t}` is not one of {}",
                LLAMA_LAYERS.join(", ")
            ));
        }
        Ok(())
    }
}

/// Whether a parameter is an adapter's (what LoRA trains).
pub fn is_adapter(name: &str) -> bool {
    name.ends_with(A) || name.ends_with(B)
}

/// The weights with every adapter folded in (`W + scale * B A`) and the
/// adapters themselves left out: an ordinary checkpoint.
pub fn merged(
    tensors: &HashMap<String, Tensor>,
    cfg: &LoraConfig,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, t) in tensors {
        if is_adapter(name) {
            continue;
        }
        let layer = name.strip_suffix(".weight").unwrap_or(name);
        let a = tensors.get(&format!("{layer}.{A}"));
        let b = tensors.get(&format!("{layer}.{B}"));
        let value = match (a, b) {
            (Some(a), Some(b)) => (t + (b.matmul(a)? * cfg.scale())?)?,
            _ => t.clone(),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// The adapters alone (what a LoRA run's resumable checkpoint keeps
/// beside the merged weights).
pub fn adapters(tensors: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .filter(|(k, _)| is_adapter(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn merging_folds_the_scaled_product_into_the_weight() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 0.0], [0.0, 1.0], [2.0, 2.0]], &dev).unwrap();
        let a = Tensor::new(&[[1f32, 2.0]], &dev).unwrap(); // rank 1 x in 2
        let b = Tensor::new(&[[1f32], [0.0], [-1.0]], &dev).unwrap(); // out 3 x rank 1
        let cfg = LoraConfig {
            rank: 1,
            alpha: 2.0,
            targets: vec!["q_proj".into()],
        };
        let t = HashMap::from([
            ("l.q_proj.weight".to_string(), w),
            (format!("l.q_proj.{A}"), a),
            (format!("l.q_proj.{B}"), b),
        ]);
        let m = merged(&t, &cfg).unwrap();
        assert_eq!(m.len(), 1);
        let got: Vec<Vec<f32>> = m["l.q_proj.weight"].to_vec2().unwrap();
        assert_eq!(got, vec![vec![3.0, 4.0], vec![0.0, 1.0], vec![0.0, -2.0]]);
        assert!(cfg.targets("model.layers.0.self_attn.q_proj"));
        assert!(!cfg.targets("model.layers.0.self_attn.k_proj"));
    }
}
