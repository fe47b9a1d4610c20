//! What lmscope keeps on disk: where (paths), the models it fetches, and
//! atomic writes so a crash never leaves half a file.
pub mod atomic;
pub mod config;
pub mod launch;
pub mod masked_session;
pub mod models;
pub mod paths;
pub mod presets;
pub mod session;
pub mod tasks;
