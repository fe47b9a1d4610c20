//! `lmscope ablate`: switch attention heads off and see what the next-token
//! distribution loses: every head on its own (a scan, most important
//! first), or the given heads together.

use clap::Args;

use super::args::ModelArgs;
use crate::analysis::ablation::{AblationEffect, effect};
use crate::engine::Prompt;

#[derive(Args, Debug)]
#[command(
    after_help = "A head is switched off by zeroing its output before the layer's output projection (zero
ablation). Without --head every head is ablated on its own and the --top most important are listed
(KL of the intact to the ablated next-token distribution); with --head L:H (repeatable) those heads
are ablated together. Layers and heads count from 0.
JSON (--json): {prompt_tokens, prediction: {token_id, text, p}, effects: [{heads: [[L, H]], kl,
delta_logprob, top_token, top_text, top_p}]}"
)]
pub struct AblateArgs {
    /// The prompt; `-` reads stdin
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A head to switch off, LAYER:HEAD (repeatable; all together)
    #[arg(long = "head", value_parser = parse_head)]
    pub heads: Vec<(usize, usize)>,
    /// Heads listed by the scan
    #[arg(long, default_value_t = 10, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top: usize,
    #[arg(long)]
    pub json: bool,
}

fn parse_head(s: &str) -> Result<(usize, usize), String> {
    let (l, h) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: write LAYER:HEAD, e.g. 3:1"))?;
    let n = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}`: LAYER and HEAD are whole numbers"))
    };
    Ok((n(l)?, n(h)?))
}

pub fn run(args: AblateArgs) -> anyhow::Result<()> {
    let text = super::read_input(&args.prompt)?;
    let engine = args.model.load()?;
    let tokens = engine.prompt_tokens(&Prompt::Text(text))?;
    anyhow::ensure!(!tokens.is_empty(), "the prompt is empty");
    let model = engine.model();
    let cfg = model.config();
    for &(l, h) in &args.heads {
        anyhow::ensure!(
            l < cfg.n_layer && h < cfg.n_head,
            "--head {l}:{h} does not exist: layers 0 to {}, heads 0 to {}",
            cfg.n_layer - 1,
            cfg.n_head - 1
        );
    }
    // The intact residual stream: each ablation runs only the blocks from
    // its first ablated layer on.
    let stream = model.residual_stream(&tokens)?;
    let row = |ablated: &[(usize, usize)]| -> anyhow::Result<Vec<f32>> {
        Ok(model
            .forward_ablated(&tokens, ablated, Some(&stream))?
            .flatten_all()?
            .to_vec1()?)
    };
    let intact = row(&[])?;
    let tok = engine.tokenizer();
    let name = |t: u32| tok.token_text(t);
    let mut effects: Vec<AblationEffect> = if args.heads.is_empty() {
        let mut all = Vec::with_capacity(cfg.n_layer * cfg.n_head);
        for l in 0..cfg.n_layer {
            for h in 0..cfg.n_head {
                all.push(effect(vec![(l, h)], &intact, &row(&[(l, h)])?, &name));
            }
            eprint!("\rlayer {}/{}", l + 1, cfg.n_layer);
        }
        eprintln!();
        all.sort_by(|a, b| b.kl.total_cmp(&a.kl));
        all.truncate(args.top);
        all
    } else {
        vec![effect(
            args.heads.clone(),
            &intact,
            &row(&args.heads)?,
            &name,
        )]
    };
    let base = effect(vec![], &intact, &intact, &name);
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "prompt_tokens": tokens.len(),
                "prediction": {"token_id": base.top_token, "text": base.top_text, "p": base.top_p},
                "effects": effects,
            })
        );
        return Ok(());
    }
    outln!("intact: predicts {:?} (p {:.3})", base.top_text, base.top_p);
    outln!("heads        KL (nats)  Δ ln p(prediction)  top when ablated");
    for e in effects.drain(..) {
        let heads: Vec<String> = e.heads.iter().map(|(l, h)| format!("{l}:{h}")).collect();
        outln!(
            "{:<12} {:>9.4}  {:>18.4}  {:?} ({:.3})",
            heads.join(","),
            e.kl,
            e.delta_logprob,
            e.top_text,
            e.top_p
        );
    }
    Ok(())
}
