//! Where lmscope keeps its files. `LMSCOPE_DATA_DIR` and `LMSCOPE_CONFIG_DIR`
//! override the platform's directories (tests use them for isolation).

use std::path::PathBuf;

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "lmscope")
}

fn fallback() -> PathBuf {
    std::env::temp_dir().join("lmscope")
}

/// Models, sessions and logs.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LMSCOPE_DATA_DIR") {
        return PathBuf::from(dir);
    }
    project_dirs()
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(fallback)
}

/// The user's config.toml and keymap.
pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LMSCOPE_CONFIG_DIR") {
        return PathBuf::from(dir);
    }
    project_dirs()
        .map(|d| d.config_dir().to_path_buf())
        .unwrap_or_else(fallback)
}

pub fn models_dir() -> PathBuf {
    data_dir().join("models")
}

pub fn logs_dir() -> PathBuf {
    data_dir().join("logs")
}

pub fn sessions_dir() -> PathBuf {
    data_dir().join("sessions")
}

/// Where training runs write their checkpoints unless told otherwise.
pub fn runs_dir() -> PathBuf {
    data_dir().join("runs")
}
