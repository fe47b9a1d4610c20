//! The fuzz targets (`tests/fuzz_targets`) as tests: every input kept under
//! `tests/fuzz/<target>/` (seeds, and each crash the fuzzer found) runs
//! clean, and so does a short fixed-seed round of mutations of each target's
//! seeds. The long runs are `scripts/fuzz.sh`.

mod fuzz_targets;

use std::panic::{AssertUnwindSafe, catch_unwind};

use fuzz_targets::{Scratch, TARGETS};
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn every_kept_input_runs_without_a_panic() {
    let scratch = Scratch::new();
    let mut failed = Vec::new();
    let mut count = 0;
    for target in TARGETS {
        let dir = fuzz_targets::kept_dir(target.name);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let input = std::fs::read(entry.path()).unwrap();
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| (target.run)(&scratch, &input))).is_err() {
                failed.push(entry.path().display().to_string());
            }
        }
    }
    assert!(count > 0, "no kept inputs under tests/fuzz/");
    assert!(failed.is_empty(), "inputs that panic: {failed:#?}");
}

/// Rounds per target: enough to cover each mutation kind many times, few
/// enough for the test suite (the GGUF target reads a megabyte-sized header
/// each round).
fn rounds(target: &str) -> usize {
    match target {
        "gguf" => 40,
        "session" => 300,
        _ => 2000,
    }
}

#[test]
fn a_fixed_seed_round_of_mutations_runs_without_a_panic() {
    let scratch = Scratch::new();
    let mut failed = Vec::new();
    for target in TARGETS {
        let corpus = fuzz_targets::seeds(target.name);
        let dict = fuzz_targets::dictionary(target.name);
        let mut rng = StdRng::seed_from_u64(7);
        for round in 0..rounds(target.name) {
            let mut input = corpus[round % corpus.len()].clone();
            for _ in 0..1 + round % 4 {
                fuzz_targets::mutate(&mut rng, &mut input, &dict, &corpus);
            }
            if catch_unwind(AssertUnwindSafe(|| (target.run)(&scratch, &input))).is_err() {
                failed.push(format!("{} round {round}", target.name));
            }
        }
    }
    assert!(failed.is_empty(), "mutated inputs that panic: {failed:#?}");
}

/// The seeds reach the readers' ends (or the mutations would only ever test
/// the first check).
#[test]
fn the_seeds_are_read_whole() {
    let scratch = Scratch::new();
    let header = fuzz_targets::real_gguf_header();
    let path = scratch.path("seed.gguf");
    std::fs::write(&path, &header).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(fuzz_targets::GGUF_PADDED_LEN)
        .unwrap();
    let gguf = lmscope::engine::load::gguf::GgufFile::open(&path).expect("the padded header opens");
    lmscope::engine::tokenizer::Tokenizer::load(&gguf).expect("its tokenizer loads");

    for (i, input) in fuzz_targets::real_sessions().iter().enumerate() {
        let (json, sidecar) = fuzz_targets::split_session(input);
        let path = scratch.path(&format!("seed{i}.json"));
        std::fs::write(&path, json).unwrap();
        if let Some(bytes) = sidecar {
            std::fs::write(lmscope::store::session::sidecar_path(&path), bytes).unwrap();
        }
        let s = lmscope::store::session::Session::load(&path).expect("the seed session loads");
        assert_eq!(s.runs.len(), 1);
        assert_eq!(
            s.runs[0].steps.iter().any(|st| st.attention.is_some()),
            sidecar.is_some(),
            "seed {i}: attention comes back exactly when a sidecar was written"
        );
    }
}
