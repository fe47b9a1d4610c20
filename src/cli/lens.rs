//! `lmscope lens`: the logit lens, each layer's residual stream read
//! through the model's final norm and output projection at one position.

use clap::Args;

use super::args::ModelArgs;
use crate::analysis::lens::{lens_report, top_tokens};
use crate::engine::Prompt;

#[derive(Args, Debug)]
#[command(
    after_help = "Layer 0 is the embedding, layer l the stream after l blocks; the last is the model's own
output. For each: the top --top-k tokens, the final prediction's probability and rank there,
and the entropy (nats).
JSON (--json): {position, token, prediction: {token_id, text, p}, layers: [{layer, top:
[{token_id, text, p}], final_p, final_rank, entropy}]}; with --grid also grid: [layer][position]
{token_id, text, p}"
)]
pub struct LensArgs {
    /// The prompt; `-` reads stdin
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The position read (0-based; default the last, which predicts the next token)
    #[arg(long, value_parser = crate::cli::args::whole_number::<usize>)]
    pub position: Option<usize>,
    #[arg(long, default_value_t = 5, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_k: usize,
    /// Also read every position: each layer's top token at each (the layer x position view)
    #[arg(long)]
    pub grid: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: LensArgs) -> anyhow::Result<()> {
    let text = super::read_input(&args.prompt)?;
    let engine = args.model.load()?;
    let tokens = engine.prompt_tokens(&Prompt::Text(text))?;
    anyhow::ensure!(!tokens.is_empty(), "the prompt is empty");
    let position = args.position.unwrap_or(tokens.len() - 1);
    anyhow::ensure!(
        position < tokens.len(),
        "--position {position} is outside the prompt (0 to {})",
        tokens.len() - 1
    );
    let model = engine.model();
    let d = model.config().d_model;
    let stream = model.residual_stream(&tokens)?;
    let rows: Vec<f32> = stream
        .iter()
        .flat_map(|layer| layer[position * d..(position + 1) * d].iter().copied())
        .collect();
    let logits: Vec<Vec<f32>> = model.lens_logits(&rows)?.to_vec2()?;
    let tok = engine.tokenizer();
    let mut report = lens_report(
        &logits,
        position,
        tok.token_text(tokens[position]),
        args.top_k,
        &|t| tok.token_text(t),
    );
    if args.grid {
        for layer in &stream {
            let rows: Vec<Vec<f32>> = model.lens_logits(layer)?.to_vec2()?;
            report.grid.push(top_tokens(&rows, &|t| tok.token_text(t)));
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    outln!(
        "position {position} {:?}: the model predicts {:?} (p {:.3})",
        report.token,
        report.prediction.text,
        report.prediction.p
    );
    outln!("layer  rank  p(final)  entropy  top");
    for l in &report.layers {
        let top: Vec<String> = l
            .top
            .iter()
            .map(|t| format!("{:?} {:.3}", t.text, t.p))
            .collect();
        outln!(
            "{:>5}  {:>4}  {:>8.4}  {:>7.3}  {}",
            l.layer,
            l.final_rank,
            l.final_p,
            l.entropy,
            top.join(", ")
        );
    }
    if !report.grid.is_empty() {
        outln!("top token by layer (rows) and position (columns):");
        let header: Vec<String> = tokens
            .iter()
            .map(|&t| format!("{:<10.10}", format!("{:?}", tok.token_text(t))))
            .collect();
        outln!("layer  {}", header.join(" "));
        for (l, row) in report.grid.iter().enumerate() {
            let cells: Vec<String> = row
                .iter()
                .map(|t| format!("{:<10.10}", format!("{:?}", t.text)))
                .collect();
            outln!("{l:>5}  {}", cells.join(" "));
        }
    }
    Ok(())
}
