//! A training run: the net, its optimiser and schedule, the data, and the
//! loop that steps, evaluates, reports and saves. Interfaces drive it
//! through [`Trainer::run`] and the [`Event`]s it reports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::Var;
use candle_nn::Optimizer;
use serde::Serialize;
use tokenizers::Tokenizer;

use super::base;
use super::checkpoint::{self, Best, History, TrainerState};
use super::data::{CausalData, Corpus, MaskedData};
use super::instruct::{self, InstructData};
use super::lora::{self, LoraConfig};
use super::nets::{self, Arch, Batch, Net, NetConfig};
use super::ops::Dropout;
use super::optim::{AdamW, ParamsAdamW, clip_grad_norm};
use super::params::Params;
use super::probe::{self, Probe};
pub use super::settings::{Finetune, TrainConfig};
use super::tokenizer;

enum Data {
    Masked(MaskedData),
    Causal(CausalData),
    Instruct(InstructData),
}

impl Data {
    fn train_batch(&mut self, step: usize) -> Batch {
        match self {
            Data::Masked(d) => d.train_batch(step),
            Data::Causal(d) => d.train_batch(step),
            Data::Instruct(d) => d.train_batch(step),
        }
    }

    fn val_batches(&self) -> Vec<Batch> {
        match self {
            Data::Masked(d) => d.val_batches(),
            Data::Causal(d) => d.val_batches(),
            Data::Instruct(d) => d.val_batches(),
        }
    }

    fn examples_per_epoch(&self) -> usize {
        match self {
            Data::Masked(d) => d.examples_per_epoch(),
            Data::Causal(d) => d.examples_per_epoch(),
            Data::Instruct(d) => d.examples_per_epoch(),
        }
    }
}

/// What a run reports as it goes.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started {
        arch: Arch,
        /// The numbers that train (a LoRA run's adapters alone).
        parameters: usize,
        /// The numbers held fixed (a LoRA run's base weights).
        frozen_parameters: usize,
        vocab_size: usize,
        train_examples: usize,
        val_batches: usize,
        steps: usize,
        from_step: usize,
        out: PathBuf,
    },
    Step {
        step: usize,
        loss: f32,
        parts: Vec<(String, f32)>,
        lr: f64,
        grad_norm: f64,
        tokens: usize,
        tokens_per_s: f64,
        elapsed_s: f64,
        eta_s: f64,
        peak_rss_mib: Option<f64>,
    },
    Eval {
        step: usize,
        val_loss: f64,
        parts: Vec<(String, f64)>,
        /// The task's measures (fine-tuning: `exact_match`, a fraction).
        metrics: Vec<(String, f64)>,
        best: bool,
        probe: Option<Probe>,
    },
    Saved {
        step: usize,
        dir: PathBuf,
    },
    Finished {
        step: usize,
        best: Option<Best>,
        stopped: bool,
        /// Stopped because the validation loss stopped improving.
        early_stopped: bool,
    },
}

/// How a run ended, in words (the CLI's last line, the view's message).
pub fn ending(stopped: bool, early_stopped: bool) -> &'static str {
    match (early_stopped, stopped) {
        (true, _) => "stopped early (no better validation loss)",
        (false, true) => "stopped",
        (false, false) => "finished",
    }
}

/// One pass over the validation split.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub parts: Vec<(String, f64)>,
    pub metrics: Vec<(String, f64)>,
}

/// What one update did.
pub struct StepReport {
    pub loss: f32,
    pub parts: Vec<(String, f32)>,
    pub lr: f64,
    /// The joint gradient norm before clipping.
    pub grad_norm: f64,
    /// Tokens in the batch (padding not counted).
    pub tokens: usize,
}

pub struct Trainer {
    pub train: TrainConfig,
    pub net_cfg: NetConfig,
    params: Params,
    net: Box<dyn Net>,
    opt: AdamW,
    vars: Vec<Var>,
    data: Data,
    val: Vec<Batch>,
    tokenizer: Tokenizer,
    step: usize,
    best: Option<Best>,
    corpus_sha256: String,
    /// A fine-tuned model's `tokenizer_config.json` (its chat template);
    /// None for the trainer's own tokenizers.
    tok_config: Option<serde_json::Value>,
    pub history: History,
}

fn optimiser(params: &Params, cfg: &TrainConfig) -> anyhow::Result<AdamW> {
    Ok(AdamW::named(
        params.vars(),
        ParamsAdamW {
            lr: cfg.lr,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?)
}

fn data_for(
    arch: Arch,
    corpus: &Corpus,
    tok: &Tokenizer,
    cfg: &TrainConfig,
) -> anyhow::Result<Data> {
    Ok(if arch.is_masked() {
        Data::Masked(MaskedData::new(
            corpus,
            tok,
            cfg.seq_len,
            cfg.batch,
            cfg.seed,
        )?)
    } else {
        let end = tok
            .token_to_id(tokenizer::END_OF_TEXT)
            .or_else(|| tok.token_to_id("</s>"))
            .or_else(|| tok.token_to_id("<|im_end|>"))
            .context("the tokenizer has no end-of-text token (<|endoftext|> or </s>)")?;
        Data::Causal(CausalData::new(
            corpus,
            tok,
            end,
            cfg.seq_len,
            cfg.batch,
            cfg.seed,
        )?)
    })
}

/// The task data, rendered and encoded the way the base model's
/// inference will see it.
fn instruct_data(base: &base::Base, train: &TrainConfig) -> anyhow::Result<InstructData> {
    let pad = base.cfg.special.pad.or(base.cfg.special.eos).unwrap_or(0);
    InstructData::read(
        &train.corpus,
        &base.tokenizer,
        &base.template,
        train.seq_len,
        train.batch,
        train.val_fraction,
        train.seed,
        pad,
    )
}

/// The net on a base model's weights: all of them trained, or (LoRA)
/// only the adapters, which start fresh.
fn tuned(
    cfg: &NetConfig,
    tensors: std::collections::HashMap<String, candle_core::Tensor>,
    seed: u64,
) -> anyhow::Result<(Params, Box<dyn Net>)> {
    let mut params = Params::from_tensors(tensors, seed);
    if cfg.lora.is_some() {
        params = params.train_only(lora::is_adapter);
    }
    let net = nets::build(cfg, &params)?;
    let missing: Vec<String> = params
        .fresh()
        .into_iter()
        .filter(|n| !lora::is_adapter(n))
        .collect();
    if !missing.is_empty() {
        bail!("the base model lacks {}", missing.join(", "));
    }
    Ok((params, net))
}

impl Trainer {
    /// A run from scratch: the corpus read and split, a tokenizer learned
    /// from it (or `tokenizer` read), the net initialised from the seed.
    pub fn pretrain(
        train: TrainConfig,
        mut net_cfg: NetConfig,
        tokenizer_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        train.check()?;
        let corpus = Corpus::read(&train.corpus, train.val_fraction, train.seed)?;
        let tok = match tokenizer_file {
            Some(p) => Tokenizer::from_file(p)
                .map_err(|e| anyhow::anyhow!("reading the tokenizer {}: {e}", p.display()))?,
            None if net_cfg.arch.is_masked() => {
                tokenizer::train_wordpiece(&corpus.train_sentences(), train.vocab_size)?
            }
            None => tokenizer::train_bpe(&corpus.train_sentences(), train.vocab_size)?,
        };
        net_cfg.vocab_size = tok.get_vocab_size(true);
        let end = tok.token_to_id(tokenizer::END_OF_TEXT);
        net_cfg.special = nets::Special {
            pad: tok.token_to_id("[PAD]").or(end),
            bos: end,
            eos: end,
        };
        net_cfg.check().map_err(|e| anyhow::anyhow!("{e}"))?;
        if train.seq_len > net_cfg.max_positions {
            bail!(
                "--seq-len {} is more than the model's {} positions",
                train.seq_len,
                net_cfg.max_positions
            );
        }
        let data = data_for(net_cfg.arch, &corpus, &tok, &train)?;
        let params = Params::seeded(train.seed);
        let net = nets::build(&net_cfg, &params)?;
        let opt = optimiser(&params, &train)?;
        Ok(Self::assemble(
            train,
            net_cfg,
            params,
            net,
            opt,
            data,
            tok,
            corpus.sha256,
        ))
    }

    /// A fine-tuning run: the base model `train.finetune` names (every
    /// weight, or LoRA adapters on `lora`'s layers with the rest frozen),
    /// on the task data `train.corpus` rendered through its chat template.
    pub fn finetune(train: TrainConfig, lora: Option<LoraConfig>) -> anyhow::Result<Self> {
        train.check()?;
        let Some(ft) = &train.finetune else {
            bail!("a fine-tuning run names its base model")
        };
        let base = base::load(&ft.model)?;
        let mut net_cfg = base.cfg.clone();
        net_cfg.lora = lora;
        if train.seq_len > net_cfg.max_positions {
            bail!(
                "--seq-len {} is more than the model's {} positions",
                train.seq_len,
                net_cfg.max_positions
            );
        }
        let data = instruct_data(&base, &train)?;
        let (params, net) = tuned(&net_cfg, base.tensors, train.seed)?;
        let opt = optimiser(&params, &train)?;
        let sha256 = data.sha256.clone();
        let mut t = Self::assemble(
            train,
            net_cfg,
            params,
            net,
            opt,
            Data::Instruct(data),
            base.tokenizer.hf().clone(),
            sha256,
        );
        t.tok_config = Some(base.tok_config);
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        train: TrainConfig,
        net_cfg: NetConfig,
        params: Params,
        net: Box<dyn Net>,
        opt: AdamW,
        data: Data,
        tokenizer: Tokenizer,
        corpus_sha256: String,
    ) -> Self {
        let vars = params.vars().into_iter().map(|(_, v)| v).collect();
        let val = data.val_batches();
        Self {
            train,
            net_cfg,
            params,
            net,
            opt,
            vars,
            data,
            val,
            tokenizer,
            step: 0,
            best: None,
            corpus_sha256,
            tok_config: None,
            history: History::default(),
        }
    }

    /// Carries on the run whose output folder is `out`, exactly where its
    /// last checkpoint stopped; `steps` raises its total.
    pub fn resume(out: &Path, steps: Option<usize>) -> anyhow::Result<Self> {
        let r = checkpoint::read_resumable(out)?;
        let mut train = r.state.train.clone();
        if let Some(s) = steps {
            train.steps = s;
        }
        let changed = |path: &Path| {
            anyhow::anyhow!(
                "{} changed since the run began (its SHA-256 differs); a resumed run needs the same data",
                path.display()
            )
        };
        let mut tok_config = None;
        let (data, sha256, params, net) = match &train.finetune {
            Some(ft) => {
                let base = base::load(&ft.model)?;
                let data = instruct_data(&base, &train)?;
                if data.sha256 != r.state.corpus_sha256 {
                    return Err(changed(&train.corpus));
                }
                // LoRA: the frozen base again, and the adapters as trained.
                let tensors = match (&r.state.net.lora, r.adapters) {
                    (Some(_), Some(a)) => base.tensors.into_iter().chain(a).collect(),
                    (Some(_), None) => bail!("the checkpoint has no {}", checkpoint::ADAPTERS),
                    (None, _) => r.tensors,
                };
                let (params, net) = tuned(&r.state.net, tensors, train.seed)?;
                tok_config = Some(base.tok_config);
                let sha = data.sha256.clone();
                (Data::Instruct(data), sha, params, net)
            }
            None => {
                let corpus = Corpus::read(&train.corpus, train.val_fraction, train.seed)?;
                if corpus.sha256 != r.state.corpus_sha256 {
                    return Err(changed(&train.corpus));
                }
                let data = data_for(r.state.net.arch, &corpus, &r.tokenizer, &train)?;
                let params = Params::from_tensors(r.tensors, train.seed);
                let net = nets::build(&r.state.net, &params)?;
                if !params.fresh().is_empty() {
                    bail!("the checkpoint lacks {}", params.fresh().join(", "));
                }
                (data, corpus.sha256, params, net)
            }
        };
        let mut opt = optimiser(&params, &train)?;
        opt.restore(&r.moments, r.state.step)?;
        let mut t = Self::assemble(
            train,
            r.state.net,
            params,
            net,
            opt,
            data,
            r.tokenizer,
            sha256,
        );
        t.tok_config = tok_config;
        t.step = r.state.step;
        t.best = r.state.best;
        t.history = r.state.history;
        Ok(t)
    }

    pub fn step_index(&self) -> usize {
        self.step
    }

    pub fn parameters(&self) -> usize {
        self.params.count()
    }

    pub fn net(&self) -> &dyn Net {
        self.net.as_ref()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// One update: the batch's loss, its gradients clipped, AdamW at the
    /// schedule's rate.
    pub fn step(&mut self) -> anyhow::Result<StepReport> {
        let batch = self.data.train_batch(self.step);
        let mut dropout = Dropout::train(self.net_cfg.dropout, self.train.seed, self.step as u64);
        let losses = self.net.loss(&batch, &mut dropout)?;
        let loss = losses.total.to_scalar::<f32>()?;
        if !loss.is_finite() {
            bail!(
                "the loss is {loss} at step {}: lower --lr or raise --warmup",
                self.step + 1
            );
        }
        let mut grads = losses.total.backward()?;
        let norm = clip_grad_norm(&mut grads, &self.vars, self.train.clip)?;
        let lr = self.train.schedule().rate(self.step);
        self.opt.set_learning_rate(lr);
        self.opt.step(&grads)?;
        self.step += 1;
        self.history.train_loss.push(loss);
        self.history.rate.push(lr);
        Ok(StepReport {
            loss,
            parts: losses
                .parts
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            lr,
            grad_norm: norm,
            tokens: batch.tokens(),
        })
    }

    /// The mean loss (and parts) over the validation batches, dropout
    /// off, and for task data the share of exact answers.
    pub fn evaluate(&self) -> anyhow::Result<Evaluation> {
        if self.val.is_empty() {
            bail!("there is no validation split (--val-fraction 0)");
        }
        let task = matches!(self.data, Data::Instruct(_));
        let mut total = 0.0;
        let (mut exact, mut answers) = (0, 0);
        let mut parts: Vec<(String, f64)> = Vec::new();
        for b in &self.val {
            let l = self.net.loss(b, &mut Dropout::off())?;
            total += l.total.to_scalar::<f32>()? as f64;
            if let (true, Some(logits)) = (task, &l.logits) {
                let (m, n) = instruct::exact_matches(b, logits)?;
                exact += m;
                answers += n;
            }
            for (i, (k, v)) in l.parts.into_iter().enumerate() {
                match parts.get_mut(i) {
                    Some(p) => p.1 += v as f64,
                    None => parts.push((k.to_string(), v as f64)),
                }
            }
        }
        let n = self.val.len() as f64;
        let mut metrics = Vec::new();
        if task {
            metrics.push((
                "exact_match".to_string(),
                exact as f64 / answers.max(1) as f64,
            ));
        }
        Ok(Evaluation {
            loss: total / n,
            parts: parts.into_iter().map(|(k, v)| (k, v / n)).collect(),
            metrics,
        })
    }

    fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            train: self.train.clone(),
            net: self.net_cfg.clone(),
            corpus_sha256: self.corpus_sha256.clone(),
            best: self.best,
            history: self.history.clone(),
        }
    }

    /// Writes the resumable checkpoint (`OUT/last`), and `OUT/best` too
    /// when `best`.
    pub fn save(&self, best: bool) -> anyhow::Result<Vec<PathBuf>> {
        let out = &self.train.out;
        let tensors = self.params.tensors();
        // A LoRA run's model files have the adapters merged in; its
        // resumable checkpoint keeps them apart too.
        let (model, adapters) = match &self.net_cfg.lora {
            Some(l) => (lora::merged(&tensors, l)?, Some(lora::adapters(&tensors))),
            None => (tensors, None),
        };
        let last = checkpoint::last_dir(out);
        let tok_config = self.tok_config.as_ref();
        checkpoint::write(
            &last,
            &self.net_cfg,
            &model,
            &self.tokenizer,
            tok_config,
            Some(checkpoint::ResumeParts {
                moments: &self.opt.state(),
                state: &self.state(),
                adapters: adapters.as_ref(),
            }),
        )?;
        let mut dirs = vec![last];
        if best {
            let dir = checkpoint::best_dir(out);
            checkpoint::write(
                &dir,
                &self.net_cfg,
                &model,
                &self.tokenizer,
                tok_config,
                None,
            )?;
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Trains to the last step, evaluating (and saving) every
    /// `eval_every` steps and at the end; `stop` ends the run early after
    /// the current step, saved.
    pub fn run(&mut self, on: &mut dyn FnMut(&Event), stop: &AtomicBool) -> anyhow::Result<()> {
        self.run_pausable(on, stop, &AtomicBool::new(false))
    }

    /// [`Trainer::run`] that waits between steps while `pause` is set (the
    /// paused time left out of the speed and the time left).
    pub fn run_pausable(
        &mut self,
        on: &mut dyn FnMut(&Event),
        stop: &AtomicBool,
        pause: &AtomicBool,
    ) -> anyhow::Result<()> {
        on(&Event::Started {
            arch: self.net_cfg.arch,
            parameters: self.parameters(),
            frozen_parameters: self.params.frozen_count(),
            vocab_size: self.net_cfg.vocab_size,
            train_examples: self.data.examples_per_epoch(),
            val_batches: self.val.len(),
            steps: self.train.steps,
            from_step: self.step,
            out: self.train.out.clone(),
        });
        // A fine-tuning run measures the base model first: the figures to
        // beat, and the best checkpoint should no step improve on it.
        if self.step == 0 && self.train.finetune.is_some() {
            self.checkpoint(on)?;
        }
        let started = Instant::now();
        let mut paused = std::time::Duration::ZERO;
        let first = self.step;
        let mut tokens_seen = 0usize;
        let mut stopped = false;
        let mut early_stopped = false;
        while self.step < self.train.steps {
            if pause.load(Ordering::Relaxed) {
                let t = Instant::now();
                while pause.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(30));
                }
                paused += t.elapsed();
            }
            let StepReport {
                loss,
                parts,
                lr,
                grad_norm,
                tokens,
            } = self.step()?;
            tokens_seen += tokens;
            let elapsed = (started.elapsed() - paused).as_secs_f64();
            let done = (self.step - first) as f64;
            on(&Event::Step {
                step: self.step,
                loss,
                parts,
                lr,
                grad_norm,
                tokens,
                tokens_per_s: tokens_seen as f64 / elapsed.max(1e-9),
                elapsed_s: elapsed,
                eta_s: elapsed / done * (self.train.steps - self.step) as f64,
                peak_rss_mib: peak_rss_mib(),
            });
            stopped = stop.load(Ordering::Relaxed);
            let last = self.step == self.train.steps;
            if self.step.is_multiple_of(self.train.eval_every) || last {
                self.checkpoint(on)?;
                early_stopped = self.out_of_patience();
                stopped |= early_stopped;
            } else if stopped {
                // Saved to resume from, not evaluated: the run's record
                // stays the one an uninterrupted run keeps.
                for dir in self.save(false)? {
                    on(&Event::Saved {
                        step: self.step,
                        dir,
                    });
                }
            }
            if stopped {
                break;
            }
        }
        on(&Event::Finished {
            step: self.step,
            best: self.best,
            stopped,
            early_stopped,
        });
        Ok(())
    }

    /// Whether `patience` evaluations have passed since the best one.
    fn out_of_patience(&self) -> bool {
        let patience = self.train.finetune.as_ref().and_then(|f| f.patience);
        match (patience, self.best) {
            (Some(p), Some(best)) => {
                let since = self.history.val_loss.iter().filter(|(s, _)| *s > best.step);
                since.count() >= p
            }
            _ => false,
        }
    }

    /// Evaluates (when there is a validation split), probes, and saves.
    fn checkpoint(&mut self, on: &mut dyn FnMut(&Event)) -> anyhow::Result<()> {
        let mut is_best = false;
        if !self.val.is_empty() {
            let Evaluation {
                loss: val_loss,
                parts,
                metrics,
            } = self.evaluate()?;
            is_best = self.best.is_none_or(|b| val_loss < b.val_loss);
            if is_best {
                self.best = Some(Best {
                    step: self.step,
                    val_loss,
                });
            }
            self.history.val_loss.push((self.step, val_loss));
            let probe = match &self.train.probe {
                Some(text) => Some(probe::probe(self.net.as_ref(), &self.tokenizer, text)?),
                None => None,
            };
            on(&Event::Eval {
                step: self.step,
                val_loss,
                parts,
                metrics,
                best: is_best,
                probe,
            });
        }
        for dir in self.save(is_best)? {
            on(&Event::Saved {
                step: self.step,
                dir,
            });
        }
        Ok(())
    }
}

/// What [`bench()`] measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub parameters: usize,
    pub step_ms: f64,
    pub tokens_per_s: f64,
    pub peak_rss_mib: Option<f64>,
}

/// Updates (loss, backward, clipping, AdamW) on one random batch: two
/// untimed, then `steps` timed.
pub fn bench(
    cfg: &NetConfig,
    batch: usize,
    seq_len: usize,
    steps: usize,
) -> anyhow::Result<BenchReport> {
    if seq_len > cfg.max_positions {
        bail!(
            "--seq-len {seq_len} is more than the model's {} positions",
            cfg.max_positions
        );
    }
    let params = Params::seeded(0);
    let net = nets::build(cfg, &params)?;
    let mut opt = AdamW::named(params.vars(), ParamsAdamW::default())?;
    let vars: Vec<Var> = params.vars().into_iter().map(|(_, v)| v).collect();
    let b = super::data::synthetic_batch(cfg.arch.is_masked(), cfg.vocab_size, batch, seq_len, 0);
    let mut update = || -> anyhow::Result<()> {
        let mut grads = net.loss(&b, &mut Dropout::off())?.total.backward()?;
        clip_grad_norm(&mut grads, &vars, 1.0)?;
        opt.step(&grads)?;
        Ok(())
    };
    update()?;
    update()?;
    let t = Instant::now();
    for _ in 0..steps.max(1) {
        update()?;
    }
    let s = t.elapsed().as_secs_f64() / steps.max(1) as f64;
    Ok(BenchReport {
        parameters: params.count(),
        step_ms: s * 1e3,
        tokens_per_s: (batch * seq_len) as f64 / s,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// The process's peak resident memory, where the system reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
