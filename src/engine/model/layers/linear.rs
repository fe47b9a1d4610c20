//! Linear layers over GGUF weights (our kernels, or candle's `QMatMul`).

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::{self, QWeight, WeightKind};
use crate::engine::load::weights::Weights;
use crate::engine::model::types::Precision;

/// A linear layer over a GGUF weight of shape (out, in): our own kernels
/// for Q4_1 and Q8_0 weights, candle's `QMatMul` for other types and for
/// `Precision::F32`.
#[derive(Debug, Clone)]
pub(crate) enum Linear {
    Kernel(Arc<QWeight>),
    Candle(QMatMul),
}

impl Linear {
    pub(crate) fn load(
        weights: &mut dyn Weights,
        name: &str,
        precision: Precision,
    ) -> Result<Self> {
        if precision == Precision::F32 || !weights.quantized() {
            return Ok(Linear::Candle(QMatMul::Tensor(weights.dense(name)?)));
        }
        let q = weights.tensor(name)?;
        Ok(match kernel_weight(&q)? {
            Some(w) => Linear::Kernel(Arc::new(w)),
            None => Linear::Candle(QMatMul::from_qtensor(q)?),
        })
    }

    /// Several layers over the same m rows of input (Q, K, V; gate, up):
    /// with our kernels the input is quantised once and one parallel region
    /// covers them all. Returns m rows of out_i for each layer.
    pub(crate) fn forward_rows(layers: &[&Linear], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        let kernels: Option<Vec<&QWeight>> = layers
            .iter()
            .map(|l| match l {
                Linear::Kernel(w) => Some(&**w),
                Linear::Candle(_) => None,
            })
            .collect();
        match kernels {
            Some(ws)
                if ws
                    .iter()
                    .all(|w| w.kind() == ws[0].kind() && w.cols() == ws[0].cols()) =>
            {
                Ok(kernels::matmul_new(&ws, x, m))
            }
            _ => {
                let xt = Tensor::from_slice(x, (m, x.len() / m), &Device::Cpu)?;
                layers
                    .iter()
                    .map(|l| {
                        Ok(l.forward(&xt)?
                            .flatten_all()?
                            .to_dtype(DType::F32)?
                            .to_vec1::<f32>()?)
                    })
                    .collect()
            }
        }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(Self::forward_fused(&[self], x)?.pop().expect("one output"))
    }

    /// Several layers over the same input (Q, K, V; gate, up): with our
    /// kernels the input is quantised once and one parallel region covers
    /// them all. x: (.., in) -> [(.., out_i)].
    fn forward_fused(layers: &[&Linear], x: &Tensor) -> Result<Vec<Tensor>> {
        let kernels: Option<Vec<&QWeight>> = layers
            .iter()
            .map(|l| match l {
                Linear::Kernel(w) => Some(&**w),
                Linear::Candle(_) => None,
            })
            .collect();
        let fusable = kernels.as_ref().is_some_and(|ws| {
            ws.iter()
                .all(|w| w.kind() == ws[0].kind() && w.cols() == ws[0].cols())
        });
        let Some(ws) = kernels.filter(|_| fusable) else {
            return layers
                .iter()
                .map(|l| match l {
                    Linear::Kernel(_) => Self::forward_fused(&[l], x).map(|mut v| v.remove(0)),
                    Linear::Candle(mm) => Ok(mm.forward(x)?),
                })
                .collect();
        };
        let dims = x.dims().to_vec();
        let cols = *dims.last().expect("rank >= 1");
        let m = x.elem_count() / cols;
        let data = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        kernels::matmul_new(&ws, &data, m)
            .into_iter()
            .zip(&ws)
            .map(|(o, w)| {
                let mut shape = dims.clone();
                *shape.last_mut().expect("rank >= 1") = w.rows();
                Ok(Tensor::from_vec(o, shape, &Device::Cpu)?)
            })
            .collect()
    }
}

/// The weight in our kernels' layout, when they handle its type. Q5_0
/// is widened to Q8_0 (the same scale, quants q - 16): lossless, and
/// ggml's Q5_0 x Q8_0 product is the Q8_0 one on those bytes, so ours
/// computes what llama.cpp does (candle's would quantise the activations
/// with other rounding).
pub(crate) fn kernel_weight(q: &QTensor) -> Result<Option<QWeight>> {
    let (rows, cols) = q.shape().dims2()?;
    let bad = |e| EngineError::corrupt(std::path::Path::new("(weights)"), e);
    let (kind, data) = match q.dtype() {
        GgmlDType::Q4_1 => (WeightKind::Q4_1, q.data()?.into_owned()),
        GgmlDType::Q8_0 => (WeightKind::Q8_0, q.data()?.into_owned()),
        GgmlDType::Q5_0 => (WeightKind::Q8_0, q5_0_as_q8_0(&q.data()?).map_err(bad)?),
        _ => return Ok(None),
    };
    Ok(Some(QWeight::new(kind, rows, cols, data).map_err(bad)?))
}

/// Q5_0 blocks (f16 d, 32 high bits, 16 bytes of nibbles; w = d (q - 16))
/// rewritten as Q8_0 blocks (f16 d, 32 signed bytes).
fn q5_0_as_q8_0(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    const Q5_0_BYTES: usize = 22;
    if !bytes.len().is_multiple_of(Q5_0_BYTES) {
        return Err(format!(
            "{} bytes is no whole number of Q5_0 blocks",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / Q5_0_BYTES * WeightKind::Q8_0.block_bytes());
    for blk in bytes.chunks_exact(Q5_0_BYTES) {
        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
        let qs = &blk[6..];
        out.extend_from_slice(&blk[..2]);
        out.extend((0..kernels::QK).map(|j| {
            let nibble = if j < 16 {
                qs[j] & 0x0f
            } else {
                qs[j - 16] >> 4
            };
            let q = nibble | ((((qh >> j) & 1) as u8) << 4);
            (q as i8 - 16) as u8
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_0_widened_to_q8_0_dequantises_to_the_same_weights() {
        use candle_core::quantized::QTensor;
        let w: Vec<f32> = (0..4 * 64)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let t = Tensor::from_vec(w, (4, 64), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::Q5_0).unwrap();
        let want = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
        let want = want.to_vec1::<f32>().unwrap();
        let widened = kernel_weight(&q).unwrap().expect("a kernel weight");
        assert_eq!(widened.kind(), WeightKind::Q8_0);
        let mut row = vec![0f32; 64];
        for r in 0..4 {
            widened.dequantize_row(r, &mut row);
            assert_eq!(row, want[r * 64..(r + 1) * 64]);
        }
    }
}
