//! Opening a GGUF file: validated up front (magic, metadata, every tensor's
//! byte range inside the file, supported tensor types), so that a truncated
//! or foreign file is reported in one line before any weight is read.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};

use super::weights::Weights;
use crate::engine::error::{EngineError, Result};

/// Tensor types the engine can multiply (candle's CPU kernels).
const SUPPORTED: &[GgmlDType] = &[
    GgmlDType::F32,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];
const SUPPORTED_NAMES: &str = "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K";

pub struct GgufFile {
    path: PathBuf,
    reader: BufReader<File>,
    pub content: gguf_file::Content,
    pub file_size: u64,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EngineError::ModelNotFound(path.to_path_buf()),
            _ => EngineError::Io(e),
        })?;
        let file_size = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        if reader.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
            return Err(EngineError::NotGguf(path.to_path_buf()));
        }
        reader.seek(SeekFrom::Start(0))?;
        super::header::check(&mut reader, file_size)
            .map_err(|detail| EngineError::corrupt(path, detail))?;
        reader.seek(SeekFrom::Start(0))?;
        let content = gguf_file::Content::read(&mut reader)
            .map_err(|e| EngineError::corrupt(path, format!("unreadable header: {e}")))?;
        let this = Self {
            path: path.to_path_buf(),
            reader,
            content,
            file_size,
        };
        this.check_tensor_ranges()?;
        Ok(this)
    }

    /// Every tensor must lie wholly inside the file: a truncated download
    /// fails here, not halfway through loading.
    fn check_tensor_ranges(&self) -> Result<()> {
        for (name, info) in &self.content.tensor_infos {
            let elems = info.shape.elem_count();
            let block = info.ggml_dtype.block_size();
            if elems % block != 0 {
                return Err(EngineError::corrupt(
                    &self.path,
                    format!("tensor `{name}` has {elems} elements, not a whole number of blocks"),
                ));
            }
            let bytes = (elems / block).saturating_mul(info.ggml_dtype.type_size());
            let end = self
                .content
                .tensor_data_offset
                .saturating_add(info.offset)
                .saturating_add(bytes as u64);
            if end > self.file_size {
                return Err(EngineError::corrupt(
                    &self.path,
                    format!(
                        "tensor `{name}` ends at byte {end} but the file has {} bytes",
                        self.file_size
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta(&self, key: &str) -> Result<&gguf_file::Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| EngineError::MissingMetadata(key.to_string()))
    }

    pub fn meta_str(&self, key: &str) -> Result<&str> {
        self.meta(key)?
            .to_string()
            .map(|s| s.as_str())
            .map_err(|_| EngineError::corrupt(&self.path, format!("`{key}` is not a string")))
    }

    pub fn meta_usize(&self, key: &str) -> Result<usize> {
        use gguf_file::Value::*;
        let v = self.meta(key)?;
        let n: Option<u64> = match v {
            U8(x) => Some(*x as u64),
            U16(x) => Some(*x as u64),
            U32(x) => Some(*x as u64),
            U64(x) => Some(*x),
            I8(x) => u64::try_from(*x).ok(),
            I16(x) => u64::try_from(*x).ok(),
            I32(x) => u64::try_from(*x).ok(),
            I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        n.map(|n| n as usize).ok_or_else(|| {
            EngineError::corrupt(&self.path, format!("`{key}` is not a count: {v:?}"))
        })
    }

    pub fn meta_f32(&self, key: &str) -> Result<f32> {
        use gguf_file::Value::*;
        match self.meta(key)? {
            F32(x) => Ok(*x),
            F64(x) => Ok(*x as f32),
            v => Err(EngineError::corrupt(
                &self.path,
                format!("`{key}` is not a number: {v:?}"),
            )),
        }
    }

    pub fn meta_bool(&self, key: &str) -> Option<bool> {
        self.meta(key).ok().and_then(|v| v.to_bool().ok())
    }

    pub fn meta_strings(&self, key: &str) -> Result<Vec<&str>> {
        let arr = self
            .meta(key)?
            .to_vec()
            .map_err(|_| EngineError::corrupt(&self.path, format!("`{key}` is not an array")))?;
        arr.iter()
            .map(|v| {
                v.to_string().map(|s| s.as_str()).map_err(|_| {
                    EngineError::corrupt(&self.path, format!("`{key}` holds a non-string"))
                })
            })
            .collect()
    }

    pub fn meta_ints(&self, key: &str) -> Result<Vec<i64>> {
        use gguf_file::Value::*;
        self.meta_array(key, "integer", |v| match v {
            I32(x) => Some(*x as i64),
            U32(x) => Some(*x as i64),
            I8(x) => Some(*x as i64),
            U8(x) => Some(*x as i64),
            I64(x) => Some(*x),
            _ => None,
        })
    }

    pub fn meta_f32s(&self, key: &str) -> Result<Vec<f32>> {
        use gguf_file::Value::*;
        self.meta_array(key, "number", |v| match v {
            F32(x) => Some(*x),
            F64(x) => Some(*x as f32),
            _ => None,
        })
    }

    /// An array whose every element `item` reads (else a `what` is missing).
    fn meta_array<T>(
        &self,
        key: &str,
        what: &str,
        item: impl Fn(&gguf_file::Value) -> Option<T>,
    ) -> Result<Vec<T>> {
        let arr = self
            .meta(key)?
            .to_vec()
            .map_err(|_| EngineError::corrupt(&self.path, format!("`{key}` is not an array")))?;
        arr.iter()
            .map(|v| {
                item(v).ok_or_else(|| {
                    EngineError::corrupt(&self.path, format!("`{key}` holds a non-{what}"))
                })
            })
            .collect()
    }

    /// The architecture's name (`general.architecture`); whether lmscope
    /// runs it is the model registry's to say (`engine::model::loader`).
    pub fn architecture(&self) -> Result<&str> {
        self.meta_str("general.architecture")
    }

    /// Rejects tensor types the engine cannot multiply, naming the first.
    pub fn check_tensor_types(&self) -> Result<()> {
        let mut names: Vec<_> = self.content.tensor_infos.keys().collect();
        names.sort();
        for name in names {
            let dtype = self.content.tensor_infos[name].ggml_dtype;
            if !SUPPORTED.contains(&dtype) {
                return Err(EngineError::UnsupportedTensorType {
                    name: name.clone(),
                    dtype: format!("{dtype:?}"),
                    supported: SUPPORTED_NAMES,
                });
            }
        }
        Ok(())
    }

    /// Tensor type -> count, for `lmscope info`.
    pub fn tensor_type_counts(&self) -> Vec<(String, usize)> {
        let mut counts = std::collections::BTreeMap::new();
        for info in self.content.tensor_infos.values() {
            *counts.entry(format!("{:?}", info.ggml_dtype)).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }
}

impl Weights for GgufFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        let info = self.content.tensor_infos.get(name).ok_or_else(|| {
            EngineError::corrupt(&self.path, format!("tensor `{name}` is missing"))
        })?;
        // GGUF lists dimensions innermost first; candle reverses them.
        Ok(info.shape.dims().to_vec())
    }

    fn quantized(&self) -> bool {
        true
    }

    /// Reads one tensor's bytes from the file (each tensor is read once).
    fn tensor(&mut self, name: &str) -> Result<QTensor> {
        if !self.has_tensor(name) {
            return Err(EngineError::corrupt(
                &self.path,
                format!("tensor `{name}` is missing"),
            ));
        }
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| EngineError::corrupt(&self.path, format!("tensor `{name}`: {e}")))
    }
}
