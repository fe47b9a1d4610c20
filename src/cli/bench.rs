//! `lmscope bench`: prefill and decode speed with capture off and on, and
//! llama.cpp's on the same file and thread count, alternating round by
//! round in one run, reported as medians and ratios; batched decode of
//! several sequences against one, for both engines.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::args::ModelArgs;
use crate::engine::model::{KvCache, Logits};
use crate::engine::sampling::{SamplerSettings, argmax};
use crate::engine::{Engine, Prompt, Request};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Rounds of each measurement (medians are reported)
    #[arg(long, default_value_t = 3, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub rounds: usize,
    /// Prompt tokens for the prefill test (llama-bench's pp)
    #[arg(long, default_value_t = 128, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub prompt_tokens: usize,
    /// Tokens for the decode test (llama-bench's tg)
    #[arg(long, default_value_t = 128, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub gen_tokens: usize,
    /// Sequences decoded at once for the batched test (the compare view's case; llama.cpp's too; 0 = skip)
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub batch: usize,
    /// Context for the memory test: a capturing cache filled to this many tokens (0 = skip)
    #[arg(long, default_value_t = 2048, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub long_context: usize,
    /// Python with llama-cpp-python for the reference [default: .venv-ref/bin/python, then python3]
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip llama.cpp even when it is installed
    #[arg(long)]
    pub no_reference: bool,
    #[arg(long)]
    pub json: bool,
}

/// Most sequences the batched test decodes at once (each holds a cache).
const MAX_BATCH: usize = 64;

#[derive(Default, Debug)]
struct Series {
    prefill: Vec<f64>,
    decode: Vec<f64>,
}

pub(super) fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A fixed English text, repeated until it gives `n` tokens.
fn bench_tokens(engine: &Engine, n: usize) -> anyhow::Result<Vec<u32>> {
    const TEXT: &str = "Language models write one token at a time. Each step reads every \
        earlier token through self-attention, turns the result into a probability for every \
        word in the vocabulary, and picks one according to the sampler's settings. ";
    let mut text = String::from(TEXT);
    loop {
        let ids = engine.tokenizer().encode(&text, false)?;
        if ids.len() >= n {
            return Ok(ids[..n].to_vec());
        }
        text.push_str(TEXT);
    }
}

fn run_ours(
    engine: &Engine,
    tokens: &[u32],
    n_gen: usize,
    capture: bool,
) -> anyhow::Result<(f64, f64)> {
    let request = Request {
        prompt: Prompt::Tokens(tokens.to_vec()),
        sampler: SamplerSettings::greedy(),
        max_tokens: n_gen,
        stop: Vec::new(),
        top_n: if capture { 10 } else { 0 },
        capture_attention: capture,
        attach_attention: capture,
        ignore_eos: true,
    };
    let mut g = engine.start(&request)?;
    g.prefill(engine)?;
    while g.step(engine)?.is_some() {}
    let t = g.timings();
    Ok((t.prefill_tok_s(), t.decode_tok_s()))
}

/// Greedy decode of `n` tokens after `tokens`, for one sequence and then
/// for `batch` sequences at once (each forked from the same prefilled
/// cache): (one sequence's tokens/s, the batch's aggregate tokens/s).
fn run_batched(
    engine: &Engine,
    tokens: &[u32],
    n: usize,
    batch: usize,
) -> anyhow::Result<(f64, f64)> {
    let model = engine.model();
    let mut base = model.new_cache(false);
    let logits = model.forward(tokens, &mut base, Logits::Last)?;
    let first = argmax(&logits.to_vec2::<f32>()?[0]);
    let mut cache = base.clone();
    let mut t = first;
    let started = Instant::now();
    for _ in 0..n {
        let l = model.forward(&[t], &mut cache, Logits::Last)?;
        t = argmax(&l.to_vec2::<f32>()?[0]);
    }
    let single = n as f64 / started.elapsed().as_secs_f64();
    let mut caches: Vec<KvCache> = (0..batch).map(|_| base.clone()).collect();
    // Different first tokens, so that the sequences differ as side-by-side
    // runs do.
    let mut toks: Vec<u32> = (0..batch)
        .map(|i| {
            if i == 0 {
                first
            } else {
                // The prompt's tokens from the end, wrapping round when the
                // batch is larger than the prompt.
                tokens[tokens.len() - 1 - (i - 1) % tokens.len()]
            }
        })
        .collect();
    let started = Instant::now();
    for _ in 0..n {
        let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
        let l = model.forward_batch(&toks, &mut refs)?;
        for (t, row) in toks.iter_mut().zip(l.to_vec2::<f32>()?) {
            *t = argmax(&row);
        }
    }
    let aggregate = (batch * n) as f64 / started.elapsed().as_secs_f64();
    Ok((single, aggregate))
}

/// Fills a capturing cache to `len` tokens (prefill in chunks, then 16
/// decode steps that each recompute the new position's attention in every
/// layer, as a capture-on step does). Returns the cache's bytes.
fn run_long_context(engine: &Engine, len: usize) -> anyhow::Result<usize> {
    let model = engine.model();
    let steps = 16.min(len - 1);
    let prompt = bench_tokens(engine, len - steps)?;
    let mut cache = model.new_cache(true);
    for chunk in prompt.chunks(256) {
        model.forward(chunk, &mut cache, Logits::Last)?;
    }
    let mut t = prompt[prompt.len() - 1];
    for _ in 0..steps {
        let l = model.forward(&[t], &mut cache, Logits::Last)?;
        t = argmax(&l.to_vec2::<f32>()?[0]);
        let pos = cache.len();
        engine.attention(&cache, pos - 1..pos)?;
    }
    Ok(cache.size_bytes())
}

pub(super) struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Reference {
    pub(super) fn start(
        python: &PathBuf,
        kind: ReferenceKind,
        model: &str,
        threads: usize,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(kind.script());
        let mut child = Command::new(python)
            .arg(&script)
            .arg(model)
            .arg(threads.to_string())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|_| anyhow::anyhow!("{} did not start", kind.package()))?;
        let version = ready["version"].as_str().unwrap_or("?").to_string();
        Ok(Self {
            child,
            stdin,
            stdout,
            version,
        })
    }

    fn round(&mut self, tokens: &[u32], n_gen: usize) -> anyhow::Result<(f64, f64)> {
        writeln!(self.stdin, "{}", json!({"tokens": tokens, "decode": n_gen}))?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        Ok((
            v["prefill_tok_s"].as_f64().unwrap_or(f64::NAN),
            v["decode_tok_s"].as_f64().unwrap_or(f64::NAN),
        ))
    }
}

impl Reference {
    /// One request line, one JSON line back.
    pub(super) fn ask(&mut self, request: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    }

    pub(super) fn version(&self) -> &str {
        &self.version
    }

    /// One sequence's decode tokens/s and the aggregate of `batch`
    /// sequences decoded together, both on one llama.cpp context.
    fn batched(
        &mut self,
        tokens: &[u32],
        n_gen: usize,
        batch: usize,
    ) -> anyhow::Result<(f64, f64)> {
        writeln!(
            self.stdin,
            "{}",
            json!({"tokens": tokens, "decode": n_gen, "batch": batch})
        )?;
        self.stdin.flush()?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        Ok((
            v["single_tok_s"].as_f64().unwrap_or(f64::NAN),
            v["aggregate_tok_s"].as_f64().unwrap_or(f64::NAN),
        ))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What lmscope is measured against: llama.cpp for a GGUF file, HF
/// transformers (fp32, CPU) for a Hugging Face folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReferenceKind {
    LlamaCpp,
    Transformers,
    /// transformers on a masked language model.
    TransformersEncoder,
}

impl ReferenceKind {
    fn of(model: &std::path::Path) -> Self {
        if model.is_dir() {
            Self::Transformers
        } else {
            Self::LlamaCpp
        }
    }
    fn script(self) -> &'static str {
        match self {
            Self::LlamaCpp => "scripts/bench_llamacpp.py",
            Self::Transformers => "scripts/bench_transformers.py",
            Self::TransformersEncoder => "scripts/bench_encoder_transformers.py",
        }
    }
    fn package(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama-cpp-python",
            Self::Transformers | Self::TransformersEncoder => "transformers",
        }
    }
    fn module(self) -> &'static str {
        match self {
            Self::LlamaCpp => "import llama_cpp",
            Self::Transformers | Self::TransformersEncoder => "import transformers, torch",
        }
    }
    fn venv(self) -> &'static str {
        match self {
            Self::LlamaCpp => ".venv-ref/bin/python",
            Self::Transformers | Self::TransformersEncoder => ".venv-hf/bin/python",
        }
    }
    /// Its name in the report, and in the JSON keys (`llama_cpp`, ...).
    fn name(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama.cpp",
            Self::Transformers | Self::TransformersEncoder => "transformers",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Self::LlamaCpp => "llama_cpp",
            Self::Transformers | Self::TransformersEncoder => "transformers",
        }
    }
}

pub(super) fn find_python(arg: &Option<PathBuf>, kind: ReferenceKind) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match arg {
        Some(p) => vec![p.clone()],
        None => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(kind.venv()),
            PathBuf::from("python3"),
        ],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", kind.module()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Peak resident memory of this process, in bytes (Linux).
pub(super) fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        args.prompt_tokens >= 1,
        "--prompt-tokens must be at least 1 (the batched test forks from a prefilled prompt)"
    );
    anyhow::ensure!(
        args.batch <= MAX_BATCH,
        "--batch {} is too many sequences; use 0 (skip) to {MAX_BATCH}",
        args.batch
    );
    let engine = args.model.load()?;
    let threads = args.model.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let tokens = bench_tokens(&engine, args.prompt_tokens)?;
    let kind = ReferenceKind::of(std::path::Path::new(&engine.info().path));
    let mut reference = if args.no_reference {
        None
    } else {
        match find_python(&args.python, kind) {
            Some(py) => Some(Reference::start(
                &py,
                kind,
                &engine.info().path,
                threads,
                &[],
            )?),
            None => {
                eprintln!(
                    "{} not found (scripts/reference/README.md says how to install it): lmscope alone",
                    kind.package()
                );
                None
            }
        }
    };
    let (mut off, mut on, mut llama) = (Series::default(), Series::default(), Series::default());
    // Warm-up: first-touch page faults and pool start-up are not speed.
    run_ours(&engine, &tokens[..8.min(tokens.len())], 2, false)?;
    for round in 0..args.rounds {
        let push = |s: &mut Series, (p, d): (f64, f64)| {
            s.prefill.push(p);
            s.decode.push(d);
        };
        push(
            &mut off,
            run_ours(&engine, &tokens, args.gen_tokens, false)?,
        );
        push(&mut on, run_ours(&engine, &tokens, args.gen_tokens, true)?);
        if let Some(r) = reference.as_mut() {
            push(&mut llama, r.round(&tokens, args.gen_tokens)?);
        }
        eprintln!("round {}/{} done", round + 1, args.rounds);
    }
    let peak = peak_rss();
    // Batched decode: alternating single and batched within each round,
    // and llama.cpp's own batched decode beside it.
    let (mut single, mut batched) = (Vec::new(), Vec::new());
    let (mut llama_single, mut llama_batched) = (Vec::new(), Vec::new());
    if args.batch > 0 {
        for _ in 0..args.rounds {
            let (s, b) = run_batched(&engine, &tokens, args.gen_tokens, args.batch)?;
            single.push(s);
            batched.push(b);
            if let Some(r) = reference.as_mut() {
                let (s, b) = r.batched(&tokens, args.gen_tokens, args.batch)?;
                llama_single.push(s);
                llama_batched.push(b);
            }
        }
        eprintln!("batched decode done");
    }
    let long = if args.long_context > 1 {
        anyhow::ensure!(
            args.long_context <= engine.info().context_length,
            "--long-context {} is beyond the model's context of {}",
            args.long_context,
            engine.info().context_length
        );
        let bytes = run_long_context(&engine, args.long_context)?;
        eprintln!("long context done");
        Some((bytes, peak_rss()))
    } else {
        None
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let (lp, ld) = (median(&llama.prefill), median(&llama.decode));
    let (key, ratio_key) = (kind.key(), format!("ratio_vs_{}", kind.key()));
    let report = json!({
        "model": engine.info().path,
        "threads": threads,
        "rounds": args.rounds,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "lmscope_capture_off": {"prefill_tok_s": median(&off.prefill), "decode_tok_s": median(&off.decode)},
        "lmscope_capture_on": {"prefill_tok_s": median(&on.prefill), "decode_tok_s": median(&on.decode)},
        "reference": kind.name(),
        key: reference.as_ref().map(|r| json!({"version": r.version, "prefill_tok_s": lp, "decode_tok_s": ld})),
        ratio_key: reference.as_ref().map(|_| json!({
            "prefill_capture_off": ratio(median(&off.prefill), lp),
            "decode_capture_off": ratio(median(&off.decode), ld),
            "prefill_capture_on": ratio(median(&on.prefill), lp),
            "decode_capture_on": ratio(median(&on.decode), ld),
        })),
        "peak_rss_bytes": peak,
        "model_file_bytes": engine.info().file_bytes,
        "batched_decode": (args.batch > 0).then(|| json!({
            "sequences": args.batch,
            "single_tok_s": median(&single),
            "aggregate_tok_s": median(&batched),
            "ratio": ratio(median(&batched), median(&single)),
            "reference": reference.as_ref().map(|_| json!({
                "single_tok_s": median(&llama_single),
                "aggregate_tok_s": median(&llama_batched),
                "ratio": ratio(median(&llama_batched), median(&llama_single)),
            })),
        })),
        "long_context": long.map(|(bytes, peak)| json!({
            "tokens": args.long_context,
            "capture": true,
            "cache_bytes": bytes,
            "peak_rss_bytes": peak,
            "over_model_file_bytes": peak.map(|p| p as i64 - engine.info().file_bytes as i64),
        })),
    });
    if args.json {
        outln!("{report}");
        return Ok(());
    }
    outln!(
        "{} threads, {} rounds, pp{} / tg{} (medians, tokens/s)",
        threads,
        args.rounds,
        args.prompt_tokens,
        args.gen_tokens
    );
    outln!("{:<26} {:>10} {:>10}", "", "prefill", "decode");
    let row = |name: &str, s: &Series| -> anyhow::Result<()> {
        outln!(
            "{name:<26} {:>10.1} {:>10.1}",
            median(&s.prefill),
            median(&s.decode)
        );
        Ok(())
    };
    row("lmscope, capture off", &off)?;
    row("lmscope, capture on", &on)?;
    if reference.is_some() {
        row(kind.name(), &llama)?;
        outln!(
            "{:<26} {:>9.2}x {:>9.2}x",
            "ratio, capture off",
            ratio(median(&off.prefill), lp),
            ratio(median(&off.decode), ld)
        );
        outln!(
            "{:<26} {:>9.2}x {:>9.2}x",
            "ratio, capture on",
            ratio(median(&on.prefill), lp),
            ratio(median(&on.decode), ld)
        );
    }
    if args.batch > 0 {
        outln!(
            "batched decode, {} sequences: {:.1} tokens/s aggregate vs {:.1} for one ({:.2}x)",
            args.batch,
            median(&batched),
            median(&single),
            ratio(median(&batched), median(&single))
        );
        if reference.is_some() {
            outln!(
                "  {}, {} sequences: {:.1} tokens/s aggregate vs {:.1} for one ({:.2}x)",
                kind.name(),
                args.batch,
                median(&llama_batched),
                median(&llama_single),
                ratio(median(&llama_batched), median(&llama_single))
            );
        }
    }
    let file = engine.info().file_bytes as f64 / 1e6;
    if let Some(p) = peak {
        outln!(
            "peak memory {:.0} MB after the speed rounds (model file {file:.0} MB)",
            p as f64 / 1e6
        );
    }
    if let Some((bytes, Some(p))) = long {
        outln!(
            "peak memory {:.0} MB at {} tokens with capture on: model file + {:.0} MB (cache {:.0} MB)",
            p as f64 / 1e6,
            args.long_context,
            p as f64 / 1e6 - file,
            bytes as f64 / 1e6
        );
    }
    Ok(())
}
