//! `lmscope fill`: a masked language model's candidates for each mask in a
//! text, or (`--generate`) the masks filled one token at a time.

use clap::Args;

use super::args::ModelArgs;
use crate::engine::masked::MaskedEngine;
use crate::engine::masked::generate::{FillOrder, MaskedGeneration};
use crate::engine::sampling::{Sampler, SamplerSettings};
use crate::store::masked_session::{MaskedRun, MaskedSession};
use crate::store::presets;
use crate::store::session::BranchPoint;

#[derive(Args, Debug)]
#[command(
    after_help = "Write the model's own mask token ([MASK] for BERT, <mask> for RoBERTa) where a token
should be filled in; each mask is filled on its own, given the rest of the text.
JSON (--json): {masks: [{position, top: [{token_id, text, p}]}], tokens: [{token_id, text, special}]}
With --generate: the masks are filled one at a time, each draw through the sampler chain
of --preset (--temperature overrides its temperature; 0 is greedy), in --order confident (the mask the model is surest of first),
left-to-right, or gibbs (left to right, then --sweeps passes re-drawing each filled token given
all the others). JSON lines: one step record per draw ({step, position, token_id, text, p_raw,
p_final, logprob, rank, entropy, top}), then {text, token_ids}."
)]
pub struct FillArgs {
    /// The text with one or more masks; `-` reads stdin (with --branch: the session's)
    #[arg(required_unless_present = "branch")]
    pub text: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Candidates shown per mask
    #[arg(long, default_value_t = 5, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_k: usize,
    /// Fill the masks step by step with the sampler chain
    #[arg(long)]
    pub generate: bool,
    #[arg(long, value_enum, default_value = "confident")]
    pub order: OrderArg,
    /// Gibbs re-draw passes over the filled positions (with --order gibbs)
    #[arg(long, default_value_t = 2, value_parser = crate::cli::args::whole_number::<usize>)]
    pub sweeps: usize,
    /// The sampler preset each draw goes through (greedy, precise,
    /// balanced, creative, or one of presets.toml)
    #[arg(long, default_value = "balanced")]
    pub preset: String,
    /// Override the preset's temperature (0 = greedy)
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    #[arg(long, default_value_t = 42, value_parser = crate::cli::args::whole_number::<u64>)]
    pub seed: u64,
    /// Save the masked generation as a session file (with --generate)
    #[arg(long, requires = "generate")]
    pub save: Option<std::path::PathBuf>,
    /// Branch a run of this masked session: its tokens up to --at, then
    /// --token there; the branch is added to the file
    #[arg(long, requires_all = ["at", "token"], conflicts_with = "save")]
    pub branch: Option<std::path::PathBuf>,
    /// The run to branch (0-based)
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::whole_number::<usize>)]
    pub run: usize,
    /// The step whose token the branch replaces
    #[arg(long, value_parser = crate::cli::args::whole_number::<usize>)]
    pub at: Option<usize>,
    /// The token id the branch takes at --at (a candidate from that step's top list)
    #[arg(long, value_parser = crate::cli::args::whole_number::<u32>)]
    pub token: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

/// Steps `run` to its end, printing each step (a JSON line each with
/// `json`), then the text.
fn stream(engine: &MaskedEngine, run: &mut MaskedGeneration, json: bool) -> anyhow::Result<()> {
    while let Some(step) = run.step(engine)? {
        if json {
            outln!("{}", serde_json::to_string(&step)?);
        } else {
            outln!(
                "step {:>2}  position {:>3}  {:<16} p {:.3}  (raw {:.3}, rank {})",
                step.step,
                step.position,
                format!("{:?}", step.text),
                step.p_final,
                step.p_raw,
                step.rank
            );
        }
    }
    let filled = run.text(engine);
    if json {
        outln!(
            "{}",
            serde_json::json!({"text": filled, "token_ids": run.ids()})
        );
    } else {
        outln!("{filled}");
    }
    Ok(())
}

fn record(
    engine: &MaskedEngine,
    run: &MaskedGeneration,
    label: &str,
    order: FillOrder,
    settings: SamplerSettings,
    parent: Option<BranchPoint>,
) -> MaskedRun {
    MaskedRun {
        label: label.to_string(),
        order,
        settings,
        parent,
        steps: run.steps().to_vec(),
        text: run.text(engine),
        token_ids: run.ids().to_vec(),
        finished: run.finished(),
    }
}

/// `--branch FILE --at STEP --token ID`: the run's tokens up to STEP, the
/// given token there, then drawn as before (same order, settings, seed);
/// added to the file as a branch of that run.
fn branch(args: &FillArgs, file: &std::path::Path) -> anyhow::Result<()> {
    let mut session = MaskedSession::load(file)?;
    let model = crate::cli::args::ModelArgs {
        model: Some(
            args.model
                .model
                .clone()
                .unwrap_or_else(|| session.model.path.clone()),
        ),
        ..args.model.clone()
    };
    let engine = model.launch().load_masked(None)?;
    let parent = session.runs.get(args.run).ok_or_else(|| {
        anyhow::anyhow!(
            "the session has {} runs; --run {} does not exist",
            session.runs.len(),
            args.run
        )
    })?;
    let (at, token) = (args.at.expect("required"), args.token.expect("required"));
    anyhow::ensure!(
        at < parent.steps.len(),
        "--at {at}: run {} has steps 0 to {}",
        args.run,
        parent.steps.len().saturating_sub(1)
    );
    anyhow::ensure!(
        (token as usize) < engine.info().config.vocab_size,
        "--token {token} is outside the vocabulary (0 to {})",
        engine.info().config.vocab_size - 1
    );
    let (order, settings) = (parent.order, parent.settings.clone());
    let mut run = MaskedGeneration::new(
        &engine,
        &session.text,
        order,
        Sampler::new(settings.clone())?,
        args.top_k,
    )?;
    for s in &parent.steps[..at] {
        run.force(s.step, s.token_id);
    }
    run.force(at, token);
    stream(&engine, &mut run, args.json)?;
    let label = format!("branch of run {} at step {at}", args.run);
    let point = BranchPoint {
        run: args.run,
        step: at,
    };
    session
        .runs
        .push(record(&engine, &run, &label, order, settings, Some(point)));
    session.save(file)?;
    eprintln!("added run {} to {}", session.runs.len() - 1, file.display());
    Ok(())
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum OrderArg {
    Confident,
    LeftToRight,
    Gibbs,
}

pub fn run(args: FillArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.branch {
        return branch(&args, file);
    }
    let text = super::read_input(args.text.as_deref().unwrap_or("-"))?;
    let text = text.trim_end_matches('\n');
    let engine = args.model.launch().load_masked(None)?;
    if args.generate {
        let order = match args.order {
            OrderArg::Confident => FillOrder::Confident,
            OrderArg::LeftToRight => FillOrder::LeftToRight,
            OrderArg::Gibbs => FillOrder::Gibbs {
                sweeps: args.sweeps,
            },
        };
        let all = presets::load()?;
        let preset = all.get(&args.preset).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown preset `{}`; known: {}",
                args.preset,
                all.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let settings = SamplerSettings {
            seed: args.seed,
            temperature: args.temperature.unwrap_or(preset.temperature),
            ..preset.clone()
        };
        let sampler = Sampler::new(settings)?;
        let settings = sampler.settings().clone();
        let mut run = MaskedGeneration::new(&engine, text, order, sampler, args.top_k)?;
        stream(&engine, &mut run, args.json)?;
        if let Some(path) = &args.save {
            let ids = engine.encode(text, None)?.ids;
            let mut session = MaskedSession::new(engine.info(), text, ids)?;
            session
                .runs
                .push(record(&engine, &run, "run 0", order, settings, None));
            session.save(path)?;
            eprintln!("saved {}", path.display());
        }
        return Ok(());
    }
    let result = engine.fill(text, args.top_k)?;
    if args.json {
        outln!("{}", serde_json::to_string(&result)?);
        return Ok(());
    }
    for m in &result.masks {
        outln!("mask at token {}:", m.position);
        for c in &m.top {
            outln!("  {:>7.3}%  {:?}", 100.0 * c.p, c.text);
        }
    }
    Ok(())
}
