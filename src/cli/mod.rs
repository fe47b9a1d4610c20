//! Headless subcommands: a stable contract for scripts (JSON on stdout,
//! progress and errors on stderr, exit code 1 on error; when the reader of
//! stdout goes away, exit code 141 with no message, as a tool killed by
//! SIGPIPE).

#[macro_use]
mod out;
mod ablate;
pub mod args;
mod attribute;
mod bench;
mod bench_masked;
mod bias;
mod compare;
mod embed;
mod fill;
mod generate;
mod info;
mod interrupt;
mod lens;
mod nsp;
mod positions;
mod pull;
mod remote;
mod run;
mod score;
mod session;
pub mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::store::launch::Launch;
pub use args::{ModelArgs, SamplerArgs};

#[derive(Parser, Debug)]
#[command(
    name = "lmscope",
    version,
    about = "Look inside a language model while it writes",
    long_about = "Look inside a language model while it writes.\n\nWith no subcommand, opens the workbench interface on the model (the default one is fetched first when missing).",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// For the interface (no subcommand)
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: args::RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Continue a prompt, streaming the text (or, with --json, every token's probabilities)
    Generate(generate::GenerateArgs),
    /// Run a ready task (summarise, translate, qa, dialogue, story, code, or your own) on a text
    Run(run::RunArgs),
    /// Per-token log-probabilities and perplexity of a text
    Score(score::ScoreArgs),
    /// Describe a model: architecture, sizes, tensor types, vocabulary, template
    Info(info::InfoArgs),
    /// How a rotary model encodes position: each frequency pair's rotation, and q.k against distance for a head
    Positions(positions::PositionsArgs),
    /// The models an OpenAI-compatible server (--backend URL) serves, and what kind of server it is
    Models(remote::ModelsArgs),
    /// Fetch the default model (or a named one) into the data directory
    Pull(pull::PullArgs),
    /// Measure prefill and decode speed, against llama.cpp when it is installed
    Bench(bench::BenchArgs),
    /// Run one prompt under several sampler presets side by side (same prefill, same seed)
    Compare(compare::CompareArgs),
    /// Show, replay or export a saved session
    Session(session::SessionArgs),
    /// Bias checks from the model's probabilities: probe suites, minimal pairs, term swaps
    Bias(bias::BiasArgs),
    /// The logit lens: what each layer's residual stream predicts at a position
    Lens(lens::LensArgs),
    /// Switch attention heads off and measure what the next-token distribution loses
    Ablate(ablate::AblateArgs),
    /// Which input tokens made the model choose a token (occlusion)
    Attribute(attribute::AttributeArgs),
    /// Train a model: pre-train one from scratch on a corpus (masked LM + next sentence, or causal)
    Train(Box<train::TrainArgs>),
    /// A masked language model's candidates for each `[MASK]` in a text, or the masks filled step by step
    Fill(fill::FillArgs),
    /// Next-sentence prediction: P(B follows A) from a BERT pre-training head
    Nsp(nsp::NspArgs),
    /// Sentence embeddings from an encoder, and their cosine similarities
    Embed(embed::EmbedArgs),
}

/// What the command line asks for: the workbench (no subcommand) or a
/// subcommand. `main` starts the one asked for, so this layer never sees
/// the interface's.
pub enum Parsed {
    Workbench(Launch),
    Command(Command),
    /// `--help`, `--version` or a usage error, already printed: exit with this.
    Exit(ExitCode),
}

pub fn parse() -> Parsed {
    match Cli::try_parse() {
        Ok(Cli {
            command: Some(c), ..
        }) => Parsed::Command(c),
        Ok(Cli {
            command: None,
            model,
            remote,
        }) => match remote.options() {
            Ok(remote) => Parsed::Workbench(Launch {
                remote,
                ..model.launch()
            }),
            Err(e) => {
                eprintln!("error: {e:#}");
                Parsed::Exit(ExitCode::FAILURE)
            }
        },
        Err(e) => {
            let _ = e.print();
            Parsed::Exit(if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// The exit code for a result: errors as one `error:` line on stderr.
/// Output that could not be written: a closed pipe exits quietly with 141
/// (what a tool killed by SIGPIPE reports), anything else is one line.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<interrupt::Interrupted>().is_some() => ExitCode::from(130),
        Err(e) => match e.downcast_ref::<out::OutputError>() {
            Some(o) if o.is_closed_pipe() => ExitCode::from(141),
            Some(o) => {
                eprintln!("lmscope: {o}");
                ExitCode::FAILURE
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

pub fn run_command(command: Command) -> anyhow::Result<()> {
    let result = match command {
        Command::Generate(a) => generate::run(a),
        Command::Run(a) => run::run(a),
        Command::Score(a) => score::run(a),
        Command::Info(a) => info::run(a),
        Command::Positions(a) => positions::run(a),
        Command::Pull(a) => pull::run(a),
        Command::Models(a) => remote::models(a),
        Command::Bench(a) if a.model.launch().is_masked() => bench_masked::run(&a),
        Command::Bench(a) => bench::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Session(a) => session::run(a),
        Command::Bias(a) => bias::run(a),
        Command::Lens(a) => lens::run(a),
        Command::Ablate(a) => ablate::run(a),
        Command::Attribute(a) => attribute::run(a),
        Command::Train(a) => train::run(*a),
        Command::Fill(a) => fill::run(a),
        Command::Nsp(a) => nsp::run(a),
        Command::Embed(a) => embed::run(a),
    };
    result?;
    out::flush()?;
    Ok(())
}

/// Reads PROMPT, or stdin when it is `-`.
fn read_input(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        Ok(s)
    } else {
        Ok(arg.to_string())
    }
}
