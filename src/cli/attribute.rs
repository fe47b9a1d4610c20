//! `lmscope attribute`: which input tokens made the model choose a token,
//! by occlusion (each left out in turn, the token scored again).

use clap::Args;

use super::args::ModelArgs;
use crate::analysis::attribution::occlusion;
use crate::engine::Prompt;
use crate::engine::sampling::argmax;

#[derive(Args, Debug)]
#[command(
    after_help = "The target is the model's next token after the prompt (or --target ID). Each prompt token
is left out in turn (a BOS the model needs stays) and the target scored again: score = ln p(target)
with it minus without it, so a token that supports the target scores positive. Costs one forward
pass of the prompt per token.
JSON (--json): {method, target, target_text, logprob, tokens: [{position, token_id, text, score}]}"
)]
pub struct AttributeArgs {
    /// The prompt; `-` reads stdin
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The output token to explain [default: the model's most likely next token]
    #[arg(long, value_parser = crate::cli::args::whole_number::<u32>)]
    pub target: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: AttributeArgs) -> anyhow::Result<()> {
    let text = super::read_input(&args.prompt)?;
    let engine = args.model.load()?;
    let tokens = engine.prompt_tokens(&Prompt::Text(text))?;
    anyhow::ensure!(
        tokens.len() >= 2,
        "the prompt needs at least two tokens to leave one out"
    );
    let intact = engine.next_token_logits(&tokens)?;
    let target = args.target.unwrap_or_else(|| argmax(&intact));
    anyhow::ensure!(
        (target as usize) < intact.len(),
        "--target {target} is outside the vocabulary (0 to {})",
        intact.len() - 1
    );
    let tok = engine.tokenizer();
    let keep_bos = tok.add_bos && tok.bos == Some(tokens[0]);
    let mut without = Vec::with_capacity(tokens.len());
    for i in 0..tokens.len() {
        if i == 0 && keep_bos {
            without.push(None);
            continue;
        }
        let mut t = tokens.clone();
        t.remove(i);
        without.push(Some(engine.next_token_logits(&t)?));
    }
    let a = occlusion(target, &tokens, &intact, &without, &|t| tok.token_text(t));
    if args.json {
        outln!("{}", serde_json::to_string(&a)?);
        return Ok(());
    }
    outln!(
        "{}: target {:?} (ln p {:.3})",
        a.method,
        a.target_text,
        a.logprob
    );
    for t in &a.tokens {
        outln!(
            "{:>4}  {:<16} {:>+8.3}",
            t.position,
            format!("{:?}", t.text),
            t.score
        );
    }
    Ok(())
}
