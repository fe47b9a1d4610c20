//! What the interface and the commands are started with: which model, at
//! which precision, on how many threads. The command line fills it in
//! (`cli::args::ModelArgs`); the workbench and the subcommands both read it,
//! so neither of them depends on the other.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::engine::Engine;
use crate::engine::masked::MaskedEngine;
use crate::engine::model::Precision;
use crate::store::models;

/// Most worker threads `--threads` accepts: far past any core count this
/// runs on, short of the thousands of threads that only thrash.
pub const MAX_THREADS: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// A GGUF path or a model name in the data directory; `None` is the
    /// default model, fetched when missing.
    pub model: Option<String>,
    pub precision: Precision,
    /// Worker threads for the forward pass; `None` is every core.
    pub threads: Option<usize>,
    /// A server to run the model on instead (`--backend URL`).
    pub remote: Option<crate::remote::RemoteOptions>,
}

impl Launch {
    /// Sets the kernels' thread count, once, before any model runs.
    pub fn apply_threads(&self) -> anyhow::Result<()> {
        if let Some(n) = self.threads {
            anyhow::ensure!(
                (1..=MAX_THREADS).contains(&n),
                "--threads {n} is out of range: allowed 1 to {MAX_THREADS} (a fixed limit; this machine has {} cores)",
                std::thread::available_parallelism().map_or(1, |c| c.get())
            );
            // Our kernels' pool; candle's own (other tensor types, --precision
            // f32) follows RAYON_NUM_THREADS.
            crate::engine::kernels::set_threads(n);
        }
        Ok(())
    }

    /// The model file, fetched first when it is the default and missing.
    pub fn model_path(&self) -> anyhow::Result<PathBuf> {
        Ok(models::resolve(self.model.as_deref())?)
    }

    /// Threads set, the model found and loaded.
    pub fn load(&self) -> anyhow::Result<Engine> {
        self.apply_threads()?;
        let path = self.model_path()?;
        Engine::load(&path, self.precision).with_context(|| format!("loading {}", path.display()))
    }

    /// Whether the model asked for is a masked language model (the default
    /// is not; nothing is fetched to find out). A model that cannot be
    /// found is not one: loading it then says why, in the command's order.
    pub fn is_masked(&self) -> bool {
        self.model
            .as_deref()
            .and_then(|m| models::resolve(Some(m)).ok())
            .is_some_and(|p| crate::engine::masked::is_masked_model(&p))
    }

    /// Threads set, a masked language model found and loaded (`default`
    /// names the known model used without --model, if there is one).
    pub fn load_masked(&self, default: Option<&str>) -> anyhow::Result<MaskedEngine> {
        self.apply_threads()?;
        let name = match (self.model.as_deref(), default) {
            (Some(m), _) => m,
            (None, Some(d)) => d,
            (None, None) => anyhow::bail!(
                "this command needs a masked language model: pass --model DIR (a BERT, RoBERTa or DistilBERT folder with its masked-LM head)"
            ),
        };
        let path = models::resolve(Some(name))?;
        MaskedEngine::load(&path).with_context(|| format!("loading {}", path.display()))
    }
}
