//! `lmscope train pretrain`: a net trained from scratch on a corpus, its
//! progress on stderr (or, with --json, every event as a JSON line on
//! stdout), checkpoints written as it goes; Ctrl-C stops after the step
//! in progress, saved, and `--resume` carries on from there.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::interrupt;
use crate::store::paths;
use crate::train::lora::LoraConfig;
use crate::train::nets::{Arch, NetConfig};
use crate::train::run::{Event, Finetune, TrainConfig, Trainer};

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub what: TrainCommand,
}

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Train a new model from scratch on CORPUS (one sentence per line, a blank line between documents)
    Pretrain(PretrainArgs),
    /// Fine-tune a model (a Hugging Face folder, or a GGUF dequantised to f32) on question-answer data, in full or with LoRA
    Finetune(FinetuneArgs),
    /// Training speed: updates on random full-length batches, tokens/s and peak memory (scripts/bench_train_pytorch.py runs PyTorch on the same shapes)
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "bert")]
    pub arch: Arch,
    /// tiny, small or a TOML file of NetConfig fields
    #[arg(long, default_value = "tiny")]
    pub size: String,
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Timed updates (after two untimed ones)
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Print {tokens_per_s, step_ms, peak_rss_mib, ...} as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// The text to learn from: one sentence per line, a blank line between documents
    #[arg(required_unless_present = "resume")]
    pub corpus: Option<PathBuf>,
    /// The family: bert (masked LM + next sentence), gpt2 or llama (next token)
    #[arg(long, value_enum, default_value = "bert")]
    pub arch: Arch,
    /// tiny (2 layers of 128), small (4 layers of 256) or a TOML file of NetConfig fields
    #[arg(long, default_value = "tiny")]
    pub size: String,
    /// Where checkpoints go (`last/` to resume from, `best/` by validation loss); default: the data directory's runs/ARCH-SIZE
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this output folder exactly where it stopped
    #[arg(long, conflicts_with_all = ["corpus", "tokenizer"])]
    pub resume: Option<PathBuf>,
    /// Use this tokenizer.json instead of learning one from the corpus
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// The size of the learned tokenizer's vocabulary
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    /// Updates to make (with --resume: the new total)
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sequences per update
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Tokens per sequence, at most
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    /// Peak learning rate (AdamW)
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Warm-up steps (linear, then cosine decay); default: 5% of the steps
    #[arg(long)]
    pub warmup: Option<usize>,
    /// AdamW's decoupled weight decay
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// The most the joint gradient norm may be
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Seeds the initial weights, the validation split, the batches and dropout
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate on the validation split and save every this many steps
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// The share of documents held out for validation
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// A text whose predictions and attention each evaluation reports (BERT: put `[MASK]` in it)
    #[arg(long)]
    pub probe: Option<String>,
    /// Every event as one JSON line on stdout
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Watch the run in the terminal: loss and rate charts, progress, the probe's heads (p pause, q stop and save)
    #[arg(long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// The base model: a Hugging Face folder (llama, gpt2, bert) or a llama GGUF file, or a model name in the data directory [default: SmolLM2-135M-Instruct]
    #[arg(long, short = 'm', conflicts_with = "resume")]
    pub model: Option<String>,
    /// Task data, one JSON object per line: {"question": ..., "answer": ...} (or prompt/completion, with an optional system) or {"messages": [...]} ending with the assistant's answer
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<PathBuf>,
    /// Train LoRA adapters (the base frozen; merged into the saved model) instead of every weight
    #[arg(long)]
    pub lora: bool,
    /// The adapters' rank
    #[arg(long, default_value_t = 8, requires = "lora")]
    pub lora_rank: usize,
    /// The adapters' scale is alpha / rank
    #[arg(long, default_value_t = 16.0, requires = "lora")]
    pub lora_alpha: f64,
    /// The layers that get adapters, comma-separated (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,v_proj",
        requires = "lora"
    )]
    pub lora_targets: Vec<String>,
    /// Where checkpoints go (`last/` to resume from, `best/` by validation loss); default: the data directory's runs/finetune-MODEL
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this output folder exactly where it stopped
    #[arg(long, conflicts_with_all = ["data", "lora"])]
    pub resume: Option<PathBuf>,
    /// Passes over the training examples (when --steps is not given)
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Updates to make (with --resume: the new total)
    #[arg(long)]
    pub steps: Option<usize>,
    /// Examples per update
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// The most tokens an example may have (prompt, template and answer)
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Peak learning rate (AdamW) [default: 5e-5, or 1e-3 with --lora]
    #[arg(long)]
    pub lr: Option<f64>,
    /// Warm-up steps (linear, then cosine decay); default: 5% of the steps
    #[arg(long)]
    pub warmup: Option<usize>,
    /// AdamW's decoupled weight decay
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// The most the joint gradient norm may be
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Seeds the validation split, the order of examples and new adapters
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate (validation loss, exact match) and save every this many steps [default: once an epoch]
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// The share of examples held out for validation
    #[arg(long, default_value_t = 0.1)]
    pub val_fraction: f64,
    /// Stop after this many evaluations without a better validation loss
    #[arg(long)]
    pub patience: Option<usize>,
    /// A text whose next-token predictions and attention each evaluation reports
    #[arg(long)]
    pub probe: Option<String>,
    /// Every event as one JSON line on stdout
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Watch the run in the terminal: loss and rate charts, progress, exact match (p pause, q stop and save)
    #[arg(long)]
    pub watch: bool,
}

/// The default number of updates.
const STEPS: usize = 1000;

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    match args.what {
        TrainCommand::Pretrain(a) => drive(trainer_for(&a)?, a.json),
        TrainCommand::Finetune(a) => drive(finetuner_for(&a)?, a.json),
        TrainCommand::Bench(a) => bench(a),
    }
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let mut cfg = net_config(a.arch, &a.size)?;
    cfg.vocab_size = a.vocab_size;
    cfg.dropout = 0.0;
    let r = crate::train::run::bench(&cfg, a.batch, a.seq_len, a.steps)?;
    if a.json {
        outln!("{}", serde_json::to_string(&r)?);
    } else {
        outln!(
            "{} {} ({:.2}M parameters), batch {} x {} tokens: {:.1} ms per update, {:.0} tokens/s, peak memory {:.0} MiB",
            a.arch.name(),
            a.size,
            r.parameters as f64 / 1e6,
            a.batch,
            a.seq_len,
            r.step_ms,
            r.tokens_per_s,
            r.peak_rss_mib.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn net_config(arch: Arch, size: &str) -> anyhow::Result<NetConfig> {
    if let Some(cfg) = NetConfig::preset(arch, size) {
        return Ok(cfg);
    }
    let path = PathBuf::from(size);
    if !path.is_file() {
        bail!("--size {size}: neither tiny, small nor a TOML file");
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {size}"))?;
    let mut cfg: NetConfig =
        toml::from_str(&text).with_context(|| format!("{size} is not a net configuration"))?;
    cfg.arch = arch;
    Ok(cfg)
}

impl TrainArgs {
    /// Whether the run is to be watched in the terminal (the training view).
    pub fn watched(&self) -> bool {
        match &self.what {
            TrainCommand::Pretrain(p) => p.watch,
            TrainCommand::Finetune(f) => f.watch,
            TrainCommand::Bench(_) => false,
        }
    }
}

/// The run `train pretrain` or `train finetune` asks for, built (or read
/// back) and not started: what the training view drives.
pub fn prepare(args: TrainArgs) -> anyhow::Result<Trainer> {
    match args.what {
        TrainCommand::Pretrain(a) => trainer_for(&a),
        TrainCommand::Finetune(a) => finetuner_for(&a),
        TrainCommand::Bench(_) => bail!("train bench has no run to watch"),
    }
}

fn trainer_for(a: &PretrainArgs) -> anyhow::Result<Trainer> {
    Ok(match &a.resume {
        Some(dir) => Trainer::resume(dir, a.steps)?,
        None => {
            let corpus = a
                .corpus
                .clone()
                .expect("clap requires a corpus without --resume");
            let steps = a.steps.unwrap_or(STEPS);
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| paths::runs_dir().join(format!("{}-{}", a.arch.name(), a.size)));
            let train = TrainConfig {
                corpus,
                out,
                steps,
                batch: a.batch,
                seq_len: a.seq_len,
                lr: a.lr,
                warmup: a.warmup.unwrap_or(steps / 20),
                min_lr_ratio: 0.1,
                weight_decay: a.weight_decay,
                clip: a.clip,
                seed: a.seed,
                eval_every: a.eval_every,
                val_fraction: a.val_fraction,
                vocab_size: a.vocab_size,
                probe: a.probe.clone(),
                finetune: None,
            };
            Trainer::pretrain(train, net_config(a.arch, &a.size)?, a.tokenizer.as_deref())?
        }
    })
}

fn finetuner_for(a: &FinetuneArgs) -> anyhow::Result<Trainer> {
    if let Some(dir) = &a.resume {
        return Trainer::resume(dir, a.steps);
    }
    let data = a
        .data
        .clone()
        .expect("clap requires --data without --resume");
    let launch = crate::store::launch::Launch {
        model: a.model.clone(),
        ..Default::default()
    };
    let model = launch.model_path()?;
    let train_examples = training_examples(&data, a.val_fraction)?;
    let per_epoch = train_examples.div_ceil(a.batch.max(1)).max(1);
    let steps = a.steps.unwrap_or(a.epochs.max(1) * per_epoch);
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| paths::runs_dir().join(format!("finetune-{stem}")));
    let lora = a.lora.then(|| LoraConfig {
        rank: a.lora_rank,
        alpha: a.lora_alpha,
        targets: a.lora_targets.clone(),
    });
    let train = TrainConfig {
        corpus: data,
        out,
        steps,
        batch: a.batch,
        seq_len: a.seq_len,
        lr: a.lr.unwrap_or(if a.lora { 1e-3 } else { 5e-5 }),
        warmup: a.warmup.unwrap_or(steps / 20),
        min_lr_ratio: 0.1,
        weight_decay: a.weight_decay,
        clip: a.clip,
        seed: a.seed,
        eval_every: a.eval_every.unwrap_or(per_epoch),
        val_fraction: a.val_fraction,
        vocab_size: 0,
        probe: a.probe.clone(),
        finetune: Some(Finetune {
            model,
            patience: a.patience,
        }),
    };
    Trainer::finetune(train, lora)
}

/// How many examples of a task file train (the rest validate), to count
/// an epoch's steps before the file is rendered.
fn training_examples(data: &std::path::Path, val_fraction: f64) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(data).with_context(|| format!("reading {}", data.display()))?;
    let n = text.lines().filter(|l| !l.trim().is_empty()).count();
    Ok(crate::train::instruct::split(n, val_fraction).1)
}

fn drive(mut trainer: Trainer, json: bool) -> anyhow::Result<()> {
    let stop = interrupt::watch()?;
    let mut failed: Option<super::out::OutputError> = None;
    let mut report = |e: &Event| {
        if json {
            let line = serde_json::to_string(e).expect("events serialise");
            if let Err(err) = super::out::write(format_args!("{line}\n")) {
                failed.get_or_insert(err);
            }
        } else {
            human(e);
        }
    };
    trainer.run(&mut report, stop.as_atomic())?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if stop.is_set() {
        return Err(interrupt::Interrupted.into());
    }
    Ok(())
}

/// Progress for a person: a line per evaluation and every tenth of one.
fn human(e: &Event) {
    match e {
        Event::Started {
            arch,
            parameters,
            frozen_parameters,
            vocab_size,
            train_examples,
            steps,
            from_step,
            out,
            ..
        } => {
            let frozen = match frozen_parameters {
                0 => String::new(),
                f => format!(", {:.2}M frozen", *f as f64 / 1e6),
            };
            eprintln!(
                "training {} ({:.2}M parameters{frozen}, vocabulary {vocab_size}) on {train_examples} examples per epoch, steps {}..{steps}; checkpoints in {}",
                arch.name(),
                *parameters as f64 / 1e6,
                from_step + 1,
                out.display()
            );
        }
        Event::Step {
            step,
            loss,
            parts,
            lr,
            tokens_per_s,
            eta_s,
            ..
        } if step % 10 == 0 => {
            let parts: Vec<String> = parts.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
            eprintln!(
                "step {step:>6}  loss {loss:.4} ({})  lr {lr:.2e}  {tokens_per_s:.0} tok/s  {:.0}s left",
                parts.join(", "),
                eta_s
            );
        }
        Event::Step { .. } => {}
        Event::Eval {
            step,
            val_loss,
            metrics,
            best,
            probe,
            ..
        } => {
            let metrics: String = metrics
                .iter()
                .map(|(k, v)| format!("  {} {:.1}%", k.replace('_', " "), v * 100.0))
                .collect();
            eprintln!(
                "eval {step:>6}  validation loss {val_loss:.4}{metrics}{}",
                if *best { "  (best)" } else { "" }
            );
            if let Some(p) = probe {
                for (at, top) in &p.predictions {
                    let top: Vec<String> = top.iter().map(|(t, q)| format!("{t} {q:.2}")).collect();
                    eprintln!("  probe @{at}: {}", top.join("  "));
                }
            }
        }
        Event::Saved { dir, .. } => eprintln!("  saved {}", dir.display()),
        Event::Finished {
            step,
            best,
            stopped,
            early_stopped,
        } => {
            let how = crate::train::run::ending(*stopped, *early_stopped);
            match best {
                Some(b) => eprintln!(
                    "{how} at step {step}; best validation loss {:.4} at step {}",
                    b.val_loss, b.step
                ),
                None => eprintln!("{how} at step {step}"),
            }
        }
    }
}
