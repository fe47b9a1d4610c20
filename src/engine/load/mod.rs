//! Reading model files.
pub mod gguf;
pub mod header;
