//! Where a model's layers read their weights from: a GGUF file, a
//! Hugging Face folder of safetensors, or tensors a family rearranged
//! (GPT-2's fused, transposed projections). Names are GGUF's
//! (`blk.0.attn_q.weight`); a source in another layout translates them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::engine::error::{EngineError, Result};

/// A model's weights, by GGUF tensor name.
pub trait Weights {
    /// The file or folder, for error messages.
    fn path(&self) -> &Path;
    fn has_tensor(&self, name: &str) -> bool;
    /// Dimensions, outermost first: (rows, columns) for a matrix.
    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>>;
    /// Whether the weights are stored in quantised blocks (our kernels
    /// can run them as they are).
    fn quantized(&self) -> bool;
    /// The tensor as stored (quantised blocks kept).
    fn tensor(&mut self, name: &str) -> Result<QTensor>;
    /// The tensor in f32.
    fn dense(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.tensor(name)?.dequantize(&Device::Cpu)?)
    }
}

/// Tensors already in memory, in f32, by GGUF name: what a family makes
/// of a checkpoint whose layout is not a renaming of GGUF's.
pub struct TensorMap {
    pub path: PathBuf,
    pub tensors: HashMap<String, Tensor>,
}

impl TensorMap {
    fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| EngineError::corrupt(&self.path, format!("tensor `{name}` is missing")))
    }
}

impl Weights for TensorMap {
    fn path(&self) -> &Path {
        &self.path
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.get(name)?.dims().to_vec())
    }

    fn quantized(&self) -> bool {
        false
    }

    fn tensor(&mut self, name: &str) -> Result<QTensor> {
        Ok(QTensor::quantize(self.get(name)?, GgmlDType::F32)?)
    }

    /// Taken out of the map: each weight is read once, and held once.
    fn dense(&mut self, name: &str) -> Result<Tensor> {
        self.get(name)?;
        Ok(self.tensors.remove(name).expect("checked"))
    }
}
