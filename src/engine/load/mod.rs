//! Reading model files: GGUF files and Hugging Face folders, behind the
//! [`weights::Weights`] the layers read.
pub mod gguf;
pub mod header;
pub mod safetensors;
pub mod weights;
