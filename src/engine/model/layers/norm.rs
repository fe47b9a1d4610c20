//! RMS normalisation, summed in ggml's order.

use candle_core::Device;

use crate::engine::error::Result;
use crate::engine::load::gguf::GgufFile;

#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    pub(crate) fn load(gguf: &mut GgufFile, name: &str, eps: f32) -> Result<Self> {
        let weight = gguf
            .tensor(name)?
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
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
