//! Pure functions over the engine's plain data: no tensors, no I/O.
pub mod compare;
pub mod perplexity;
