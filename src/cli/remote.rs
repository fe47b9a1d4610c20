//! The subcommands' remote paths (`--backend URL`): the same questions put
//! to an OpenAI-compatible server, answered with what it returns, and the
//! rest named, not faked.

use clap::Args;
use serde_json::json;

use super::args::RemoteArgs;
use crate::remote::backend::UNAVAILABLE;
use crate::remote::{Remote, RemoteOptions, RemoteRequest, RemoteToken};

#[derive(Args, Debug)]
#[command(after_help = "JSON (--json): {url, server, models: [{id, owned_by, context_length}]}")]
pub struct ModelsArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
    #[arg(long)]
    pub json: bool,
}

/// `lmscope models --backend URL`: what the server serves.
pub fn models(args: ModelsArgs) -> anyhow::Result<()> {
    let Some(options) = args.remote.options()? else {
        anyhow::bail!("`models` lists a server's models: give --backend URL");
    };
    let remote = connect(&options)?;
    if args.json {
        outln!(
            "{}",
            json!({"url": remote.client().base(), "server": remote.flavour(), "models": remote.models()})
        );
    } else {
        outln!("{} at {}", remote.flavour().name(), remote.client().base());
        for m in remote.models() {
            let ctx = m
                .context_length
                .map(|n| format!("  (context {n})"))
                .unwrap_or_default();
            outln!("  {}{ctx}", m.id);
        }
    }
    Ok(())
}

pub fn connect(options: &RemoteOptions) -> anyhow::Result<Remote> {
    let never = std::sync::atomic::AtomicBool::new(false);
    Ok(Remote::connect(options, &never)?)
}

/// `lmscope generate --backend URL`.
pub fn generate(
    options: &RemoteOptions,
    request: &RemoteRequest,
    json_out: bool,
) -> anyhow::Result<()> {
    let remote = connect(options)?;
    let sent = remote.request_body(request);
    if json_out {
        let mut shown = sent.body.clone();
        // The prompt is the caller's own; the line says what else was sent.
        if let Some(o) = shown.as_object_mut() {
            o.remove("prompt");
            o.remove("messages");
        }
        let unavailable: Vec<_> = UNAVAILABLE
            .iter()
            .map(|(what, why)| json!({"what": what, "why": why}))
            .collect();
        outln!(
            "{}",
            json!({"backend": {
                "url": remote.client().base(),
                "server": remote.flavour(),
                "model": remote.model(),
                "endpoint": sent.endpoint,
                "sent": shown,
                "ignored": sent.ignored,
                "unavailable": unavailable,
            }})
        );
    } else {
        for i in &sent.ignored {
            eprintln!("note: {} not sent: {}", i.setting, i.reason);
        }
    }
    let interrupted = super::interrupt::watch()?;
    let chat = matches!(request.prompt, crate::remote::RemotePrompt::Chat(_));
    let mut write_error = None;
    let outcome =
        remote.generate_sent(&sent, chat, interrupted.as_atomic(), &mut |token, delta| {
            if write_error.is_some() {
                return;
            }
            let written = if json_out {
                outln_checked(&token_json(token))
            } else {
                out_checked(delta)
            };
            if let Err(e) = written {
                write_error = Some(e);
            }
        })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    let reason = if interrupted.is_set() {
        "interrupted"
    } else {
        outcome.finish.as_str()
    };
    let generated = outcome.tokens.len();
    let decode_tok_s = match outcome.first_token_s {
        Some(first) if generated > 1 && outcome.total_s > first => {
            (generated - 1) as f64 / (outcome.total_s - first)
        }
        _ => 0.0,
    };
    if json_out {
        let mut done = json!({
            "done": true,
            "reason": reason,
            "generated": generated,
            "first_token_s": outcome.first_token_s,
            "decode_tok_s": (decode_tok_s * 100.0).round() / 100.0,
            "text": outcome.text,
        });
        if let Some(e) = &outcome.error {
            done["error"] = json!(e);
        }
        outln!("{done}");
    } else {
        outln!();
        if let Some(e) = &outcome.error {
            eprintln!("cut off: {e}");
        }
        eprintln!(
            "[{reason}: {generated} tokens from {} ({}), {decode_tok_s:.1} tok/s]",
            remote.model(),
            remote.flavour().name()
        );
    }
    if interrupted.is_set() {
        return Err(super::interrupt::Interrupted.into());
    }
    Ok(())
}

fn outln_checked(v: &serde_json::Value) -> anyhow::Result<()> {
    outln!("{v}");
    super::out::flush()?;
    Ok(())
}

fn out_checked(s: &str) -> anyhow::Result<()> {
    out!("{s}");
    super::out::flush()?;
    Ok(())
}

/// A token as `generate --json` prints a local one, less what a server
/// does not give (token ids, p_final, entropy).
fn token_json(t: &RemoteToken) -> serde_json::Value {
    json!({
        "step": t.step,
        "text": t.text,
        "p_raw": t.p,
        "logprob": t.logprob,
        "rank": t.rank,
        "top": t.top.iter().map(|a| json!({"text": a.text, "p_raw": a.p, "logprob": a.logprob})).collect::<Vec<_>>(),
    })
}

/// `lmscope score --backend URL`: the whole text in one request.
pub fn score(options: &RemoteOptions, text: &str, json_out: bool) -> anyhow::Result<()> {
    let remote = connect(options)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let s = remote.score(text, &never)?;
    anyhow::ensure!(
        s.scored() > 0,
        "the text has {} token(s); scoring needs at least 2",
        s.tokens.len()
    );
    let nll = -s.total() / s.scored() as f64;
    let ppl = nll.exp();
    if json_out {
        let per_token: Vec<_> = s
            .tokens
            .iter()
            .zip(&s.logprobs)
            .enumerate()
            .skip(1)
            .map(|(i, (t, l))| json!({"position": i, "text": t, "logprob": l}))
            .collect();
        outln!(
            "{}",
            json!({
                "tokens": s.tokens.len(),
                "scored": s.scored(),
                "ppl": ppl,
                "nll_mean": nll,
                "mode": "remote",
                "server": remote.flavour(),
                "model": remote.model(),
                "per_token": per_token,
            })
        );
    } else {
        outln!(
            "tokens {}  scored {}  (one request to {})",
            s.tokens.len(),
            s.scored(),
            remote.model()
        );
        outln!("perplexity {ppl:.4}  mean NLL {nll:.4} nats");
    }
    Ok(())
}
