//! `lmscope bias`: counterfactual probe suites, minimal-pair scoring and
//! the quick swap check, headless.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;

use super::args::ModelArgs;
use crate::analysis::bias::masked;
use crate::analysis::bias::pairs::{self, Mode, PairsReport};
use crate::analysis::bias::probe::ProbeReport;
use crate::analysis::bias::quick::{self, QuickSwap};
use crate::analysis::bias::run;
use crate::analysis::bias::suite::{self, Suite};
use crate::store::paths;

#[derive(Args, Debug)]
#[command(
    after_help = "SUITES: a probe suite is TOML (built-in: `default`; or a path; or NAME.toml in the data
directory's bias/ folder): sentence frames with {term} crossed with paired terms, see
assets/bias/default.toml. Each frame x pair compares the two next-token distributions (JS
divergence, KL both ways, top-k overlap) and scores the frame's attributes after both
(teacher-forced; a multi-token attribute is the sum). Categories get bootstrap 95% intervals
(2000 resamples, fixed seed).

PAIRS: a CrowS-Pairs-format CSV you supply (columns sent_more, sent_less, stereo_antistereo,
bias_type; --suite FILE.csv or --pairs FILE). --mode lmeval (default) is lm-evaluation-harness's
crows_pairs_english for causal models: each sentence's summed log-likelihood after one prefix
token (BOS, else EOS); pct_stereotype = share of pairs with LL(sent_more) > LL(sent_less), ties
count against; likelihood_diff = mean |difference|. mean: per-token mean; shared: only the tokens
both sentences share. Reported with a Wilson 95% interval, an exact binomial test against 0.5,
Holm-adjusted p per category (n < 30 marked too small) and the data file's SHA-256.
assets/bias/example_pairs.csv is lmscope's own smoke-test file, not comparable to published scores.

MASKED MODELS (BERT, RoBERTa, DistilBERT; --model DIR): pairs are scored as CrowS-Pairs' own
metric does (--mode pll): the tokens both sentences share, each masked in turn, their
log-probabilities summed (pseudo-log-likelihood); compared after rounding to 3 decimals. A suite's
frames get a mask after them (\"The woman worked as [MASK].\") for the divergences, and each
attribute's own tokens are scored by pseudo-log-likelihood in \"frame attribute.\". --quick compares
the candidates at the text's first mask (\"The man worked as a [MASK].\").

QUICK: --quick PROMPT swaps he/she and the like (or each --swap \"X|Y\") and compares the next-token
top-k lists. JSON (--json) is the report object; progress goes to stderr."
)]
pub struct BiasArgs {
    /// A probe suite (built-in name or .toml file) or a pairs file (.csv)
    #[arg(long, conflicts_with_all = ["pairs", "quick"])]
    pub suite: Option<String>,
    /// A CrowS-Pairs-format CSV file
    #[arg(long, conflicts_with = "quick")]
    pub pairs: Option<String>,
    /// How minimal pairs are scored: lmeval, mean or shared (decoders); pll (masked models)
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// Swap terms in this prompt and compare the next-token lists (`-` reads stdin)
    #[arg(long)]
    pub quick: Option<String>,
    /// A swap "X|Y" for --quick (repeatable; default: he/she, his/her, man/woman, ...)
    #[arg(long)]
    pub swap: Vec<String>,
    /// Entries in each list for --quick
    #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub top_k: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Keep every pair's tokens and log-probs in the JSON
    #[arg(long)]
    pub tokens: bool,
    /// Pairs or probes with the largest differences to list in the table
    #[arg(long, default_value_t = 5, allow_negative_numbers = true, value_parser = crate::cli::args::whole_number::<usize>)]
    pub show: usize,
    /// Print the report as one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse()
}

enum Job {
    Suite(Suite),
    Pairs(String),
    Quick(String),
}

/// Finds a suite: built-in name, file path, or NAME(.toml) in the data directory.
fn find_suite(name: &str) -> anyhow::Result<Suite> {
    if !suite::BUILTIN.iter().any(|(n, _)| *n == name) && !Path::new(name).exists() {
        let dir = paths::data_dir().join("bias");
        for candidate in [dir.join(name), dir.join(format!("{name}.toml"))] {
            if candidate.is_file() {
                return Ok(Suite::load(&candidate.to_string_lossy())?);
            }
        }
    }
    Ok(Suite::load(name)?)
}

fn job(args: &BiasArgs) -> anyhow::Result<Job> {
    if let Some(p) = &args.quick {
        return Ok(Job::Quick(super::read_input(p)?));
    }
    if let Some(p) = &args.pairs {
        return Ok(Job::Pairs(p.clone()));
    }
    match &args.suite {
        Some(s) if s.to_ascii_lowercase().ends_with(".csv") => Ok(Job::Pairs(s.clone())),
        Some(s) => Ok(Job::Suite(find_suite(s)?)),
        None => anyhow::bail!(
            "say what to run: --suite NAME|FILE.toml, --suite FILE.csv, --pairs FILE.csv or --quick PROMPT"
        ),
    }
}

fn progress_printer(what: &'static str) -> impl FnMut(usize, usize) {
    let mut last = std::time::Instant::now();
    move |done, total| {
        if done == total || last.elapsed().as_millis() >= 500 {
            eprint!("\r{what} {done}/{total}");
            if done == total {
                eprintln!();
            }
            last = std::time::Instant::now();
        }
    }
}

pub fn run(args: BiasArgs) -> anyhow::Result<()> {
    let job = job(&args)?;
    if args.mode.is_some() && !matches!(job, Job::Pairs(_)) {
        anyhow::bail!(
            "--mode applies to a pairs file (.csv); a probe suite and --quick have no modes"
        );
    }
    if !args.swap.is_empty() && !matches!(job, Job::Quick(_)) {
        anyhow::bail!("--swap applies to --quick");
    }
    anyhow::ensure!(args.top_k >= 1, "--top-k must be at least 1");
    let cancel = AtomicBool::new(false);
    let masked = args.model.launch().is_masked();
    match job {
        Job::Pairs(path) => {
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {path}"))?;
            let file = pairs::read_pairs(&bytes)
                .with_context(|| format!("{path} is not a usable pairs file"))?;
            let report = if masked {
                if let Some(m) = args.mode.filter(|m| !m.for_masked_models()) {
                    anyhow::bail!(
                        "--mode {} scores a decoder; a masked language model is scored by pseudo-log-likelihood (--mode pll, the default for it)",
                        m.as_str()
                    );
                }
                let engine = args.model.launch().load_masked(None)?;
                eprintln!(
                    "scoring {} pairs by pseudo-log-likelihood (one pass per shared token)",
                    file.pairs.len()
                );
                let scores =
                    masked::score_pairs(&engine, &file, &mut progress_printer("pairs"), &cancel)?;
                masked::pairs_report(&engine, &file, &path, &scores, args.tokens)?
            } else {
                let mode = args.mode.unwrap_or(Mode::Lmeval);
                anyhow::ensure!(
                    !mode.for_masked_models(),
                    "--mode pll scores a masked language model (BERT, RoBERTa, DistilBERT); this model is a decoder: use lmeval, mean or shared"
                );
                let engine = args.model.load()?;
                eprintln!(
                    "scoring {} pairs ({} sentences)",
                    file.pairs.len(),
                    2 * file.pairs.len()
                );
                let scores =
                    run::score_pairs(&engine, &file, &mut progress_printer("pairs"), &cancel)?;
                run::pairs_report(&engine, &file, &path, &scores, mode, args.tokens)?
            };
            if args.json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                print_pairs(&report, args.show)?;
            }
        }
        Job::Suite(suite) => {
            eprintln!(
                "suite `{}`: {} probes ({} prompts)",
                suite.name,
                suite.n_probes(),
                2 * suite.n_probes()
            );
            let report = if masked {
                let engine = args.model.launch().load_masked(None)?;
                masked::run_suite(&engine, &suite, &mut progress_printer("probes"), &cancel)?
            } else {
                let engine = args.model.load()?;
                run::run_suite(&engine, &suite, &mut progress_printer("probes"), &cancel)?
            };
            if args.json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                print_probes(&report, args.show)?;
            }
        }
        Job::Quick(text) => {
            let swaps = args
                .swap
                .iter()
                .map(|s| quick::parse_swap(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let q = if masked {
                let engine = args.model.launch().load_masked(None)?;
                masked::quick_swap(&engine, &text, &swaps, args.top_k)?
            } else {
                let engine = args.model.load()?;
                run::quick_swap(&engine, &text, &swaps, args.top_k)?
            };
            if args.json {
                outln!("{}", serde_json::to_string(&q)?);
            } else {
                print_quick(&q)?;
            }
        }
    }
    Ok(())
}

/// A 20-cell bar of a share in [0, 1] with the 50% mark.
fn bar(share: f64) -> String {
    if !share.is_finite() {
        return " ".repeat(20);
    }
    let filled = (share.clamp(0.0, 1.0) * 20.0).round() as usize;
    (0..20)
        .map(|i| {
            if i < filled {
                '█'
            } else if i == 10 {
                '|'
            } else {
                '·'
            }
        })
        .collect()
}

fn print_pairs(r: &PairsReport, show: usize) -> anyhow::Result<()> {
    outln!("pairs  {}  ({} pairs)", r.data_file, r.overall.n);
    outln!("sha256 {}", r.data_sha256);
    outln!(
        "mode   {}: {}   prefix token {}",
        r.mode.as_str(),
        r.mode_description,
        r.prefix_token
    );
    if let Some(n) = &r.note {
        outln!("note   {n}");
    }
    if r.partial {
        outln!("note   cancelled: only some pairs were scored");
    }
    outln!();
    outln!(
        "{:<22} {:>5} {:>8}  {:<17} {:<20} {:>9} {:>9} {:>9}",
        "category",
        "n",
        "stereo%",
        "95% Wilson",
        "",
        "p",
        "p Holm",
        "lik.diff"
    );
    let row = |c: &pairs::CategoryStats| -> anyhow::Result<()> {
        let holm = c
            .p_holm
            .map(|p| format!("{p:.3}"))
            .unwrap_or_else(|| "-".into());
        outln!(
            "{:<22} {:>5} {:>7.1}%  [{:>5.1}, {:>5.1}]    {} {:>9.3} {:>9} {:>9.3}{}",
            c.name,
            c.n,
            100.0 * c.pct_stereotype,
            100.0 * c.wilson95.lo,
            100.0 * c.wilson95.hi,
            bar(c.pct_stereotype),
            c.p_value,
            holm,
            c.likelihood_diff,
            if c.too_small {
                "  (n < 30: too small)"
            } else {
                ""
            }
        );
        Ok(())
    };
    row(&r.overall)?;
    for c in &r.categories {
        row(c)?;
    }
    if show > 0 {
        let mut idx: Vec<usize> = (0..r.pairs.len()).collect();
        idx.sort_by(|&a, &b| r.pairs[b].diff.abs().total_cmp(&r.pairs[a].diff.abs()));
        outln!("\nlargest differences (score more - less):");
        for &i in idx.iter().take(show) {
            let p = &r.pairs[i];
            outln!(
                "  {:+8.3}  line {:<5} {:<18} more: {}",
                p.diff,
                p.line,
                p.bias_type,
                p.sent_more
            );
            outln!("  {:>8}  {:<5} {:<23} less: {}", "", "", "", p.sent_less);
        }
    }
    Ok(())
}

fn print_probes(r: &ProbeReport, show: usize) -> anyhow::Result<()> {
    outln!(
        "suite  {}  ({} probes){}",
        r.suite,
        r.probes.len(),
        if r.partial {
            "  [cancelled: partial]"
        } else {
            ""
        }
    );
    if !r.description.is_empty() {
        outln!("       {}", r.description);
    }
    outln!(
        "means over probes (frame x pair) with percentile-bootstrap 95% intervals ({} resamples, seed {})\n",
        r.bootstrap_resamples,
        r.bootstrap_seed
    );
    outln!(
        "{:<20} {:>4}  {:<24} {:<24} {:<24} {:<24} {:<24}",
        "category",
        "n",
        "JS divergence",
        "KL(A||B)",
        "KL(B||A)",
        format!("top-{} overlap", r.top_k),
        "attr logp A-B"
    );
    let ci = |m: &crate::analysis::bias::probe::MeanCi| {
        format!("{:.4} [{:.4}, {:.4}]", m.mean, m.ci95.lo, m.ci95.hi)
    };
    for c in &r.categories {
        outln!(
            "{:<20} {:>4}  {:<24} {:<24} {:<24} {:<24} {:<24}",
            c.name,
            c.n,
            ci(&c.js),
            ci(&c.kl_ab),
            ci(&c.kl_ba),
            ci(&c.top_k_overlap),
            c.attribute_diff
                .as_ref()
                .map(ci)
                .unwrap_or_else(|| "-".into())
        );
    }
    if show > 0 {
        let mut idx: Vec<usize> = (0..r.probes.len()).collect();
        idx.sort_by(|&a, &b| {
            r.probes[b]
                .divergence
                .js
                .total_cmp(&r.probes[a].divergence.js)
        });
        outln!("\nlargest divergences:");
        for &i in idx.iter().take(show) {
            let p = &r.probes[i];
            let top = |l: &[crate::analysis::bias::probe::TokenLogprob]| {
                l.iter()
                    .take(5)
                    .map(|t| format!("{:?}", t.text))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            outln!(
                "  JS {:.4}  {:?} vs {:?}",
                p.divergence.js,
                p.prompt_a,
                p.prompt_b
            );
            outln!("           A: {}", top(&p.top_a));
            outln!("           B: {}", top(&p.top_b));
        }
    }
    Ok(())
}

fn print_quick(q: &QuickSwap) -> anyhow::Result<()> {
    outln!("A: {:?}", q.prompt_a);
    outln!("B: {:?}   ({} replacement(s))", q.prompt_b, q.replacements);
    outln!(
        "JS {:.4}  KL(A||B) {:.4}  KL(B||A) {:.4}  top-{} overlap {:.2}\n",
        q.divergence.js,
        q.divergence.kl_ab,
        q.divergence.kl_ba,
        q.divergence.top_k,
        q.divergence.top_k_overlap
    );
    outln!(
        "{:<34} {:<34}",
        "top after A (logp A, B-A)",
        "top after B (logp B, B-A)"
    );
    for i in 0..q.top_a.len().max(q.top_b.len()) {
        let cell = |r: Option<&quick::SwapRow>, b: bool| match r {
            Some(r) => format!(
                "{:<16} {:>7.3} {:>+7.3}",
                format!("{:?}", r.text),
                if b { r.logprob_b } else { r.logprob_a },
                r.delta
            ),
            None => String::new(),
        };
        outln!(
            "{:<34} {:<34}",
            cell(q.top_a.get(i), false),
            cell(q.top_b.get(i), true)
        );
    }
    Ok(())
}
