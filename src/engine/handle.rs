//! The engine on its own thread: one named `std::thread` owns the
//! [`Engine`] and the current [`Generation`]; commands arrive on a channel,
//! events leave on another. Tensors never cross: attention is turned into
//! plain vectors here, on request, from the capturing KV cache.
//!
//! Cancellation is a shared flag checked before every token, so a cancel
//! takes effect within one forward pass. A panic inside the engine is caught
//! and reported as an [`EngineEvent::Error`]; the thread then keeps serving.

use std::any::Any;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::model::Precision;
use super::sampling::SamplerSettings;
use super::types::{AttentionRows, FinishReason, ModelInfo, PromptRecord, StepRecord, Timings};
use super::{Engine, Generation, Request};

/// What a [`Task`] hands back: the caller knows the concrete type and
/// downcasts it (the engine does not know the analyses that use it).
pub type TaskOutput = Box<dyn Any + Send>;

/// Work that runs on the engine thread with the loaded [`Engine`] (a bias
/// check, say): it reports `progress(done, total)` as it goes and looks at
/// `cancel` between units of work. The engine never imports the analyses;
/// they implement this trait.
pub trait Task: Send + 'static {
    /// A short name for logs and errors ("quick check").
    fn name(&self) -> &str;
    fn run(
        self: Box<Self>,
        engine: &Engine,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<TaskOutput, String>;
}

impl std::fmt::Debug for dyn Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Task({})", self.name())
    }
}

/// What the interface asks of the engine thread.
#[derive(Debug)]
pub enum EngineCommand {
    /// Starts a run (replacing any current one). `id` tags its events.
    Generate {
        id: u64,
        request: Box<Request>,
    },
    /// Ends the current run after the token in flight.
    Cancel,
    /// Attention of `queries` over keys `0..queries.end` in `layer`, all
    /// heads, for run `id` (answered with [`EngineEvent::Attention`]).
    Attention {
        id: u64,
        layer: usize,
        queries: Range<usize>,
    },
    /// Query head `head` of `layer`: its queries and its key/value head's
    /// keys over run `id`'s positions, as computed (answered with
    /// [`EngineEvent::HeadVectors`]).
    HeadVectors {
        id: u64,
        layer: usize,
        head: usize,
    },
    /// Runs `request`'s prompt once, then one column per preset (each a
    /// fork sharing the prefill), stepped round-robin; answered with
    /// [`EngineEvent::Prefilled`], [`EngineEvent::CompareStep`] and one
    /// [`EngineEvent::CompareFinished`] per column. Cancel ends every
    /// column. Once all are done each column's generation is kept under
    /// [`compare_column_id`] (attention can be asked of it).
    Compare {
        id: u64,
        request: Box<Request>,
        presets: Vec<(String, SamplerSettings)>,
    },
    /// Runs `task` on the engine thread (ending a generation in flight; the
    /// last run's cache stays for attention). Answered with
    /// [`EngineEvent::TaskProgress`] as it goes and one
    /// [`EngineEvent::TaskDone`]. Cancel raises the flag the task watches.
    Task {
        id: u64,
        task: Box<dyn Task>,
    },
    /// Forks kept run `parent_id` at `step` (its first `step` tokens kept,
    /// the cache truncated, not recomputed), takes `token` there instead
    /// of sampling, and goes on generating as run `id` with the parent's
    /// sampler settings. Answered with [`EngineEvent::Branched`], then
    /// steps as for `Generate`. The parent is kept.
    Branch {
        id: u64,
        parent_id: u64,
        step: usize,
        token: u32,
    },
    Shutdown,
}

/// One layer's attention for a range of queries: `rows.n_layer == 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerAttention {
    pub id: u64,
    pub layer: usize,
    pub rows: AttentionRows,
}

/// One head's rotated queries and keys over a run's positions (rows of
/// head_dim, queries and keys both at positions 0..), and how its layer
/// rotates them.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadVectors {
    pub id: u64,
    pub layer: usize,
    pub head: usize,
    pub rotary: Option<crate::engine::model::Rotary>,
    pub q: Vec<f32>,
    pub k: Vec<f32>,
    /// The learned position embeddings of the run's positions (rows of
    /// d_model), for a model that adds them to the token embeddings.
    pub learned: Option<(usize, Vec<f32>)>,
}

/// What the engine thread reports.
#[derive(Debug)]
pub enum EngineEvent {
    Loaded(Box<ModelInfo>),
    LoadFailed(String),
    /// The prompt ran; its record carries no attention (ask for it).
    /// `cache_len`: positions the model has read (attention can be asked
    /// for queries below it).
    Prefilled {
        id: u64,
        prompt: PromptRecord,
        cache_len: usize,
    },
    /// One token; its record carries no attention (ask for it).
    Step {
        id: u64,
        record: Box<StepRecord>,
        text_delta: String,
        cache_len: usize,
    },
    Finished {
        id: u64,
        reason: FinishReason,
        timings: Timings,
    },
    Attention(LayerAttention),
    HeadVectors(HeadVectors),
    /// Run `id` forked from `parent_id` at `step`; its steps follow (from
    /// `step` on). `cache_len` as for `Prefilled`.
    Branched {
        id: u64,
        parent_id: u64,
        step: usize,
        cache_len: usize,
    },
    /// One token of compare column `column`; the record carries no attention.
    CompareStep {
        id: u64,
        column: usize,
        record: Box<StepRecord>,
        text_delta: String,
    },
    /// Compare column `column` is done.
    CompareFinished {
        id: u64,
        column: usize,
        reason: FinishReason,
        timings: Timings,
    },
    /// Task `id` has done `done` of `total` units of work.
    TaskProgress {
        id: u64,
        done: usize,
        total: usize,
    },
    /// Task `id` ended: its output, or what went wrong (a panic included).
    TaskDone {
        id: u64,
        result: Result<TaskOutput, String>,
    },
    /// A user-facing error (bad settings, a failed step, a panic). The
    /// thread keeps running.
    Error {
        id: Option<u64>,
        message: String,
    },
}

/// Where events go: a tokio channel for the interface, a plain closure for
/// tests.
pub trait EventSink: Send + 'static {
    fn send(&self, event: EngineEvent) -> bool;
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<EngineEvent> {
    fn send(&self, event: EngineEvent) -> bool {
        tokio::sync::mpsc::UnboundedSender::send(self, event).is_ok()
    }
}

impl EventSink for Sender<EngineEvent> {
    fn send(&self, event: EngineEvent) -> bool {
        Sender::send(self, event).is_ok()
    }
}

/// The interface's side: send commands, cancel at once, join on drop.
pub struct EngineHandle {
    commands: Sender<EngineCommand>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub const THREAD_NAME: &str = "lmscope-engine";

impl EngineHandle {
    /// Spawns the engine thread, which loads `path` first (reporting
    /// [`EngineEvent::Loaded`] or [`EngineEvent::LoadFailed`]).
    pub fn spawn(
        path: PathBuf,
        precision: Precision,
        events: impl EventSink,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let loaded = catch_unwind(AssertUnwindSafe(|| Engine::load(&path, precision)));
                let engine = match loaded {
                    Ok(Ok(engine)) => engine,
                    Ok(Err(e)) => {
                        events.send(EngineEvent::LoadFailed(format!(
                            "loading {}: {e}",
                            path.display()
                        )));
                        return;
                    }
                    Err(panic) => {
                        events.send(EngineEvent::LoadFailed(format!(
                            "loading {} panicked: {}",
                            path.display(),
                            panic_text(&panic)
                        )));
                        return;
                    }
                };
                events.send(EngineEvent::Loaded(Box::new(engine.info().clone())));
                Worker {
                    engine,
                    events,
                    cancel: flag,
                    current: None,
                    kept: Vec::new(),
                }
                .run(rx);
            })?;
        Ok(Self {
            commands: tx,
            cancel,
            thread: Some(thread),
        })
    }

    /// A handle on a thread that serves the same commands another way (the
    /// remote backend's): it reads `commands` and owns `thread`; `cancel`
    /// is raised by [`EngineHandle::cancel`] and lowered by each new run.
    pub fn from_parts(
        commands: Sender<EngineCommand>,
        cancel: Arc<AtomicBool>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self {
            commands,
            cancel,
            thread: Some(thread),
        }
    }

    /// Queues a command; false when the engine thread has gone.
    pub fn send(&self, command: EngineCommand) -> bool {
        if matches!(
            command,
            EngineCommand::Generate { .. }
                | EngineCommand::Compare { .. }
                | EngineCommand::Task { .. }
                | EngineCommand::Branch { .. }
        ) {
            self.cancel.store(false, Ordering::SeqCst);
        }
        self.commands.send(command).is_ok()
    }

    /// Stops the current run before its next token.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        let _ = self.commands.send(EngineCommand::Cancel);
    }

    /// Asks the thread to stop and waits for it (at most one forward pass).
    pub fn shutdown(&mut self) {
        self.cancel.store(true, Ordering::SeqCst);
        let _ = self.commands.send(EngineCommand::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

struct Worker<S: EventSink> {
    engine: Engine,
    events: S,
    cancel: Arc<AtomicBool>,
    /// The current (or last finished) run: attention is served from its cache.
    current: Option<Run>,
    /// Earlier runs (and compare columns), oldest first, at most
    /// [`KEPT_RUNS`]: they can be branched from and serve attention.
    kept: Vec<(u64, Generation)>,
}

/// How many finished runs the engine thread keeps for branching and
/// attention (each holds its KV cache: about 46 KB a token for SmolLM2).
pub const KEPT_RUNS: usize = 12;

/// The key a compare column's generation is kept under: the comparison's
/// `id` and the column, so that attention can be asked of it.
pub fn compare_column_id(id: u64, column: usize) -> u64 {
    // Run ids count up from 1; compare columns live in the top bits.
    (1 << 63) | (id << 3) | column as u64
}

struct Run {
    id: u64,
    generation: Generation,
    done: bool,
}

enum Flow {
    Continue,
    Stop,
}

impl<S: EventSink> Worker<S> {
    fn run(mut self, rx: Receiver<EngineCommand>) {
        loop {
            let generating = self.current.as_ref().is_some_and(|r| !r.done);
            // Between tokens, look at commands without waiting; when idle,
            // wait for one (with a timeout so a dropped sender is noticed).
            let mut pending = Vec::new();
            if generating {
                loop {
                    match rx.try_recv() {
                        Ok(c) => pending.push(c),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
            } else {
                match rx.recv_timeout(Duration::from_millis(500)) {
                    Ok(c) => pending.push(c),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                while let Ok(c) = rx.try_recv() {
                    pending.push(c);
                }
            }
            // Only the newest attention request matters.
            let last_attention = pending
                .iter()
                .rposition(|c| matches!(c, EngineCommand::Attention { .. }));
            for (i, command) in pending.into_iter().enumerate() {
                if matches!(command, EngineCommand::Attention { .. }) && Some(i) != last_attention {
                    continue;
                }
                if let Flow::Stop = self.guarded(|w| w.handle(command)) {
                    return;
                }
            }
            if self.current.as_ref().is_some_and(|r| !r.done) {
                self.guarded(|w| {
                    w.step();
                    Flow::Continue
                });
            }
        }
    }

    /// Runs `f`, turning a panic into an Error event (and ending the run).
    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> Flow) -> Flow {
        match catch_unwind(AssertUnwindSafe(|| f(self))) {
            Ok(flow) => flow,
            Err(panic) => {
                let id = self.current.as_ref().map(|r| r.id);
                if let Some(run) = &mut self.current {
                    run.done = true;
                }
                self.events.send(EngineEvent::Error {
                    id,
                    message: format!(
                        "the engine panicked: {} (see the log file)",
                        panic_text(&panic)
                    ),
                });
                tracing::error!("engine panic: {}", panic_text(&panic));
                Flow::Continue
            }
        }
    }

    fn handle(&mut self, command: EngineCommand) -> Flow {
        match command {
            EngineCommand::Shutdown => return Flow::Stop,
            EngineCommand::Cancel => self.finish(FinishReason::Cancelled),
            EngineCommand::Generate { id, request } => {
                self.finish(FinishReason::Cancelled);
                self.stash_current();
                self.cancel.store(false, Ordering::SeqCst);
                self.start(id, &request);
            }
            EngineCommand::Branch {
                id,
                parent_id,
                step,
                token,
            } => {
                self.finish(FinishReason::Cancelled);
                self.stash_current();
                self.cancel.store(false, Ordering::SeqCst);
                self.branch(id, parent_id, step, token);
            }
            EngineCommand::Attention { id, layer, queries } => self.attention(id, layer, queries),
            EngineCommand::HeadVectors { id, layer, head } => self.head_vectors(id, layer, head),
            EngineCommand::Compare {
                id,
                request,
                presets,
            } => {
                self.finish(FinishReason::Cancelled);
                // The comparison replaces the run (a panic inside it is
                // then reported without a run id).
                self.stash_current();
                self.cancel.store(false, Ordering::SeqCst);
                self.compare(id, &request, &presets);
            }
            EngineCommand::Task { id, task } => {
                self.finish(FinishReason::Cancelled);
                self.cancel.store(false, Ordering::SeqCst);
                self.task(id, task);
            }
        }
        Flow::Continue
    }

    /// Runs a task to its end; a panic inside it becomes its error.
    fn task(&mut self, id: u64, task: Box<dyn Task>) {
        let name = task.name().to_string();
        let events = &self.events;
        let mut progress = |done: usize, total: usize| {
            events.send(EngineEvent::TaskProgress { id, done, total });
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            task.run(&self.engine, &mut progress, &self.cancel)
        }))
        .unwrap_or_else(|panic| {
            tracing::error!("engine panic in {name}: {}", panic_text(&panic));
            Err(format!(
                "{name}: the engine panicked: {} (see the log file)",
                panic_text(&panic)
            ))
        });
        self.events.send(EngineEvent::TaskDone { id, result });
    }

    /// Moves the current run (finished) among the kept ones.
    fn stash_current(&mut self) {
        if let Some(run) = self.current.take() {
            self.keep(run.id, run.generation);
        }
    }

    fn keep(&mut self, id: u64, generation: Generation) {
        self.kept.retain(|(k, _)| *k != id);
        self.kept.push((id, generation));
        if self.kept.len() > KEPT_RUNS {
            let excess = self.kept.len() - KEPT_RUNS;
            self.kept.drain(..excess);
        }
    }

    /// The generation of run `id`: the current one or a kept one.
    fn generation(&self, id: u64) -> Option<&Generation> {
        match &self.current {
            Some(run) if run.id == id => Some(&run.generation),
            _ => self
                .kept
                .iter()
                .rev()
                .find(|(k, _)| *k == id)
                .map(|(_, g)| g),
        }
    }

    fn branch(&mut self, id: u64, parent_id: u64, step: usize, token: u32) {
        let Some(parent) = self.generation(parent_id) else {
            return self.fail_run(
                id,
                format!(
                    "run {parent_id} is no longer kept by the engine (it keeps the last {KEPT_RUNS} runs); branch from a newer run"
                ),
                Timings::default(),
            );
        };
        if step > parent.steps().len() {
            return self.fail_run(
                id,
                format!(
                    "run {parent_id} has {} tokens; it cannot branch at step {step}",
                    parent.steps().len()
                ),
                Timings::default(),
            );
        }
        let settings = parent.sampler_settings().clone();
        match parent.fork(&self.engine, step, Some(token), settings) {
            Ok(mut generation) => {
                // The kept tokens' text is the parent's: only new text is sent.
                generation.take_text();
                let cache_len = generation.cache().len();
                self.events.send(EngineEvent::Branched {
                    id,
                    parent_id,
                    step,
                    cache_len,
                });
                self.current = Some(Run {
                    id,
                    generation,
                    done: false,
                });
            }
            Err(e) => self.fail_run(id, e, Timings::default()),
        }
    }

    /// Reports a run that could not start or go on: the error, then its end.
    fn fail_run(&self, id: u64, error: impl std::fmt::Display, timings: Timings) {
        self.events.send(EngineEvent::Error {
            id: Some(id),
            message: error.to_string(),
        });
        self.events.send(EngineEvent::Finished {
            id,
            reason: FinishReason::Cancelled,
            timings,
        });
    }

    fn start(&mut self, id: u64, request: &Request) {
        let mut generation = match self.engine.start(request) {
            Ok(g) => g,
            Err(e) => return self.fail_run(id, e, Timings::default()),
        };
        // The request does not attach attention: rows are served on demand.
        match generation.prefill(&self.engine) {
            Ok(prompt) => {
                let cache_len = generation.cache().len();
                self.events.send(EngineEvent::Prefilled {
                    id,
                    prompt,
                    cache_len,
                });
                self.current = Some(Run {
                    id,
                    generation,
                    done: false,
                });
            }
            Err(e) => self.fail_run(id, e, generation.timings()),
        }
    }

    fn step(&mut self) {
        if self.cancel.load(Ordering::SeqCst) {
            self.finish(FinishReason::Cancelled);
            return;
        }
        let Some(run) = &mut self.current else { return };
        match run.generation.step(&self.engine) {
            Ok(Some(mut record)) => {
                record.attention = None;
                let text_delta = run.generation.take_text();
                let cache_len = run.generation.cache().len();
                self.events.send(EngineEvent::Step {
                    id: run.id,
                    record: Box::new(record),
                    text_delta,
                    cache_len,
                });
                if let Some(reason) = run.generation.finished() {
                    self.finish(reason);
                }
            }
            Ok(None) => {
                let reason = run.generation.finished().unwrap_or(FinishReason::Length);
                self.finish(reason);
            }
            Err(e) => {
                let id = run.id;
                self.events.send(EngineEvent::Error {
                    id: Some(id),
                    message: e.to_string(),
                });
                self.finish(FinishReason::Cancelled);
            }
        }
    }

    /// Marks the current run finished (once) and reports it.
    fn finish(&mut self, reason: FinishReason) {
        let Some(run) = &mut self.current else { return };
        if run.done {
            return;
        }
        run.done = true;
        if reason == FinishReason::Cancelled {
            run.generation.cancel();
        }
        self.events.send(EngineEvent::Finished {
            id: run.id,
            reason,
            timings: run.generation.timings(),
        });
    }

    /// The whole compare run, on this thread: between tokens only the
    /// cancel flag is looked at (the interface sends nothing else while a
    /// comparison runs; a shutdown also raises the flag).
    fn compare(&mut self, id: u64, request: &Request, presets: &[(String, SamplerSettings)]) {
        let fail_all = |events: &S, message: String, timings: Timings| {
            events.send(EngineEvent::Error {
                id: Some(id),
                message,
            });
            for column in 0..presets.len() {
                events.send(EngineEvent::CompareFinished {
                    id,
                    column,
                    reason: FinishReason::Cancelled,
                    timings,
                });
            }
        };
        let mut base = match self.engine.start(request) {
            Ok(g) => g,
            Err(e) => return fail_all(&self.events, e.to_string(), Timings::default()),
        };
        match base.prefill(&self.engine) {
            Ok(prompt) => {
                let cache_len = base.cache().len();
                self.events.send(EngineEvent::Prefilled {
                    id,
                    prompt,
                    cache_len,
                });
            }
            Err(e) => return fail_all(&self.events, e.to_string(), base.timings()),
        }
        let mut columns = Vec::with_capacity(presets.len());
        for (name, settings) in presets {
            match base.fork(&self.engine, 0, None, settings.clone()) {
                Ok(g) => columns.push((g, false)),
                Err(e) => {
                    return fail_all(
                        &self.events,
                        format!("preset `{name}`: {e}"),
                        base.timings(),
                    );
                }
            }
        }
        // The columns advance together: each round feeds every unfinished
        // column's last token through the model in one batched forward pass
        // (`Generation::step_batch`), then each samples. Cancel is looked at
        // before every round, so it ends every column within one token.
        loop {
            let live: Vec<usize> = (0..columns.len()).filter(|&c| !columns[c].1).collect();
            if live.is_empty() {
                break;
            }
            if self.cancel.load(Ordering::SeqCst) {
                for &column in &live {
                    let (g, done) = &mut columns[column];
                    g.cancel();
                    *done = true;
                    self.events.send(EngineEvent::CompareFinished {
                        id,
                        column,
                        reason: FinishReason::Cancelled,
                        timings: g.timings(),
                    });
                }
                break;
            }
            let mut gens: Vec<&mut Generation> = columns
                .iter_mut()
                .filter(|(_, done)| !*done)
                .map(|(g, _)| g)
                .collect();
            let results = Generation::step_batch(&self.engine, &mut gens);
            for (&column, result) in live.iter().zip(results) {
                let (g, done) = &mut columns[column];
                let reason = match result {
                    Ok(Some(mut record)) => {
                        record.attention = None;
                        self.events.send(EngineEvent::CompareStep {
                            id,
                            column,
                            record: Box::new(record),
                            text_delta: g.take_text(),
                        });
                        g.finished()
                    }
                    Ok(None) => Some(g.finished().unwrap_or(FinishReason::Length)),
                    Err(e) => {
                        self.events.send(EngineEvent::Error {
                            id: Some(id),
                            message: e.to_string(),
                        });
                        Some(FinishReason::Cancelled)
                    }
                };
                if let Some(reason) = reason {
                    *done = true;
                    self.events.send(EngineEvent::CompareFinished {
                        id,
                        column,
                        reason,
                        timings: g.timings(),
                    });
                }
            }
        }
        // Kept, so that attention can be asked of each column.
        for (column, (g, _)) in columns.into_iter().enumerate() {
            self.keep(compare_column_id(id, column), g);
        }
    }

    fn attention(&mut self, id: u64, layer: usize, queries: Range<usize>) {
        let Some(generation) = self.generation(id) else {
            return; // A stale request for a run no longer kept.
        };
        let cache = generation.cache();
        let len = cache.len();
        let queries = queries.start.min(len.saturating_sub(1))..queries.end.min(len);
        if queries.is_empty() {
            return;
        }
        let result = self
            .engine
            .model()
            .attention_rows(cache, layer, queries.clone())
            .and_then(|t| {
                Ok(t.dims3()
                    .and_then(|d| Ok((d, t.flatten_all()?.to_vec1::<f32>()?)))?)
            });
        match result {
            Ok(((n_head, n_query, n_key), data)) => {
                let rows = AttentionRows {
                    n_layer: 1,
                    n_head,
                    n_query,
                    n_key,
                    first_query: queries.start,
                    data,
                };
                self.events
                    .send(EngineEvent::Attention(LayerAttention { id, layer, rows }));
            }
            Err(e) => {
                self.events.send(EngineEvent::Error {
                    id: Some(id),
                    message: format!("attention of layer {layer}: {e}"),
                });
            }
        }
    }

    fn head_vectors(&mut self, id: u64, layer: usize, head: usize) {
        let Some(generation) = self.generation(id) else {
            return; // A stale request for a run no longer kept.
        };
        let cache = generation.cache();
        let model = self.engine.model();
        let result = model.head_vectors(cache, layer, head, 0..cache.len());
        let event = match result {
            Ok((q, k)) => EngineEvent::HeadVectors(HeadVectors {
                id,
                layer,
                head,
                rotary: model.rotary(layer),
                q,
                k,
                learned: model
                    .learned_positions(cache.len())
                    .map(|t| (model.config().d_model, t)),
            }),
            Err(e) => EngineEvent::Error {
                id: Some(id),
                message: format!("queries and keys of layer {layer} head {head}: {e}"),
            },
        };
        self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_model_is_reported_as_an_event_and_the_thread_ends() {
        let (tx, rx) = mpsc::channel();
        let mut handle = EngineHandle::spawn(
            PathBuf::from("/nonexistent/model.gguf"),
            Precision::Quantized,
            tx,
        )
        .unwrap();
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(EngineEvent::LoadFailed(msg)) => {
                assert!(msg.contains("/nonexistent/model.gguf"), "{msg}")
            }
            other => panic!("expected LoadFailed, got {other:?}"),
        }
        assert!(!handle.send(EngineCommand::Cancel) || handle.thread.as_ref().is_some());
        handle.shutdown();
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "nothing after the failure"
        );
    }

    #[test]
    fn panics_are_turned_into_text() {
        let p: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_text(&p), "boom");
        let p: Box<dyn std::any::Any + Send> = Box::new(String::from("bang"));
        assert_eq!(panic_text(&p), "bang");
    }
}
