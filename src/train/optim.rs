//! The optimiser and its schedule. `AdamW` is candle-nn's update, step for
//! step (and PyTorch's: decoupled weight decay, bias-corrected moments),
//! implementing candle-nn's `Optimizer` trait; it is ours only because
//! candle-nn keeps its moments private, and resuming a run exactly needs
//! them saved with the checkpoint.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::Optimizer;
pub use candle_nn::ParamsAdamW;
use serde::{Deserialize, Serialize};

pub struct AdamW {
    vars: Vec<Slot>,
    step_t: usize,
    params: ParamsAdamW,
}

struct Slot {
    name: String,
    var: Var,
    m: Var,
    v: Var,
}

impl AdamW {
    /// An optimiser over named parameters, moments at zero.
    pub fn named(vars: Vec<(String, Var)>, params: ParamsAdamW) -> Result<Self> {
        let vars = vars
            .into_iter()
            .map(|(name, var)| {
                let m = Var::zeros(var.shape(), var.dtype(), var.device())?;
                let v = Var::zeros(var.shape(), var.dtype(), var.device())?;
                Ok(Slot { name, var, m, v })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            vars,
            step_t: 0,
            params,
        })
    }

    /// Updates taken so far.
    pub fn steps(&self) -> usize {
        self.step_t
    }

    /// The moments by `m.NAME` / `v.NAME`, for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .flat_map(|s| {
                [
                    (format!("m.{}", s.name), s.m.as_tensor().clone()),
                    (format!("v.{}", s.name), s.v.as_tensor().clone()),
                ]
            })
            .collect()
    }

    /// Puts back the moments `state` wrote, after `steps` updates.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, steps: usize) -> Result<()> {
        for s in &self.vars {
            for (key, var) in [
                (format!("m.{}", s.name), &s.m),
                (format!("v.{}", s.name), &s.v),
            ] {
                match state.get(&key) {
                    Some(t) => var.set(t)?,
                    None => candle_core::bail!("the optimiser state has no `{key}`"),
                }
            }
        }
        self.step_t = steps;
        Ok(())
    }
}

impl Optimizer for AdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect();
        Self::named(named, params)
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let (b1, b2) = (p.beta1, p.beta2);
        let scale_m = 1.0 / (1.0 - b1.powi(self.step_t as i32));
        let scale_v = 1.0 / (1.0 - b2.powi(self.step_t as i32));
        for s in &self.vars {
            let Some(g) = grads.get(&s.var) else { continue };
            let m = ((s.m.as_tensor() * b1)? + (g * (1.0 - b1))?)?;
            let v = ((s.v.as_tensor() * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let decayed = (s.var.as_tensor() * (1.0 - p.lr * p.weight_decay))?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + p.eps)?)?;
            s.var.set(&(decayed - (update * p.lr)?)?)?;
            s.m.set(&m)?;
            s.v.set(&v)?;
        }
        Ok(())
    }
}

/// Scales every gradient so that their joint L2 norm is at most
/// `max_norm` (PyTorch's `clip_grad_norm_`, its 1e-6 included); returns
/// the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for v in vars {
            if let Some(g) = grads.remove(v) {
                grads.insert(v, (g * coef)?);
            }
        }
    }
    Ok(norm)
}

/// Linear warm-up to the peak rate, then cosine decay to `min_ratio` of it
/// at the last step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub min_ratio: f64,
}

impl Schedule {
    /// The rate for update `step` (0-based).
    pub fn rate(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let done = ((step - self.warmup) as f64 / span as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * done).cos());
        self.peak * (self.min_ratio + (1.0 - self.min_ratio) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;

    #[test]
    fn warms_up_then_decays_to_the_floor() {
        let s = Schedule {
            peak: 1e-3,
            warmup: 10,
            total: 110,
            min_ratio: 0.1,
        };
        assert!((s.rate(0) - 1e-4).abs() < 1e-12);
        assert!((s.rate(9) - 1e-3).abs() < 1e-12);
        assert!((s.rate(10) - 1e-3).abs() < 1e-12);
        assert!((s.rate(60) - 0.55e-3).abs() < 1e-9);
        assert!((s.rate(110) - 1e-4).abs() < 1e-12);
        assert!(s.rate(30) < s.rate(20));
    }
}
