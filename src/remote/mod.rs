//! An OpenAI-compatible inference server (llama.cpp's llama-server, vLLM,
//! llama-cpp-python's server) as a backend, for a model that does not fit
//! this machine: streamed completions and chat with per-token
//! log-probabilities and alternatives, prompt scoring where the server
//! echoes, and a plain account of what a server cannot give
//! ([`backend::UNAVAILABLE`]). Only engine types are shared; no tensors.

pub mod backend;
pub mod client;
pub mod error;
pub mod generate;
pub mod score;
pub mod server;
pub mod sse;
pub mod worker;

pub use backend::{Remote, RemoteOptions, RemotePrompt, RemoteRequest};
pub use error::RemoteError;
pub use generate::{Outcome, RemoteFinish, RemoteToken};
