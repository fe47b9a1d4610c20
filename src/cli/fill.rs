//! `lmscope fill`: a masked language model's candidates for each mask in a
//! text, or (`--generate`) the masks filled one token at a time.

use clap::Args;

use super::args::ModelArgs;
use crate::engine::masked::generate::{FillOrder, MaskedGeneration};
use crate::engine::sampling::{Sampler, SamplerSettings};
use crate::store::presets;

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
    /// The text with one or more masks; `-` reads stdin
    pub text: String,
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
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum OrderArg {
    Confident,
    LeftToRight,
    Gibbs,
}

pub fn run(args: FillArgs) -> anyhow::Result<()> {
    let text = super::read_input(&args.text)?;
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
        let mut run = MaskedGeneration::new(&engine, text, order, sampler, args.top_k)?;
        while let Some(step) = run.step(&engine)? {
            if args.json {
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
        let filled = run.text(&engine);
        if args.json {
            outln!(
                "{}",
                serde_json::json!({"text": filled, "token_ids": run.ids()})
            );
        } else {
            outln!("{filled}");
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
