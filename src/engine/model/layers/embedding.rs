//! Token embeddings.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use crate::engine::error::Result;
use crate::engine::kernels::QWeight;

/// Token embeddings: rows of our kernels' weight (shared with a tied output
/// projection, so the matrix is held once), or candle's lookup.
#[derive(Debug)]
pub(crate) enum Embedding {
    Kernel(Arc<QWeight>),
    Candle(QTensor),
    /// f32 rows (shared with a tied f32 output projection).
    Dense(Tensor),
}

impl Embedding {
    /// ids -> (seq, d_model)
    pub(crate) fn forward(&self, tokens: &[u32]) -> Result<Tensor> {
        match self {
            Embedding::Kernel(w) => {
                let d = w.cols();
                let mut out = vec![0f32; tokens.len() * d];
                for (row, &t) in out.chunks_exact_mut(d).zip(tokens) {
                    w.dequantize_row(t as usize, row);
                }
                Ok(Tensor::from_vec(out, (tokens.len(), d), &Device::Cpu)?)
            }
            Embedding::Candle(q) => Ok(q.embedding(&Tensor::new(tokens, &Device::Cpu)?)?),
            Embedding::Dense(t) => Ok(t.index_select(&Tensor::new(tokens, &Device::Cpu)?, 0)?),
        }
    }
}
