//! Model architectures and their caches.
pub mod cache;
pub mod llama;
mod probe;

pub use cache::KvCache;
pub use llama::{Config, Llama, Logits, Precision};
