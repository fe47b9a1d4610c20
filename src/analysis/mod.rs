//! Pure functions over the engine's plain data: no tensors, no I/O.
pub mod ablation;
pub mod attribution;
pub mod bias;
pub mod compare;
pub mod lens;
pub mod perplexity;
pub mod positions;
