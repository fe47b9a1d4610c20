//! Linear layers over GGUF weights (our kernels, or candle's `QMatMul`).

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use crate::engine::error::{EngineError, Result};
use crate::engine::kernels::{self, QWeight, WeightKind};
use crate::engine::load::gguf::GgufFile;
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
    pub(crate) fn load(gguf: &mut GgufFile, name: &str, precision: Precision) -> Result<Self> {
        let q = gguf.tensor(name)?;
        Ok(match precision {
            Precision::Quantized => match kernel_weight(&q)? {
                Some(w) => Linear::Kernel(Arc::new(w)),
                None => Linear::Candle(QMatMul::from_qtensor(q)?),
            },
            Precision::F32 => Linear::Candle(QMatMul::Tensor(q.dequantize(&Device::Cpu)?)),
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

/// The weight in our kernels' layout, when they handle its type.
pub(crate) fn kernel_weight(q: &QTensor) -> Result<Option<QWeight>> {
    let kind = match q.dtype() {
        GgmlDType::Q4_1 => WeightKind::Q4_1,
        GgmlDType::Q8_0 => WeightKind::Q8_0,
        _ => return Ok(None),
    };
    let (rows, cols) = q.shape().dims2()?;
    let w = QWeight::new(kind, rows, cols, q.data()?.into_owned())
        .map_err(|e| EngineError::corrupt(std::path::Path::new("(weights)"), e))?;
    Ok(Some(w))
}
