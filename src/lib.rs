//! lmscope: a terminal workbench for looking inside a language model while
//! it writes.
//!
//! Layers, each seeing only those before it:
//! `engine` (candle, the model thread) <- `analysis` (pure functions over
//! engine data) <- `store` (files) <- `cli`, `ui` (the interface).
//!
//! `unsafe` is denied everywhere but the SIMD kernels (`engine::kernels`),
//! where each block says why it holds.

#![deny(unsafe_code)]

pub mod analysis;
pub mod cli;
pub mod engine;
pub mod remote;
pub mod store;
pub mod train;
pub mod ui;
