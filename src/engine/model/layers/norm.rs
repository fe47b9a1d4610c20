//! Normalisation: RMS norms (Llama, Gemma), summed in ggml's order, and
//! LayerNorm with a bias (GPT-2).

use crate::engine::error::Result;
use crate::engine::load::weights::Weights;

#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    pub(crate) fn load(weights: &mut dyn Weights, name: &str, eps: f32) -> Result<Self> {
        let weight = weights.dense(name)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { weight, eps })
    }

    /// Each row of x (rows of d_model) -> x / rms(x) * weight, into `out`.
    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        let d = self.weight.len();
        // Four rows at a time: each row's sum of squares is summed in order
        // in f64, as ggml's rms_norm sums it, and the rows' chains run side
        // by side (one alone waits on each addition's latency).
        for (xs, os) in x.chunks(4 * d).zip(out.chunks_mut(4 * d)) {
            let sum2 = match xs.len() / d {
                4 => sum_squares::<4>(xs, d),
                3 => sum_squares::<3>(xs, d),
                2 => sum_squares::<2>(xs, d),
                _ => sum_squares::<1>(xs, d),
            };
            for ((xr, or), s) in xs.chunks_exact(d).zip(os.chunks_exact_mut(d)).zip(sum2) {
                let scale = 1.0 / ((s / d as f64) as f32 + self.eps).sqrt();
                for ((o, &v), &w) in or.iter_mut().zip(xr).zip(&self.weight) {
                    *o = v * scale * w;
                }
            }
        }
    }
}

/// Each of the R rows of `d` in `xs`: its sum of squares, in order, in f64
/// (four in the array; R a constant, so that the chains stay in registers
/// side by side rather than going through memory every addition).
pub(crate) fn sum_squares<const R: usize>(xs: &[f32], d: usize) -> [f64; 4] {
    let rows: [&[f32]; R] = std::array::from_fn(|r| &xs[r * d..(r + 1) * d]);
    let mut sum2 = [0f64; R];
    for i in 0..d {
        for (s, row) in sum2.iter_mut().zip(&rows) {
            let v = row[i];
            *s += (v * v) as f64;
        }
    }
    std::array::from_fn(|r| if r < R { sum2[r] } else { 0.0 })
}

/// LayerNorm: each row centred, scaled to unit variance, then
/// `weight * x + bias` (mean and variance summed in f64).
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        let d = self.weight.len();
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
            let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
            let scale = 1.0 / (var + self.eps as f64).sqrt();
            for (((o, &v), &w), &b) in or.iter_mut().zip(xr).zip(&self.weight).zip(&self.bias) {
                *o = ((v as f64 - mean) * scale) as f32 * w + b;
            }
        }
    }
}

/// A block's norm: RMS, or LayerNorm where the weights have a bias.
#[derive(Debug, Clone)]
pub(crate) enum Norm {
    Rms(RmsNorm),
    Layer(LayerNorm),
}

impl Norm {
    /// `{name}.weight`, and `{name}.bias` if there is one (LayerNorm).
    pub(crate) fn load(weights: &mut dyn Weights, name: &str, eps: f32) -> Result<Self> {
        let bias = format!("{name}.bias");
        let rms = RmsNorm::load(weights, &format!("{name}.weight"), eps)?;
        if !weights.has_tensor(&bias) {
            return Ok(Norm::Rms(rms));
        }
        let bias = weights.dense(&bias)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Norm::Layer(LayerNorm {
            weight: rms.weight,
            bias,
            eps,
        }))
    }

    /// `{name}.weight` (and its bias) where the weights have it.
    pub(crate) fn optional(
        weights: &mut dyn Weights,
        name: &str,
        eps: f32,
    ) -> Result<Option<Self>> {
        if weights.has_tensor(&format!("{name}.weight")) {
            Ok(Some(Self::load(weights, name, eps)?))
        } else {
            Ok(None)
        }
    }

    pub(crate) fn forward(&self, x: &[f32], out: &mut [f32]) {
        match self {
            Norm::Rms(n) => n.forward(x, out),
            Norm::Layer(n) => n.forward(x, out),
        }
    }
}

/// A vector weight (a bias) where the weights have it.
pub(crate) fn optional_vector(weights: &mut dyn Weights, name: &str) -> Result<Option<Vec<f32>>> {
    if weights.has_tensor(name) {
        Ok(Some(weights.dense(name)?.flatten_all()?.to_vec1::<f32>()?))
    } else {
        Ok(None)
    }
}

/// Adds `bias` (one row's width) to every row of `x`, where there is one.
pub(crate) fn add_bias(x: &mut [f32], bias: &Option<Vec<f32>>) {
    if let Some(b) = bias {
        for row in x.chunks_exact_mut(b.len()) {
            for (v, &b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
}
