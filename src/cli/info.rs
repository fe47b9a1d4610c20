//! `lmscope info`: what a model is.

use clap::Args;

use super::args::ModelArgs;

#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long)]
    pub json: bool,
}

/// A special token as `text (id)`, or none.
fn tok(t: &Option<(u32, String)>) -> String {
    t.as_ref()
        .map(|(id, s)| format!("{s} ({id})"))
        .unwrap_or("none".into())
}

/// An encoder's facts: its own fields (heads it has, mask token, segments).
fn masked(args: &InfoArgs) -> anyhow::Result<()> {
    let engine = args.model.launch().load_masked(None)?;
    let i = engine.info();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(i)?);
        return Ok(());
    }
    let c = &i.config;
    outln!("{}  ({})", i.name, i.path);
    outln!(
        "architecture   {} (masked language model, bidirectional)  {:.1} M parameters  safetensors ({:.1} MB)",
        i.architecture,
        i.parameters as f64 / 1e6,
        i.file_bytes as f64 / 1e6
    );
    outln!(
        "layers         {}  width {}  ffn {}",
        c.n_layer,
        c.d_model,
        c.d_ff
    );
    outln!(
        "attention      {} heads of {}, every token sees every token",
        c.n_head,
        c.d_model / c.n_head.max(1)
    );
    outln!(
        "positions      learned, {} positions{}",
        c.max_positions,
        if c.position_offset > 0 {
            format!(" (numbered from {})", c.position_offset)
        } else {
            String::new()
        }
    );
    outln!(
        "segments       {}",
        if c.type_vocab_size > 0 {
            format!("{} token types (sentence A / B)", c.type_vocab_size)
        } else {
            "none".into()
        }
    );
    outln!(
        "norm           LayerNorm after each sublayer (post-LN), eps {:e}",
        c.norm_eps
    );
    outln!("feed-forward   {}", c.activation.describe());
    outln!(
        "heads          masked-LM {}  next-sentence {}",
        if i.mlm_head { "yes" } else { "no" },
        if i.nsp_head { "yes" } else { "no" }
    );
    outln!(
        "vocabulary     {} tokens; mask {}, cls {}, sep {}",
        c.vocab_size,
        tok(&i.mask_token),
        tok(&i.cls_token),
        tok(&i.sep_token)
    );
    let types: Vec<String> = i
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t} x{n}"))
        .collect();
    outln!("tensor types   {}", types.join(", "));
    Ok(())
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    if args.model.launch().is_masked() {
        return masked(&args);
    }
    let engine = args.model.load()?;
    let i = engine.info();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(i)?);
        return Ok(());
    }
    outln!("{}  ({})", i.name, i.path);
    outln!(
        "architecture   {}  {:.1} M parameters  {} ({:.1} MB)",
        i.architecture,
        i.parameters as f64 / 1e6,
        i.file_type,
        i.file_bytes as f64 / 1e6
    );
    outln!(
        "layers         {}  width {}  ffn {}",
        i.n_layer,
        i.d_model,
        i.d_ff
    );
    outln!(
        "attention      {}, head dim {}",
        i.design.attention,
        i.head_dim
    );
    outln!(
        "positions      {}, context {}",
        i.design.positions,
        i.context_length
    );
    outln!("norm           {}", i.design.norm);
    outln!("feed-forward   {}", i.design.activation);
    outln!(
        "embeddings     {}",
        if i.design.tied_embeddings {
            "tied (the output projection is the embedding matrix)"
        } else {
            "separate output projection"
        }
    );
    let types: Vec<String> = i
        .tensor_types
        .iter()
        .map(|(t, n)| format!("{t} x{n}"))
        .collect();
    outln!("tensor types   {}", types.join(", "));
    outln!(
        "vocabulary     {}  BOS {}  EOS {}  add BOS: {}",
        i.vocab_size,
        tok(&i.bos),
        tok(&i.eos),
        i.add_bos
    );
    let eog: Vec<String> = i
        .end_of_generation
        .iter()
        .map(|(id, s)| format!("{s} ({id})"))
        .collect();
    outln!("stops on       {}", eog.join(", "));
    match &i.chat_template {
        Some(t) => outln!("chat template\n{t}"),
        None => outln!(
            "chat template  none in the file (using {})",
            i.chat_fallback
        ),
    }
    Ok(())
}
