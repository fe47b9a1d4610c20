//! Session files: everything needed to see a run again, versioned, written
//! atomically. Token records go in a JSON file; captured attention (when it
//! was on) in a binary sidecar beside it (`<name>.attn`, f16).
//!
//! A corrupt, truncated or newer-version file is reported and never
//! modified.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::types::{AttentionRows, FinishReason, StepRecord, Timings};
use crate::engine::{Prompt, Request};

/// The format version this build writes and the newest it reads.
pub const SESSION_VERSION: u32 = 1;
const ATTN_MAGIC: &[u8; 4] = b"LMSA";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{path} is not a readable session file ({detail}); it was left untouched")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} was written by a newer lmscope (session format v{found}; this build reads up to v{SESSION_VERSION}); update lmscope; the file was left untouched"
    )]
    TooNew { path: PathBuf, found: u64 },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds token id {id}, beyond the model's vocabulary of {vocab} tokens; the session does not belong to this model (pass the right one with --model)"
    )]
    TokenOutOfVocabulary {
        path: PathBuf,
        id: u32,
        vocab: usize,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Which model made the session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub file_bytes: u64,
}

/// Where a branch left its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchPoint {
    pub run: usize,
    /// The step whose token the branch replaced.
    pub step: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub label: String,
    pub request: Request,
    #[serde(default)]
    pub parent: Option<BranchPoint>,
    pub steps: Vec<StepRecord>,
    pub text: String,
    pub finish: Option<FinishReason>,
    #[serde(default)]
    pub timings: Timings,
    /// The prompt's tokens as text (for showing the run again without the
    /// model; absent in files written before the interface saved them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_texts: Vec<String>,
}

impl Run {
    /// The record of a finished (or stopped) generation.
    pub fn from_generation(
        label: impl Into<String>,
        request: &Request,
        g: &crate::engine::Generation,
    ) -> Self {
        Self {
            label: label.into(),
            request: request.clone(),
            parent: None,
            steps: g.steps().to_vec(),
            text: g.text().to_string(),
            finish: g.finished(),
            timings: g.timings(),
            prompt_texts: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    pub created_unix: u64,
    pub model: ModelIdentity,
    pub prompt: Prompt,
    pub prompt_tokens: Vec<u32>,
    /// The chat template the prompt was rendered with, if it was a chat.
    pub template: Option<String>,
    pub runs: Vec<Run>,
    /// Runs shown side by side (indices into `runs`).
    #[serde(default)]
    pub compare: Vec<usize>,
}

impl Session {
    pub fn new(
        model: ModelIdentity,
        prompt: Prompt,
        prompt_tokens: Vec<u32>,
        template: Option<String>,
    ) -> Self {
        let created_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            version: SESSION_VERSION,
            created_unix,
            model,
            prompt,
            prompt_tokens,
            template,
            runs: Vec::new(),
            compare: Vec::new(),
        }
    }

    /// The identity of the model at `path`, as recorded in a session.
    pub fn identify(info: &crate::engine::types::ModelInfo) -> std::io::Result<ModelIdentity> {
        Ok(ModelIdentity {
            name: info.name.clone(),
            path: info.path.clone(),
            sha256: super::models::sha256_model(Path::new(&info.path))?,
            file_bytes: info.file_bytes,
        })
    }

    /// Writes the session (and its attention sidecar, when any step has
    /// attention) atomically.
    pub fn save(&self, path: &Path) -> Result<(), SessionError> {
        let mut records = Vec::new();
        let mut plain = self.clone();
        for (r, run) in plain.runs.iter_mut().enumerate() {
            for step in &mut run.steps {
                if let Some(a) = step.attention.take() {
                    records.push((r, step.step, a));
                }
            }
        }
        let sidecar = sidecar_path(path);
        if records.is_empty() {
            let _ = std::fs::remove_file(&sidecar);
        } else {
            super::atomic::write(&sidecar, &encode_attention(&records))?;
        }
        let json = serde_json::to_vec_pretty(&plain).map_err(std::io::Error::other)?;
        super::atomic::write(path, &json)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self, SessionError> {
        let corrupt = |detail: String| SessionError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let value = read_versioned(path)?;
        let mut session: Session =
            serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        let sidecar = sidecar_path(path);
        if sidecar.is_file() {
            let bytes = std::fs::read(&sidecar).map_err(|source| SessionError::Read {
                path: sidecar.clone(),
                source,
            })?;
            let sidecar_corrupt = |detail: String| SessionError::Corrupt {
                path: sidecar.clone(),
                detail,
            };
            let records = decode_attention(&bytes).map_err(sidecar_corrupt)?;
            let mut shape = None;
            for (r, s, a) in records {
                // Every record comes from one model: the same layers and heads.
                let this = (a.n_layer, a.n_head);
                if a.n_layer == 0 || a.n_head == 0 || shape.is_some_and(|s| s != this) {
                    return Err(sidecar_corrupt(format!(
                        "run {r} step {s} has {} layers x {} heads, unlike the other records",
                        a.n_layer, a.n_head
                    )));
                }
                shape = Some(this);
                let Some(step) = session.runs.get_mut(r).and_then(|run| run.steps.get_mut(s))
                else {
                    return Err(sidecar_corrupt(format!(
                        "it has attention for run {r} step {s}, which the session does not have"
                    )));
                };
                // The query that predicted the token at `position` is the one
                // before it, and sees every key up to itself.
                if a.n_key < a.first_query + 1 || a.first_query + 1 > step.position.max(1) {
                    return Err(sidecar_corrupt(format!(
                        "run {r} step {s} has {} keys from query {}, which does not fit the token at position {}",
                        a.n_key, a.first_query, step.position
                    )));
                }
                step.attention = Some(a);
            }
        }
        Ok(session)
    }
}

impl Session {
    /// Refuses a session with a token id the model at hand does not have
    /// (`path` is the session file, for the message).
    pub fn check_vocabulary(&self, path: &Path, vocab: usize) -> Result<(), SessionError> {
        let ids = self.prompt_tokens.iter().copied().chain(
            self.runs
                .iter()
                .flat_map(|r| r.steps.iter().map(|s| s.token_id)),
        );
        for id in ids {
            if id as usize >= vocab {
                return Err(SessionError::TokenOutOfVocabulary {
                    path: path.to_path_buf(),
                    id,
                    vocab,
                });
            }
        }
        Ok(())
    }
}

/// A session file as the session list shows it, read without its records
/// or attention; `error` says why a file could not be read (it is left
/// untouched).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEntry {
    pub path: PathBuf,
    pub name: String,
    /// When the session was made (for a broken file: its modification time).
    pub created_unix: u64,
    pub model: String,
    /// The first words of the prompt.
    pub prompt: String,
    pub runs: usize,
    pub error: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Head {
    created_unix: u64,
    model: ModelIdentity,
    prompt: Prompt,
    runs: Vec<serde::de::IgnoredAny>,
}

/// The prompt's text in brief: the last message of a chat, at most `words`
/// words, on one line.
pub fn prompt_summary(prompt: &Prompt, words: usize) -> String {
    let text = match prompt {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(m) => m.last().map(|m| m.content.clone()).unwrap_or_default(),
        Prompt::Tokens(t) => format!("{} tokens", t.len()),
    };
    let all: Vec<&str> = text.split_whitespace().collect();
    let mut out = all[..all.len().min(words)].join(" ");
    if all.len() > words {
        out.push('…');
    }
    out
}

/// The session files (`*.json`) in `dir`, newest first. A missing folder
/// is an empty list.
pub fn list(dir: &Path) -> Vec<SessionEntry> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<SessionEntry> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .map(|path| peek(&path))
        .collect();
    out.sort_by(|a, b| {
        b.created_unix
            .cmp(&a.created_unix)
            .then_with(|| b.name.cmp(&a.name))
    });
    out
}

fn peek(path: &Path) -> SessionEntry {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut entry = SessionEntry {
        path: path.to_path_buf(),
        name,
        created_unix: modified,
        model: String::new(),
        prompt: String::new(),
        runs: 0,
        error: None,
    };
    let head = (|| -> Result<Head, SessionError> {
        let corrupt = |detail: String| SessionError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let value = read_versioned(path)?;
        serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
    })();
    match head {
        Ok(h) => {
            entry.created_unix = h.created_unix;
            entry.model = h.model.name;
            entry.prompt = prompt_summary(&h.prompt, 8);
            entry.runs = h.runs.len();
        }
        Err(e) => entry.error = Some(e.to_string()),
    }
    entry
}

/// `unix` seconds as `YYYY-MM-DD HH:MM` UTC.
pub fn format_utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// A session file's JSON, refused when it is not JSON, has no format
/// version or is newer than this build reads.
pub(super) fn read_versioned(path: &Path) -> Result<serde_json::Value, SessionError> {
    let corrupt = |detail: String| SessionError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|source| SessionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        corrupt(format!(
            "not UTF-8 text: invalid byte at offset {}",
            e.valid_up_to()
        ))
    })?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let version = value
        .get("version")
        .and_then(|v| v.as_u64())
        .ok_or_else(|| corrupt("no format version".into()))?;
    if version > SESSION_VERSION as u64 {
        return Err(SessionError::TooNew {
            path: path.to_path_buf(),
            found: version,
        });
    }
    Ok(value)
}

pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("attn")
}

/// [magic][count] then per record: run, step, n_layer, n_head, n_key,
/// first_query (u32 LE each) and n_layer x n_head x n_key f16 values.
fn encode_attention(records: &[(usize, usize, AttentionRows)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(ATTN_MAGIC);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (run, step, a) in records {
        for v in [*run, *step, a.n_layer, a.n_head, a.n_key, a.first_query] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for &w in &a.data {
            out.extend_from_slice(&half::f16::from_f32(w).to_le_bytes());
        }
    }
    out
}

fn decode_attention(bytes: &[u8]) -> Result<Vec<(usize, usize, AttentionRows)>, String> {
    let mut r = bytes;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if r.len() < n {
            return Err("the attention sidecar is truncated".into());
        }
        let (head, rest) = r.split_at(n);
        r = rest;
        Ok(head)
    };
    if take(4)? != ATTN_MAGIC {
        return Err("the attention sidecar has the wrong magic bytes".into());
    }
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = u32_at(take(4)?);
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let h: Vec<usize> = (0..6)
            .map(|_| take(4).map(u32_at))
            .collect::<Result<_, _>>()?;
        let (n_layer, n_head, n_key) = (h[2], h[3], h[4]);
        let n = n_layer
            .checked_mul(n_head)
            .and_then(|x| x.checked_mul(n_key))
            .ok_or("sizes overflow")?;
        let raw = take(n.checked_mul(2).ok_or("sizes overflow")?)?;
        let data = raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        out.push((
            h[0],
            h[1],
            AttentionRows {
                n_layer,
                n_head,
                n_query: 1,
                n_key,
                first_query: h[5],
                data,
            },
        ));
    }
    if !r.is_empty() {
        return Err(format!(
            "the attention sidecar has {} extra bytes after its {count} records",
            r.len()
        ));
    }
    Ok(out)
}

/// One run as Markdown: prompt, text, and a table of its tokens.
pub fn export_markdown(session: &Session, run: &Run) -> String {
    let mut md = String::new();
    md += &format!("# {} — {}\n\n", run.label, session.model.name);
    md += &format!(
        "Model `{}` (sha256 `{}`), seed {}, temperature {}\n\n",
        session.model.path,
        session.model.sha256,
        run.request.sampler.seed,
        run.request.sampler.temperature
    );
    md += &format!(
        "## Output\n\n{}\n\n## Tokens\n\n| step | token | p_raw | p_final | rank | entropy |\n|---:|---|---:|---:|---:|---:|\n",
        run.text
    );
    for s in &run.steps {
        let t = s.text.replace('|', "\\|").replace('\n', "\\n");
        md += &format!(
            "| {} | `{}` | {:.4} | {:.4} | {} | {:.3} |\n",
            s.step, t, s.p_raw, s.p_final, s.rank, s.entropy
        );
    }
    md
}

/// One run as CSV, a row per token.
pub fn export_csv(run: &Run) -> String {
    let mut out = String::from("step,position,token_id,text,p_raw,p_final,logprob,rank,entropy\n");
    for s in &run.steps {
        let text = format!("\"{}\"", s.text.replace('"', "\"\""));
        out += &format!(
            "{},{},{},{},{},{},{},{},{}\n",
            s.step, s.position, s.token_id, text, s.p_raw, s.p_final, s.logprob, s.rank, s.entropy
        );
    }
    out
}
