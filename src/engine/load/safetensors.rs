//! A Hugging Face model folder: `config.json`, the tokenizer's files and
//! `model.safetensors` (or shards listed in `model.safetensors.index.json`),
//! memory-mapped. Each weight is turned into f32 straight from the mapped
//! bytes when a layer asks for it: one copy, whatever the stored type (F32,
//! F16, BF16). A family names each checkpoint tensor in GGUF's words
//! ([`HfFolder::rename`]) so that the shared layers read either source.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};
use safetensors::Dtype;

use super::weights::Weights;
use crate::engine::error::{EngineError, Result};

pub struct HfFolder {
    dir: PathBuf,
    /// `config.json`.
    pub config: serde_json::Value,
    files: MmapedSafetensors,
    /// Bytes of the weight files together.
    pub file_bytes: u64,
    /// GGUF name -> checkpoint name, for the tensors the family reads.
    names: HashMap<String, String>,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EngineError::corrupt(path, format!("cannot read it: {e}")))?;
    serde_json::from_str(&text)
        .map_err(|e| EngineError::corrupt(path, format!("not valid JSON: {e}")))
}

impl HfFolder {
    /// Opens `dir`: its config and the weight files, mapped (no weight is
    /// read yet).
    pub fn open(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(EngineError::corrupt(
                dir,
                "a Hugging Face model folder needs a config.json",
            ));
        }
        let config = read_json(&config_path)?;
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let paths: Vec<PathBuf> = if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let map = read_json(&index)?;
            let shards: std::collections::BTreeSet<&str> = map["weight_map"]
                .as_object()
                .ok_or_else(|| EngineError::corrupt(&index, "it has no `weight_map`"))?
                .values()
                .filter_map(|v| v.as_str())
                .collect();
            shards.into_iter().map(|s| dir.join(s)).collect()
        } else {
            return Err(EngineError::corrupt(
                dir,
                "no model.safetensors or model.safetensors.index.json (lmscope reads safetensors weights, not pytorch_model.bin)",
            ));
        };
        let mut file_bytes = 0;
        for p in &paths {
            file_bytes += std::fs::metadata(p)
                .map_err(|e| EngineError::corrupt(p, format!("weight file missing: {e}")))?
                .len();
        }
        // SAFETY: the files are mapped read-only; as with every mapped
        // model (GGUF readers included), changing them while lmscope runs
        // is the user's to avoid.
        #[allow(unsafe_code)]
        let files = unsafe { MmapedSafetensors::multi(&paths) }
            .map_err(|e| EngineError::corrupt(dir, format!("unreadable safetensors: {e}")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            files,
            file_bytes,
            names: HashMap::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Another JSON file of the folder (`tokenizer_config.json`,
    /// `generation_config.json`): Null when it is not there, an error when
    /// it is there but unreadable.
    pub fn sidecar(&self, name: &str) -> Result<serde_json::Value> {
        let path = self.dir.join(name);
        if path.exists() {
            read_json(&path)
        } else {
            Ok(serde_json::Value::Null)
        }
    }

    /// `config.json`'s `model_type` (`llama`, `gpt2`, ...).
    pub fn model_type(&self) -> Result<&str> {
        self.config["model_type"]
            .as_str()
            .ok_or_else(|| EngineError::corrupt(&self.dir, "config.json has no `model_type`"))
    }

    /// The checkpoint's tensor names.
    pub fn checkpoint_names(&self) -> Vec<String> {
        self.files.tensors().into_iter().map(|(n, _)| n).collect()
    }

    /// Names every checkpoint tensor `gguf_name` maps (the others, such
    /// as cached rotary tables, are not read).
    pub fn rename(&mut self, gguf_name: impl Fn(&str) -> Option<String>) {
        self.names = self
            .checkpoint_names()
            .into_iter()
            .filter_map(|hf| gguf_name(&hf).map(|g| (g, hf)))
            .collect();
    }

    /// A checkpoint tensor by its own name, in f32: (shape, values).
    pub fn read(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let bad = |e: String| EngineError::corrupt(&self.dir, format!("tensor `{hf_name}`: {e}"));
        let view = self.files.get(hf_name).map_err(|e| bad(e.to_string()))?;
        let bytes = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => return Err(bad(format!("type {other:?} (F32, F16 and BF16 are read)"))),
        };
        Ok((view.shape().to_vec(), values))
    }

    /// Stored type -> tensor count, for `info`.
    pub fn dtype_counts(&self) -> Vec<(String, usize)> {
        let mut counts = BTreeMap::new();
        for (_, v) in self.files.tensors() {
            *counts.entry(format!("{:?}", v.dtype())).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }

    /// Values in the checkpoint.
    pub fn parameters(&self) -> u64 {
        self.files
            .tensors()
            .iter()
            .map(|(_, v)| v.shape().iter().product::<usize>() as u64)
            .sum()
    }

    fn hf_name(&self, name: &str) -> Result<&str> {
        self.names
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| EngineError::corrupt(&self.dir, format!("tensor `{name}` is missing")))
    }
}

impl Weights for HfFolder {
    fn path(&self) -> &Path {
        &self.dir
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        let hf = self.hf_name(name)?;
        let view = self
            .files
            .get(hf)
            .map_err(|e| EngineError::corrupt(&self.dir, format!("tensor `{hf}`: {e}")))?;
        Ok(view.shape().to_vec())
    }

    fn quantized(&self) -> bool {
        false
    }

    fn tensor(&mut self, name: &str) -> Result<QTensor> {
        Ok(QTensor::quantize(&self.dense(name)?, GgmlDType::F32)?)
    }

    fn dense(&mut self, name: &str) -> Result<Tensor> {
        let (shape, values) = self.read(self.hf_name(name)?)?;
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    }
}
