//! `lmscope compare`: the same prompt under several sampler presets, from
//! one prefill (the KV cache forked) and one seed.

use clap::Args;
use serde_json::json;

use super::args::{ModelArgs, RemoteArgs};
use crate::analysis::compare::{self, ColumnStats};
use crate::engine::chat::Message;
use crate::engine::{Generation, Prompt, Request};
use crate::store::presets;
use crate::store::session::{Run, Session};

#[derive(Args, Debug)]
#[command(
    after_help = "Presets: greedy, precise, balanced, creative (assets/presets.toml), plus presets.toml
in the config directory.

The columns run batched: each step feeds every unfinished column's token through the model in
one forward pass, which reads the weights once for all of them. A column's tok_s is its own rate
while it shares the batch; aggregate_tok_s is all the columns' tokens over the decode's wall
time. --no-batch steps them round-robin instead (same tokens, for measuring the difference).

JSON (--json): {prompt_tokens, seed, batched, aggregate_tok_s, columns: [{preset, settings, text,
token_ids, finish, stats: {tokens, tok_s, mean_logprob, perplexity, mean_entropy, distinct_1,
distinct_2, repetition_rate}}], divergence: {step, tokens, probs} | null}

With --backend URL each column is its own request, all sent at once (one after another to
llama-cpp-python's server, which interrupts a request when another comes): {url, server, model,
wall_s, parallel, columns: [{preset, settings, ignored, text, finish, error, stats: {tokens, tok_s,
mean_logprob, perplexity}}], divergence: {step, texts} | null}"
)]
pub struct CompareArgs {
    /// The prompt; `-` reads stdin
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// A sampler preset per column (2 to 4)
    #[arg(long = "preset", required = true, num_args = 1)]
    pub presets: Vec<String>,
    /// One seed for every column
    #[arg(long, default_value_t = 42, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<u64>)]
    pub seed: u64,
    #[arg(short = 'n', long, default_value_t = 64, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub max_tokens: usize,
    /// Apply the model's chat template to PROMPT
    #[arg(long)]
    pub chat: bool,
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_n: usize,
    #[arg(long)]
    pub json: bool,
    /// Step the columns round-robin, one forward pass each, instead of
    /// batching them (the same tokens; for measuring the batch's gain)
    #[arg(long)]
    pub no_batch: bool,
    /// Save the comparison as a session file
    #[arg(long)]
    pub save: Option<std::path::PathBuf>,
}

pub fn run(args: CompareArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (2..=4).contains(&args.presets.len()),
        "compare takes 2 to 4 --preset columns, got {}",
        args.presets.len()
    );
    let all = presets::load()?;
    let settings: Vec<_> = args
        .presets
        .iter()
        .map(|name| {
            all.get(name)
                .cloned()
                .map(|s| crate::engine::sampling::SamplerSettings {
                    seed: args.seed,
                    ..s
                })
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown preset `{name}`; known: {}",
                        all.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let text = super::read_input(&args.prompt)?;
    anyhow::ensure!(
        !text.trim().is_empty(),
        "the prompt is empty; give some text to continue"
    );
    if let Some(options) = args.remote.options()? {
        anyhow::ensure!(
            !args.no_batch && args.save.is_none(),
            "--no-batch and --save are for local models: with --backend the columns are parallel requests"
        );
        let prompt = if args.chat {
            crate::remote::RemotePrompt::Chat(vec![Message::new("user", text)])
        } else {
            crate::remote::RemotePrompt::Text(text)
        };
        let columns: Vec<_> = args
            .presets
            .iter()
            .cloned()
            .zip(settings)
            .map(|(name, sampler)| {
                let request = crate::remote::RemoteRequest {
                    prompt: prompt.clone(),
                    sampler,
                    max_tokens: args.max_tokens,
                    stop: Vec::new(),
                    top_n: args.top_n,
                };
                (name, request)
            })
            .collect();
        return super::remote::compare(&options, &columns, args.json);
    }
    let engine = args.model.load()?;
    let prompt = if args.chat {
        Prompt::Chat(vec![Message::new("user", text)])
    } else {
        Prompt::Text(text)
    };
    let requests: Vec<Request> = settings
        .iter()
        .map(|s| Request {
            sampler: s.clone(),
            max_tokens: args.max_tokens,
            top_n: args.top_n,
            ..Request::new(prompt.clone())
        })
        .collect();
    let mut base = engine.start(&requests[0])?;
    base.prefill(&engine)?;
    let mut columns: Vec<Generation> = settings
        .iter()
        .map(|s| base.fork(&engine, 0, None, s.clone()))
        .collect::<Result<_, _>>()?;
    // The columns advance together: batched, one forward pass feeds every
    // unfinished column's token (`Generation::step_batch`); with
    // --no-batch, round-robin, one forward per column.
    let started = std::time::Instant::now();
    loop {
        let mut progressed = false;
        if args.no_batch {
            for c in &mut columns {
                progressed |= c.step(&engine)?.is_some();
            }
        } else {
            let mut gens: Vec<&mut Generation> = columns
                .iter_mut()
                .filter(|c| c.finished().is_none())
                .collect();
            for result in Generation::step_batch(&engine, &mut gens) {
                progressed |= result?.is_some();
            }
        }
        if !progressed {
            break;
        }
    }
    let decode_wall_s = started.elapsed().as_secs_f64();
    let generated: usize = columns.iter().map(|c| c.steps().len()).sum();
    let aggregate_tok_s = if decode_wall_s > 0.0 {
        generated as f64 / decode_wall_s
    } else {
        0.0
    };
    let steps: Vec<&[_]> = columns.iter().map(|c| c.steps()).collect();
    let divergence = compare::first_divergence(&steps);
    let stats: Vec<ColumnStats> = columns
        .iter()
        .map(|c| compare::column_stats(c.steps(), c.timings().decode_s))
        .collect();

    if let Some(path) = &args.save {
        let info = engine.info();
        let template = args.chat.then(|| engine.template().source().to_string());
        let mut session = Session::new(
            Session::identify(info)?,
            prompt.clone(),
            base.prompt_tokens().to_vec(),
            template,
        );
        for ((name, c), r) in args.presets.iter().zip(&columns).zip(&requests) {
            session.runs.push(Run::from_generation(name.clone(), r, c));
        }
        session.compare = (0..columns.len()).collect();
        session.save(path)?;
        eprintln!("saved {}", path.display());
    }

    if args.json {
        let cols: Vec<_> = args
            .presets
            .iter()
            .zip(&columns)
            .zip(&stats)
            .map(|((name, c), st)| {
                json!({
                    "preset": name,
                    "settings": c.sampler_settings(),
                    "text": c.text(),
                    "token_ids": c.steps().iter().map(|s| s.token_id).collect::<Vec<_>>(),
                    "finish": c.finished(),
                    "stats": st,
                })
            })
            .collect();
        outln!(
            "{}",
            json!({"prompt_tokens": base.prompt_tokens().len(), "seed": args.seed, "batched": !args.no_batch, "aggregate_tok_s": aggregate_tok_s, "columns": cols, "divergence": divergence})
        );
        return Ok(());
    }
    for ((name, c), st) in args.presets.iter().zip(&columns).zip(&stats) {
        outln!("== {name} ==\n{}\n", c.text().trim_end());
        outln!(
            "   {} tokens, {:.1} tok/s, mean logprob {:.3}, perplexity {:.2}, entropy {:.2}, distinct-1 {:.2}, distinct-2 {:.2}, repetition {:.2}\n",
            st.tokens,
            st.tok_s,
            st.mean_logprob,
            st.perplexity,
            st.mean_entropy,
            st.distinct_1,
            st.distinct_2,
            st.repetition_rate
        );
    }
    outln!(
        "{generated} tokens in all, {aggregate_tok_s:.1} tok/s aggregate ({})\n",
        if args.no_batch {
            "round-robin, --no-batch"
        } else {
            "batched"
        }
    );
    match divergence {
        Some(d) => {
            let tok = engine.tokenizer();
            outln!("first divergence at step {}:", d.step);
            for (name, (t, probs)) in args.presets.iter().zip(d.tokens.iter().zip(&d.probs)) {
                let views: Vec<String> = d
                    .tokens
                    .iter()
                    .zip(probs)
                    .map(|(u, p)| {
                        format!(
                            "{:?} {}",
                            tok.token_text(*u),
                            p.map_or("-".into(), |p| format!("{p:.3}"))
                        )
                    })
                    .collect();
                outln!(
                    "  {name}: chose {:?}; its probabilities: {}",
                    tok.token_text(*t),
                    views.join(", ")
                );
            }
        }
        None => outln!("the columns never diverge"),
    }
    Ok(())
}
