//! `lmscope nsp`: next-sentence prediction, P(B follows A), from a BERT
//! checkpoint's pre-training head.

use clap::Args;

use super::args::ModelArgs;

#[derive(Args, Debug)]
#[command(
    after_help = "The pair is read as [CLS] A [SEP] B [SEP], segments 0 and 1, as BERT was pre-trained.
JSON (--json): {is_next, not_next, tokens}"
)]
pub struct NspArgs {
    /// The first sentence
    pub a: String,
    /// The sentence that may follow it
    pub b: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: NspArgs) -> anyhow::Result<()> {
    let engine = args.model.launch().load_masked(None)?;
    let p = engine.next_sentence(&args.a, &args.b)?;
    if args.json {
        let e = engine.encode(&args.a, Some(&args.b))?;
        outln!(
            "{}",
            serde_json::json!({"is_next": p, "not_next": 1.0 - p, "tokens": engine.tokens(&e.ids)})
        );
    } else {
        outln!("P(IsNext) = {p:.4}");
    }
    Ok(())
}
