//! Masked generation runs saved to a file: the text with its masks, and
//! each run's order, sampler settings and steps; a branch records where it
//! left its parent. Same versioning and atomic writes as decoder sessions
//! (`session.rs`), told apart by `"kind": "masked"`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::session::{BranchPoint, ModelIdentity, SESSION_VERSION, SessionError, read_versioned};
use crate::engine::masked::EncoderInfo;
use crate::engine::masked::generate::FillOrder;
use crate::engine::sampling::SamplerSettings;
use crate::engine::types::StepRecord;

pub const KIND: &str = "masked";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskedRun {
    pub label: String,
    pub order: FillOrder,
    pub settings: SamplerSettings,
    #[serde(default)]
    pub parent: Option<BranchPoint>,
    pub steps: Vec<StepRecord>,
    /// The text and the sequence after the last step.
    pub text: String,
    pub token_ids: Vec<u32>,
    /// False when the run was stopped before every step was done.
    pub finished: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskedSession {
    pub version: u32,
    pub kind: String,
    pub created_unix: u64,
    pub model: ModelIdentity,
    /// The text with its masks, and its tokens.
    pub text: String,
    pub token_ids: Vec<u32>,
    pub runs: Vec<MaskedRun>,
}

/// Whether the file at `path` is a masked session (else a decoder's, or
/// not a session at all: its own loader says which).
pub fn is_masked_session(path: &Path) -> bool {
    read_versioned(path).is_ok_and(|v| v["kind"] == KIND)
}

impl MaskedSession {
    pub fn new(info: &EncoderInfo, text: &str, token_ids: Vec<u32>) -> std::io::Result<Self> {
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(Self {
            version: SESSION_VERSION,
            kind: KIND.into(),
            created_unix,
            model: ModelIdentity {
                name: info.name.clone(),
                path: info.path.clone(),
                sha256: super::models::sha256_model(Path::new(&info.path))?,
                file_bytes: info.file_bytes,
            },
            text: text.to_string(),
            token_ids,
            runs: Vec::new(),
        })
    }

    /// Written atomically: a failed save leaves the old file as it was.
    pub fn save(&self, path: &Path) -> Result<(), SessionError> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        super::atomic::write(path, &json)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self, SessionError> {
        let corrupt = |detail: String| SessionError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let value = read_versioned(path)?;
        if value["kind"] != KIND {
            return Err(corrupt("not a masked generation session".into()));
        }
        let s: Self = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        for (i, r) in s.runs.iter().enumerate() {
            if let Some(p) = r.parent
                && (p.run >= i || p.step >= s.runs[p.run].steps.len())
            {
                return Err(corrupt(format!(
                    "run {i} branches from run {} step {}, which comes after it or does not exist",
                    p.run, p.step
                )));
            }
        }
        Ok(s)
    }
}
