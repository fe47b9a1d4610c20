//! `lmscope run --task NAME [INPUT|-]`: one of the ready applications
//! (assets/tasks.toml, and the user's tasks.toml) on the local model or a
//! server: its messages through the chat template, its preset, its stops.

use clap::Args;
use serde_json::json;

use super::args::{ModelArgs, RemoteArgs};
use crate::engine::{Prompt, Request};
use crate::store::{presets, tasks};

#[derive(Args, Debug)]
#[command(
    after_help = "Built-in tasks: summarise, translate, qa, dialogue, story, code (assets/tasks.toml);
add your own in tasks.toml in the config directory, same format.

JSON (--json): a line {task, preset, messages} first, then the lines of `generate --json`."
)]
pub struct RunArgs {
    /// The task's name (--list shows them)
    #[arg(long, required_unless_present = "list")]
    pub task: Option<String>,
    /// The text to work on; `-` reads stdin [default: the task's example]
    pub input: Option<String>,
    /// List the tasks and exit
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Most tokens to generate [default: the task's]
    #[arg(short = 'n', long, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub max_tokens: Option<usize>,
    /// The sampler preset [default: the task's]
    #[arg(long)]
    pub preset: Option<String>,
    #[arg(long, default_value_t = 42, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<u64>)]
    pub seed: u64,
    /// Alternatives to record per token (with --json)
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_n: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let all = tasks::load()?;
    if args.list {
        if args.json {
            outln!("{}", json!(all));
        } else {
            for (name, t) in &all {
                outln!("{name:<10} {} (preset {})", t.description, t.preset);
            }
        }
        return Ok(());
    }
    let name = args.task.as_deref().unwrap_or_default();
    let task = tasks::find(&all, name)?;
    let input = match &args.input {
        Some(arg) => super::read_input(arg)?,
        None => {
            eprintln!("(no input given: the task's example) {}", task.example);
            task.example.clone()
        }
    };
    anyhow::ensure!(
        !input.trim().is_empty(),
        "the input is empty; give the text for task `{name}`"
    );
    let preset_name = args.preset.as_deref().unwrap_or(&task.preset);
    let all_presets = presets::load()?;
    let sampler = all_presets
        .get(preset_name)
        .cloned()
        .map(|s| crate::engine::sampling::SamplerSettings {
            seed: args.seed,
            ..s
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "task `{name}` names preset `{preset_name}`, which does not exist; known: {}",
                all_presets.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
    let messages = task.messages(&input);
    let max_tokens = args.max_tokens.unwrap_or(task.max_tokens);
    if args.json {
        outln!(
            "{}",
            json!({"task": name, "preset": preset_name, "messages": messages})
        );
    }
    if let Some(options) = args.remote.options()? {
        let request = crate::remote::RemoteRequest {
            prompt: crate::remote::RemotePrompt::Chat(messages),
            sampler,
            max_tokens,
            stop: task.stop.clone(),
            top_n: args.top_n,
        };
        return super::remote::generate(&options, &request, args.json);
    }
    let engine = args.model.load()?;
    let request = Request {
        sampler,
        max_tokens,
        stop: task.stop.clone(),
        top_n: args.top_n,
        ..Request::new(Prompt::Chat(messages))
    };
    let (mut generation, _, interrupted) =
        super::generate::stream_local(&engine, &request, args.json)?;
    super::generate::print_done(&mut generation, interrupted, args.json)
}
