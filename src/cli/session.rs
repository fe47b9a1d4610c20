//! `lmscope session`: look at, replay and export saved sessions.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::args::ModelArgs;
use crate::engine::Engine;
use crate::engine::types::FinishReason;
use crate::store::masked_session::{MaskedSession, is_masked_session};
use crate::store::session::{self, Run, Session};

#[derive(Args, Debug)]
pub struct SessionArgs {
    #[command(subcommand)]
    pub command: SessionCommand,
}

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// Summarise a session file: model, prompt, runs
    Show { file: PathBuf },
    /// Run every run again on the same model and seed and say whether the tokens are the same
    Replay {
        file: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Print one run as Markdown, CSV or JSON
    Export {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "md")]
        format: ExportFormat,
        /// Which run (0-based)
        #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
        run: usize,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ExportFormat {
    Md,
    Csv,
    Json,
}

fn pick(session: &Session, run: usize) -> anyhow::Result<&Run> {
    session.runs.get(run).ok_or_else(|| {
        anyhow::anyhow!(
            "the session has {} runs; --run {run} does not exist",
            session.runs.len()
        )
    })
}

/// Where two runs part: the first index that differs, or the shorter
/// one's length when one stops early; None when they are the same.
fn first_difference<T: PartialEq>(want: &[T], got: &[T]) -> Option<usize> {
    want.iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .or((want.len() != got.len()).then(|| want.len().min(got.len())))
}

/// The file's runs again on the encoder, each forced where its branch was.
fn masked_replay(file: &std::path::Path, model: ModelArgs) -> anyhow::Result<()> {
    use crate::engine::masked::generate::MaskedGeneration;
    use crate::engine::sampling::Sampler;
    let s = MaskedSession::load(file)?;
    let model = ModelArgs {
        model: Some(model.model.unwrap_or_else(|| s.model.path.clone())),
        ..model
    };
    let engine = model.launch().load_masked(None)?;
    let now = crate::store::models::sha256_model(std::path::Path::new(&engine.info().path))?;
    if now != s.model.sha256 {
        outln!(
            "note: the model differs from the session's (sha256 {now} vs {}); tokens may differ",
            s.model.sha256
        );
    }
    let mut all_same = true;
    for (i, r) in s.runs.iter().enumerate() {
        let mut g = MaskedGeneration::new(
            &engine,
            &s.text,
            r.order,
            Sampler::new(r.settings.clone())?,
            r.steps.first().map_or(0, |x| x.top.len()),
        )?;
        if let Some(p) = r.parent {
            for x in &r.steps[..=p.step] {
                g.force(x.step, x.token_id);
            }
        }
        let limit = if r.finished {
            usize::MAX
        } else {
            r.steps.len()
        };
        while g.steps().len() < limit && g.step(&engine)?.is_some() {}
        let key = |x: &crate::engine::types::StepRecord| (x.position, x.token_id);
        let want: Vec<_> = r.steps.iter().map(key).collect();
        let got: Vec<_> = g.steps().iter().map(key).collect();
        match first_difference(&want, &got) {
            None => outln!("run {i} `{}`: same {} steps", r.label, want.len()),
            Some(at) => {
                all_same = false;
                outln!("run {i} `{}`: DIFFERENT from step {at} on", r.label);
            }
        }
    }
    anyhow::ensure!(all_same, "the replay differs from the saved session");
    Ok(())
}

fn masked_show(file: &std::path::Path) -> anyhow::Result<()> {
    let s = MaskedSession::load(file)?;
    outln!(
        "masked session v{} of {} ({}), sha256 {}",
        s.version,
        s.model.name,
        s.model.path,
        s.model.sha256
    );
    outln!("text: {:?} ({} tokens)", s.text, s.token_ids.len());
    for (i, r) in s.runs.iter().enumerate() {
        let branch = r
            .parent
            .map(|p| format!(", branch of run {} at step {}", p.run, p.step))
            .unwrap_or_default();
        outln!(
            "run {i} `{}`: {} steps, {}{branch}: {:?}",
            r.label,
            r.steps.len(),
            r.order.describe(),
            r.text
        );
    }
    Ok(())
}

pub fn run(args: SessionArgs) -> anyhow::Result<()> {
    match args.command {
        SessionCommand::Show { file } if is_masked_session(&file) => masked_show(&file),
        SessionCommand::Replay { file, model } if is_masked_session(&file) => {
            masked_replay(&file, model)
        }
        SessionCommand::Export { file, format, run } if is_masked_session(&file) => {
            let s = MaskedSession::load(&file)?;
            anyhow::ensure!(
                matches!(format, ExportFormat::Json),
                "a masked session exports as JSON (--format json)"
            );
            let r = s.runs.get(run).ok_or_else(|| {
                anyhow::anyhow!(
                    "the session has {} runs; --run {run} does not exist",
                    s.runs.len()
                )
            })?;
            out!("{}", serde_json::to_string_pretty(r)? + "\n");
            Ok(())
        }
        SessionCommand::Show { file } => {
            let s = Session::load(&file)?;
            check_against_recorded_model(&s, &file)?;
            outln!(
                "session v{} of {} ({}), sha256 {}",
                s.version,
                s.model.name,
                s.model.path,
                s.model.sha256
            );
            outln!("prompt: {} tokens", s.prompt_tokens.len());
            for (i, r) in s.runs.iter().enumerate() {
                let branch = r
                    .parent
                    .map(|p| format!(", branch of run {} at step {}", p.run, p.step))
                    .unwrap_or_default();
                outln!(
                    "run {i} `{}`: {} tokens, {:?}{branch}",
                    r.label,
                    r.steps.len(),
                    r.finish
                );
            }
            Ok(())
        }
        SessionCommand::Export { file, format, run } => {
            let s = Session::load(&file)?;
            check_against_recorded_model(&s, &file)?;
            let r = pick(&s, run)?;
            let text = match format {
                ExportFormat::Md => session::export_markdown(&s, r),
                ExportFormat::Csv => session::export_csv(r),
                ExportFormat::Json => serde_json::to_string_pretty(r)? + "\n",
            };
            out!("{text}");
            Ok(())
        }
        SessionCommand::Replay { file, model } => {
            let s = Session::load(&file)?;
            let model = ModelArgs {
                model: Some(model.model.unwrap_or_else(|| s.model.path.clone())),
                ..model
            };
            let engine = model.load()?;
            s.check_vocabulary(&file, engine.info().vocab_size)?;
            let now = Session::identify(engine.info())?;
            if now.sha256 != s.model.sha256 {
                outln!(
                    "note: the model file differs from the session's (sha256 {} vs {}); tokens may differ",
                    now.sha256,
                    s.model.sha256
                );
            }
            let mut all_same = true;
            for (i, r) in s.runs.iter().enumerate() {
                let tokens = replay(&engine, r)?;
                let want: Vec<u32> = r.steps.iter().map(|x| x.token_id).collect();
                match first_difference(&want, &tokens) {
                    None => outln!("run {i} `{}`: same {} tokens", r.label, want.len()),
                    Some(at) => {
                        all_same = false;
                        outln!("run {i} `{}`: DIFFERENT from step {at} on", r.label);
                    }
                }
            }
            anyhow::ensure!(all_same, "the replay differs from the saved session");
            Ok(())
        }
    }
}

/// Token ids checked against the vocabulary of the session's model, when
/// that file is still where the session says (else there is nothing to
/// check against, and the session is shown as saved).
fn check_against_recorded_model(s: &Session, file: &std::path::Path) -> anyhow::Result<()> {
    if !std::path::Path::new(&s.model.path).exists() {
        return Ok(());
    }
    let recorded = ModelArgs {
        model: Some(s.model.path.clone()),
        ..ModelArgs::default()
    };
    if let Ok(engine) = recorded.load() {
        s.check_vocabulary(file, engine.info().vocab_size)?;
    }
    Ok(())
}

/// A run again: same request and seed; a branch is forced through its
/// prefix and its chosen token (draws depend only on seed and position, so
/// this is what branching computed); a cancelled run stops where it did.
fn replay(engine: &Engine, run: &Run) -> anyhow::Result<Vec<u32>> {
    let mut request = run.request.clone();
    // A run stopped early (Esc in the interface) is replayed as far as it went.
    if run.finish == Some(FinishReason::Cancelled) {
        request.max_tokens = request.max_tokens.min(run.steps.len());
    }
    let mut g = engine.start(&request)?;
    if let Some(p) = run.parent {
        g.force(run.steps.iter().take(p.step + 1).map(|s| s.token_id));
    }
    while g.step(engine)?.is_some() {}
    Ok(g.steps().iter().map(|s| s.token_id).collect())
}
