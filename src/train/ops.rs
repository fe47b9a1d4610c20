//! The differentiable pieces the trainable nets share, written from
//! candle's primitive ops so that autograd reaches through them (candle-nn's
//! fused layer-norm and RMS-norm kernels have no backward pass).

use candle_core::{D, DType, Device, Result, Tensor};
use candle_nn::{Embedding, Init, Linear, Module};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::lora::{self, LoraConfig};

/// A LayerNorm whose gradient flows (mean and variance over the last axis).
#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(d: usize, eps: f64, vb: candle_nn::VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(d, "bias", candle_nn::Init::Const(0.0))?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, self.eps as f32)
    }
}

/// Llama's RMSNorm, differentiable.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    pub weight: Tensor,
    pub eps: f64,
}

impl RmsNorm {
    pub fn new(d: usize, eps: f64, vb: candle_nn::VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", candle_nn::Init::Const(1.0))?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm_slow(x, &self.weight, self.eps as f32)
    }
}

/// A linear layer with or without bias, weights `(out, in)` as PyTorch's.
pub fn linear(d_in: usize, d_out: usize, bias: bool, vb: candle_nn::VarBuilder) -> Result<Linear> {
    if bias {
        candle_nn::linear(d_in, d_out, vb)
    } else {
        candle_nn::linear_no_bias(d_in, d_out, vb)
    }
}

/// A linear layer, with a LoRA adapter when `lora` targets it: the
/// adapter's path runs beside the frozen weight, `x W^T + scale * x A^T B^T`.
pub struct Proj {
    base: Linear,
    adapter: Option<(Linear, Linear, f64)>,
}

impl Proj {
    pub fn new(
        d_in: usize,
        d_out: usize,
        bias: bool,
        lora: Option<&LoraConfig>,
        vb: candle_nn::VarBuilder,
    ) -> Result<Self> {
        let adapter = match lora {
            Some(l) if l.targets(&vb.prefix()) => {
                // PEFT's kaiming-uniform draw for A has this deviation.
                let stdev = 1.0 / (3.0 * d_in as f64).sqrt();
                let a =
                    vb.get_with_hints((l.rank, d_in), lora::A, Init::Randn { mean: 0.0, stdev })?;
                let b = vb.get_with_hints((d_out, l.rank), lora::B, Init::Const(0.0))?;
                Some((Linear::new(a, None), Linear::new(b, None), l.scale()))
            }
            _ => None,
        };
        Ok(Self {
            base: linear(d_in, d_out, bias, vb)?,
            adapter,
        })
    }
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        match &self.adapter {
            Some((a, b, scale)) => y + (b.forward(&a.forward(x)?)? * *scale)?,
            None => Ok(y),
        }
    }
}

pub fn embedding(n: usize, d: usize, vb: candle_nn::VarBuilder) -> Result<Embedding> {
    let table = vb.get_with_hints(
        (n, d),
        "weight",
        candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
    )?;
    Ok(Embedding::new(table, d))
}

/// `x` through `layer`.
pub fn apply(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    layer.forward(x)
}

/// Dropout with its own seeded generator, so that a run (and a resumed
/// run) draws the same masks: candle's `rand` uses an unseeded one.
pub struct Dropout {
    pub p: f32,
    rng: Option<ChaCha8Rng>,
}

impl Dropout {
    /// Dropout for one training step: `seed` and `step` fix its masks.
    pub fn train(p: f32, seed: u64, step: u64) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(
            seed ^ 0x6472_6f70 ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        Self { p, rng: Some(rng) }
    }

    /// No dropout (evaluation, probes, gradient checks).
    pub fn off() -> Self {
        Self { p: 0.0, rng: None }
    }

    pub fn apply(&mut self, x: &Tensor) -> Result<Tensor> {
        let Some(rng) = self.rng.as_mut().filter(|_| self.p > 0.0) else {
            return Ok(x.clone());
        };
        let keep = 1.0 - self.p;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| {
                if rng.random::<f32>() < keep {
                    1.0 / keep
                } else {
                    0.0
                }
            })
            .collect();
        x * Tensor::from_vec(mask, x.shape(), x.device())?
    }
}

/// Scaled dot-product attention over `(batch, heads, time, head_dim)`:
/// the context and the probabilities. `bias` is added to the scores
/// before the softmax (padding and causal masks), broadcast.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    dropout: &mut Dropout,
) -> Result<(Tensor, Tensor)> {
    let d = q.dim(D::Minus1)?;
    let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
    let scores = match bias {
        Some(b) => scores.broadcast_add(b)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
    let ctx = dropout.apply(&probs)?.matmul(&v.contiguous()?)?;
    Ok((ctx, probs))
}

/// What masked-out scores get: far below any real score, so their
/// softmax weight is exactly 0 in f32, and finite, so no NaN appears.
const MASKED: f32 = -1e9;

/// `(time, time)` scores bias that lets each position see only itself and
/// the ones before it.
pub fn causal_bias(t: usize, device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { MASKED } else { 0.0 })
        .collect();
    Tensor::from_vec(v, (t, t), device)
}

/// `(batch, 1, 1, time)` scores bias that hides padded keys.
pub fn padding_bias(mask: &[Vec<u32>], device: &Device) -> Result<Tensor> {
    let (b, t) = (mask.len(), mask.first().map_or(0, Vec::len));
    let v: Vec<f32> = mask
        .iter()
        .flatten()
        .map(|&m| if m == 0 { MASKED } else { 0.0 })
        .collect();
    Tensor::from_vec(v, (b, 1, 1, t), device)
}

/// `(batch, time)` of ids as a u32 tensor.
pub fn ids_tensor(rows: &[Vec<u32>], device: &Device) -> Result<Tensor> {
    let (b, t) = (rows.len(), rows.first().map_or(0, Vec::len));
    Tensor::from_vec(rows.concat(), (b, t), device)
}

/// Mean cross-entropy of `logits` `(n, vocab)` against `targets`.
pub fn cross_entropy(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    let t = Tensor::new(targets, logits.device())?;
    candle_nn::loss::cross_entropy(logits, &t)
}

/// The rows of `x` `(batch, time, d)` at flat positions `at`, as `(n, d)`.
pub fn rows_at(x: &Tensor, at: &[u32]) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let idx = Tensor::new(at, x.device())?;
    x.reshape((b * t, d))?.index_select(&idx, 0)
}

/// A scalar tensor's value.
pub fn scalar(x: &Tensor) -> Result<f32> {
    x.to_dtype(DType::F32)?.to_scalar::<f32>()
}
