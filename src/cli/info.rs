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

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let engine = args.model.load()?;
    let i = engine.info();
    if args.json {
        outln!("{}", serde_json::to_string_pretty(i)?);
        return Ok(());
    }
    let tok = |t: &Option<(u32, String)>| {
        t.as_ref()
            .map(|(id, s)| format!("{s} ({id})"))
            .unwrap_or("none".into())
    };
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
