//! `lmscope bench`: prefill and decode speed with capture off and on, and
//! llama.cpp's on the same file and thread count, alternating round by
//! round in one run, reported as medians and ratios.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use clap::Args;
use serde_json::json;

use super::args::ModelArgs;
use crate::engine::sampling::SamplerSettings;
use crate::engine::{Engine, Prompt, Request};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Rounds of each measurement (medians are reported)
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Prompt tokens for the prefill test (llama-bench's pp)
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens for the decode test (llama-bench's tg)
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Python with llama-cpp-python for the reference [default: .venv-ref/bin/python, then python3]
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip llama.cpp even when it is installed
    #[arg(long)]
    pub no_reference: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Default, Debug)]
struct Series {
    prefill: Vec<f64>,
    decode: Vec<f64>,
}

fn median(xs: &[f64]) -> f64 {
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
        ignore_eos: true,
    };
    let mut g = engine.start(&request)?;
    g.prefill(engine)?;
    while g.step(engine)?.is_some() {}
    let t = g.timings();
    Ok((t.prefill_tok_s(), t.decode_tok_s()))
}

struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
}

impl Reference {
    fn start(python: &PathBuf, model: &str, threads: usize) -> anyhow::Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench_llamacpp.py");
        let mut child = Command::new(python)
            .arg(&script)
            .arg(model)
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let ready: serde_json::Value = serde_json::from_str(&line)
            .map_err(|_| anyhow::anyhow!("llama-cpp-python did not start"))?;
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

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_python(arg: &Option<PathBuf>) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match arg {
        Some(p) => vec![p.clone()],
        None => vec![
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-ref/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import llama_cpp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Peak resident memory of this process, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let engine = args.model.load()?;
    let threads = args.model.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let tokens = bench_tokens(&engine, args.prompt_tokens)?;
    let mut reference = if args.no_reference {
        None
    } else {
        match find_python(&args.python) {
            Some(py) => Some(Reference::start(&py, &engine.info().path, threads)?),
            None => {
                eprintln!(
                    "llama-cpp-python not found (scripts/reference/setup.sh installs it): lmscope alone"
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
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let (lp, ld) = (median(&llama.prefill), median(&llama.decode));
    let report = json!({
        "model": engine.info().path,
        "threads": threads,
        "rounds": args.rounds,
        "prompt_tokens": args.prompt_tokens,
        "gen_tokens": args.gen_tokens,
        "lmscope_capture_off": {"prefill_tok_s": median(&off.prefill), "decode_tok_s": median(&off.decode)},
        "lmscope_capture_on": {"prefill_tok_s": median(&on.prefill), "decode_tok_s": median(&on.decode)},
        "llama_cpp": reference.as_ref().map(|r| json!({"version": r.version, "prefill_tok_s": lp, "decode_tok_s": ld})),
        "ratio_vs_llama_cpp": reference.as_ref().map(|_| json!({
            "prefill_capture_off": ratio(median(&off.prefill), lp),
            "decode_capture_off": ratio(median(&off.decode), ld),
            "prefill_capture_on": ratio(median(&on.prefill), lp),
            "decode_capture_on": ratio(median(&on.decode), ld),
        })),
        "peak_rss_bytes": peak,
        "model_file_bytes": engine.info().file_bytes,
    });
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{} threads, {} rounds, pp{} / tg{} (medians, tokens/s)",
        threads, args.rounds, args.prompt_tokens, args.gen_tokens
    );
    println!("{:<26} {:>10} {:>10}", "", "prefill", "decode");
    let row = |name: &str, s: &Series| {
        println!(
            "{name:<26} {:>10.1} {:>10.1}",
            median(&s.prefill),
            median(&s.decode)
        )
    };
    row("lmscope, capture off", &off);
    row("lmscope, capture on", &on);
    if reference.is_some() {
        row("llama.cpp", &llama);
        println!(
            "{:<26} {:>9.2}x {:>9.2}x",
            "ratio, capture off",
            ratio(median(&off.prefill), lp),
            ratio(median(&off.decode), ld)
        );
        println!(
            "{:<26} {:>9.2}x {:>9.2}x",
            "ratio, capture on",
            ratio(median(&on.prefill), lp),
            ratio(median(&on.decode), ld)
        );
    }
    if let Some(p) = peak {
        println!(
            "peak memory {:.0} MB (model file {:.0} MB)",
            p as f64 / 1e6,
            engine.info().file_bytes as f64 / 1e6
        );
    }
    Ok(())
}
