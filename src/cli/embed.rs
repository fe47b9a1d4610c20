//! `lmscope embed`: sentence embeddings from an encoder (the last hidden
//! states averaged, length 1, as sentence-transformers does) and their
//! cosine similarities.

use clap::Args;

use super::args::ModelArgs;
use crate::store::models::MINILM;

#[derive(Args, Debug)]
#[command(
    after_help = "Each sentence is read alone ([CLS] .. [SEP]); its embedding is the mean of the last layer's
hidden states over its tokens, scaled to length 1. Without --model, all-MiniLM-L6-v2
(`lmscope pull all-minilm-l6-v2`).
JSON (--json): {model, dim, sentences: [{text, tokens, embedding}], similarity: [[cosine]]}"
)]
pub struct EmbedArgs {
    /// Sentences to embed; `-` reads one per line from stdin
    #[arg(required = true)]
    pub sentences: Vec<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let sentences: Vec<String> = if args.sentences == ["-"] {
        super::read_input("-")?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    } else {
        args.sentences.clone()
    };
    anyhow::ensure!(!sentences.is_empty(), "no sentences to embed");
    let engine = args.model.launch().load_masked(Some(MINILM.name))?;
    let embeddings = sentences
        .iter()
        .map(|s| engine.embed(s))
        .collect::<Result<Vec<_>, _>>()?;
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let similarity: Vec<Vec<f32>> = embeddings
        .iter()
        .map(|a| embeddings.iter().map(|b| cos(a, b)).collect())
        .collect();
    if args.json {
        let items: Vec<_> = sentences
            .iter()
            .zip(&embeddings)
            .map(|(s, e)| {
                let ids = engine.encode(s, None).map(|e| e.ids).unwrap_or_default();
                serde_json::json!({"text": s, "tokens": engine.tokens(&ids), "embedding": e})
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "model": engine.info().name,
                "dim": embeddings[0].len(),
                "sentences": items,
                "similarity": similarity,
            })
        );
        return Ok(());
    }
    outln!("{} dims; cosine similarity:", embeddings[0].len());
    for (i, (s, row)) in sentences.iter().zip(&similarity).enumerate() {
        let cells: Vec<String> = row.iter().map(|c| format!("{c:>6.3}")).collect();
        outln!("[{i}] {}  {}", cells.join(" "), s);
    }
    Ok(())
}
