//! Arguments shared by subcommands.

use clap::Args;

use crate::engine::Engine;
use crate::engine::model::Precision;
use crate::engine::sampling::SamplerSettings;
use crate::store::launch::Launch;

#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// A GGUF file, a Hugging Face model folder, `org/name` in the Hugging Face cache, or the name of a model in the data directory [default: SmolLM2-135M-Instruct, fetched when missing]
    #[arg(long, short = 'm', env = "LMSCOPE_MODEL")]
    pub model: Option<String>,
    /// quantized: 8-bit activations as llama.cpp; f32: dequantised weights, float activations (as HF transformers)
    #[arg(long, value_enum, default_value = "quantized")]
    pub precision: PrecisionArg,
    /// Worker threads for the forward pass [default: all cores]
    #[arg(long, short = 't', allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub threads: Option<usize>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, Default)]
pub enum PrecisionArg {
    #[default]
    Quantized,
    F32,
}

impl ModelArgs {
    /// What the workbench and the subcommands are started with.
    pub fn launch(&self) -> Launch {
        Launch {
            model: self.model.clone(),
            precision: match self.precision {
                PrecisionArg::Quantized => Precision::Quantized,
                PrecisionArg::F32 => Precision::F32,
            },
            threads: self.threads,
            remote: None,
        }
    }

    pub fn load(&self) -> anyhow::Result<Engine> {
        self.launch().load()
    }
}

/// The sampler chain's settings (llama.cpp's names and defaults).
#[derive(Args, Debug, Clone)]
pub struct SamplerArgs {
    /// 0 = greedy
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0 = off)
    #[arg(long, default_value_t = 40, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches P (1 = off)
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens below P x the best token's probability (0 = off)
    #[arg(long, default_value_t = 0.05, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Locally typical sampling mass (1 = off)
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub typical_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens (1 = off)
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// Subtract from the logit of every recent token (0 = off)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtract, times its count, from the logit of recent tokens (0 = off)
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// How many recent tokens the penalties look at (the prompt included)
    #[arg(long, default_value_t = 64, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub penalty_last_n: usize,
    #[arg(long, default_value_t = 42, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<u64>)]
    pub seed: u64,
    /// Order of the chain, comma-separated
    #[arg(
        long,
        default_value = "penalties,top_k,typical_p,top_p,min_p,temperature"
    )]
    pub samplers: String,
}

impl SamplerArgs {
    pub fn settings(&self) -> anyhow::Result<SamplerSettings> {
        let s = SamplerSettings {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical_p,
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            penalty_last_n: self.penalty_last_n,
            seed: self.seed,
            order: SamplerSettings::parse_order(&self.samplers)?,
        };
        s.validate()?;
        Ok(s)
    }
}

/// Parses a count or size option. Negative numbers are let through clap
/// (`allow_negative_numbers`) so that `-5` is named as a bad value of its
/// option rather than taken for an unknown flag.
pub fn whole_number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    let digits = s.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be a whole number >= 0".into());
    }
    digits
        .parse()
        .map_err(|_| "is too large for this option".into())
}

/// Where the model runs when it is not loaded here: an OpenAI-compatible
/// server.
#[derive(Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// An OpenAI-compatible server's address (llama.cpp's llama-server, vLLM, llama-cpp-python's server), with or without its /v1: the model runs there
    #[arg(long, value_name = "URL")]
    pub backend: Option<String>,
    /// The environment variable that holds the server's API key (sent as a bearer token)
    #[arg(long, value_name = "VAR", requires = "backend")]
    pub api_key_env: Option<String>,
    /// The server's model to use [default: the first it lists]
    #[arg(long, value_name = "NAME", requires = "backend")]
    pub remote_model: Option<String>,
    /// Seconds to wait for the connection
    #[arg(long, value_name = "S", default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds to wait for any one read: the first token, or the next
    #[arg(long, value_name = "S", default_value_t = 60.0)]
    pub read_timeout: f64,
    /// Seconds a whole request may take
    #[arg(long, value_name = "S", default_value_t = 600.0)]
    pub timeout: f64,
    /// Times a request answered 429 or 5xx is sent again (with a growing pause)
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<u32>)]
    pub retries: u32,
}

impl RemoteArgs {
    /// The server to use, when `--backend` is given.
    pub fn options(&self) -> anyhow::Result<Option<crate::remote::RemoteOptions>> {
        use crate::remote::client::{Retry, Timeouts};
        let Some(url) = &self.backend else {
            return Ok(None);
        };
        let seconds = |name: &str, s: f64| -> anyhow::Result<std::time::Duration> {
            anyhow::ensure!(
                s.is_finite() && s > 0.0 && s <= 86_400.0,
                "--{name} {s} is out of range: give seconds above 0 (at most a day)"
            );
            Ok(std::time::Duration::from_secs_f64(s))
        };
        let api_key = match &self.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow::anyhow!("--api-key-env {var}: the variable {var} is not set (or not UTF-8); export the key in it")
            })?),
            None => None,
        };
        Ok(Some(crate::remote::RemoteOptions {
            url: url.clone(),
            api_key,
            model: self.remote_model.clone(),
            timeouts: Timeouts {
                connect: seconds("connect-timeout", self.connect_timeout)?,
                read: seconds("read-timeout", self.read_timeout)?,
                total: seconds("timeout", self.timeout)?,
            },
            retry: Retry {
                retries: self.retries,
                ..Retry::default()
            },
        }))
    }
}
