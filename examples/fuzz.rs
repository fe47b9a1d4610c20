//! A mutation fuzzer that runs on stable Rust, over the readers of outside
//! input in `tests/fuzz_targets` (GGUF header and tensor table, session
//! files, settings, keymap, CrowS CSV).
//!
//!     cargo run --release --example fuzz -- TARGET [--seconds N] [--seed S]
//!
//! Each round takes a seed input, applies a few random mutations (bit
//! flips, boundary integers, deleted/duplicated/inserted spans, dictionary
//! words) and runs the target on it. A panic saves the input as
//! `tests/fuzz/TARGET/crash-<hash>` (kept: the regression test replays it)
//! and the run goes on; an input taking over 20 s is saved as `hang-<hash>`
//! and the run stops. Before each round the input is written to
//! `target/fuzz/TARGET.current`, so that an abort (which no handler sees)
//! leaves it behind for `scripts/fuzz.sh` to keep.

#[path = "../tests/fuzz_targets/mod.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use targets::Scratch;

const HANG: Duration = Duration::from_secs(20);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        let names: Vec<&str> = targets::TARGETS.iter().map(|t| t.name).collect();
        eprintln!(
            "usage: fuzz TARGET [--seconds N] [--seed S]\ntargets: {}",
            names.join(", ")
        );
        std::process::exit(2)
    };
    let Some(target) = args.first().and_then(|n| targets::target(n)) else {
        usage()
    };
    let mut seconds = 60u64;
    let mut seed = 1u64;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        match flag.as_str() {
            "--seconds" => seconds = value,
            "--seed" => seed = value,
            _ => usage(),
        }
    }

    let corpus = targets::seeds(target.name);
    if corpus.is_empty() {
        eprintln!("fuzz {}: no seed inputs", target.name);
        std::process::exit(2);
    }
    let dictionary = targets::dictionary(target.name);
    let current = current_path(target.name);
    std::fs::create_dir_all(current.parent().unwrap()).unwrap();

    // Panics are expected findings: keep their message, not the default
    // report on stderr for each.
    let last_panic = Arc::new(Mutex::new(String::new()));
    {
        let last_panic = last_panic.clone();
        std::panic::set_hook(Box::new(move |info| {
            *last_panic.lock().unwrap() = info.to_string();
        }));
    }
    let started_round = Arc::new(AtomicU64::new(0));
    watchdog(target.name, started_round.clone(), current.clone());

    let scratch = Scratch::new();
    let mut rng = StdRng::seed_from_u64(seed);
    let clock = Instant::now();
    let (mut rounds, mut crashes) = (0u64, 0u64);
    while clock.elapsed() < Duration::from_secs(seconds) {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let mut input = base.clone();
        for _ in 0..rng.random_range(1..=4) {
            targets::mutate(&mut rng, &mut input, &dictionary, &corpus);
        }
        std::fs::write(&current, &input).unwrap();
        started_round.store(now_ms(), Ordering::SeqCst);
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&scratch, &input)));
        started_round.store(0, Ordering::SeqCst);
        rounds += 1;
        if outcome.is_err() {
            crashes += 1;
            let kept = keep(target.name, "crash", &input);
            eprintln!(
                "fuzz {}: panic, input kept as {}\n  {}",
                target.name,
                kept.display(),
                last_panic.lock().unwrap()
            );
        }
    }
    let _ = std::fs::remove_file(&current);
    println!(
        "{{\"target\":\"{}\",\"seconds\":{},\"rounds\":{rounds},\"panics\":{crashes}}}",
        target.name,
        clock.elapsed().as_secs()
    );
    std::process::exit(if crashes > 0 { 1 } else { 0 });
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Stops the run when one round takes longer than [`HANG`], keeping its
/// input.
fn watchdog(name: &'static str, started: Arc<AtomicU64>, current: PathBuf) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let t = started.load(Ordering::SeqCst);
            if t != 0 && now_ms().saturating_sub(t) > HANG.as_millis() as u64 {
                let input = std::fs::read(&current).unwrap_or_default();
                let kept = keep(name, "hang", &input);
                eprintln!("fuzz {name}: hang, input kept as {}", kept.display());
                std::process::exit(3);
            }
        }
    });
}

fn current_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/fuzz")
        .join(format!("{name}.current"))
}

fn keep(target: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = targets::kept_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    let hash = Sha256::digest(input);
    let name: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{kind}-{name}"));
    std::fs::write(&path, input).unwrap();
    path
}
