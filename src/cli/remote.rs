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

/// `lmscope compare --backend URL`: one request per column, all at once.
pub fn compare(
    options: &RemoteOptions,
    columns: &[(String, RemoteRequest)],
    json_out: bool,
) -> anyhow::Result<()> {
    let remote = connect(options)?;
    let interrupted = super::interrupt::watch()?;
    let started = std::time::Instant::now();
    // llama-cpp-python's server ends the request in flight when another
    // arrives (its `interrupt_requests`, on by default), as if it had
    // stopped: there the columns go one after another.
    let parallel = remote.flavour() != crate::remote::server::Flavour::LlamaCppPython;
    let cancel = interrupted.as_atomic();
    let outcomes: Vec<_> = if parallel {
        std::thread::scope(|s| {
            let running: Vec<_> = columns
                .iter()
                .map(|(_, request)| {
                    let remote = &remote;
                    s.spawn(move || remote.generate(request, cancel, &mut |_, _| {}))
                })
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(crate::remote::RemoteError::Server(
                            "a column's thread panicked".into(),
                        ))
                    })
                })
                .collect()
        })
    } else {
        columns
            .iter()
            .map(|(_, request)| remote.generate(request, cancel, &mut |_, _| {}))
            .collect()
    };
    let wall_s = started.elapsed().as_secs_f64();
    // One failed column fails the comparison only when every column failed.
    if outcomes.iter().all(Result::is_err) {
        if let Some(Err(e)) = outcomes.into_iter().next() {
            return Err(e.into());
        }
        anyhow::bail!("no column to compare");
    }
    let divergence = first_divergence(&outcomes);
    let mut cols = Vec::new();
    for ((name, request), outcome) in columns.iter().zip(&outcomes) {
        let sent = remote.request_body(request);
        let (text, finish, error, stats) = match outcome {
            Ok(o) => (o.text.clone(), o.finish.as_str(), o.error.clone(), stats(o)),
            Err(e) => (
                String::new(),
                "failed",
                Some(e.to_string()),
                serde_json::Value::Null,
            ),
        };
        cols.push(
            json!({"preset": name, "settings": request.sampler, "ignored": sent.ignored,
            "text": text, "finish": finish, "error": error, "stats": stats}),
        );
    }
    if json_out {
        outln!(
            "{}",
            json!({"url": remote.client().base(), "server": remote.flavour(), "model": remote.model(),
                "wall_s": wall_s, "parallel": parallel, "columns": cols, "divergence": divergence})
        );
    } else {
        for c in &cols {
            outln!(
                "== {} ==\n{}\n",
                c["preset"].as_str().unwrap_or(""),
                c["text"].as_str().unwrap_or("").trim_end()
            );
            if let Some(e) = c["error"].as_str() {
                outln!("   {}: {e}", c["finish"].as_str().unwrap_or(""));
            }
            let st = &c["stats"];
            if !st.is_null() {
                outln!(
                    "   {} tokens, {:.1} tok/s, mean logprob {:.3}, perplexity {:.2}\n",
                    st["tokens"],
                    st["tok_s"].as_f64().unwrap_or(0.0),
                    st["mean_logprob"].as_f64().unwrap_or(f64::NAN),
                    st["perplexity"].as_f64().unwrap_or(f64::NAN)
                );
            }
            for i in c["ignored"].as_array().into_iter().flatten() {
                outln!(
                    "   not sent: {} ({})",
                    i["setting"].as_str().unwrap_or(""),
                    i["reason"].as_str().unwrap_or("")
                );
            }
        }
        let how = if parallel {
            "parallel requests"
        } else {
            "requests one after another (llama-cpp-python's server interrupts a request when another comes)"
        };
        outln!(
            "{} columns as {how} to {} in {wall_s:.1} s",
            cols.len(),
            remote.model()
        );
        match &divergence {
            Some(d) => outln!("first divergence at step {}: {}", d["step"], d["texts"]),
            None => outln!("the columns never diverge"),
        }
    }
    if interrupted.is_set() {
        return Err(super::interrupt::Interrupted.into());
    }
    Ok(())
}

/// What a server lets us measure of a column: its tokens' own
/// log-probabilities (entropy and distinct-n need the whole distribution
/// or the token ids).
fn stats(o: &crate::remote::Outcome) -> serde_json::Value {
    let lps: Vec<f64> = o
        .tokens
        .iter()
        .filter_map(|t| t.logprob.map(f64::from))
        .collect();
    let mean = if lps.is_empty() {
        f64::NAN
    } else {
        lps.iter().sum::<f64>() / lps.len() as f64
    };
    let tok_s = if o.total_s > 0.0 {
        o.tokens.len() as f64 / o.total_s
    } else {
        0.0
    };
    json!({"tokens": o.tokens.len(), "tok_s": tok_s, "mean_logprob": mean, "perplexity": (-mean).exp()})
}

/// The first step where the columns' tokens differ, and each column's token there.
fn first_divergence(
    outcomes: &[Result<crate::remote::Outcome, crate::remote::RemoteError>],
) -> Option<serde_json::Value> {
    let tokens: Vec<&[RemoteToken]> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|o| o.tokens.as_slice())
        .collect();
    let longest = tokens.iter().map(|t| t.len()).max()?;
    (0..longest).find_map(|step| {
        let texts: Vec<Option<&str>> = tokens
            .iter()
            .map(|t| t.get(step).map(|x| x.text.as_str()))
            .collect();
        texts
            .iter()
            .any(|t| *t != texts[0])
            .then(|| json!({"step": step, "texts": texts}))
    })
}
