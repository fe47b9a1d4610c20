//! The layers a transformer is built from, shared by the architectures:
//! each architecture's file (`model/llama.rs`, ...) only assembles them.

pub(crate) mod attention;
pub(crate) mod embedding;
pub(crate) mod linear;
pub(crate) mod mlp;
pub(crate) mod norm;
pub(crate) mod rope;

pub(crate) use attention::Attention;
pub(crate) use embedding::Embedding;
pub(crate) use linear::{Linear, kernel_weight};
pub(crate) use mlp::Mlp;
pub(crate) use rope::Rope;
pub use rope::RopeStyle;
