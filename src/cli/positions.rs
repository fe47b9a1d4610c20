//! `lmscope positions`: how a model encodes position: for one head over a
//! prompt in a rotary model, the position embeddings' similarity in one
//! with learned positions (see `analysis::positions`).

use clap::Args;

use super::args::ModelArgs;
use crate::analysis::positions::{learned_report, rotary_report};
use crate::engine::Prompt;
use crate::engine::model::Logits;

#[derive(Args, Debug)]
#[command(
    after_help = "For each frequency pair of the head's dimensions: radians a token, the wavelength in tokens,
the rotation at the prompt's last position and its share of the head's mean |q||k|; then the
head's query . key against distance (its prompt vectors rotated back to position 0 and averaged),
beside RoFormer's content-free bound.
JSON (--json): {layer, head, base, style, head_dim, positions, pairs: [{index, dims, theta,
wavelength, angle_at_last, share}], falloff: {score, bound}}
With learned positions (GPT-2, and every BERT-style encoder): the cosine similarity of the position embeddings of positions
0 to --max-distance, the mean at each distance and each embedding's length (the prompt is not
needed for these, content-free). JSON: {kind: \"learned\", positions, d_model, similarity,
by_distance, norms}"
)]
pub struct PositionsArgs {
    /// The prompt whose queries and keys are used; `-` reads stdin
    pub prompt: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::whole_number::<usize>)]
    pub layer: usize,
    #[arg(long, default_value_t = 0, value_parser = crate::cli::args::whole_number::<usize>)]
    pub head: usize,
    /// Distances scored: 0 to this
    #[arg(long, default_value_t = 256, value_parser = crate::cli::args::whole_number::<usize>)]
    pub max_distance: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: PositionsArgs) -> anyhow::Result<()> {
    if args.model.launch().is_masked() {
        // Encoders (BERT and kin) learn their positions: the table's
        // similarity, as for GPT-2 (content-free, the prompt is not needed).
        let engine = args.model.launch().load_masked(None)?;
        let cfg = &engine.info().config;
        let n = (args.max_distance + 1).min(cfg.max_positions);
        let table = engine.encoder().learned_positions(n)?;
        return learned(learned_report(&table, cfg.d_model), args.json);
    }
    let text = super::read_input(&args.prompt)?;
    let engine = args.model.load()?;
    let model = engine.model();
    let cfg = model.config();
    anyhow::ensure!(
        args.layer < cfg.n_layer,
        "--layer {} does not exist: allowed 0 to {}",
        args.layer,
        cfg.n_layer - 1
    );
    anyhow::ensure!(
        args.head < cfg.n_head,
        "--head {} does not exist: allowed 0 to {}",
        args.head,
        cfg.n_head - 1
    );
    let Some(rot) = model.rotary(args.layer) else {
        let n = (args.max_distance + 1).min(cfg.context_length);
        let table = model.learned_positions(n).ok_or_else(|| {
            anyhow::anyhow!("layer {} does not encode positions by rotation", args.layer)
        })?;
        return learned(learned_report(&table, cfg.d_model), args.json);
    };
    let tokens = engine.prompt_tokens(&Prompt::Text(text))?;
    anyhow::ensure!(!tokens.is_empty(), "the prompt is empty");
    let mut cache = model.new_cache(true);
    model.forward(&tokens, &mut cache, Logits::Last)?;
    let (q, k) = model.head_vectors(&cache, args.layer, args.head, 0..tokens.len())?;
    let report = rotary_report(rot, args.layer, args.head, &q, 0, &k, args.max_distance);
    if args.json {
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    outln!(
        "layer {} head {}: RoPE {:?}, base {}, {} dims, {} prompt positions",
        report.layer,
        report.head,
        report.style,
        report.base,
        report.head_dim,
        report.positions
    );
    outln!("pair  dims       rad/token   wavelength   angle at last   share of |q||k|");
    let mut by_share: Vec<_> = report.pairs.iter().collect();
    by_share.sort_by(|a, b| b.share.total_cmp(&a.share));
    for p in by_share.iter().take(8) {
        outln!(
            "{:>4}  {:>4},{:<4}  {:>9.4}  {:>11.1}  {:>13.1}°  {:>6.1}%",
            p.index,
            p.dims[0],
            p.dims[1],
            p.theta,
            p.wavelength,
            p.angle_at_last,
            p.share * 100.0
        );
    }
    outln!("(the 8 pairs carrying most of the score; --json has all)");
    outln!("distance   q.k/sqrt(d)   content-free bound");
    let mut d = 0;
    while d <= args.max_distance {
        outln!(
            "{d:>8}   {:>11.4}   {:>11.4}",
            report.falloff.score[d],
            report.falloff.bound[d]
        );
        d = if d == 0 { 1 } else { d * 2 };
    }
    Ok(())
}

fn learned(report: crate::analysis::positions::LearnedReport, json: bool) -> anyhow::Result<()> {
    if json {
        outln!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    outln!(
        "learned absolute positions: {} positions of {} dims, added to the token embeddings",
        report.positions,
        report.d_model
    );
    outln!("distance   mean cosine similarity");
    let mut d = 0;
    while d < report.positions {
        outln!("{d:>8}   {:>8.4}", report.by_distance[d]);
        d = if d == 0 { 1 } else { d * 2 };
    }
    let norms = &report.norms;
    let mean = norms.iter().sum::<f32>() / norms.len().max(1) as f32;
    outln!(
        "embedding length: position 0 {:.3}, mean {mean:.3}; --json has the full similarity matrix",
        norms.first().copied().unwrap_or(0.0)
    );
    Ok(())
}
