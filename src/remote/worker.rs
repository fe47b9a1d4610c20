//! The remote backend behind the engine's own command protocol, so the
//! workbench drives a server as it drives the local engine: each run is
//! streamed on a thread of its own (a new run or Esc cancels it at once),
//! its tokens come back as [`StepRecord`]s, and what a server cannot give
//! (attention, the sampler's trace, the analyses that need the model
//! itself) is answered with a one-line reason.
//!
//! A server returns token text, not ids: each distinct text gets an id of
//! this session's own, so a record's chosen token and its alternatives can
//! be told apart and branched on. The record's `p_final` and `entropy` are
//! NaN (unknown), and a rank of 0 means "not among the alternatives".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};

use super::backend::{Remote, RemoteOptions, RemotePrompt, RemoteRequest, UNAVAILABLE};
use super::generate::{Outcome, RemoteFinish, RemoteToken};
use super::server::Flavour;
use crate::engine::handle::{EngineCommand, EngineEvent, EngineHandle, EventSink, THREAD_NAME};
use crate::engine::model::types::Precision;
use crate::engine::types::{
    Architecture, FinishReason, ModelInfo, PromptRecord, StepRecord, Timings, TopToken,
};
use crate::engine::{Prompt, Request};

/// Starts the remote worker; it connects first and reports
/// [`EngineEvent::Loaded`] (a [`ModelInfo`] with `backend` set) or
/// [`EngineEvent::LoadFailed`].
pub fn spawn(options: RemoteOptions, events: impl EventSink) -> std::io::Result<EngineHandle> {
    let (tx, rx) = mpsc::channel::<EngineCommand>();
    let cancel = Arc::new(AtomicBool::new(false));
    let (inbox_tx, inbox) = mpsc::channel::<Inbox>();
    // Commands join the runs' reports in one inbox.
    let forward = inbox_tx.clone();
    std::thread::Builder::new()
        .name("lmscope-remote-commands".into())
        .spawn(move || {
            while let Ok(c) = rx.recv() {
                if forward.send(Inbox::Command(c)).is_err() {
                    break;
                }
            }
            let _ = forward.send(Inbox::Command(EngineCommand::Shutdown));
        })?;
    let thread = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            let never = AtomicBool::new(false);
            let remote = match Remote::connect(&options, &never) {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    events.send(EngineEvent::LoadFailed(e.to_string()));
                    return;
                }
            };
            events.send(EngineEvent::Loaded(Box::new(info(&remote))));
            Worker {
                remote,
                events,
                inbox_tx,
                names: Names::default(),
                running: Vec::new(),
                pending_columns: None,
                kept: Vec::new(),
            }
            .run(inbox);
        })?;
    Ok(EngineHandle::from_parts(tx, cancel, thread))
}

enum Inbox {
    Command(EngineCommand),
    Token {
        id: u64,
        column: Option<usize>,
        token: RemoteToken,
        delta: String,
    },
    Done {
        id: u64,
        column: Option<usize>,
        result: Result<Outcome, String>,
    },
}

/// Token texts and the ids this session gives them.
#[derive(Default)]
struct Names {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Names {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.to_string());
        self.ids.insert(text.to_string(), id);
        id
    }
    fn text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }
}

/// A finished or running run, kept for branching (its prompt re-sent).
struct Kept {
    id: u64,
    request: RemoteRequest,
    records: Vec<StepRecord>,
}

/// How many runs are kept for branching.
const KEPT_RUNS: usize = 12;

struct Worker<S: EventSink> {
    remote: Arc<Remote>,
    events: S,
    inbox_tx: Sender<Inbox>,
    names: Names,
    /// The runs in flight (a run, or a comparison's columns), each with the
    /// flag that cancels it.
    running: Vec<(u64, Arc<AtomicBool>)>,
    /// A comparison's columns still to send, for a server that takes one
    /// request at a time.
    pending_columns: Option<(u64, Vec<(usize, RemoteRequest)>)>,
    kept: Vec<Kept>,
}

impl<S: EventSink> Worker<S> {
    fn run(mut self, inbox: Receiver<Inbox>) {
        while let Ok(item) = inbox.recv() {
            match item {
                Inbox::Command(EngineCommand::Shutdown) => {
                    self.cancel_all();
                    return;
                }
                Inbox::Command(c) => self.command(c),
                Inbox::Token {
                    id,
                    column,
                    token,
                    delta,
                } => self.token(id, column, token, delta),
                Inbox::Done { id, column, result } => self.done(id, column, result),
            }
        }
    }

    fn cancel_all(&mut self) {
        self.pending_columns = None;
        for (_, flag) in self.running.drain(..) {
            flag.store(true, Ordering::SeqCst);
        }
    }

    fn refuse(&self, id: Option<u64>, what: &str) {
        let why = UNAVAILABLE
            .iter()
            .find(|(w, _)| *w == what)
            .map_or("a server does not give it", |(_, why)| why);
        self.events.send(EngineEvent::Error {
            id,
            message: format!("{what} is not available from a server: {why}"),
        });
    }

    fn command(&mut self, command: EngineCommand) {
        match command {
            EngineCommand::Cancel => self.cancel_all(),
            EngineCommand::Generate { id, request } => {
                self.cancel_all();
                match remote_request(&request) {
                    Ok(r) => self.start(id, None, r, None),
                    Err(e) => self.fail(id, e),
                }
            }
            EngineCommand::Compare {
                id,
                request,
                presets,
            } => {
                self.cancel_all();
                let base = match remote_request(&request) {
                    Ok(r) => r,
                    Err(e) => return self.fail(id, e),
                };
                self.events.send(EngineEvent::Prefilled {
                    id,
                    prompt: empty_prompt(),
                    cache_len: 0,
                });
                let columns: Vec<RemoteRequest> = presets
                    .into_iter()
                    .map(|(_, sampler)| RemoteRequest {
                        sampler,
                        ..base.clone()
                    })
                    .collect();
                self.compare(id, columns);
            }
            EngineCommand::Branch {
                id,
                parent_id,
                step,
                token,
            } => {
                self.cancel_all();
                self.branch(id, parent_id, step, token);
            }
            EngineCommand::Attention { id, .. } => self.refuse(Some(id), "attention"),
            EngineCommand::HeadVectors { id, .. } => self.refuse(Some(id), "attention"),
            EngineCommand::Task { id, task } => {
                self.events.send(EngineEvent::TaskDone {
                    id,
                    result: Err(format!(
                        "{} needs the model's own forward pass, which a server does not expose; run it on a local model",
                        task.name()
                    )),
                });
            }
            EngineCommand::Shutdown => {}
        }
    }

    /// Starts run `id` (a compare column when `column` is set) on its own
    /// thread. A run is kept for branching as `kept` says (a branch: its
    /// original request and the steps it begins with), else as sent.
    fn start(
        &mut self,
        id: u64,
        column: Option<usize>,
        request: RemoteRequest,
        kept: Option<Kept>,
    ) {
        let flag = Arc::new(AtomicBool::new(false));
        self.running.push((id, flag.clone()));
        if column.is_none() {
            let kept = kept.unwrap_or_else(|| {
                self.events.send(EngineEvent::Prefilled {
                    id,
                    prompt: empty_prompt(),
                    cache_len: 0,
                });
                Kept {
                    id,
                    request: request.clone(),
                    records: Vec::new(),
                }
            });
            self.keep(kept);
        }
        let remote = self.remote.clone();
        let tx = self.inbox_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("lmscope-remote-run".into())
            .spawn(move || {
                let tokens = tx.clone();
                let result = remote.generate(&request, &flag, &mut |token, delta| {
                    let _ = tokens.send(Inbox::Token {
                        id,
                        column,
                        token: token.clone(),
                        delta: delta.to_string(),
                    });
                });
                let _ = tx.send(Inbox::Done {
                    id,
                    column,
                    result: result.map_err(|e| e.to_string()),
                });
            });
        if let Err(e) = spawned {
            self.fail(id, format!("cannot start a request thread: {e}"));
        }
    }

    fn keep(&mut self, kept: Kept) {
        self.kept.retain(|k| k.id != kept.id);
        self.kept.push(kept);
        if self.kept.len() > KEPT_RUNS {
            self.kept.remove(0);
        }
    }

    fn compare(&mut self, id: u64, columns: Vec<RemoteRequest>) {
        // llama-cpp-python's server ends a request when another comes:
        // there the columns cannot run at once, so they go in turn.
        if self.remote.flavour() == Flavour::LlamaCppPython {
            self.pending_columns = Some((id, columns.into_iter().enumerate().collect()));
            self.next_column();
        } else {
            for (c, r) in columns.into_iter().enumerate() {
                self.start(id, Some(c), r, None);
            }
        }
    }

    fn next_column(&mut self) {
        if let Some((id, queue)) = &mut self.pending_columns {
            let id = *id;
            if queue.is_empty() {
                self.pending_columns = None;
            } else {
                let (c, r) = queue.remove(0);
                self.start(id, Some(c), r, None);
            }
        }
    }

    fn branch(&mut self, id: u64, parent_id: u64, step: usize, token: u32) {
        let Some(parent) = self.kept.iter().find(|k| k.id == parent_id) else {
            return self.fail(id, format!("run {parent_id} is no longer kept (the last {KEPT_RUNS} runs are); branch from a newer run"));
        };
        let RemotePrompt::Text(prompt) = &parent.request.prompt else {
            return self.fail(
                id,
                "a chat run cannot be branched on a server: its API cannot continue a half-written answer; use plain text",
            );
        };
        if step > parent.records.len() {
            return self.fail(
                id,
                format!(
                    "run {parent_id} has {} tokens; it cannot branch at step {step}",
                    parent.records.len()
                ),
            );
        }
        let Some(text) = self.names.text(token).map(str::to_string) else {
            return self.fail(id, format!("token {token} was never seen in this session"));
        };
        // The prefix is re-sent as text: the server has no cache to fork.
        let kept: Vec<StepRecord> = parent.records[..step].to_vec();
        let mut prefix = prompt.clone();
        for r in &kept {
            prefix.push_str(&r.text);
        }
        prefix.push_str(&text);
        let forced = parent
            .records
            .get(step)
            .and_then(|r| r.top.iter().find(|t| t.token_id == token))
            .cloned();
        let p = forced.as_ref().map_or(f32::NAN, |t| t.p_raw);
        let record = StepRecord {
            step,
            position: step,
            token_id: token,
            text: text.clone(),
            p_raw: p,
            p_final: f32::NAN,
            logprob: p.ln(),
            rank: parent
                .records
                .get(step)
                .and_then(|r| r.top.iter().position(|t| t.token_id == token))
                .map_or(0, |i| i + 1),
            entropy: f32::NAN,
            top: parent
                .records
                .get(step)
                .map(|r| r.top.clone())
                .unwrap_or_default(),
            attention: None,
        };
        let request = RemoteRequest {
            prompt: RemotePrompt::Text(prefix),
            max_tokens: parent.request.max_tokens.saturating_sub(step + 1),
            ..parent.request.clone()
        };
        let original = parent.request.clone();
        self.events.send(EngineEvent::Branched {
            id,
            parent_id,
            step,
            cache_len: 0,
        });
        self.events.send(EngineEvent::Step {
            id,
            record: Box::new(record.clone()),
            text_delta: text,
            cache_len: 0,
        });
        let mut records = kept;
        records.push(record);
        // Kept with the original prompt, so a branch of this branch re-sends
        // from the start.
        let kept = Kept {
            id,
            request: original,
            records,
        };
        if request.max_tokens == 0 {
            self.keep(kept);
            self.events.send(EngineEvent::Finished {
                id,
                reason: FinishReason::Length,
                timings: Timings::default(),
            });
            return;
        }
        self.start(id, None, request, Some(kept));
    }

    fn token(&mut self, id: u64, column: Option<usize>, token: RemoteToken, delta: String) {
        if !self.running.iter().any(|(r, _)| *r == id) {
            return; // a cancelled run's last words
        }
        // A branch's steps go on from the ones it kept.
        let step = match column {
            None => self
                .kept
                .iter()
                .find(|k| k.id == id)
                .map_or(0, |k| k.records.len()),
            Some(_) => token.step,
        };
        let record = self.record(&token, step);
        match column {
            None => {
                if let Some(k) = self.kept.iter_mut().find(|k| k.id == id) {
                    k.records.push(record.clone());
                }
                self.events.send(EngineEvent::Step {
                    id,
                    record: Box::new(record),
                    text_delta: delta,
                    cache_len: 0,
                });
            }
            Some(column) => {
                self.events.send(EngineEvent::CompareStep {
                    id,
                    column,
                    record: Box::new(record),
                    text_delta: delta,
                });
            }
        }
    }

    fn record(&mut self, t: &RemoteToken, step: usize) -> StepRecord {
        let token_id = self.names.id(&t.text);
        let top = t
            .top
            .iter()
            .map(|a| TopToken {
                token_id: self.names.id(&a.text),
                text: a.text.clone(),
                p_raw: a.p,
                p_final: f32::NAN,
                removed_by: None,
            })
            .collect();
        StepRecord {
            step,
            position: step,
            token_id,
            text: t.text.clone(),
            p_raw: t.p.unwrap_or(f32::NAN),
            p_final: f32::NAN,
            logprob: t.logprob.unwrap_or(f32::NAN),
            rank: t.rank.unwrap_or(0),
            entropy: f32::NAN,
            top,
            attention: None,
        }
    }

    fn done(&mut self, id: u64, column: Option<usize>, result: Result<Outcome, String>) {
        let Some(i) = self.running.iter().position(|(r, _)| *r == id) else {
            return;
        };
        let cancelled = self.running[i].1.load(Ordering::SeqCst);
        self.running.remove(i);
        let (reason, generated, total_s, error) = match result {
            Ok(o) => (finish_reason(o.finish), o.tokens.len(), o.total_s, o.error),
            Err(_) if cancelled => (FinishReason::Cancelled, 0, 0.0, None),
            Err(e) => (FinishReason::Cancelled, 0, 0.0, Some(e)),
        };
        if let Some(message) = error {
            let message = if reason == FinishReason::CutOff {
                format!("cut off: {message}")
            } else {
                message
            };
            self.events.send(EngineEvent::Error {
                id: Some(id),
                message,
            });
        }
        let timings = Timings {
            prompt_tokens: 0,
            generated,
            prefill_s: 0.0,
            decode_s: total_s,
        };
        match column {
            None => {
                self.events.send(EngineEvent::Finished {
                    id,
                    reason,
                    timings,
                });
            }
            Some(column) => {
                self.events.send(EngineEvent::CompareFinished {
                    id,
                    column,
                    reason,
                    timings,
                });
                self.next_column();
            }
        }
    }

    /// A run that cannot start: the error, then its end.
    fn fail(&self, id: u64, error: impl std::fmt::Display) {
        self.events.send(EngineEvent::Error {
            id: Some(id),
            message: error.to_string(),
        });
        self.events.send(EngineEvent::Finished {
            id,
            reason: FinishReason::Cancelled,
            timings: Timings::default(),
        });
    }
}

fn finish_reason(f: RemoteFinish) -> FinishReason {
    match f {
        RemoteFinish::Length => FinishReason::Length,
        RemoteFinish::Stop => FinishReason::Stop,
        RemoteFinish::CutOff => FinishReason::CutOff,
        RemoteFinish::Cancelled => FinishReason::Cancelled,
    }
}

fn empty_prompt() -> PromptRecord {
    PromptRecord {
        token_ids: Vec::new(),
        texts: Vec::new(),
        attention: None,
    }
}

/// The engine request as a server request; what cannot be sent is refused.
fn remote_request(r: &Request) -> Result<RemoteRequest, String> {
    let prompt = match &r.prompt {
        Prompt::Text(t) => RemotePrompt::Text(t.clone()),
        Prompt::Chat(m) => RemotePrompt::Chat(m.clone()),
        Prompt::Tokens(_) => return Err("a server takes text, not token ids".into()),
    };
    Ok(RemoteRequest {
        prompt,
        sampler: r.sampler.clone(),
        max_tokens: r.max_tokens,
        stop: r.stop.clone(),
        top_n: r.top_n,
    })
}

/// What the interface knows of a remote model: its name, where it runs,
/// and zeros for what a server does not say (layers, heads, vocabulary).
fn info(remote: &Remote) -> ModelInfo {
    let served = remote.models().iter().find(|m| m.id == remote.model());
    let unknown = "not given by the server".to_string();
    ModelInfo {
        path: remote.client().base().to_string(),
        name: remote.model().to_string(),
        architecture: "remote".into(),
        file_bytes: 0,
        file_type: unknown.clone(),
        parameters: 0,
        n_layer: 0,
        n_head: 0,
        n_kv_head: 0,
        d_model: 0,
        d_ff: 0,
        head_dim: 0,
        context_length: served.and_then(|m| m.context_length).unwrap_or(0),
        vocab_size: 0,
        rope_base: 0.0,
        rms_eps: 0.0,
        design: Architecture {
            family: "remote".into(),
            norm: unknown.clone(),
            activation: unknown.clone(),
            positions: unknown.clone(),
            attention: unknown,
            tied_embeddings: false,
        },
        tensor_types: Vec::new(),
        bos: None,
        eos: None,
        end_of_generation: Vec::new(),
        add_bos: false,
        chat_template: None,
        chat_fallback: "the server's own".into(),
        layer_windows: Vec::new(),
        precision: Precision::default(),
        backend: Some(format!(
            "{} at {}",
            remote.flavour().name(),
            remote.client().base()
        )),
    }
}
