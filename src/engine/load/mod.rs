//! Reading model files.
pub mod gguf;
