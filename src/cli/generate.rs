//! `lmscope generate`: streams text, or one JSON object per token.

use clap::Args;
use serde_json::json;

use super::args::{ModelArgs, RemoteArgs, SamplerArgs};
use crate::engine::chat::Message;
use crate::engine::types::{AttentionRows, StepRecord};
use crate::engine::{Prompt, Request};

#[derive(Args, Debug)]
#[command(after_help = "JSON (--json): one object per generated token
  {step, token_id, text, p_raw, p_final, logprob, rank, entropy,
   top: [{token_id, text, p_raw, p_final, removed_by}], attention?: [layer][head][key]}
then {done: true, reason, prompt_tokens, generated, prefill_tok_s, decode_tok_s, text}.
With --attention a first line {prompt: {token_ids, texts, attention: [layer][head][query][key]}}
comes before the tokens; a token's attention is that of the query that predicted it.")]
pub struct GenerateArgs {
    /// The prompt; `-` reads it from stdin. Control tokens such as <|im_start|> are parsed
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Most tokens to generate
    #[arg(short = 'n', long, default_value_t = 128, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub max_tokens: usize,
    /// Stop when the text contains this (repeatable); the text is cut there
    #[arg(long)]
    pub stop: Vec<String>,
    /// Treat PROMPT as the user's message and apply the model's chat template
    #[arg(long)]
    pub chat: bool,
    /// With --chat: a system message (else the template's default)
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Alternatives to record per token
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_n: usize,
    /// Keep going after an end-of-generation token (benchmarks)
    #[arg(long)]
    pub ignore_eos: bool,
    /// One JSON object per token on stdout
    #[arg(long)]
    pub json: bool,
    /// Add per-layer, per-head attention to each JSON line (implies --json)
    #[arg(long)]
    pub attention: bool,
    /// Save the run as a session file (see `lmscope session`)
    #[arg(long)]
    pub save: Option<std::path::PathBuf>,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let text = super::read_input(&args.prompt)?;
    anyhow::ensure!(
        !text.trim().is_empty(),
        "the prompt is empty; give some text to continue"
    );
    anyhow::ensure!(
        args.stop.iter().all(|s| !s.is_empty()),
        "--stop '' is empty and would stop at once; give a non-empty string to stop at"
    );
    let sampler = args.sampler.settings()?;
    if let Some(options) = args.remote.options()? {
        return run_remote(&args, &options, text, sampler);
    }
    let engine = args.model.load()?;
    let prompt = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new("system", system.clone()));
        }
        messages.push(Message::new("user", text));
        Prompt::Chat(messages)
    } else {
        Prompt::Text(text)
    };
    let request = Request {
        prompt,
        sampler,
        max_tokens: args.max_tokens,
        stop: args.stop.clone(),
        top_n: args.top_n,
        capture_attention: args.attention,
        attach_attention: args.attention,
        ignore_eos: args.ignore_eos,
    };
    let json = args.json || args.attention;
    let (mut generation, prompt, interrupted) = stream_local(&engine, &request, json)?;
    if let Some(path) = &args.save {
        let template = args.chat.then(|| engine.template().source().to_string());
        let identity = crate::store::session::Session::identify(engine.info())?;
        let mut session = crate::store::session::Session::new(
            identity,
            request.prompt.clone(),
            prompt.token_ids.clone(),
            template,
        );
        session
            .runs
            .push(crate::store::session::Run::from_generation(
                "generate",
                &request,
                &generation,
            ));
        session.save(path)?;
        eprintln!("saved {}", path.display());
    }
    print_done(&mut generation, interrupted, json)
}

/// Runs `request` on `engine`, printing its text as it comes, or a JSON
/// line per token (after the prompt's line when attention is attached).
/// Returns the run, its prompt, and whether Ctrl-C ended it.
pub(crate) fn stream_local(
    engine: &crate::engine::Engine,
    request: &Request,
    json: bool,
) -> anyhow::Result<(
    crate::engine::Generation,
    crate::engine::types::PromptRecord,
    bool,
)> {
    let mut generation = engine.start(request)?;
    // Ctrl-C (or SIGTERM) from here on ends the run between tokens, so the
    // last line is whole and a `done` record (reason "interrupted") follows.
    let interrupted = super::interrupt::watch()?;
    let prompt = generation.prefill(engine)?;
    if json && request.attach_attention {
        let line = json!({"prompt": {
            "token_ids": prompt.token_ids,
            "texts": prompt.texts,
            "attention": prompt.attention.as_ref().map(prompt_attention),
        }});
        outln!("{line}");
    }
    while !interrupted.is_set() {
        let Some(step) = generation.step(engine)? else {
            break;
        };
        if json {
            outln!("{}", step_json(&step));
        } else {
            out!("{}", generation.take_text());
        }
        super::out::flush()?;
    }
    if interrupted.is_set() {
        generation.cancel();
    }
    Ok((generation, prompt, interrupted.is_set()))
}

/// The closing line (JSON) or the rest of the text and a summary on
/// stderr; an interrupted run then exits as interrupted.
pub(crate) fn print_done(
    generation: &mut crate::engine::Generation,
    interrupted: bool,
    json: bool,
) -> anyhow::Result<()> {
    let t = generation.timings();
    let reason = if interrupted {
        "interrupted"
    } else {
        generation
            .finished()
            .map(|r| r.as_str())
            .unwrap_or("length")
    };
    if json {
        let done = json!({
            "done": true,
            "reason": reason,
            "prompt_tokens": t.prompt_tokens,
            "generated": t.generated,
            "prefill_tok_s": round(t.prefill_tok_s(), 2),
            "decode_tok_s": round(t.decode_tok_s(), 2),
            "text": generation.text(),
        });
        outln!("{done}");
    } else {
        outln!("{}", generation.take_text());
        eprintln!(
            "[{reason}: {} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s]",
            t.prompt_tokens,
            t.prefill_tok_s(),
            t.generated,
            t.decode_tok_s()
        );
    }
    if interrupted {
        return Err(super::interrupt::Interrupted.into());
    }
    Ok(())
}

/// The same run on a server: what it cannot give is refused by name.
fn run_remote(
    args: &GenerateArgs,
    options: &crate::remote::RemoteOptions,
    text: String,
    sampler: crate::engine::sampling::SamplerSettings,
) -> anyhow::Result<()> {
    use crate::remote::{RemotePrompt, RemoteRequest};
    let refuse =
        |flag: &str, why: &str| anyhow::anyhow!("{flag} is not available with --backend: {why}");
    if args.attention {
        return Err(refuse(
            "--attention",
            "a server returns no attention weights",
        ));
    }
    if args.ignore_eos {
        return Err(refuse(
            "--ignore-eos",
            "OpenAI-compatible servers take no such setting",
        ));
    }
    if args.save.is_some() {
        return Err(refuse(
            "--save",
            "a session keeps token ids, and a server returns only their text",
        ));
    }
    let prompt = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::new("system", system.clone()));
        }
        messages.push(Message::new("user", text));
        RemotePrompt::Chat(messages)
    } else {
        RemotePrompt::Text(text)
    };
    let request = RemoteRequest {
        prompt,
        sampler,
        max_tokens: args.max_tokens,
        stop: args.stop.clone(),
        top_n: args.top_n,
    };
    super::remote::generate(options, &request, args.json)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

pub(crate) fn step_json(s: &StepRecord) -> serde_json::Value {
    let mut v = json!({
        "step": s.step,
        "token_id": s.token_id,
        "text": s.text,
        "p_raw": s.p_raw,
        "p_final": s.p_final,
        "logprob": s.logprob,
        "rank": s.rank,
        "entropy": s.entropy,
        "top": s.top,
    });
    if let Some(a) = &s.attention {
        v["attention"] = json!(a.for_query(0));
    }
    v
}

/// [layer][head][query][key], each row up to its own position.
fn prompt_attention(a: &AttentionRows) -> serde_json::Value {
    let v: Vec<Vec<Vec<&[f32]>>> = (0..a.n_layer)
        .map(|l| {
            (0..a.n_head)
                .map(|h| (0..a.n_query).map(|q| a.causal_row(l, h, q)).collect())
                .collect()
        })
        .collect();
    json!(v)
}
