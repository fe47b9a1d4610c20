//! `lmscope pull`: fetch a model into the data directory.

use clap::Args;

use crate::store::models::{self, DEFAULT_MODEL, KnownModel};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Which model: smollm2-135m-instruct (the default), gemma3-270m or all-minilm-l6-v2 (an encoder)
    pub name: Option<String>,
    /// Fetch again even when the file is there and intact
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: PullArgs) -> anyhow::Result<()> {
    let model = match &args.name {
        None => DEFAULT_MODEL,
        Some(n) => KnownModel::find(n).ok_or_else(|| {
            let known: Vec<_> = models::KNOWN_MODELS.iter().map(|m| m.name).collect();
            anyhow::anyhow!(
                "unknown model `{n}`; lmscope can fetch: {}",
                known.join(", ")
            )
        })?,
    };
    let path = models::pull(&model, args.force)?;
    outln!("{}", path.display());
    Ok(())
}
