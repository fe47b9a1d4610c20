//! `lmscope score`: per-token log-probabilities and perplexity of a text.

use clap::Args;
use serde_json::json;

use super::args::{ModelArgs, RemoteArgs};
use crate::analysis::perplexity::{self, ScoreMode};

#[derive(Args, Debug)]
#[command(
    after_help = "Windows: by default llama.cpp's perplexity rule (consecutive windows of --ctx tokens,
each scoring its second half), so figures compare with llama-perplexity. --stride S slides
windows of --ctx tokens by S and scores each token once. A text shorter than --ctx is one window.
With --backend URL the whole text goes to the server in one request (echo), mode \"remote\".
JSON (--json): {tokens, scored, ppl, nll_mean, ctx, mode, per_token: [{position, token_id, text, logprob}]}"
)]
pub struct ScoreArgs {
    /// A text file; `-` reads stdin
    pub file: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Tokens per window
    #[arg(long, default_value_t = 512, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub ctx: usize,
    /// Slide windows by this many tokens instead of llama.cpp's chunks
    #[arg(long, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub stride: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

/// Smallest `--ctx` whose windows score at least one token.
const MIN_CTX: usize = 4;

pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let text = if args.file == "-" {
        super::read_input("-")?
    } else {
        std::fs::read_to_string(&args.file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file))?
    };
    if let Some(options) = args.remote.options()? {
        // The server sees the whole text at once, within its own context.
        anyhow::ensure!(
            args.stride.is_none(),
            "--stride is for local models; with --backend the text is scored in one request"
        );
        return super::remote::score(&options, &text, args.json);
    }
    // A chunk scores its second half after the first token of that half,
    // so windows under 4 tokens score little or nothing (a NaN perplexity).
    anyhow::ensure!(
        args.ctx >= MIN_CTX,
        "--ctx {} is too small: allowed {MIN_CTX} to the model's context length",
        args.ctx
    );
    if let Some(stride) = args.stride {
        anyhow::ensure!(
            (1..=args.ctx).contains(&stride),
            "--stride {stride} is out of range: allowed 1 to --ctx ({})",
            args.ctx
        );
    }
    let engine = args.model.load()?;
    anyhow::ensure!(
        args.ctx <= engine.info().context_length,
        "--ctx {} is longer than the model's context: allowed {MIN_CTX} to {}",
        args.ctx,
        engine.info().context_length
    );
    let tokens = engine.tokenizer().encode(&text, false)?;
    anyhow::ensure!(
        tokens.len() >= 2,
        "the text has {} token(s); scoring needs at least 2",
        tokens.len()
    );
    let (mode, windows) = perplexity::plan(tokens.len(), args.ctx, args.stride);
    let mut per_token = Vec::new();
    let mut logprobs = Vec::new();
    for w in &windows {
        let lp = engine.token_logprobs(&tokens[w.start..w.end], w.score_from - w.start)?;
        for (i, &l) in (w.score_from..w.end).zip(&lp) {
            per_token.push(json!({
                "position": i,
                "token_id": tokens[i],
                "text": engine.tokenizer().token_text(tokens[i]),
                "logprob": l,
            }));
        }
        logprobs.extend(lp);
    }
    anyhow::ensure!(
        !logprobs.is_empty(),
        "no token was scored with --ctx {}; use a larger --ctx or --stride",
        args.ctx
    );
    let ppl = perplexity::perplexity(&logprobs);
    let nll = -perplexity::mean(&logprobs);
    if args.json {
        let out = json!({
            "tokens": tokens.len(),
            "scored": logprobs.len(),
            "ppl": ppl,
            "nll_mean": nll,
            "ctx": args.ctx,
            "mode": mode,
            "per_token": per_token,
        });
        outln!("{out}");
    } else {
        let how = match mode {
            ScoreMode::Chunks => format!(
                "{} windows of {}, second halves (llama.cpp)",
                windows.len(),
                args.ctx
            ),
            ScoreMode::Sliding => format!(
                "{} windows of {}, stride {:?}",
                windows.len(),
                args.ctx,
                args.stride
            ),
            ScoreMode::Whole => "one window".to_string(),
        };
        outln!(
            "tokens {}  scored {}  ({how})",
            tokens.len(),
            logprobs.len()
        );
        outln!("perplexity {ppl:.4}  mean NLL {nll:.4} nats");
    }
    Ok(())
}
