//! The engine owns candle: it loads a model, turns prompts into tokens, runs
//! the forward pass and the sampler, and hands out plain data
//! ([`types`]). It never imports the interface.
//!
//! Generation is a step API: [`Engine::start`] validates a [`Request`] and
//! returns a [`Generation`]; `prefill` runs the prompt, each `step` yields
//! one [`StepRecord`]. A `Generation` is cheap to clone (its KV cache shares
//! storage), which is how side-by-side runs and branches fork.

pub mod chat;
pub mod error;
pub mod handle;
#[allow(unsafe_code)] // the SIMD kernels: the only unsafe code in the crate
pub mod kernels;
pub mod load;
pub mod masked;
pub mod model;
pub mod sampling;
pub mod tokenizer;
pub mod types;

use std::path::Path;
use std::time::Instant;

use candle_core::{D, Tensor};
use serde::{Deserialize, Serialize};

pub use error::{EngineError, Result};
use load::gguf::GgufFile;
use load::safetensors::HfFolder;
use model::{KvCache, Logits, Model, Precision};
use sampling::{Sampler, SamplerSettings};
use tokenizer::{StreamDecoder, Tokenizer};
use types::*;

/// What the model is asked to continue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Raw text; control tokens written in it (`<|im_start|>`) are parsed.
    Text(String),
    /// Messages rendered with the model's chat template, ending with the
    /// assistant's turn opener.
    Chat(Vec<chat::Message>),
    /// Token ids as they are (benchmarks, replays).
    Tokens(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub prompt: Prompt,
    pub sampler: SamplerSettings,
    pub max_tokens: usize,
    /// Generation ends when the text contains one of these (it is cut there).
    pub stop: Vec<String>,
    /// Alternatives to record at each step.
    pub top_n: usize,
    /// Keep each layer's queries beside the KV cache, so that any attention
    /// row can be computed on demand ([`Engine::attention`]).
    pub capture_attention: bool,
    /// Also put the rows into the records: the prompt's (every query, every
    /// layer: T² x layers x heads floats) and each token's. Implies capture.
    #[serde(default)]
    pub attach_attention: bool,
    /// Keep going after an end-of-generation token (benchmarks).
    pub ignore_eos: bool,
}

impl Request {
    pub fn new(prompt: Prompt) -> Self {
        Self {
            prompt,
            sampler: SamplerSettings::default(),
            max_tokens: 128,
            stop: Vec::new(),
            top_n: 10,
            capture_attention: false,
            attach_attention: false,
            ignore_eos: false,
        }
    }
}

pub struct Engine {
    model: Box<dyn Model>,
    tokenizer: Tokenizer,
    template: chat::ChatTemplate,
    info: ModelInfo,
}

impl Engine {
    /// Loads a model: a GGUF file (header checked) or a Hugging Face
    /// folder, every weight read once.
    pub fn load(path: &Path, precision: Precision) -> Result<Self> {
        if path.is_dir() {
            Self::load_hf(path, precision)
        } else {
            Self::load_gguf(path, precision)
        }
    }

    fn load_gguf(path: &Path, precision: Precision) -> Result<Self> {
        let mut gguf = GgufFile::open(path)?;
        // An architecture lmscope does not run is refused before anything
        // else is read.
        let load_model = model::loader(&gguf)?;
        gguf.check_tensor_types()?;
        let tokenizer = Tokenizer::load(&gguf)?;
        let model = load_model(&mut gguf, precision)?;
        let file = FileFacts {
            name: gguf
                .meta_str("general.name")
                .unwrap_or("unnamed")
                .to_string(),
            architecture: gguf.architecture()?.to_string(),
            file_bytes: gguf.file_size,
            file_type: file_type_name(gguf.meta_usize("general.file_type").ok()),
            parameters: gguf
                .content
                .tensor_infos
                .values()
                .map(|t| t.shape.elem_count() as u64)
                .sum(),
            tensor_types: gguf.tensor_type_counts(),
            chat_template: gguf
                .meta_str("tokenizer.chat_template")
                .ok()
                .map(str::to_string),
        };
        Self::assemble(path, model, tokenizer, file)
    }

    fn load_hf(dir: &Path, precision: Precision) -> Result<Self> {
        let mut folder = HfFolder::open(dir)?;
        let load_model = model::hf_loader(&folder)?;
        let tok_config = folder.sidecar("tokenizer_config.json")?;
        let generation = folder.sidecar("generation_config.json")?;
        let tokenizer = Tokenizer::from_hf_folder(dir, &folder.config, &tok_config, &generation)?;
        let model = load_model(&mut folder, precision)?;
        let tensor_types = folder.dtype_counts();
        let file = FileFacts {
            name: folder_name(dir),
            architecture: folder.model_type()?.to_string(),
            file_bytes: folder.file_bytes,
            file_type: format!(
                "safetensors {}",
                tensor_types
                    .iter()
                    .map(|(t, _)| t.as_str())
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            parameters: folder.parameters(),
            tensor_types,
            chat_template: hf_chat_template(dir, &tok_config),
        };
        Self::assemble(dir, model, tokenizer, file)
    }

    /// The engine over a loaded model and tokenizer, checked against each
    /// other, with what `info` shows.
    fn assemble(
        path: &Path,
        model: Box<dyn Model>,
        tokenizer: Tokenizer,
        file: FileFacts,
    ) -> Result<Self> {
        if tokenizer.vocab_size() > model.config().vocab_size {
            return Err(EngineError::corrupt(
                path,
                format!(
                    "the tokenizer has {} tokens but the model's embedding has {} rows",
                    tokenizer.vocab_size(),
                    model.config().vocab_size
                ),
            ));
        }
        let name_of = |id: Option<u32>| id.map(|i| (i, tokenizer.token_text(i)));
        let (fallback_name, fallback) = chat::fallback(|t| tokenizer.token_id(t).is_some());
        let template = chat::ChatTemplate::new(
            file.chat_template.as_deref(),
            fallback,
            &name_of(tokenizer.bos).map(|b| b.1).unwrap_or_default(),
            &name_of(tokenizer.eos).map(|e| e.1).unwrap_or_default(),
        );
        let cfg = model.config();
        let info = ModelInfo {
            path: path.display().to_string(),
            name: file.name,
            architecture: file.architecture,
            file_bytes: file.file_bytes,
            file_type: file.file_type,
            parameters: file.parameters,
            n_layer: cfg.n_layer,
            n_head: cfg.n_head,
            n_kv_head: cfg.n_kv_head,
            d_model: cfg.d_model,
            d_ff: cfg.d_ff,
            head_dim: cfg.head_dim,
            context_length: cfg.context_length,
            vocab_size: cfg.vocab_size,
            rope_base: cfg.rope_base,
            rms_eps: cfg.rms_eps,
            design: model.architecture(),
            tensor_types: file.tensor_types,
            bos: name_of(tokenizer.bos),
            eos: name_of(tokenizer.eos),
            end_of_generation: tokenizer
                .end_of_generation
                .iter()
                .map(|&i| (i, tokenizer.token_text(i)))
                .collect(),
            add_bos: tokenizer.add_bos,
            chat_template: file.chat_template,
            chat_fallback: fallback_name.to_string(),
            layer_windows: (0..cfg.n_layer)
                .map(|l| model.attention_window(l))
                .collect(),
            precision: model.precision(),
            backend: None,
        };
        Ok(Self {
            model,
            tokenizer,
            template,
            info,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn template(&self) -> &chat::ChatTemplate {
        &self.template
    }

    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    /// The prompt as text the tokenizer sees (chat rendered).
    pub fn prompt_text(&self, prompt: &Prompt) -> Result<String> {
        match prompt {
            Prompt::Text(t) => Ok(t.clone()),
            Prompt::Chat(messages) => self.template.render(messages, true),
            Prompt::Tokens(ids) => Ok(self.tokenizer.decode(ids)),
        }
    }

    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        if let Prompt::Tokens(ids) = prompt {
            if let Some(&bad) = ids
                .iter()
                .find(|&&t| t as usize >= self.tokenizer.vocab_size())
            {
                return Err(EngineError::Tokenizer(format!(
                    "token id {bad} is outside the vocabulary"
                )));
            }
            return Ok(ids.clone());
        }
        let text = self.prompt_text(prompt)?;
        self.tokenizer.encode(&text, true)
    }

    /// Validates a request and prepares its generation (nothing runs yet).
    pub fn start(&self, request: &Request) -> Result<Generation> {
        let sampler = Sampler::new(request.sampler.clone())?;
        let prompt = self.prompt_tokens(&request.prompt)?;
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let limit = self.model.config().context_length;
        if prompt.len() >= limit {
            return Err(EngineError::ContextOverflow {
                tokens: prompt.len() + 1,
                limit,
            });
        }
        Ok(Generation {
            cache: self
                .model
                .new_cache(request.capture_attention || request.attach_attention),
            sampler,
            prompt,
            next_logits: None,
            unfed: None,
            forced: Default::default(),
            max_tokens: request.max_tokens,
            stop: request
                .stop
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            top_n: request.top_n,
            ignore_eos: request.ignore_eos,
            attach_attention: request.attach_attention,
            steps: Vec::new(),
            decoder: StreamDecoder::default(),
            text: String::new(),
            emitted: 0,
            finished: None,
            timings: Timings::default(),
        })
    }

    /// ln p(token i | tokens before i) for each i in `score_from..`, running
    /// `tokens` from an empty cache. Used for perplexity and bias scores.
    pub fn token_logprobs(&self, tokens: &[u32], score_from: usize) -> Result<Vec<f32>> {
        if tokens.len() < 2 || score_from == 0 || score_from >= tokens.len() {
            return Ok(Vec::new());
        }
        let mut cache = self.model.new_cache(false);
        let logits = self
            .model
            .forward(&tokens[..tokens.len() - 1], &mut cache, Logits::All)?;
        let logits = logits.narrow(0, score_from - 1, tokens.len() - score_from)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let targets = Tensor::new(&tokens[score_from..], logits.device())?.unsqueeze(1)?;
        Ok(logp.gather(&targets, 1)?.squeeze(1)?.to_vec1::<f32>()?)
    }

    /// Logits (vocab) of the token after `tokens`, run from an empty cache.
    pub fn next_token_logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut cache = self.model.new_cache(false);
        Ok(self
            .model
            .forward(tokens, &mut cache, Logits::Last)?
            .squeeze(0)?
            .to_vec1::<f32>()?)
    }

    /// Runs `prefix` once from an empty cache and returns the next-token
    /// logits after it, and for each continuation ln p(token j | prefix,
    /// continuation[..j]) for every token j (each continuation forks the
    /// prefix's cache). Used by the bias probes to teacher-force attributes.
    pub fn prefix_continuations(
        &self,
        prefix: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        let mut cache = self.model.new_cache(false);
        let last = self.model.forward(prefix, &mut cache, Logits::Last)?;
        let first_logp = candle_nn::ops::log_softmax(&last, D::Minus1)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        let mut out = Vec::with_capacity(continuations.len());
        // Continuations that feed the same tokens (" a nurse", " a doctor"
        // both feed " a") share one forward pass.
        let mut fed: std::collections::HashMap<&[u32], Tensor> = std::collections::HashMap::new();
        for cont in continuations {
            let Some(&first) = cont.first() else {
                out.push(Vec::new());
                continue;
            };
            let lp0 = first_logp.get(first as usize).copied().ok_or_else(|| {
                EngineError::Tokenizer(format!("token id {first} is outside the vocabulary"))
            })?;
            let mut lps = vec![lp0];
            if cont.len() > 1 {
                let input = &cont[..cont.len() - 1];
                let logp = match fed.get(input) {
                    Some(l) => l.clone(),
                    None => {
                        let mut fork = cache.clone();
                        let logits = self.model.forward(input, &mut fork, Logits::All)?;
                        let l = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
                        fed.insert(input, l.clone());
                        l
                    }
                };
                let targets = Tensor::new(&cont[1..], logp.device())?.unsqueeze(1)?;
                lps.extend(logp.gather(&targets, 1)?.squeeze(1)?.to_vec1::<f32>()?);
            }
            out.push(lps);
        }
        Ok((last.squeeze(0)?.to_vec1::<f32>()?, out))
    }

    /// Attention of `queries` over all earlier keys, every layer and head,
    /// recomputed from a capturing cache.
    pub fn attention(
        &self,
        cache: &KvCache,
        queries: std::ops::Range<usize>,
    ) -> Result<AttentionRows> {
        let cfg = self.model.config();
        let n_key = queries.end;
        let mut data = Vec::with_capacity(cfg.n_layer * cfg.n_head * queries.len() * n_key);
        for layer in 0..cfg.n_layer {
            let rows = self.model.attention_rows(cache, layer, queries.clone())?;
            data.extend(rows.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(AttentionRows {
            n_layer: cfg.n_layer,
            n_head: cfg.n_head,
            n_query: queries.len(),
            n_key,
            first_query: queries.start,
            data,
        })
    }
}

fn file_type_name(t: Option<usize>) -> String {
    // llama.cpp's llama_ftype values.
    match t {
        Some(0) => "F32",
        Some(1) => "F16",
        Some(2) => "Q4_0",
        Some(3) => "Q4_1",
        Some(7) => "Q8_0",
        Some(8) => "Q5_0",
        Some(9) => "Q5_1",
        Some(10) => "Q2_K",
        Some(11..=13) => "Q3_K",
        Some(14 | 15) => "Q4_K",
        Some(16 | 17) => "Q5_K",
        Some(18) => "Q6_K",
        Some(32) => "BF16",
        _ => "unknown",
    }
    .to_string()
}

/// What a step needs before it samples ([`Generation::prepare_step`]).
enum Prepared {
    /// The run has finished (now or before): no token.
    Finished,
    /// `next_logits` are those of the next position already (after the
    /// prefill or a fork).
    Ready,
    /// This token must go through the model first.
    Feed(u32),
}

/// One run in progress: its cache, sampler, and what it has produced.
#[derive(Clone)]
pub struct Generation {
    cache: KvCache,
    sampler: Sampler,
    prompt: Vec<u32>,
    /// Logits for the next position, once the prompt has run.
    next_logits: Option<Vec<f32>>,
    /// The last sampled token, fed to the model at the next step (so a run
    /// that ends never pays for a forward pass it does not use).
    unfed: Option<u32>,
    /// Tokens the next steps take instead of sampling (branching, replay).
    forced: std::collections::VecDeque<u32>,
    max_tokens: usize,
    stop: Vec<String>,
    top_n: usize,
    ignore_eos: bool,
    attach_attention: bool,
    steps: Vec<StepRecord>,
    decoder: StreamDecoder,
    /// The generated text so far (cut at a stop sequence).
    text: String,
    /// How much of `text` has been handed out by `take_text`.
    emitted: usize,
    finished: Option<FinishReason>,
    timings: Timings,
}

impl Generation {
    pub fn prompt_tokens(&self) -> &[u32] {
        &self.prompt
    }

    pub fn steps(&self) -> &[StepRecord] {
        &self.steps
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    pub fn sampler_settings(&self) -> &SamplerSettings {
        self.sampler.settings()
    }

    /// Runs the prompt through the model. With capture on, the record holds
    /// the prompt's attention.
    pub fn prefill(&mut self, engine: &Engine) -> Result<PromptRecord> {
        let started = Instant::now();
        let logits = engine
            .model
            .forward(&self.prompt, &mut self.cache, Logits::Last)?;
        self.next_logits = Some(logits.squeeze(0)?.to_vec1::<f32>()?);
        self.timings.prompt_tokens = self.prompt.len();
        self.timings.prefill_s = started.elapsed().as_secs_f64();
        let attention = if self.attach_attention {
            Some(engine.attention(&self.cache, 0..self.prompt.len())?)
        } else {
            None
        };
        let tok = engine.tokenizer();
        Ok(PromptRecord {
            token_ids: self.prompt.clone(),
            texts: self.prompt.iter().map(|&t| tok.token_text(t)).collect(),
            attention,
        })
    }

    /// Generates one token; None once the run has finished.
    pub fn step(&mut self, engine: &Engine) -> Result<Option<StepRecord>> {
        let token = match self.prepare_step(engine)? {
            Prepared::Finished => return Ok(None),
            Prepared::Ready => None,
            Prepared::Feed(token) => Some(token),
        };
        let started = Instant::now();
        if let Some(token) = token {
            let logits = engine
                .model
                .forward(&[token], &mut self.cache, Logits::Last)?;
            self.next_logits = Some(logits.squeeze(0)?.to_vec1::<f32>()?);
        }
        self.sample_step(engine, started.elapsed().as_secs_f64())
    }

    /// Steps several runs together: the ones that need a forward pass (the
    /// token sampled last time fed through the model) share one
    /// [`crate::engine::model::Model::forward_batch`], which reads every weight once for all of
    /// them; then each samples on its own, exactly as [`Generation::step`]
    /// does (forced tokens, penalties over its own history, top-N,
    /// attention). One result per run, in order; a finished run gives
    /// `Ok(None)` and takes no part.
    ///
    /// Timings: the batched forward's wall time counts in the decode time of
    /// every run that took part, so a run's tokens/s is its own rate while
    /// it shares the batch, and the runs' aggregate rate is the sum of
    /// theirs.
    pub fn step_batch(
        engine: &Engine,
        gens: &mut [&mut Generation],
    ) -> Vec<Result<Option<StepRecord>>> {
        let mut out: Vec<Option<Result<Option<StepRecord>>>> = Vec::with_capacity(gens.len());
        let mut feed: Vec<(usize, u32)> = Vec::new();
        for (i, g) in gens.iter_mut().enumerate() {
            match g.prepare_step(engine) {
                Ok(Prepared::Finished) => out.push(Some(Ok(None))),
                Ok(Prepared::Ready) => out.push(None),
                Ok(Prepared::Feed(token)) => {
                    feed.push((i, token));
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let started = Instant::now();
        match feed.as_slice() {
            [] => {}
            // One or more: a batch of one is the plain one-token forward.
            _ => {
                let tokens: Vec<u32> = feed.iter().map(|&(_, t)| t).collect();
                let mut caches: Vec<&mut KvCache> = Vec::with_capacity(feed.len());
                let mut fed = feed.iter().map(|&(i, _)| i).peekable();
                for (i, g) in gens.iter_mut().enumerate() {
                    if fed.peek() == Some(&i) {
                        fed.next();
                        caches.push(&mut g.cache);
                    }
                }
                let rows = engine
                    .model
                    .forward_batch(&tokens, &mut caches)
                    .and_then(|l| Ok(l.to_vec2::<f32>()?));
                match rows {
                    Ok(rows) => {
                        for (&(i, _), row) in feed.iter().zip(rows) {
                            gens[i].next_logits = Some(row);
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        let mut first = Some(e);
                        for &(i, _) in &feed {
                            let e = first.take().unwrap_or_else(|| {
                                EngineError::Candle(candle_core::Error::Msg(message.clone()))
                            });
                            out[i] = Some(Err(e));
                        }
                    }
                }
            }
        }
        let forward_s = started.elapsed().as_secs_f64();
        // The columns' samplers on the kernels' pool: a softmax, a sort and
        // a record each, which one after another were a third of the
        // thread's time in a four-column comparison. Each column samples
        // from its own seeded generator, so the results are the same in
        // any order.
        type Job<'a> = (Option<Result<Option<StepRecord>>>, &'a mut Generation, f64);
        let jobs: Vec<std::sync::Mutex<Job<'_>>> = out
            .into_iter()
            .zip(gens.iter_mut())
            .enumerate()
            .map(|(i, (done, g))| {
                let took_part = feed.iter().any(|&(j, _)| j == i);
                let secs = if took_part { forward_s } else { 0.0 };
                std::sync::Mutex::new((done, &mut **g, secs))
            })
            .collect();
        kernels::pool().run(jobs.len(), &|i| {
            let mut job = jobs[i].lock().unwrap_or_else(|e| e.into_inner());
            let (done, g, secs) = &mut *job;
            if done.is_none() {
                *done = Some(g.sample_step(engine, *secs));
            }
        });
        jobs.into_iter()
            .map(|j| {
                let (done, _, _) = j.into_inner().unwrap_or_else(|e| e.into_inner());
                done.expect("every column sampled")
            })
            .collect()
    }

    /// The first half of a step: prefills when needed and checks the finish
    /// conditions that hold before a token is fed; says whether the token
    /// sampled last time still has to go through the model.
    fn prepare_step(&mut self, engine: &Engine) -> Result<Prepared> {
        if self.finished.is_some() {
            return Ok(Prepared::Finished);
        }
        if self.next_logits.is_none() {
            self.prefill(engine)?;
        }
        if self.steps.len() >= self.max_tokens {
            self.finished = Some(FinishReason::Length);
            return Ok(Prepared::Finished);
        }
        match self.unfed.take() {
            Some(token) => {
                if self.cache.len() + 1 > engine.model.config().context_length {
                    self.finished = Some(FinishReason::Context);
                    return Ok(Prepared::Finished);
                }
                Ok(Prepared::Feed(token))
            }
            None => Ok(Prepared::Ready),
        }
    }

    /// The second half of a step: samples from `next_logits` (the fed
    /// token's), records the step and checks the finish conditions.
    /// `forward_s` (the forward pass's time) counts as decode time.
    fn sample_step(&mut self, engine: &Engine, forward_s: f64) -> Result<Option<StepRecord>> {
        let started = Instant::now();
        let logits = self.next_logits.as_ref().expect("prefilled");
        let sampled = self.sampler.sample(
            logits,
            self.cache.tokens(),
            self.top_n,
            self.forced.pop_front(),
        );
        let position = self.cache.len();
        let attention = if self.attach_attention {
            Some(engine.attention(&self.cache, position - 1..position)?)
        } else {
            None
        };
        let tok = engine.tokenizer();
        let record = StepRecord::from_sampled(
            &sampled,
            self.steps.len(),
            position,
            &|t| tok.token_text(t),
            attention,
        );
        self.unfed = Some(sampled.token_id);
        self.steps.push(record.clone());
        self.timings.generated += 1;
        self.timings.decode_s += forward_s + started.elapsed().as_secs_f64();

        if tok.is_end_of_generation(sampled.token_id) && !self.ignore_eos {
            self.finished = Some(FinishReason::Eos);
        } else {
            self.text
                .push_str(&self.decoder.push(tok.token_bytes(sampled.token_id)));
            if let Some(cut) = self
                .stop
                .iter()
                .filter_map(|s| self.text.find(s.as_str()))
                .min()
            {
                self.text.truncate(cut);
                self.finished = Some(FinishReason::Stop);
            } else if self.steps.len() >= self.max_tokens {
                self.finished = Some(FinishReason::Length);
            } else if position + 1 >= engine.model.config().context_length {
                self.finished = Some(FinishReason::Context);
            }
        }
        if self.finished.is_some() && self.finished != Some(FinishReason::Stop) {
            self.text.push_str(&self.decoder.finish());
        }
        Ok(Some(record))
    }

    /// A new run that keeps this one's first `keep_steps` tokens and goes on
    /// from there with `sampler`, taking `forced` as its next token when
    /// given (branching at a token). The cache is truncated, not recomputed:
    /// only the last kept token is run again, for its logits.
    pub fn fork(
        &self,
        engine: &Engine,
        keep_steps: usize,
        forced: Option<u32>,
        sampler: SamplerSettings,
    ) -> Result<Generation> {
        let keep_steps = keep_steps.min(self.steps.len());
        let mut g = self.clone();
        g.sampler = Sampler::new(sampler)?;
        g.steps.truncate(keep_steps);
        g.finished = None;
        g.forced = forced.into_iter().collect();
        if self.next_logits.is_none() {
            return Ok(g); // not prefilled yet: nothing to cut
        }
        let context = self.prompt.len() + keep_steps;
        let last = if keep_steps == 0 {
            self.prompt[self.prompt.len() - 1]
        } else {
            self.steps[keep_steps - 1].token_id
        };
        g.cache.truncate(context - 1)?;
        g.unfed = Some(last);
        // Rebuild the text from the kept tokens.
        g.decoder = StreamDecoder::default();
        g.text.clear();
        g.emitted = 0;
        g.timings.generated = keep_steps;
        let tok = engine.tokenizer();
        for step in &g.steps {
            let piece = g.decoder.push(tok.token_bytes(step.token_id));
            g.text.push_str(&piece);
        }
        Ok(g)
    }

    /// Makes the next steps take `tokens` instead of sampling them (each is
    /// still traced: its probabilities, rank, and what the chain thought).
    pub fn force(&mut self, tokens: impl IntoIterator<Item = u32>) {
        self.forced.extend(tokens);
    }

    /// Ends the run early (the interface's Esc).
    pub fn cancel(&mut self) {
        self.finished.get_or_insert(FinishReason::Cancelled);
    }

    /// Text that is safe to show now: everything new, except a tail that
    /// could still turn out to be the start of a stop sequence.
    pub fn take_text(&mut self) -> String {
        let mut end = self.text.len();
        if self.finished.is_none() {
            for s in &self.stop {
                for k in (1..s.len()).rev() {
                    if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                        end = end.min(self.text.len() - k);
                        break;
                    }
                }
            }
        }
        let end = end.max(self.emitted);
        let out = self.text[self.emitted..end].to_string();
        self.emitted = end;
        out
    }
}

/// What `info` shows of the file a model came from.
struct FileFacts {
    name: String,
    architecture: String,
    file_bytes: u64,
    file_type: String,
    parameters: u64,
    tensor_types: Vec<(String, usize)>,
    chat_template: Option<String>,
}

/// A Hugging Face folder's chat template: `tokenizer_config.json`'s
/// `chat_template` (a string, or named templates of which `default`), else
/// `chat_template.jinja`.
pub fn hf_chat_template(dir: &Path, tok_config: &serde_json::Value) -> Option<String> {
    let from_config = match &tok_config["chat_template"] {
        serde_json::Value::String(t) => Some(t.clone()),
        serde_json::Value::Array(named) => named
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    };
    from_config.or_else(|| std::fs::read_to_string(dir.join("chat_template.jinja")).ok())
}

/// A folder model's name: `org/name` for a Hugging Face cache snapshot
/// (`models--org--name/snapshots/REV`), else the folder's own name.
pub(crate) fn folder_name(dir: &Path) -> String {
    let repo = dir
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "snapshots"))
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("models--"));
    match repo {
        Some(r) => r.replacen("--", "/", 1),
        None => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into()),
    }
}
